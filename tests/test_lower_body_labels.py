"""Humanoid Everyday's lower-body labels against simulators that know the command they executed (issue 14).

Each simulator runs a scripted whole-body command (stand, walk, strafe, turn, squat, lean past the
waist's range, twist and roll the torso); its state is recorded at HE's 30 Hz in HE's layout (leg_state =
G1 legs + waist, IMU / odometry attitude, odometry position) and `converters.humanoid_everyday.
derive_lower_body` derives the 8 AMO dims from it; they are compared with what the simulator reports
it executed. The tolerances are the measured errors with margin; where they come from is said per dim.
"""
from __future__ import annotations

import numpy as np
import pytest

from converters.humanoid_everyday import derive_lower_body
from schemas.actions import LOWER_BODY_COMMAND, NOMINAL_TORSO_HEIGHT, PSI0_ACTION
from schemas.embodiments import G1_BODY

DIMS = LOWER_BODY_COMMAND.dims
LEGS_WAIST = slice(G1_BODY.slice("legs").start, G1_BODY.slice("waist").stop)
HE_FPS = 30.0


def script(t: float) -> dict[str, float]:
    """The commanded lower body at time t (s): every dim moves, inside AMO's ranges."""
    def ramp(a: float, b: float) -> float:           # 0 before a, 1 after b, smooth between
        x = np.clip((t - a) / (b - a), 0.0, 1.0)
        return float(x * x * (3 - 2 * x))

    c = {"torso_roll": 0.0, "torso_pitch": 0.0, "torso_yaw": 0.0, "torso_height": NOMINAL_TORSO_HEIGHT,
         "vx": 0.0, "vy": 0.0, "yaw_rate": 0.0}
    c["vx"] = 0.35 * (ramp(0.5, 1.0) - ramp(2.5, 3.0))
    c["vy"] = 0.2 * (ramp(3.0, 3.3) - ramp(4.0, 4.3))
    c["yaw_rate"] = 0.4 * (ramp(4.5, 4.8) - ramp(6.0, 6.3))
    c["torso_height"] = NOMINAL_TORSO_HEIGHT - 0.15 * (ramp(6.5, 7.5) - ramp(9.0, 10.0))
    c["torso_pitch"] = 0.7 * (ramp(7.0, 8.0) - ramp(8.5, 9.5))           # past the waist's 0.52: hips lean too
    c["torso_yaw"] = 0.5 * (ramp(10.0, 10.5) - ramp(11.0, 11.5))
    c["torso_roll"] = 0.3 * (ramp(10.5, 11.0) - ramp(11.5, 12.0))
    return c


DURATION = 12.5


def command_row(t: float, target_yaw: float) -> np.ndarray:
    row = np.zeros(LOWER_BODY_COMMAND.size)
    for k, v in script(t).items():
        row[DIMS.index(k)] = v
    row[DIMS.index("target_yaw")] = target_yaw
    return row


def errors(derived, truth: np.ndarray, frames: np.ndarray | None = None, lag: int = 0, skip: int = 6
           ) -> dict[str, float]:
    """Per dim: max |derived[i] - executed[i - lag]| over labelled frames (`frames` selects some; the first
    frames are skipped: no history to differentiate). `lag` (30 Hz frames): the state follows the executed
    command through the simulator's servos, a few ticks late."""
    n = len(truth)
    keep = np.zeros(n, bool)
    keep[skip:] = True
    if frames is not None:
        keep &= frames
    out = {}
    for k, d in enumerate(DIMS):
        ok = keep[lag:] & derived.valid[lag:, k]
        diff = np.abs(derived.command[lag:, k] - truth[:n - lag, k])
        out[d] = float(diff[ok].max()) if ok.any() else float("nan")
    return out


def best_lag_errors(derived, truth: np.ndarray, frames: np.ndarray | None = None, lags: range = range(9)
                    ) -> tuple[dict[str, float], dict[str, int]]:
    """`errors` at the lag (per dim) that minimises it: the derivation's own error once the servo delay is out."""
    per_lag = [errors(derived, truth, frames, lag) for lag in lags]
    best = {d: min(lags, key=lambda lag: per_lag[lag][d]) for d in DIMS}
    return {d: per_lag[best[d]][d] for d in DIMS}, best


def he_raw(legs_waist, rpy, position, t) -> dict:
    return {"embodiment": "g1_dex3", "leg_state": np.asarray(legs_waist), "imu.rpy": np.asarray(rpy),
            "odometry.position": np.asarray(position), "odometry.velocity": None, "odometry.rpy": np.asarray(rpy)}


@pytest.fixture(scope="module")
def mujoco_run():
    """The MuJoCo G1 with the system-0 stand-in (sim.tracker): `executed_command` every 50 Hz tick."""
    pytest.importorskip("mujoco")
    from sim.env import EnvConfig, SimEnv, neutral_action

    import mujoco

    env = SimEnv(EnvConfig(camera=False))
    env.reset("lunchbag", 0)
    # contacts off: the scene's table would push a leaning robot's hands and twist its waist, and the labels
    # are about what the robot's own joints and base did
    env.model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    target = float(env.prev_command[DIMS.index("target_yaw")])
    rows = []
    for k in range(int(DURATION * 50)):
        t = k / 50.0
        target += script(t)["yaw_rate"] / 50.0
        a = neutral_action()
        a[PSI0_ACTION.slice("lower_body")] = command_row(t, target)
        _, _, info = env.step(a)
        d, idx = env.data, env.idx
        rows.append((env.t, d.qpos[idx.body_qpos[LEGS_WAIST]].copy(), env.base_rpy(), d.xpos[idx.pelvis].copy(),
                     info["executed_command"].copy()))
    return _at_30hz(rows)


@pytest.fixture(scope="module")
def kinematic_run():
    """The teleop kinematic simulator (teleop.devices.sim.SimRobot): the executed command in every state
(`executed.torso_*`, base_height, vx, vy, yaw_rate, base_yaw)."""
    from teleop.devices.sim import SimRobot
    from teleop.streams import RobotCommand

    robot = SimRobot()
    target, rows = 0.0, []
    robot.state(0.0)
    for k in range(1, int(DURATION * 50)):
        t = k / 50.0
        target += script(t)["yaw_rate"] / 50.0
        a = np.zeros(PSI0_ACTION.size, np.float32)
        row = command_row(t, target)
        row[DIMS.index("torso_pitch")] = min(row[DIMS.index("torso_pitch")], 0.45)   # its IMU shows no hip lean
        a[PSI0_ACTION.slice("lower_body")] = row
        robot.send(RobotCommand(t, a))
        s = robot.state(t)
        executed = np.array([s.extra["executed.torso_roll"], s.extra["executed.torso_pitch"],
                             s.extra["executed.torso_yaw"], s.base_height, s.extra["vx"], s.extra["vy"],
                             s.extra["yaw_rate"], s.extra["base_yaw"]])
        position = np.array([s.extra["base_x"], s.extra["base_y"], s.base_height])
        rows.append((t, s.body_q[LEGS_WAIST].copy(), np.asarray(s.imu_rpy), position, executed))
    return _at_30hz(rows)


def _at_30hz(rows):
    """HE's rate: the 50 Hz ticks nearest a 30 Hz grid."""
    t = np.array([r[0] for r in rows])
    grid = np.arange(t[0], t[-1], 1.0 / HE_FPS)
    pick = np.clip(np.searchsorted(t, grid), 0, len(t) - 1)
    legs, rpy, pos, truth = (np.stack([rows[i][j] for i in pick]) for j in (1, 2, 3, 4))
    truth[:, DIMS.index("target_yaw")] = np.unwrap(truth[:, DIMS.index("target_yaw")])
    truth[:, DIMS.index("target_yaw")] -= truth[0, DIMS.index("target_yaw")]
    return t[pick] - t[pick][0], legs, rpy, pos, truth


# max |derived - executed| at the same frame / after the servo delay (best lag <= 8 frames), per dim
MUJOCO_TOLERANCE = {            # the MuJoCo G1 tracks the stand-in's targets through PD servos
    "torso_roll": (0.05, 0.025), "torso_pitch": (0.07, 0.045),   # waist PD overshoot / droop at its 0.52 limit
    "torso_yaw": (0.05, 0.025),
    "torso_height": (0.02, 0.02),   # standing frames; stepping: see STEPPING_HEIGHT
    "vx": (0.08, 0.03), "vy": (0.08, 0.03),                   # the servoed base lags the commanded velocity
    "yaw_rate": (0.10, 0.10), "target_yaw": (0.03, 0.02),     # ... and so does its yaw servo (2nd order)
}
KINEMATIC_TOLERANCE = {         # the kinematic teleop robot: joints are its lagged command exactly
    "torso_roll": (0.02, 0.02),     # its IMU roll is a cosmetic gait sway
    "torso_pitch": (0.03, 0.03),    # its IMU pitch is a cosmetic 0.05 x vx
    "torso_yaw": (1e-4, 1e-4),
    "torso_height": (0.02, 0.02),   # its legs are 0.3 + 0.3 m, the derivation uses the G1's 0.335 + 0.300 m
    "vx": (0.02, 0.02), "vy": (0.02, 0.02), "yaw_rate": (0.03, 0.03), "target_yaw": (0.01, 0.01),
}
STEPPING_HEIGHT = 0.10
"""While the simulators step, their legs swing without carrying the pelvis (the stand-in servoes the base,
the kinematic robot's gait is drawn): leg kinematics cannot see a height there, and on a real robot the
stance leg does. Bounded, not claimed."""


@pytest.mark.parametrize("run, tolerance", [("mujoco_run", MUJOCO_TOLERANCE), ("kinematic_run", KINEMATIC_TOLERANCE)])
def test_derived_commands_match_what_the_simulator_executed(run, tolerance, request):
    t, legs, rpy, pos, truth = request.getfixturevalue(run)
    derived = derive_lower_body(he_raw(legs, rpy, pos, t), t)
    assert derived.valid.all(), {d: derived.how[d] for d in DIMS}       # a G1 with odometry: every dim a label
    velocity = truth[:, [DIMS.index("vx"), DIMS.index("vy"), DIMS.index("yaw_rate")]]
    standing = (np.abs(velocity) < 0.02).all(axis=1)
    err, err_late = errors(derived, truth), best_lag_errors(derived, truth)[0]
    height = DIMS.index("torso_height")
    err["torso_height"] = errors(derived, truth, standing)["torso_height"]
    err_late["torso_height"] = best_lag_errors(derived, truth, standing)[0]["torso_height"]
    stepping = errors(derived, truth, ~standing)["torso_height"]
    print(run, "same frame", {d: round(v, 4) for d, v in err.items()})
    print(run, "after the servo delay", {d: round(v, 4) for d, v in err_late.items()}, "stepping height",
          round(stepping, 4))
    assert all(err[d] <= tolerance[d][0] and err_late[d] <= tolerance[d][1] for d in DIMS), (err, err_late)
    assert stepping <= STEPPING_HEIGHT
    # the script exercised every dim (an untouched dim would prove nothing), standing and stepping
    span = truth.max(0) - truth.min(0)
    assert all(span[DIMS.index(d)] > 0.1 for d in DIMS), dict(zip(DIMS, span.round(3)))
    assert standing.sum() > 60 and (~standing).sum() > 60 and np.ptp(truth[standing, height]) > 0.1


def test_without_the_joints_a_dim_is_masked_not_proxied(mujoco_run):
    """The same trajectory as an H1 would record it (one waist joint, no AMO stance): roll, pitch and height
    are masked; yaw, velocities and heading remain labels."""
    t, legs, rpy, pos, truth = mujoco_run
    from schemas.embodiments import H1_LEGS_WAIST
    h1 = np.zeros((len(t), H1_LEGS_WAIST.size))
    h1[:, H1_LEGS_WAIST.dims.index("waist_yaw")] = legs[:, G1_BODY.dims[LEGS_WAIST].index("waist_yaw")]
    raw = he_raw(h1, rpy, pos, t)
    raw["embodiment"] = "h1_inspire"
    derived = derive_lower_body(raw, t)
    masked = {d for k, d in enumerate(DIMS) if not derived.valid[:, k].any()}
    assert masked == {"torso_roll", "torso_pitch", "torso_height"}
    err = errors(derived, truth)
    assert all(err[d] <= MUJOCO_TOLERANCE[d][0] for d in DIMS if d not in masked), err
