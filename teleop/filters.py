"""One-Euro filters (Casiez et al., CHI 2012) for tracker positions, orientations and hand keypoints.

Why: the IK solves exactly, so tracker jitter would pass straight into the joints, amplified where the
arm's short wrist links make small orientation changes cost large joint motion. The One-Euro filter
smooths hard when the signal is slow (jitter) and lets fast motion through with little lag (its cutoff
rises with speed). Orientation is filtered on SO(3): the step from the previous filtered rotation to
the new one is scaled by the filter's alpha (a geodesic interpolation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Per-tick cost matters (the mapper runs 6 of these filters in each 20 ms tick): the 3-vector and 3x3
# arithmetic below is done on Python floats, which at this size beats numpy's per-call overhead.


def log_so3(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> rotation vector."""
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = r.tolist()
    theta = math.acos(min(1.0, max(-1.0, (r00 + r11 + r22 - 1.0) / 2.0)))
    w = (r21 - r12, r02 - r20, r10 - r01)
    if theta < 1e-9:
        return 0.5 * np.array(w)
    if math.pi - theta < 1e-6:                    # near pi: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(r) + 1.0) / 2.0, 0.0, None))
        i = int(np.argmax(axis))
        axis = (r[:, i] + np.eye(3)[i]) / max(np.linalg.norm(r[:, i] + np.eye(3)[i]), 1e-12)
        return theta * axis
    f = theta / (2.0 * math.sin(theta))
    return np.array((f * w[0], f * w[1], f * w[2]))


def _exp_so3(v: np.ndarray) -> np.ndarray:
    """Rotation vector -> rotation matrix (Rodrigues, cos I + sin [k]x + (1 - cos) k k^T)."""
    x, y, z = v.tolist()
    theta = math.sqrt(x * x + y * y + z * z)
    if theta < 1e-12:
        return np.eye(3)
    x, y, z = x / theta, y / theta, z / theta
    s, c = math.sin(theta), math.cos(theta)
    v1 = 1.0 - c
    return np.array(((c + v1 * x * x, v1 * x * y - s * z, v1 * x * z + s * y),
                     (v1 * x * y + s * z, c + v1 * y * y, v1 * y * z - s * x),
                     (v1 * x * z - s * y, v1 * y * z + s * x, c + v1 * z * z)))


def _alpha(cutoff: float | np.ndarray, dt: float):
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff: float = 1.5      # Hz, the cutoff at rest
    beta: float = 4.0            # cutoff increase per unit of speed (1/m for positions, 1/rad for rotations)
    d_cutoff: float = 1.0        # Hz, for the speed estimate


class OneEuro:
    """Vector One-Euro filter (elementwise speed)."""

    def __init__(self, config: OneEuroConfig = OneEuroConfig()):
        self.cfg = config
        self.reset()

    def reset(self) -> None:
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t
        if x.ndim == 1 and x.size <= 4:           # a tracker position: float maths, no numpy call overhead
            return self._small(float(t), dt, x.tolist())
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(self.cfg.d_cutoff, dt) * (dx - self.dx)
        if self.dx.ndim > 1:
            speed = np.sqrt(np.square(self.dx).sum(axis=-1))
            a = _alpha(self.cfg.min_cutoff + self.cfg.beta * speed, dt)[..., None]
        else:
            a = _alpha(self.cfg.min_cutoff + self.cfg.beta * math.sqrt(float(np.dot(self.dx, self.dx))), dt)
        self.x = self.x + a * (x - self.x)
        self.t = float(t)
        return self.x.copy()


    def _small(self, t: float, dt: float, x: list[float]) -> np.ndarray:
        """`__call__` for a short vector, on Python floats (same formulas)."""
        ad = _alpha(self.cfg.d_cutoff, dt)
        prev = self.x.tolist()
        dx = [d + ad * ((xi - pi) / dt - d) for xi, pi, d in zip(x, prev, self.dx.tolist())]
        a = _alpha(self.cfg.min_cutoff + self.cfg.beta * math.sqrt(sum(d * d for d in dx)), dt)
        out = [pi + a * (xi - pi) for xi, pi in zip(x, prev)]
        self.dx, self.x, self.t = np.array(dx), np.array(out), t
        return np.array(out)


class PoseFilter:
    """One-Euro on position and (geodesically) on orientation of a 4x4 pose."""

    def __init__(self, position: OneEuroConfig = OneEuroConfig(), rotation: OneEuroConfig = OneEuroConfig(beta=1.0)):
        self.pos = OneEuro(position)
        self.rcfg = rotation
        self.reset()

    def reset(self) -> None:
        self.pos.reset()
        self.r: np.ndarray | None = None
        self.w = np.zeros(3)
        self.t: float | None = None

    def __call__(self, t: float, pose: np.ndarray) -> np.ndarray:
        out = np.eye(4)
        out[:3, 3] = self.pos(t, pose[:3, 3])
        r_new = pose[:3, :3]
        if self.r is None or self.t is None or t <= self.t:
            self.r, self.w, self.t = r_new.copy(), np.zeros(3), float(t)
        else:
            dt = float(t) - self.t
            step = log_so3(np.dot(self.r.T, r_new)).tolist()
            ad = _alpha(self.rcfg.d_cutoff, dt)
            w = [wi + ad * (si / dt - wi) for wi, si in zip(self.w.tolist(), step)]
            self.w = np.array(w)
            a = _alpha(self.rcfg.min_cutoff + self.rcfg.beta * math.sqrt(sum(wi * wi for wi in w)), dt)
            self.r = np.dot(self.r, _exp_so3(np.array([a * si for si in step])))
            self.t = float(t)
        out[:3, :3] = self.r
        return out


__all__ = ["OneEuro", "OneEuroConfig", "PoseFilter", "log_so3"]
