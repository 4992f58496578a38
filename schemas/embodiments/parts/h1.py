"""Unitree H1 (H1_2 SDK order, as Humanoid Everyday's H1 data): joint table and head camera.

Sources: unitreerobotics/xr_teleoperate `teleop/robot_control/robot_arm.py` (`H1_2_JointIndex`: legs,
waist yaw, arms; limits from its h1_2 description); head colour camera intrinsics from the Humanoid
Everyday README (H1 colour fx, fy, cx, cy). The project has no H1 arm kinematics (`arm_ik=None`).
"""
from __future__ import annotations

from schemas.embodiments.spec import BodySpec, joint_space


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

H1_BODY_SPEC = BodySpec(
    name="h1_2", title="H1", family="h1", joints=H1_BODY, arms=H1_ARMS, legs_waist=H1_LEGS_WAIST,
    stock_hand="inspire", arm_ik=None, color_intrinsics=(606.815, 606.335, 321.493, 247.556),
    source="unitreerobotics/xr_teleoperate teleop/robot_control/robot_arm.py (H1_2_JointIndex)",
)
