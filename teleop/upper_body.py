"""Upper body: torso rpy from head vs pelvis, wrist poses (pelvis-relative, scaled) -> robot arm joints.

Frames (see `teleop.body`): the operator's torso frame is the pelvis heading (yaw of the pelvis tracker)
rotated by the torso roll/pitch/yaw this module commands; the robot's torso_link turns by the same command
(the lower-body tracker executes it), so expressing the operator's wrists relative to their shoulder
centre in that frame, scaled, and re-anchoring at the robot's shoulder centre puts the robot's hands where
the operator's are, in the robot's own proportions. Wrist orientation carries over unscaled. The arms are
the embodiment's IK model (`schemas.embodiments` `ArmIK`: chains, reference and rest poses; G1 today).

Torso: pitch/roll = lean of the pelvis->head vector relative to the calibrated upright one; yaw = head yaw
relative to the pelvis times `torso_yaw_gain` after a deadzone (people turn their heads far more than
their torsos).

IK: the first tick (or after a reset) runs `converters.retarget.arm_ik.solve_ik` (multi-seed, torch);
every later tick runs the same damped-least-squares step single-frame in numpy (`teleop.fastkin.dls_ik`,
same chain, weights and limits), warm-started from the previous tick's solution, so it needs only a few
iterations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from converters.retarget.arm_ik import IKConfig, arm_chain, solve_ik
from schemas import embodiments
from schemas.embodiments import Embodiment
from teleop.body import robot_shoulder_center
from teleop.calibration import Calibration
from teleop.fastkin import NumpyChain, compiled_available, dls_ik
from teleop.geometry import sign
from teleop.streams import HAND_SIDES

TELEOP_IK = IKConfig(iterations=4, seeds=(), sweeps=0, tolerance=2e-5)
"""Per-tick IK: warm start only, few iterations (targets move little in one tick). 4 iterations, not 12:
measured on a 30 s sim session (g1-dex3), the IK residual p95 went 0.11 -> 0.31 mm and the arm joints stayed
within 0.007 rad of the 12-iteration answer, for ~a third of the arm solver's time; the null-space rest pull
per iteration (`UpperBodyConfig.rest_gain`) went 0.05 -> 0.25 so the pull per tick stays comparable."""
_NUMPY_CHAINS: dict[tuple[str, str], NumpyChain] = {}


def numpy_arm(side: str, embodiment: str | None = None) -> NumpyChain:
    """The numpy twin of `arm_chain(side, embodiment)`, built once per process."""
    key = (side, embodiments.canonical(embodiment))
    if key not in _NUMPY_CHAINS:
        _NUMPY_CHAINS[key] = NumpyChain(arm_chain(side, key[1]))
    return _NUMPY_CHAINS[key]


@dataclass(frozen=True)
class UpperBodyConfig:
    ik: IKConfig = TELEOP_IK
    first_ik: IKConfig = field(default_factory=IKConfig)     # multi-seed, first tick / after reset
    torso_yaw_gain: float = 0.5
    torso_yaw_deadzone: float = 0.15        # rad of head yaw ignored
    unreachable_error: float = 0.03         # m of IK position residual flagged as unreachable
    rest_gain: float = 0.25                 # null-space pull towards the reference pose per iteration
    # "compiled" (teleop.fastkin_jit's kernel; numpy's where numba is missing) | "numpy" (teleop.fastkin)
    # | "torch" (converters' solve_ik per tick)
    backend: str = "compiled"


@dataclass
class UpperBodyResult:
    arm_q: dict[str, np.ndarray | None]              # side -> (arm dof,), None when that wrist (or pelvis) is lost
    torso_rpy: np.ndarray                            # (3,) the torso rpy the arms were mapped under
    targets: dict[str, np.ndarray] = field(default_factory=dict)   # side -> 4x4 wrist target, torso frame
    position_error: dict[str, float] = field(default_factory=dict)
    rotation_error: dict[str, float] = field(default_factory=dict)


# The three functions below run every tick on 3-vectors and 3x3 matrices: Python float arithmetic (one
# `tolist` in, one array out) instead of ~40 numpy calls on tiny arrays and scalars; same formulas.

def torso_rpy(pelvis: np.ndarray, head: np.ndarray, cal: Calibration, cfg: UpperBodyConfig = UpperBodyConfig()) -> np.ndarray:
    """Torso roll, pitch, yaw (rad) from calibrated pelvis and head poses."""
    (p00, _, _, px), (p10, _, _, py), (_, _, _, pz) = pelvis[:3].tolist()
    (h00, _, _, hx), (h10, _, _, hy), (_, _, _, hz) = head[:3].tolist()
    yaw_p = math.atan2(p10, p00)                                # heading(pelvis)
    c, s = math.cos(yaw_p), math.sin(yaw_p)
    d0, d1, v2 = hx - px, hy - py, hz - pz
    v0, v1 = c * d0 + s * d1, -s * d0 + c * d1                   # rot_z(yaw_p).T @ (head - pelvis)
    o0, o1, o2 = (float(x) for x in cal.head_offset)
    pitch = math.atan2(v0, v2) - math.atan2(o0, o2)
    roll = -(math.atan2(v1, v2) - math.atan2(o1, o2))
    head_yaw = (math.atan2(h10, h00) - yaw_p + math.pi) % (2 * math.pi) - math.pi     # wrap_angle
    excess = sign(head_yaw) * max(0.0, abs(head_yaw) - cfg.torso_yaw_deadzone)
    return np.array([roll, pitch, cfg.torso_yaw_gain * excess])


def operator_torso(pelvis: np.ndarray, rpy_cmd: np.ndarray, cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """(shoulder centre in world, torso rotation in world) of the operator for a commanded torso rpy.

    The torso rotation is rot_z(heading(pelvis)) @ rpy(*rpy_cmd) (rpy: Rz(yaw) Ry(pitch) Rx(roll))."""
    (p00, _, _, px), (p10, _, _, py), (_, _, _, pz) = pelvis[:3].tolist()
    roll, pitch, yaw = (float(v) for v in rpy_cmd[:3])
    yaw_p = math.atan2(p10, p00)
    c, s = math.cos(yaw_p), math.sin(yaw_p)
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    m0 = (cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr)
    m1 = (sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr)
    m2 = (-sp, cp * sr, cp * cr)
    r0 = [c * a - s * b for a, b in zip(m0, m1)]
    r1 = [s * a + c * b for a, b in zip(m0, m1)]
    o0, o1, o2 = (float(x) for x in cal.shoulder_offset)
    shoulder = np.array((px + r0[0] * o0 + r0[1] * o1 + r0[2] * o2, py + r1[0] * o0 + r1[1] * o1 + r1[2] * o2,
                         pz + m2[0] * o0 + m2[1] * o1 + m2[2] * o2))
    return shoulder, np.array((r0, r1, m2))


def wrist_target(wrist: np.ndarray, shoulder: np.ndarray, r_torso: np.ndarray, scale: float,
                 embodiment: str | None = None) -> np.ndarray:
    """Operator wrist pose (world) -> the robot's wrist-link target in the torso frame."""
    (a00, a01, a02, ax), (a10, a11, a12, ay), (a20, a21, a22, az) = wrist[:3].tolist()
    (t00, t01, t02), (t10, t11, t12), (t20, t21, t22) = r_torso.tolist()
    s0, s1, s2 = shoulder.tolist()
    c0, c1, c2 = robot_shoulder_center(embodiment)
    d0, d1, d2 = ax - s0, ay - s1, az - s2
    scale = float(scale)
    return np.array((
        (t00 * a00 + t10 * a10 + t20 * a20, t00 * a01 + t10 * a11 + t20 * a21, t00 * a02 + t10 * a12 + t20 * a22,
         c0 + scale * (t00 * d0 + t10 * d1 + t20 * d2)),
        (t01 * a00 + t11 * a10 + t21 * a20, t01 * a01 + t11 * a11 + t21 * a21, t01 * a02 + t11 * a12 + t21 * a22,
         c1 + scale * (t01 * d0 + t11 * d1 + t21 * d2)),
        (t02 * a00 + t12 * a10 + t22 * a20, t02 * a01 + t12 * a11 + t22 * a21, t02 * a02 + t12 * a12 + t22 * a22,
         c2 + scale * (t02 * d0 + t12 * d1 + t22 * d2)),
        (0.0, 0.0, 0.0, 1.0)))


class UpperBodyMapper:
    def __init__(self, calibration: Calibration, config: UpperBodyConfig = UpperBodyConfig(),
                 embodiment: str | Embodiment | None = None):
        self.cal = calibration
        self.cfg = config
        self.embodiment = embodiments.get(embodiment)
        if self.embodiment.ik is None:
            raise ValueError(f"{self.embodiment.name}: no arm kinematics to map the operator's wrists onto")
        self.ik = self.embodiment.ik
        self._rest = {s: self.ik.pose(self.ik.rest, s) for s in HAND_SIDES}    # calibration-independent
        # own numpy chains: `dls_ik` works in a chain's preallocated buffers, so a solver must not share them
        # with another mapper or thread (the process-wide `numpy_arm` ones serve reentrant `fk` callers)
        self._chains = {s: NumpyChain(arm_chain(s, self.embodiment.name)) for s in HAND_SIDES}
        self._compiled = config.backend == "compiled" and compiled_available()
        if self._compiled:
            # compile (first run) or load the compiled solver now, not in a control loop's first tick
            chain = self._chains["left"]
            self._dls(chain, np.eye(4), (chain.lower + chain.upper) / 2, self._rest["left"])
        self.reset()

    def reset(self) -> None:
        self._q: dict[str, np.ndarray | None] = {s: None for s in HAND_SIDES}

    def solve_arm(self, side: str, target: np.ndarray) -> tuple[np.ndarray, float, float]:
        prev = self._q[side]
        name = self.embodiment.name
        if prev is None:
            res = solve_ik(arm_chain(side, name), target[None], self.cfg.first_ik,
                           q_init=self.ik.pose(self.cal.reference, side)[None])
            q, pe, re = res.q[0], float(res.position_error[0]), float(res.rotation_error[0])
        elif self.cfg.backend == "torch":
            res = solve_ik(arm_chain(side, name), target[None], self.cfg.ik, q_init=prev[None])
            q, pe, re = res.q[0], float(res.position_error[0]), float(res.rotation_error[0])
        else:
            q, pe, re = self._dls(self._chains[side], target, prev, self._rest[side])
        self._q[side] = q
        return q, pe, re

    def _dls(self, chain: NumpyChain, target: np.ndarray, q0: np.ndarray, rest: np.ndarray
             ) -> tuple[np.ndarray, float, float]:
        c = self.cfg.ik
        return dls_ik(chain, target, q0, iterations=c.iterations, damping=c.damping, rot_weight=c.rot_weight,
                      max_step=c.max_step, tolerance=c.tolerance, rest=rest, rest_gain=self.cfg.rest_gain,
                      compiled=self._compiled)

    def measure_torso(self, poses: dict[str, np.ndarray], valid: dict[str, bool]) -> np.ndarray | None:
        """Torso rpy the operator shows this tick (None when head or pelvis is lost)."""
        if valid.get("pelvis", False) and valid.get("head", False):
            return torso_rpy(poses["pelvis"], poses["head"], self.cal, self.cfg)
        return None

    def step(self, poses: dict[str, np.ndarray], valid: dict[str, bool], torso_cmd: np.ndarray) -> UpperBodyResult:
        """Calibrated site poses + validity + the torso rpy being commanded -> arm joints per side.

        The commanded (rate-limited, clamped) torso rpy, not the measured one, defines the torso frame: it is
        the frame the robot's torso will actually be in."""
        out = UpperBodyResult(arm_q={s: None for s in HAND_SIDES}, torso_rpy=np.asarray(torso_cmd, np.float64))
        if not valid.get("pelvis", False):
            return out
        shoulder, r_t = operator_torso(poses["pelvis"], out.torso_rpy, self.cal)
        for side in HAND_SIDES:
            if not valid.get(f"{side}_wrist", False):
                continue
            target = wrist_target(poses[f"{side}_wrist"], shoulder, r_t, self.cal.scale, self.embodiment.name)
            q, pe, re = self.solve_arm(side, target)
            out.arm_q[side], out.targets[side] = q, target
            out.position_error[side], out.rotation_error[side] = pe, re
        return out


__all__ = ["UpperBodyConfig", "UpperBodyMapper", "UpperBodyResult", "torso_rpy", "operator_torso", "wrist_target",
           "TELEOP_IK"]
