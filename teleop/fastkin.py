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
Tests check both against the torch solvers, and against the first (straightforward) numpy version kept in
tests/test_teleop_mapping.py as an oracle.

Speed (the whole mapper must fit a 50 Hz tick with room to spare on 2 cores): at these sizes (7 joints,
6-30 residuals) every numpy call costs ~0.5-3 us of overhead and the arithmetic is nearly free, so the hot
path is written to make few and cheap calls. Cheap: a 2-D `ndarray.dot` (~0.5 us; `np.dot` adds ~0.3 us of
array-function dispatch, a stacked `np.matmul` or a 4-D broadcast costs 3-5x a small dot, a fancy-index
gather ~2 us). So: all joints' local transforms are ONE 2-D product (block-diagonal [1, sin, cos] rows
against the stacked Rodrigues tables, pre-multiplied by the joint origins); the chain is composed with
bound `ndarray.dot(..., out=)` into a preallocated buffer; everything a solver reads from the FK (end
error, joint axes, points, the hand residual) is a constant 2-D map of that flat buffer (the hand's
target shift rides the base slot's constant 1, the arm's target enters a per-target error map); cross
products are one product with the Levi-Civita map; the hand's prior term rides extra residual and
Jacobian rows, so J^T J, J^T r and the cost are one product each; the FK of an accepted LM step is reused
for its Jacobian, and a warm-started solve reuses the buffer when it still holds FK(q0) (`fk_key`); linear
solves skip `np.linalg`'s Python wrapper (the matrices are damped, hence positive definite), clamps use
the clip ufunc.

Where numba is installed both solvers run as one compiled call instead (`teleop.fastkin_jit`, the same steps;
`compiled=` on `FastHand` / `dls_ik`): at the loop's 50 Hz cadence each numpy call costs ~2x what it costs back
to back, so even these few calls were most of a tick. The numpy path stays as the fallback and the kernels' oracle.
"""
from __future__ import annotations

import functools
import importlib.util
import math

import numpy as np

from converters.retarget.hands import H_KNUCKLE, H_MID, H_TIP, HandModel
from converters.retarget.kinematics import Chain


@functools.cache
def compiled_available() -> bool:
    """Whether the numba kernels (`teleop.fastkin_jit`) can run here; asked without importing numba (~0.6 s)."""
    return importlib.util.find_spec("numba") is not None


def _use_compiled(compiled: bool | None) -> bool:
    """A solver's `compiled=` argument resolved: None means "where numba is installed"; True without numba is
    refused rather than silently run as numpy."""
    if compiled is None:
        return compiled_available()
    if compiled and not compiled_available():
        raise RuntimeError("compiled=True needs numba (pip install numba)")
    return bool(compiled)


def _kernels():
    from teleop import fastkin_jit  # noqa: PLC0415 - numba loads only where a compiled solver runs
    return fastkin_jit

try:    # the gufuncs behind np.linalg.solve/inv without its ~5 us of Python checks per call
    from numpy.linalg import _umath_linalg as _ul

    def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _ul.solve1(a, b, signature="dd->d")

    def _inv(a: np.ndarray) -> np.ndarray:
        return _ul.inv(a, signature="d->d")
except (ImportError, AttributeError):       # pragma: no cover - other numpy layouts
    _solve, _inv = np.linalg.solve, np.linalg.inv

try:    # the clip ufunc (min(max(x, lo), hi)) without np.clip's Python wrapper: one call instead of two
    from numpy._core.umath import clip as _clip
except ImportError:                         # pragma: no cover - numpy < 2
    from numpy.core.umath import clip as _clip


_I1, _I2 = [1, 2, 0], [2, 0, 1]
_EPS = np.zeros((9, 3))
"""Levi-Civita tensor as a (9, 3) map: cross(a, b) = (a[:, :, None] * b[:, None, :]).reshape(-1, 9) @ _EPS."""
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    _EPS[3 * _i + _j, _k], _EPS[3 * _j + _i, _k] = 1.0, -1.0


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
        self._prepare_fast()

    def _prepare_fast(self) -> None:
        """Constant tables and buffers of `transforms` (see the module doc)."""
        n = len(self.parents)
        r0 = self.origins[:, :3, :3]
        # local_i = origin_i @ rot(axis_i, th) = (R0 + R0 KK) + sin(th) R0 K + cos(th) (-R0 KK) (translation: origin's)
        table = np.zeros((n, 3, 4, 4))
        table[:, 0, :3, :3] = r0 + r0 @ self._kk
        table[:, 0, :3, 3] = self.origins[:, :3, 3]
        table[:, 0, 3, 3] = 1.0
        table[:, 1, :3, :3] = r0 @ self._k
        table[:, 2, :3, :3] = -(r0 @ self._kk)
        self._table = table.reshape(n, 3, 16)
        # local = coef @ table as ONE 2-D product: coef block-diagonal (n, 3n), row i = [1, sin, cos] of joint
        # i at columns 3i..3i+2, against the stacked (3n, 16) table (a stacked matmul costs ~2x a 2-D dot)
        self._table2d = self._table.reshape(3 * n, 16).copy()
        self._coef = np.zeros((n, 3 * n))
        flat = self._coef.reshape(-1)
        flat[0::3 * n + 3] = 1.0
        self._sin, self._cos = flat[1::3 * n + 3], flat[2::3 * n + 3]      # strided views: joint i's sin, cos
        self._local = np.zeros((n, 4, 4))
        self._local16 = self._local.reshape(n, 16)
        self._tf = np.zeros((n + 1, 4, 4))           # world (base) transform of each joint's child frame
        self._tf[n] = np.eye(4)                      # slot n: the base itself (parent -1, points on the base)
        # roots (parent: the base) take their local transform as is; the rest compose in order
        roots = [i for i, p in enumerate(self.parents) if p < 0]
        self._roots = [(self._tf[i], self._local[i]) for i in roots]        # slice copies beat one fancy copy
        # (bound ndarray.dot: np.dot's array-function dispatch costs ~0.3 us a call, ~40 % of a 4x4 product)
        self._steps = [(self._tf[p].dot, self._local[i], self._tf[i]) for i, p in enumerate(self.parents) if p >= 0]
        self._direct = self.m.shape[0] == self.m.shape[1] and np.array_equal(self.m, np.eye(n)) and not self.b.any()
        self._axes_col = self.axes[:, :, None].copy()
        self._ik_views: tuple[np.ndarray, ...] | None = None
        self._jit_args: tuple | None = None
        self.fk_key: bytes | None = None
        """q.tobytes() of the configuration the buffer holds, where a solver vouches for it (None: unknown);
        `transforms` clears it. Lets a warm-started solve skip re-evaluating FK(q0) (bit-identical)."""

    @property
    def dof(self) -> int:
        return len(self.actuated)

    def jit_args(self) -> tuple:
        """The chain for `teleop.fastkin_jit`'s kernels: limits, Rodrigues tables, parents, mimic map, and
        its own (n + 1, 4, 4) FK work buffer (base slot: identity)."""
        if self._jit_args is None:
            n = len(self.parents)
            tf = np.zeros((n + 1, 4, 4))
            tf[n] = np.eye(4)
            self._jit_args = (self.lower, self.upper, np.ascontiguousarray(self._table), np.array(self.parents, np.int64),
                              np.ascontiguousarray(self.m, np.float64), np.ascontiguousarray(self.b, np.float64),
                              bool(self._direct), np.ascontiguousarray(self.axes, np.float64), tf)
        return self._jit_args

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(q, self.lower), self.upper)

    def transforms(self, q: np.ndarray) -> np.ndarray:
        """(dof,) -> the chain's (n + 1, 4, 4) buffer of child-frame poses in the base frame (slot n: base).

        The buffer is reused by the next call: copy what must outlive it. Not reentrant: one solver at a time
        per chain (each mapper owns its chains; `fk` is the reentrant form)."""
        self.fk_key = None
        full = q if self._direct else self.m.dot(q) + self.b
        np.sin(full, out=self._sin)
        np.cos(full, out=self._cos)
        self._coef.dot(self._table2d, out=self._local16)
        for world, local in self._roots:
            world[...] = local
        for parent_dot, local, out in self._steps:
            parent_dot(local, out=out)
        return self._tf

    def ik_views(self) -> tuple[np.ndarray, ...]:
        """Views into the `transforms` buffer for `dls_ik` (valid after each `transforms` call): the flat
        buffer, end rotation, end position as (3, 1), the joints' positions as (3, dof); a constant map of
        the flat buffer to the joints' axes in the base frame (3 dof, buffer size), rows (axis component,
        joint); then its scratch buffers: the weighted Jacobian (6, dof) with its flat rotation rows, the
        lever arms (3, dof), the error 6-vector; the error map (6, buffer size) and its two target-dependent
        views (target position column, rotation block [k, i, l])."""
        if self._ik_views is None:
            n, act = len(self.parents), self.actuated
            if act != list(range(n)):   # gathers would copy: keep the path for chains whose joints all move
                raise NotImplementedError("dls_ik needs a chain whose joints are all actuated (an arm)")
            width = (n + 1) * 16
            axes_map = np.zeros((3, n, width))
            for j in range(n):
                for a in range(3):
                    axes_map[a, j, j * 16 + a * 4: j * 16 + a * 4 + 3] = self.axes[j]
            jac = np.empty((6, n))
            # the wrist error [p_t - p_end; 0.5 sum_l r_end[:, l] x r_t[:, l]] is linear in the FK buffer for a
            # given target: err = err_map @ vec(tf), p_t through the base slot's constant 1 (tf[n, 3, 3])
            err_map = np.zeros((6, width))
            end = (n - 1) * 16
            for i in range(3):
                err_map[i, end + 4 * i + 3] = -1.0
            self._ik_views = (self._tf.reshape(-1), self._tf[n - 1, :3, :3], self._tf[n - 1, :3, 3:4],
                              self._tf[:n, :3, 3].T, axes_map.reshape(3 * n, width),
                              jac, jac[3:].reshape(-1), np.empty((3, n)), np.empty(6),
                              err_map, err_map[:3, n * 16 + 15], err_map[3:, end: end + 12].reshape(3, 3, 4)[:, :, :3])
        return self._ik_views

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dof,) -> child-frame rotations (n, 3, 3) and positions (n, 3) in the chain base frame.

        Reentrant (fresh arrays, unlike `transforms`): callers on other threads (the sim camera draws the
        arms) may share a chain with a solver."""
        q = np.asarray(q, np.float64)
        full = q if self._direct else np.dot(self.m, q) + self.b
        n = len(self.parents)
        coef = np.empty((n, 1, 3))
        coef[:, 0, 0], coef[:, 0, 1], coef[:, 0, 2] = 1.0, np.sin(full), np.cos(full)
        local = np.matmul(coef, self._table).reshape(n, 4, 4)
        tf = np.empty((n, 4, 4))
        for i, p in enumerate(self.parents):
            tf[i] = local[i] if p < 0 else np.dot(tf[p], local[i])
        return tf[:, :3, :3].copy(), tf[:, :3, 3].copy()

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


_DLS_CONSTANTS: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}
_EPS_T = _EPS.T.copy()
"""(3, 9): cross(a, b) = _EPS_T @ vec(a b^T), columnwise for (3, n) a and b (vec over the first two axes)."""
_HALF_EPS_IKJ = 0.5 * _EPS.reshape(3, 3, 3).transpose(0, 2, 1).reshape(9, 3)
"""(9, 3): rows (i, k), columns j: 0.5 eps[i, j, k]; e_rot = 0.5 sum_l r_end[:, l] x r_target[:, l] has
d e_rot[k] / d r_end[i, l] = (_HALF_EPS_IKJ @ r_target)[(i, k), l]."""


def dls_ik(nc: NumpyChain, target: np.ndarray, q0: np.ndarray, *, iterations: int = 30, damping: float = 0.05,
           rot_weight: float = 0.3, max_step: float = 0.4, tolerance: float = 1e-5, rest: np.ndarray | None = None,
           rest_gain: float = 0.0, rest_iterations: int = 2, compiled: bool | None = None
           ) -> tuple[np.ndarray, float, float]:
    """One wrist target (4, 4) -> (q, position error m, rotation error rad). Same step as arm_ik._iterate.

    `rest`/`rest_gain`: a secondary task in the null space of the (7-DoF, redundant) arm pulling towards a
    rest posture, so the unobserved elbow angle does not drift with the history of the motion.
    Stops once the wrist error is under `tolerance` (after `rest_iterations` steps of the rest pull).
    `compiled`: one call of the numba kernel (`teleop.fastkin_jit.arm_dls`; default where numba is installed)."""
    if _use_compiled(compiled):
        if nc.actuated != list(range(len(nc.parents))):
            raise NotImplementedError("dls_ik needs a chain whose joints are all actuated (an arm)")
        use_rest = rest is not None and rest_gain > 0
        rest_pull = rest_gain * np.asarray(rest, np.float64) if use_rest else nc.lower
        q, pe, re = _kernels().arm_dls(_clip(q0, nc.lower, nc.upper), np.ascontiguousarray(target[:3, 3], np.float64),
                                        np.ascontiguousarray(target[:3, :3], np.float64), rest_pull, float(rest_gain),
                                        use_rest, float(rot_weight), float(damping) ** 2, int(iterations),
                                        float(max_step), float(tolerance), int(rest_iterations), *nc.jit_args())
        nc.fk_key = None                        # the numpy buffer was not touched
        return q, float(pe), float(re)
    key = (rot_weight, damping)
    if key not in _DLS_CONSTANTS:
        _DLS_CONSTANTS[key] = (np.array([[1.0], [1.0], [1.0], [rot_weight], [rot_weight], [rot_weight]]),
                               damping ** 2 * np.eye(6))
    w, damp = _DLS_CONSTANTS[key]
    w_flat = w[:, 0]
    lower, upper = nc.lower, nc.upper
    q = _clip(q0, lower, upper)
    tf, r_end, p_end, pos_t, axes_map, jac, jac_axes, lever, err, err_map, err_map_target, err_map_rot = nc.ik_views()
    p_t = target[:3, 3].copy()
    rt_t = target[:3, :3].T.copy()
    err_map_target[:] = p_t
    # d err_rot[k] / d r_end[i, l] = 0.5 sum_j eps[i, j, k] r_t[j, l]
    err_map_rot[:] = _HALF_EPS_IKJ.dot(target[:3, :3]).reshape(3, 3, 3).transpose(1, 0, 2)
    use_rest = rest is not None and rest_gain > 0
    if use_rest:
        rest_pull = rest_gain * np.asarray(rest, np.float64)
    if nc.fk_key is None or nc.fk_key != q.tobytes():    # (warm start: the buffer may hold FK(q0))
        nc.transforms(q)
    for it in range(iterations):
        err_map.dot(tf, out=err)
        converged = max(map(abs, err.tolist())) < tolerance
        if converged and it >= rest_iterations:      # on target, rest pull served: done
            break
        pulling = use_rest and it < iterations - 3    # the last iterations serve the primary task only
        if converged and not pulling:
            break
        # J (6, dof): rows [axis x (p_end - p_i); axis] per joint, weighted; axes and levers read off the FK
        # buffer with 2-D products, the cross product as one product with the Levi-Civita map
        axes_map.dot(tf, out=jac_axes)
        np.subtract(p_end, pos_t, out=lever)
        _EPS_T.dot((jac[3:, None, :] * lever[None, :, :]).reshape(9, -1), out=jac[:3])
        jac *= w
        gram = jac.dot(jac.T)
        gram += damp
        # dq = J+ e + (I - J+ J) pull = pull + J^T (J J^T + lam I)^-1 (e - J pull), J+ the damped pseudo-inverse
        if pulling:
            pull = rest_pull - rest_gain * q
            u = jac.dot(pull)
            if converged:
                np.negative(u, out=u)
            else:
                np.subtract(err * w_flat, u, out=u)
            dq = _solve(gram, u).dot(jac)
            dq += pull
            # the rest pull is a slow secondary task: once the wrist is on target it needs no more than the
            # first `rest_iterations` steps of a tick (warm-started ticks then stop after 1-3 iterations)
            if converged and max(map(abs, dq.tolist())) < tolerance:
                break
        else:
            dq = _solve(gram, err * w_flat).dot(jac)
        _clip(dq, -max_step, max_step, out=dq)
        dq += q
        q = _clip(dq, lower, upper, out=dq)
        nc.transforms(q)
    d = p_t - p_end[:, 0]
    cos = (float(np.vdot(r_end, rt_t.T)) - 1.0) / 2.0
    nc.fk_key = q.tobytes()                            # the buffer holds FK(q), the answer
    return q, math.sqrt(float(d.dot(d))), math.acos(min(1.0, max(-1.0, cos)))


_PALM_ROWS = np.array([0, H_KNUCKLE["index"], H_KNUCKLE["middle"], H_KNUCKLE["little"]])


def palmar_frame(kp25: np.ndarray, side: str) -> np.ndarray:
    """numpy twin of `converters.retarget.hands.human_hand_frame` for one (25, 3) hand: columns x, y, z.

    (3-vector arithmetic on Python floats: a handful of numpy calls would cost more than the maths.)"""
    sign = 1.0 if side == "left" else -1.0
    (w0, w1, w2), (i0, i1, i2), (m0, m1, m2), (l0, l1, l2) = np.asarray(kp25).take(_PALM_ROWS, 0).tolist()
    x0, x1, x2 = (i0 + m0) / 2 - w0, (i1 + m1) / 2 - w1, (i2 + m2) / 2 - w2
    f = 1.0 / max(math.sqrt(x0 * x0 + x1 * x1 + x2 * x2), 1e-9)
    x0, x1, x2 = x0 * f, x1 * f, x2 * f
    a0, a1, a2 = i0 - l0, i1 - l1, i2 - l2
    n0, n1, n2 = sign * (x1 * a2 - x2 * a1), sign * (x2 * a0 - x0 * a2), sign * (x0 * a1 - x1 * a0)
    d = n0 * x0 + n1 * x1 + n2 * x2
    z0, z1, z2 = n0 - d * x0, n1 - d * x1, n2 - d * x2
    f = 1.0 / max(math.sqrt(z0 * z0 + z1 * z1 + z2 * z2), 1e-9)
    z0, z1, z2 = z0 * f, z1 * f, z2 * f
    y0, y1, y2 = z1 * x2 - z2 * x1, z2 * x0 - z0 * x2, z0 * x1 - z1 * x0
    return np.array(((x0, y0, z0), (x1, y1, z1), (x2, y2, z2)))


class FastHand:
    """Per-frame vector retargeting for one `HandModel` (see module doc)."""

    def __init__(self, model: HandModel, mid_weight: float = 0.5, pinch_weight: float = 1.0, compiled: bool | None = None):
        """`compiled`: solve with the numba kernel (`teleop.fastkin_jit`; default: where numba is installed)
        or with the numpy calls below (False)."""
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
        # the human vectors as one constant map of the keypoints (rows: tips - wrist, w_mid (mids - wrist),
        # w_pinch (tip_p - tip_thumb)), before the palm-frame rotation; columns: keypoints 0 .. the last used
        nf = len(self.human)
        hmap = np.zeros((2 * nf + len(self.pinch), 1 + max(max(H_TIP.values()), max(H_MID.values()))))
        for i, f in enumerate(self.human):
            hmap[i, H_TIP[f]] += 1.0
            hmap[i, 0] -= 1.0
            hmap[nf + i, H_MID[f]] += self.w_mid
            hmap[nf + i, 0] -= self.w_mid
        for r, p in enumerate(self.pinch):
            hmap[2 * nf + r, H_TIP[self.human[p]]] += self.w_pinch
            hmap[2 * nf + r, H_TIP[self.human[0]]] -= self.w_pinch
        self._human_map = hmap
        self._mirror = np.array([-1.0, 1.0, 1.0])
        self._prepare_fast()
        self.compiled = _use_compiled(compiled)
        self._jit_hand = (self._slots.astype(np.int64), np.ascontiguousarray(self._off_h[:, :, 0]),
                          np.ascontiguousarray(self._map), np.ascontiguousarray(self._coupling))
        if self.compiled:      # compile (first run) or load the kernel now, not in a control loop's first tick
            self._solve_compiled(np.zeros((25, 3)), 1.0, None, 1, 1e-4, 0.0)

    def _prepare_fast(self) -> None:
        """The residual as a constant linear map of the robot points (tips then middles, base frame)."""
        nc, nf = self.nc, len(self.human)
        n = len(nc.parents)
        idx = np.concatenate([self.tip_idx, self.mid_idx])
        self._slots = np.where(idx < 0, n, idx)                 # base-frame points read the identity slot
        k = len(idx)
        self._off_h = np.concatenate([np.concatenate([self.tip_off, self.mid_off]), np.ones((k, 1))], 1)[:, :, None]
        sel = np.zeros((2 * nf + len(self.pinch), k))           # residual rows (per 3-vector) <- points
        sel[np.arange(nf), np.arange(nf)] = 1.0
        sel[nf + np.arange(nf), nf + np.arange(nf)] = self.w_mid
        for r, p in enumerate(self.pinch):
            sel[2 * nf + r, p] += self.w_pinch
            sel[2 * nf + r, 0] -= self.w_pinch
        self._map = np.kron(sel, self.frame.T)                  # (3 rows, 3 k): palm frame per 3-vector
        self._map_offset = self._map @ np.tile(self.wrist, k)   # the wrist subtracted from every point
        self._ntip = 3 * nf
        # d point_k / d q_a = sum_n coupling[k, n, a] axis_n x (p_k - pos_n): coupling = ancestor & revolute * m
        mask = np.zeros((k, n))
        mask[idx >= 0] = nc.ancestors[idx[idx >= 0]]
        self._coupling = (mask * nc.revolute[None])[:, :, None] * nc.m[None]   # (k, n, dof)
        # Everything the solver reads from the FK is linear in the flat (n + 1) * 16 transforms buffer, so it
        # is one 2-D product with a constant map (a stacked matmul or a gather costs 2-3x a 2-D dot):
        # the points p_k[a] = sum_c tf[slot_k, a, c] off_h[k, c] (rows ordered (a, k)), the residual (the
        # palm-frame map of the points), the joint axes in the base frame (rows (a, joint)).
        dof, rows, width = nc.dof, len(self._map), (n + 1) * 16
        pts_map = np.zeros((3, k, width))
        for i, sl in enumerate(self._slots):
            for a in range(3):
                pts_map[a, i, sl * 16 + a * 4: sl * 16 + a * 4 + 4] = self._off_h[i, :, 0]
        self._pts_map = pts_map.reshape(3 * k, width)
        map_ak = self._map.reshape(rows, k, 3).transpose(0, 2, 1).reshape(rows, 3 * k)   # columns (a, k)
        self._res_map = map_ak @ self._pts_map
        axes_map = np.zeros((3, n, width))
        for jnt in range(n):
            for a in range(3):
                axes_map[a, jnt, jnt * 16 + a * 4: jnt * 16 + a * 4 + 3] = nc.axes[jnt]
        self._axes_map = axes_map.reshape(3 * n, width)
        self._tf_flat = nc._tf.reshape(-1)                      # views into the chain's FK buffer
        self._pos_t = nc._tf[:n, :3, 3].T                       # (3, n)
        self._eps_t = _EPS.T.copy()                             # (3, 9): cross(a, b) = eps_t @ vec(a b^T)
        self._eye = np.eye(dof)
        self._map_ak = map_ak
        bd = np.zeros((k, n, k, dof))                           # coupling as a block-diagonal 2-D map
        for i in range(k):
            bd[i, :, i, :] = self._coupling[i]
        self._coupling_bd = bd.reshape(k * n, k * dof)
        # the base slot's constant 1 (tf[n, 3, 3]) carries -shift: residual = res_map @ vec(tf) in one product
        self._one_col = n * 16 + 15
        # the prior rides as extra rows: residual [r; sqrt(prior) (q - q0)], Jacobian [J; sqrt(prior) I], so
        # J^T J, J^T r and the cost are one product each (two residual buffers: trial and accepted)
        self._jac_aug = np.zeros((rows + dof, dof))
        self._jac_top = self._jac_aug[:rows]
        self._res_bufs = (np.zeros(rows + dof), np.zeros(rows + dof))
        self._aug_sqrt_prior = 0.0

    def human_vectors(self, kp25: np.ndarray) -> np.ndarray:
        """The operator's target vectors (tips, weighted middles, weighted pinches; palm frame, human scale)."""
        kp = np.asarray(kp25, np.float64)
        if self.model.mirror_input:
            kp = kp * self._mirror
        return self._human_map.dot(kp[: self._human_map.shape[1]]).dot(palmar_frame(kp, self.model.side)).ravel()

    def _jacobian(self, out: np.ndarray) -> None:
        """d residual / d q (rows, dof) into `out`, at the FK in the chain buffer (the last `transforms`).

        d p_k / d q_a = sum_n coupling[k, n, a] axis_n x (p_k - pos_n): axes, points and joint positions read
        off the FK buffer, every cross product in one product with the Levi-Civita map, the coupling sum one
        product with its block-diagonal form, then the palm-frame map."""
        k, n, dof = len(self._slots), len(self.nc.parents), self.nc.dof
        tf = self._tf_flat
        axes = self._axes_map.dot(tf).reshape(3, 1, 1, n)
        lever = self._pts_map.dot(tf).reshape(3, k, 1) - self._pos_t[:, None, :]             # (3, k, n)
        cross = self._eps_t.dot((axes * lever).reshape(9, k * n))                             # (3, k n)
        jp = cross.dot(self._coupling_bd)                                                      # (3, k dof)
        self._map_ak.dot(jp.reshape(3 * k, dof), out=out)

    def solve(self, kp25: np.ndarray, scale: float, q0: np.ndarray | None = None, iterations: int = 6,
              mu: float = 1e-4, prior: float = 0.0) -> tuple[np.ndarray, float]:
        """(25, 3) keypoints -> (q (dof,), mean fingertip error in m at robot scale).

        `prior` > 0 adds prior * |q - q0|^2 to the loss: the per-frame form of retarget_hand's temporal
        smoothness term (tracking noise on short finger segments otherwise makes joints chatter)."""
        if self.compiled:
            return self._solve_compiled(kp25, scale, q0, iterations, mu, prior)
        nc = self.nc
        # residual = map @ points - shift, shift = map_offset + scale * human vectors: -shift into the map
        neg_shift = self._res_map[:, self._one_col]
        np.multiply(self.human_vectors(kp25), -scale, out=neg_shift)
        neg_shift -= self._map_offset
        lower, upper = nc.lower, nc.upper
        q = _clip((lower + upper) / 2 if q0 is None else q0, lower, upper)
        anchor = q.copy() if (q0 is not None and prior > 0) else None
        sqrt_prior = math.sqrt(prior) if anchor is not None else 0.0
        if sqrt_prior != self._aug_sqrt_prior:
            self._aug_sqrt_prior = sqrt_prior
            self._jac_aug[len(self._jac_top):] = sqrt_prior * self._eye
        rows, res_map, tf = len(self._jac_top), self._res_map, self._tf_flat
        r, trial = self._res_bufs
        r[rows:] = 0.0                                  # the prior term is 0 at the anchor
        trial[rows:] = 0.0
        if nc.fk_key is None or nc.fk_key != q.tobytes():    # (warm start: the buffer may hold FK(q0))
            nc.transforms(q)
        res_map.dot(tf, out=r[:rows])
        self._jacobian(self._jac_top)
        cost = float(r.dot(r))
        r_tips = r[: self._ntip]
        jac_aug_t = self._jac_aug.T
        for it in range(iterations):
            jtj = jac_aug_t.dot(self._jac_aug)          # J^T J + prior I
            g = jac_aug_t.dot(r)                         # J^T r + prior (q - q0)
            damp = self._eye * (jtj.diagonal() + 1e-9)  # diag(diag(jtj) + 1e-9)
            while True:
                q_new = q - _solve(jtj + mu * damp, g)
                _clip(q_new, lower, upper, out=q_new)
                nc.transforms(q_new)
                res_map.dot(tf, out=trial[:rows])
                if anchor is not None:
                    np.subtract(q_new, anchor, out=trial[rows:])
                    trial[rows:] *= sqrt_prior
                c_new = float(trial.dot(trial))
                if c_new < cost or mu > 1e6:
                    break
                mu *= 10.0
            if c_new >= cost:
                break
            mu = max(mu / 10.0, 1e-7)
            converged = cost - c_new < max(1e-12, 1e-3 * cost)   # <0.1 % better: done
            q, cost = q_new, c_new
            r, trial = trial, r                         # the trial is the accepted residual now
            r_tips = r[: self._ntip]
            if converged or it == iterations - 1:      # (no next iteration to read a Jacobian)
                nc.fk_key = q.tobytes()                 # the buffer holds FK(q), the answer
                break
            self._jacobian(self._jac_top)               # the chain buffer holds the FK of the accepted q
        else:                                           # (iterations <= 0: only FK(q) ran)
            nc.fk_key = q.tobytes()
        sq = r_tips.reshape(-1, 3) ** 2
        return q, float(np.sqrt(sq.sum(axis=1)).sum()) / len(sq)

    def _solve_compiled(self, kp25: np.ndarray, scale: float, q0: np.ndarray | None, iterations: int, mu: float,
                        prior: float) -> tuple[np.ndarray, float]:
        """`solve` as one call of the numba kernel (same steps; see teleop.fastkin_jit)."""
        lower, upper = self.nc.lower, self.nc.upper
        neg_shift = self.human_vectors(kp25) * -scale
        neg_shift -= self._map_offset
        q = _clip((lower + upper) / 2 if q0 is None else q0, lower, upper)
        sqrt_prior = math.sqrt(prior) if (q0 is not None and prior > 0) else 0.0
        q, err = _kernels().hand_lm(q, q.copy(), sqrt_prior, neg_shift, *self._jit_hand, int(iterations), float(mu),
                                     self._ntip, *self.nc.jit_args())
        self.nc.fk_key = None                   # the numpy buffer was not touched
        return q, float(err)


__all__ = ["NumpyChain", "dls_ik", "FastHand", "palmar_frame", "compiled_available"]
