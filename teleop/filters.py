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


def _exp_so3_floats(x: float, y: float, z: float) -> tuple[float, ...]:
    """Rotation vector -> rotation matrix, row-major floats (Rodrigues, cos I + sin [k]x + (1 - cos) k k^T)."""
    theta = math.sqrt(x * x + y * y + z * z)
    if theta < 1e-12:
        return (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    x, y, z = x / theta, y / theta, z / theta
    s, c = math.sin(theta), math.cos(theta)
    v1 = 1.0 - c
    return (c + v1 * x * x, v1 * x * y - s * z, v1 * x * z + s * y,
            v1 * x * y + s * z, c + v1 * y * y, v1 * y * z - s * x,
            v1 * x * z - s * y, v1 * y * z + s * x, c + v1 * z * z)


def _exp_so3(v: np.ndarray) -> np.ndarray:
    """Rotation vector -> rotation matrix."""
    return np.array(_exp_so3_floats(*v.tolist())).reshape(3, 3)


def _alpha(cutoff: float | np.ndarray, dt: float):
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff: float = 1.5      # Hz, the cutoff at rest
    beta: float = 4.0            # cutoff increase per unit of speed (1/m for positions, 1/rad for rotations)
    d_cutoff: float = 1.0        # Hz, for the speed estimate


class OneEuro:
    """Vector One-Euro filter (elementwise speed).

    Short vectors (a tracker position) run on Python floats, others on numpy arrays; the filter holds the
    state of one signal at a time, so a call with another shape than the last restarts it (the first sample
    of a signal passes unfiltered) instead of blending with the other signal's state."""

    def __init__(self, config: OneEuroConfig = OneEuroConfig()):
        self.cfg = config
        self.reset()

    def reset(self) -> None:
        self.x: np.ndarray | None = None         # state of the array path
        self.dx: np.ndarray | None = None
        self.t: float | None = None
        self._xl: list[float] | None = None      # state of the float path (`step_floats`)
        self._dxl: list[float] = []
        self._shape: tuple[int, ...] | None = None

    def __call__(self, t: float, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim == 1 and x.size <= 4:           # a tracker position: float maths, no numpy call overhead
            return np.array(self.step_floats(t, x.tolist()))
        if x.shape != self._shape:                # step_floats makes the same check for its signals
            self.reset()
            self._shape = x.shape
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t
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

    def step_floats(self, t: float, x: list[float]) -> list[float]:
        """`__call__` for a short vector given and returned as Python floats (same formulas)."""
        if self._shape != (len(x),):
            self.reset()
            self._shape = (len(x),)
        if self._xl is None or self.t is None or t <= self.t:
            self._xl, self._dxl, self.t = list(x), [0.0] * len(x), float(t)
            return list(x)
        dt = float(t) - self.t
        ad = _alpha(self.cfg.d_cutoff, dt)
        prev = self._xl
        dx = [d + ad * ((xi - pi) / dt - d) for xi, pi, d in zip(x, prev, self._dxl)]
        a = _alpha(self.cfg.min_cutoff + self.cfg.beta * math.sqrt(sum(d * d for d in dx)), dt)
        out = [pi + a * (xi - pi) for xi, pi in zip(x, prev)]
        self._dxl, self._xl, self.t = dx, out, float(t)
        return list(out)


class PoseFilter:
    """One-Euro on position and (geodesically) on orientation of a 4x4 pose.

    The whole update runs on Python floats (one `tolist` in, one `np.array` out): the numpy version spent
    ~60 us a pose on call overhead for 3-vectors and 3x3 products, 4 poses per tick."""

    def __init__(self, position: OneEuroConfig = OneEuroConfig(), rotation: OneEuroConfig = OneEuroConfig(beta=1.0)):
        self.pos = OneEuro(position)
        self.rcfg = rotation
        self.reset()

    def reset(self) -> None:
        self.pos.reset()
        self.t: float | None = None
        self._r: list[float] = []            # the filtered rotation row-major, and its angular velocity, as floats
        self._w: list[float] = [0.0, 0.0, 0.0]

    @property
    def r(self) -> np.ndarray | None:
        """Filtered rotation (3x3), None before the first pose."""
        return np.array(self._r).reshape(3, 3) if self._r else None

    @property
    def w(self) -> np.ndarray:
        """Filtered angular velocity (rad/s, in the filtered frame)."""
        return np.array(self._w)

    def __call__(self, t: float, pose: np.ndarray) -> np.ndarray:
        (a00, a01, a02, px), (a10, a11, a12, py), (a20, a21, a22, pz) = pose.tolist()[:3]
        px, py, pz = self.pos.step_floats(t, [px, py, pz])
        if not self._r or self.t is None or t <= self.t:
            self._r, self._w, self.t = [a00, a01, a02, a10, a11, a12, a20, a21, a22], [0.0, 0.0, 0.0], float(t)
        else:
            dt = float(t) - self.t
            r00, r01, r02, r10, r11, r12, r20, r21, r22 = self._r
            # d = r^T r_new, the step in the previous filtered frame, and its rotation vector (log_so3)
            d00 = r00 * a00 + r10 * a10 + r20 * a20
            d11 = r01 * a01 + r11 * a11 + r21 * a21
            d22 = r02 * a02 + r12 * a12 + r22 * a22
            d01 = r00 * a01 + r10 * a11 + r20 * a21
            d10 = r01 * a00 + r11 * a10 + r21 * a20
            d02 = r00 * a02 + r10 * a12 + r20 * a22
            d20 = r02 * a00 + r12 * a10 + r22 * a20
            d12 = r01 * a02 + r11 * a12 + r21 * a22
            d21 = r02 * a01 + r12 * a11 + r22 * a21
            theta = math.acos(min(1.0, max(-1.0, (d00 + d11 + d22 - 1.0) / 2.0)))
            if theta < 1e-9:
                f = 0.5
            elif math.pi - theta < 1e-6:                 # near pi: the general (numpy) form
                s0, s1, s2 = log_so3(np.array(((d00, d01, d02), (d10, d11, d12), (d20, d21, d22)))).tolist()
                f = None
            else:
                f = theta / (2.0 * math.sin(theta))
            if f is not None:
                s0, s1, s2 = f * (d21 - d12), f * (d02 - d20), f * (d10 - d01)
            ad = _alpha(self.rcfg.d_cutoff, dt)
            w0, w1, w2 = self._w
            w0, w1, w2 = w0 + ad * (s0 / dt - w0), w1 + ad * (s1 / dt - w1), w2 + ad * (s2 / dt - w2)
            self._w = [w0, w1, w2]
            a = _alpha(self.rcfg.min_cutoff + self.rcfg.beta * math.sqrt(w0 * w0 + w1 * w1 + w2 * w2), dt)
            e00, e01, e02, e10, e11, e12, e20, e21, e22 = _exp_so3_floats(a * s0, a * s1, a * s2)
            self._r = [r00 * e00 + r01 * e10 + r02 * e20, r00 * e01 + r01 * e11 + r02 * e21, r00 * e02 + r01 * e12 + r02 * e22,
                       r10 * e00 + r11 * e10 + r12 * e20, r10 * e01 + r11 * e11 + r12 * e21, r10 * e02 + r11 * e12 + r12 * e22,
                       r20 * e00 + r21 * e10 + r22 * e20, r20 * e01 + r21 * e11 + r22 * e21, r20 * e02 + r21 * e12 + r22 * e22]
            self.t = float(t)
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = self._r
        return np.array(((r00, r01, r02, px), (r10, r11, r12, py), (r20, r21, r22, pz), (0.0, 0.0, 0.0, 1.0)))


__all__ = ["OneEuro", "OneEuroConfig", "PoseFilter", "log_so3"]
