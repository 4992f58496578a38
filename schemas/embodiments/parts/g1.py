"""Unitree G1, 29-DoF body: joint table, arm kinematics, reference poses, driver gains, head camera.

Sources (numbers transcribed, files cited):
- Joint order and limits: unitreerobotics/xr_teleoperate `assets/g1/g1_body29_hand14.urdf` and
  `teleop/robot_control/robot_arm.py` (`G1_29_JointIndex`).
- Arm chains (torso_link -> {side}_shoulder_pitch ... {side}_wrist_yaw): unitreerobotics/unitree_ros
  `robots/g1_description/g1_29dof.urdf`.
- Head colour camera (RealSense D435) intrinsics: Humanoid Everyday README (G1 colour fx, fy, cx, cy).
"""
from __future__ import annotations

from schemas.embodiments.spec import ArmIK, BodySpec, ChainSpec, JointSpec, LegGeometry, joint_space

_Y, _X, _Z = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def _leg(side: str) -> list[tuple[str, float, float]]:
    roll = (-0.5236, 2.9671) if side == "left" else (-2.9671, 0.5236)
    return [
        (f"{side}_hip_pitch", -2.5307, 2.8798),
        (f"{side}_hip_roll", *roll),
        (f"{side}_hip_yaw", -2.7576, 2.7576),
        (f"{side}_knee", -0.087267, 2.8798),
        (f"{side}_ankle_pitch", -0.87267, 0.5236),
        (f"{side}_ankle_roll", -0.2618, 0.2618),
    ]


def _arm(side: str) -> list[tuple[str, float, float]]:
    roll = (-1.5882, 2.2515) if side == "left" else (-2.2515, 1.5882)
    return [
        (f"{side}_shoulder_pitch", -3.0892, 2.6704),
        (f"{side}_shoulder_roll", *roll),
        (f"{side}_shoulder_yaw", -2.618, 2.618),
        (f"{side}_elbow", -1.0472, 2.0944),
        (f"{side}_wrist_roll", -1.972222054, 1.972222054),
        (f"{side}_wrist_pitch", -1.614429558, 1.614429558),
        (f"{side}_wrist_yaw", -1.614429558, 1.614429558),
    ]


G1_WAIST = [("waist_yaw", -2.618, 2.618), ("waist_roll", -0.52, 0.52), ("waist_pitch", -0.52, 0.52)]

G1_BODY = joint_space(
    "g1_body29",
    _leg("left") + _leg("right") + G1_WAIST + _arm("left") + _arm("right"),
    {"left_leg": (0, 6), "right_leg": (6, 12), "legs": (0, 12), "waist": (12, 15),
     "left_arm": (15, 22), "right_arm": (22, 29), "arms": (15, 29)},
)
"""G1 29-DoF body in SDK motor order (legs, waist, arms)."""

G1_ARMS = joint_space("g1_arms14", _arm("left") + _arm("right"), {"left_arm": (0, 7), "right_arm": (7, 14)})
"""The 14 arm joints in the order Unitree teleop datasets store `arm_state` / `sol_q[15:29]`."""

G1_LEGS_WAIST = joint_space("g1_leg_state15", _leg("left") + _leg("right") + G1_WAIST,
                            {"left_leg": (0, 6), "right_leg": (6, 12), "waist": (12, 15)})
"""Humanoid Everyday G1 `leg_state` (15): legs then waist, SDK order."""


def arm_chain(side: str) -> ChainSpec:
    """G1 7-DoF arm, torso_link frame -> wrist_yaw_link (g1_29dof.urdf). Point `wrist` = wrist_yaw_link
    origin, `palm` = the fixed hand-mount offset of `{side}_hand_palm_joint`."""
    s = 1.0 if side == "left" else -1.0
    lim = {name: (lo, hi) for name, lo, hi in _arm(side)}

    def joint(name: str, parent: int, xyz: tuple, rpy: tuple, axis: tuple[float, float, float]) -> JointSpec:
        return JointSpec(f"{side}_{name}", parent, xyz, rpy, axis, *lim[f"{side}_{name}"])

    zero = (0.0, 0.0, 0.0)
    joints = (
        joint("shoulder_pitch", -1, (0.0039563, 0.10022 if side == "left" else -0.10021, 0.23778),
              (s * 0.27931, 5.4949e-05, -s * 0.00019159), _Y),
        joint("shoulder_roll", 0, (0, s * 0.038, -0.013831), (-s * 0.27925, 0, 0), _X),
        joint("shoulder_yaw", 1, (0, s * 0.00624, -0.1032), zero, _Z),
        joint("elbow", 2, (0.015783, 0, -0.080518), zero, _Y),
        joint("wrist_roll", 3, (0.100, s * 0.00188791, -0.010), zero, _X),
        joint("wrist_pitch", 4, (0.038, 0, 0), zero, _Y),
        joint("wrist_yaw", 5, (0.046, 0, 0), zero, _Z),
    )
    return ChainSpec(f"g1_{side}_arm", joints, {"wrist": (6, (0.0, 0.0, 0.0)), "palm": (6, (0.0415, s * 0.003, 0.0))},
                     source="unitreerobotics/unitree_ros robots/g1_description/g1_29dof.urdf")


_HALF_PI = 1.5707963267948966   # np.pi / 2

G1_ARM_IK = ArmIK(
    title="G1",
    chains={side: arm_chain(side) for side in ("left", "right")},
    # Reference poses an operator imitates during teleop calibration: "ready" (q = 0: upper arms down,
    # elbows bent 90 deg, forearms forward, palms facing; the G1 elbow cannot straighten fully, so
    # arms-down is not reachable) and "t_pose" (arms straight out to the sides).
    poses={"ready": {"left": (0.0,) * 7, "right": (0.0,) * 7},
           "t_pose": {"left": (0.0, _HALF_PI, 0.0, _HALF_PI, 0.0, 0.0, 0.0),
                      "right": (0.0, -_HALF_PI, 0.0, _HALF_PI, 0.0, 0.0, 0.0)}},
    rest="ready",
    seeds=((0.0, 0.3, 0.0, 1.0, 0.0, 0.0, 0.0), (-0.8, 0.3, 0.0, 0.8, 0.0, 0.0, 0.0),
           (0.3, 0.6, 0.5, 1.4, 0.0, 0.0, 0.0)),
    source="unitreerobotics/unitree_ros robots/g1_description/g1_29dof.urdf",
)
"""G1 arm IK: chains, calibration / rest poses, and the episode solver's multi-start seeds."""

G1_LEGS = LegGeometry(
    hip_drop=0.1027, thigh=0.335, shank=0.300, sole=0.053, stance_pelvis_height=0.78,
    source="mjlab asset_zoo unitree_g1 g1.xml (pelvis -> hip pitch axis 0.1027 m, hip -> knee 0.335 m, knee -> "
           "ankle 0.300 m, ankle -> sole 0.053 m); stance: the pelvis 0.03 m above AMO's nominal 0.75 m "
           "torso-height command, knees slightly bent (the simulator's system-0 stand-in uses the same)",
)
"""G1 leg lengths for the pelvis height of a recorded leg pose (Humanoid Everyday `leg_state`)."""

G1_BODY_SPEC = BodySpec(
    name="g1_29dof", title="G1", family="g1", joints=G1_BODY, arms=G1_ARMS, legs_waist=G1_LEGS_WAIST,
    stock_hand="dex3", arm_ik=G1_ARM_IK,
    # arm PD gains of Unitree's own G1 teleop (shoulder pitch/roll/yaw, elbow, wrist roll/pitch/yaw), per arm
    arm_kp=(80.0, 80.0, 40.0, 60.0, 40.0, 40.0, 40.0) * 2,
    arm_kd=(3.0, 3.0, 1.5, 1.5, 1.5, 1.5, 1.5) * 2,
    color_intrinsics=(606.300, 606.292, 330.766, 252.646),
    source="unitreerobotics/xr_teleoperate assets/g1/g1_body29_hand14.urdf",
    legs=G1_LEGS,
)
