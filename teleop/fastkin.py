"""Single-frame numpy fast paths of the project's retargeting solvers, for the 50 Hz control loop.

Why: `converters.retarget` solves whole episodes batched in torch; for ONE frame per tick torch's per-op
overhead dominates (~0.5 ms per DLS iteration, ~2 ms per L-BFGS closure: 30-60 ms per tick for two arms
and two hands). These functions run the same models — the very `Chain` objects (joint origins, axes,
limits, mimic couplings, named points) of `converters.retarget.kinematics` — and the same objectives:
- `dls_ik`: the damped-least-squares step of `converters.retarget.arm_ik._iterate` (same weighting,
  damping, per-iteration step clamp, joint clamp), warm-started;
- `hand_lm`: the vector-retargeting loss of `converters.retarget.hands.retarget_hand` (tips, middle joints,
  thumb->finger pinch vectors in the palmar frame, fixed scale; no temporal smoothing term), minimised by
  Levenberg-Marquardt with an analytic Jacobian and box limits, warm-started.
Tests check both against the torch solvers.
"""
from __future__ import annotations

import numpy as np

from converters.retarget.hands import H_KNUCKLE, H_MID, H_TIP, HandModel
from converters.retarget.kinematics import Chain


_I1, _I2 = [1, 2, 0], [2, 0, 1]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross without its axis bookkeeping (10x faster on tiny arrays)."""
    return a[..., _I1] * b[..., _I2] - a[..., _I2] * b[..., _I1]


class NumpyChain:
    """A `Chain` evaluated for one configuration in numpy."""

    def __init__(self, chain: Chain):
        self.chain = chain
        self.origins = chain._origins.numpy().copy()
        self.axes = chain._axes.numpy().copy()
        self.m = chain._m.numpy().copy()
        self.b = chain._b.numpy().copy()
        self.parents = [j.parent for j in chain.joints]
        self.revolute = np.array([j.axis is not None for j in chain.joints])
        self.actuated = list(chain.actuated)
        self.lower = chain.lower.numpy().copy()
        self.upper = chain.upper.numpy().copy()
        n = len(chain.joints)
        # chain[i] = joints on the path base -> i (inclusive)
        self.ancestors = np.zeros((n, n), bool)
        for i in range(n):
            j = i
            while j >= 0:
                self.ancestors[i, j] = True
                j = self.parents[j]
        k = self.axes
        self._k = np.stack([np.stack([np.zeros(n), -k[:, 2], k[:, 1]], -1), np.stack([k[:, 2], np.zeros(n), -k[:, 0]], -1),
                            np.stack([-k[:, 1], k[:, 0], np.zeros(n)], -1)], -2)   # (n, 3, 3) skew
        self._kk = self._k @ self._k

    @property
    def dof(self) -> int:
        return len(self.actuated)

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(q, self.lower), self.upper)

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dof,) -> child-frame rotations (n, 3, 3) and positions (n, 3) in the chain base frame."""
        full = self.m @ q + self.b
        s, c = np.sin(full)[:, None, None], np.cos(full)[:, None, None]
        local = self.origins[:, :3, :3] @ (np.eye(3) + s * self._k + (1 - c) * self._kk)
        rots = np.empty_like(local)
        pos = np.empty((len(full), 3))
        for i, p in enumerate(self.parents):
            t = self.origins[i, :3, 3]
            if p < 0:
                rots[i] = local[i]
                pos[i] = t
            else:
                rots[i] = rots[p] @ local[i]
                pos[i] = pos[p] + rots[p] @ t
        return rots, pos

    def point_index(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([self.chain.points[n][0] for n in names])
        off = np.array([self.chain.points[n][1] for n in names], np.float64)
        return idx, off

    def points(self, rots: np.ndarray, pos: np.ndarray, idx: np.ndarray, off: np.ndarray) -> np.ndarray:
        safe = np.maximum(idx, 0)
        base = idx < 0
        p = np.einsum("kij,kj->ki", rots[safe], off) + pos[safe]
        p[base] = off[base]
        return p

    def point_jacobian(self, rots: np.ndarray, pos: np.ndarray, idx: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """d point / d q_actuated: (k, 3, dof), through mimic couplings."""
        axes_w = np.einsum("nij,nj->ni", rots, self.axes)                          # (n, 3)
        lever = pts[:, None, :] - pos[None, :, :]                                   # (k, n, 3)
        jn = _cross(axes_w[None], lever)                                          # (k, n, 3)
        mask = np.zeros((len(idx), len(self.parents)), bool)
        mask[idx >= 0] = self.ancestors[idx[idx >= 0]]
        jn = jn * (mask & self.revolute[None])[:, :, None]
        return np.einsum("kni,na->kia", jn, self.m)


def dls_ik(nc: NumpyChain, target: np.ndarray, q0: np.ndarray, *, iterations: int = 30, damping: float = 0.05,
           rot_weight: float = 0.3, max_step: float = 0.4, tolerance: float = 1e-5, rest: np.ndarray | None = None,
           rest_gain: float = 0.0, rest_iterations: int = 2) -> tuple[np.ndarray, float, float]:
    """One wrist target (4, 4) -> (q, position error m, rotation error rad). Same step as arm_ik._iterate.

    `rest`/`rest_gain`: a secondary task in the null space of the (7-DoF, redundant) arm pulling towards a
    rest posture, so the unobserved elbow angle does not drift with the history of the motion."""
    w = np.array([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight])
    eye = np.eye(6) * damping ** 2
    q = nc.clamp(np.asarray(q0, np.float64).copy())
    act = nc.actuated
    rt = target[:3, :3]
    use_rest = rest is not None and rest_gain > 0
    for it in range(iterations):
        rots, pos = nc.fk(q)
        r_end, p_end = rots[-1], pos[-1]
        e_pos = target[:3, 3] - p_end
        e_rot = 0.5 * _cross(r_end.T, rt.T).sum(axis=0)
        axes_w = np.einsum("nij,nj->ni", rots[act], nc.axes[act])
        jac = np.concatenate([_cross(axes_w, p_end - pos[act]), axes_w], axis=1).T * w[:, None]   # (6, dof)
        err = np.concatenate([e_pos, e_rot]) * w
        converged = max(np.abs(e_pos).max(), np.abs(e_rot).max()) < tolerance
        pinv = jac.T @ np.linalg.inv(jac @ jac.T + eye)
        null = np.zeros(len(q))
        if use_rest and it < iterations - 3:          # the last iterations serve the primary task only
            null = (np.eye(len(q)) - pinv @ jac) @ (rest_gain * (rest - q))
        # the rest pull is a slow secondary task: once the wrist is on target it needs no more than the
        # first `rest_iterations` steps of a tick (warm-started ticks then stop after 1-3 iterations)
        if converged and (it >= rest_iterations or np.abs(null).max() < tolerance):
            break
        dq = (0.0 if converged else pinv @ err) + null
        q = nc.clamp(q + np.clip(dq, -max_step, max_step))
    rots, pos = nc.fk(q)
    cos = (np.trace(rots[-1].T @ rt) - 1.0) / 2.0
    return q, float(np.linalg.norm(target[:3, 3] - pos[-1])), float(np.arccos(np.clip(cos, -1.0, 1.0)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def palmar_frame(kp25: np.ndarray, side: str) -> np.ndarray:
    """numpy twin of `converters.retarget.hands.human_hand_frame` for one (25, 3) hand: columns x, y, z."""
    sign = 1.0 if side == "left" else -1.0
    x = _unit((kp25[H_KNUCKLE["index"]] + kp25[H_KNUCKLE["middle"]]) / 2 - kp25[0])
    n = sign * _cross(x, kp25[H_KNUCKLE["index"]] - kp25[H_KNUCKLE["little"]])
    z = _unit(n - (n @ x) * x)
    return np.stack([x, _cross(z, x), z], axis=-1)


class FastHand:
    """Per-frame vector retargeting for one `HandModel` (see module doc)."""

    def __init__(self, model: HandModel, mid_weight: float = 0.5, pinch_weight: float = 1.0):
        self.model = model
        self.nc = NumpyChain(model.chain)
        self.frame = model.frame.numpy()
        self.wrist = model.wrist.numpy()
        self.tip_idx, self.tip_off = self.nc.point_index([f"{f}_tip" for f in model.fingers])
        self.mid_idx, self.mid_off = self.nc.point_index([f"{f}_mid" for f in model.fingers])
        self.pinch = [model.fingers.index(p) for p in model.pinch]
        self.human = [model.finger_map[f] for f in model.fingers]
        self.w_mid = np.sqrt(mid_weight)
        self.w_pinch = np.sqrt(pinch_weight)

    def human_vectors(self, kp25: np.ndarray) -> np.ndarray:
        kp = np.asarray(kp25, np.float64)
        if self.model.mirror_input:
            kp = kp * np.array([-1.0, 1.0, 1.0])
        frame = palmar_frame(kp, self.model.side)
        rel = (kp - kp[:1]) @ frame
        tips = rel[[H_TIP[f] for f in self.human]]
        mids = rel[[H_MID[f] for f in self.human]]
        pinch = tips[self.pinch] - tips[0]
        return np.concatenate([tips.ravel(), self.w_mid * mids.ravel(), self.w_pinch * pinch.ravel()])

    def _residual(self, q: np.ndarray, target: np.ndarray, jac: bool):
        rots, pos = self.nc.fk(q)
        tips = self.nc.points(rots, pos, self.tip_idx, self.tip_off)
        mids = self.nc.points(rots, pos, self.mid_idx, self.mid_off)
        tv = (tips - self.wrist) @ self.frame
        mv = (mids - self.wrist) @ self.frame
        pv = tv[self.pinch] - tv[0]
        r = np.concatenate([tv.ravel(), self.w_mid * mv.ravel(), self.w_pinch * pv.ravel()]) - target
        if not jac:
            return r, None, tv
        jt = np.einsum("ji,kja->kia", self.frame, self.nc.point_jacobian(rots, pos, self.tip_idx, tips))
        jm = np.einsum("ji,kja->kia", self.frame, self.nc.point_jacobian(rots, pos, self.mid_idx, mids))
        jp = jt[self.pinch] - jt[0][None]
        j = np.concatenate([jt.reshape(-1, self.nc.dof), self.w_mid * jm.reshape(-1, self.nc.dof),
                            self.w_pinch * jp.reshape(-1, self.nc.dof)])
        return r, j, tv

    def solve(self, kp25: np.ndarray, scale: float, q0: np.ndarray | None = None, iterations: int = 6,
              mu: float = 1e-4, prior: float = 0.0) -> tuple[np.ndarray, float]:
        """(25, 3) keypoints -> (q (dof,), mean fingertip error in m at robot scale).

        `prior` > 0 adds prior * |q - q0|^2 to the loss: the per-frame form of retarget_hand's temporal
        smoothness term (tracking noise on short finger segments otherwise makes joints chatter)."""
        target = scale * self.human_vectors(kp25)
        q = self.nc.clamp((self.nc.lower + self.nc.upper) / 2 if q0 is None else np.asarray(q0, np.float64))
        anchor = q.copy() if (q0 is not None and prior > 0) else None
        w_prior = np.sqrt(prior)

        def residual(qq: np.ndarray, jac: bool):
            r_, j_, tv_ = self._residual(qq, target, jac)
            if anchor is not None:
                r_ = np.concatenate([r_, w_prior * (qq - anchor)])
                if jac:
                    j_ = np.concatenate([j_, w_prior * np.eye(len(qq))])
            return r_, j_, tv_

        r, j, tv = residual(q, True)
        cost = float(r @ r)
        for _ in range(iterations):
            jtj = j.T @ j
            g = j.T @ r
            while True:
                dq = -np.linalg.solve(jtj + mu * (np.diag(np.diag(jtj)) + 1e-9 * np.eye(len(q))), g)
                q_new = self.nc.clamp(q + dq)
                r_new, _, tv_new = residual(q_new, False)
                c_new = float(r_new @ r_new)
                if c_new < cost or mu > 1e6:
                    break
                mu *= 10.0
            if c_new >= cost:
                break
            mu = max(mu / 10.0, 1e-7)
            converged = cost - c_new < max(1e-12, 1e-3 * cost)   # <0.1 % better: done
            q, cost, tv = q_new, c_new, tv_new
            if converged:
                break
            r, j, tv = residual(q, True)
        n = len(self.human)
        tip_err = np.linalg.norm(tv - target[: 3 * n].reshape(n, 3), axis=1).mean()
        return q, float(tip_err)


__all__ = ["NumpyChain", "dls_ik", "FastHand", "palmar_frame"]
