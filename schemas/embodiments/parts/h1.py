"""Unitree H1 (H1_2 SDK order, as Humanoid Everyday's H1 data): joint table and head camera.

Sources: unitreerobotics/xr_teleoperate `teleop/robot_control/robot_arm.py` (`H1_2_JointIndex`: legs,
waist yaw, arms; limits from its h1_2 description); head colour camera intrinsics from the Humanoid
Everyday README (H1 colour fx, fy, cx, cy); arm chains (torso_link -> {side}_wrist_yaw_link, joint
origins and axes) and the Inspire hand mounts (`{L,R}_base_link_joint`) transcribed from
unitreerobotics/avp_teleoperate `assets/h1_2/h1_2.urdf`. The arm chains are forward kinematics only
(`BodySpec.arm_fk`: e.g. the 48-D hand action of recorded H1 joints); IK still has no H1 solver
(`arm_ik=None`, the h1_inspire configuration declares the G1 stand-in).
"""
from __future__ import annotations

from schemas.embodiments.spec import BodySpec, ChainSpec, JointSpec, joint_space


def _leg(side: str) -> list[tuple[str, float, float]]:
    return [
        (f"{side}_hip_yaw", -0.43, 0.43), (f"{side}_hip_roll", -0.43, 0.43),
        (f"{side}_hip_pitch", -3.14, 2.53), (f"{side}_knee", -0.26, 2.05),
        (f"{side}_ankle_pitch", -0.897334, 0.523598), (f"{side}_ankle_roll", -0.261799, 0.261799),
    ]


def _arm(side: str) -> list[tuple[str, float, float]]:
    return [
        (f"{side}_shoulder_pitch", -3.14, 1.57), (f"{side}_shoulder_roll", -0.38, 3.4),
        (f"{side}_shoulder_yaw", -3.01, 2.66), (f"{side}_elbow_pitch", -2.53, 1.6),
        (f"{side}_elbow_roll", -2.967, 2.967), (f"{side}_wrist_pitch", -0.471, 0.349),
        (f"{side}_wrist_yaw", -1.012, 1.012),
    ]


_WAIST = [("waist_yaw", -2.35, 2.35)]

H1_LEGS_WAIST = joint_space("h1_leg_state13", _leg("left") + _leg("right") + _WAIST,
                            {"left_leg": (0, 6), "right_leg": (6, 12), "waist": (12, 13)})
"""Humanoid Everyday H1 `leg_state` (13): legs then waist yaw, H1_2 SDK order."""
H1_ARMS = joint_space("h1_arms14", _arm("left") + _arm("right"), {"left_arm": (0, 7), "right_arm": (7, 14)})
"""H1 arm joints, left then right (Humanoid Everyday H1 `arm_state` / `sol_q`)."""
H1_BODY = joint_space(
    "h1_body27", _leg("left") + _leg("right") + _WAIST + _arm("left") + _arm("right"),
    {"left_leg": (0, 6), "right_leg": (6, 12), "legs": (0, 12), "waist": (12, 13),
     "left_arm": (13, 20), "right_arm": (20, 27), "arms": (13, 27)},
)
"""H1_2 body joints 0..26 in SDK order (27..34 unused)."""

_URDF = "unitreerobotics/avp_teleoperate assets/h1_2/h1_2.urdf"
_X, _Y, _Z = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def arm_chain(side: str) -> ChainSpec:
    """H1_2 7-DoF arm, torso_link -> wrist_yaw_link (h1_2.urdf). Point `wrist` = wrist_yaw_link origin,
    `palm` = the Inspire hand base mount (`{L,R}_base_link_joint` xyz)."""
    s = 1.0 if side == "left" else -1.0
    lim = {name: (lo, hi) for name, lo, hi in _arm(side)}

    def joint(name: str, parent: int, xyz: tuple, rpy: tuple, axis: tuple[float, float, float]) -> JointSpec:
        return JointSpec(f"{side}_{name}", parent, xyz, rpy, axis, *lim[f"{side}_{name}"])

    zero = (0.0, 0.0, 0.0)
    joints = (
        joint("shoulder_pitch", -1, (0.0, s * 0.14806, 0.42333), (s * 0.2618, 0.0, 0.0), _Y),
        joint("shoulder_roll", 0, (0.0342, s * 0.061999, -0.0060011), (-s * 0.2618, 0.0, 0.0), _X),
        joint("shoulder_yaw", 1, (-0.0342, 0.0, -0.1456), zero, _Z),
        joint("elbow_pitch", 2, (0.006, s * 0.0329, -0.182), zero, _Y),
        joint("elbow_roll", 3, (0.121, -s * 0.0329, -0.011), zero, _X),
        joint("wrist_pitch", 4, (0.085, 0.0, 0.0), zero, _Y),
        joint("wrist_yaw", 5, (0.020, 0.0, 0.0), zero, _Z),
    )
    return ChainSpec(f"h1_{side}_arm", joints, {"wrist": (6, zero), "palm": (6, (0.054, 0.0, 0.0))}, source=_URDF)


H1_ARM_CHAINS = {side: arm_chain(side) for side in ("left", "right")}

INSPIRE_MOUNT = {"left": ((0.054, 0.0, 0.0), (0.0, 0.0, 1.5707963267948966)),
                 "right": ((0.054, 0.0, 0.0), (3.141592653589793, 0.0, -1.5707963267948966))}
"""`{L,R}_base_link_joint` of h1_2.urdf: the Inspire base frames in the wrist_yaw_links (URDF xyz, rpy). The
project's left Inspire is the right chain mirrored in x, Unitree's left URDF hand is it mirrored in z: the
two differ by a half turn about y, applied in `INSPIRE_MOUNT_MIRRORED`."""
INSPIRE_MOUNT_MIRRORED = {"left": ((0.054, 0.0, 0.0), (0.0, 3.141592653589793, 1.5707963267948966)),
                          "right": INSPIRE_MOUNT["right"]}
"""The mounts as the project's Inspire chains need them (left: Rz(pi/2) @ Ry(pi), see INSPIRE_MOUNT)."""

H1_BODY_SPEC = BodySpec(
    name="h1_2", title="H1", family="h1", joints=H1_BODY, arms=H1_ARMS, legs_waist=H1_LEGS_WAIST,
    stock_hand="inspire", arm_ik=None, color_intrinsics=(606.815, 606.335, 321.493, 247.556),
    source="unitreerobotics/xr_teleoperate teleop/robot_control/robot_arm.py (H1_2_JointIndex)",
    arm_fk=H1_ARM_CHAINS,
)
