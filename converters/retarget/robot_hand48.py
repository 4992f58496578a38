"""The 48-D human-hand action of a robot: where its commanded joints put its hands, seen from its head camera.

Stage 1 trains one token space for every source (the Ψ₀ recipe): EgoDex people and robots alike are
expressed as `schemas.HUMAN_ACTION_48` per frame - per hand the wrist position, the wrist rotation (6-D)
and five fingertip positions, in the head camera's OpenCV frame - and tokenized as 10 Hz deltas
(`converters.tokenize.hand48`). For a robot (numpy forward kinematics of the embodiment tables):

- wrist pose: the arm chain (`Embodiment.arm_chains`, the body's own, never an IK stand-in) maps the arm
  joints to the wrist link in the torso frame; the hand chain hangs from it at `Embodiment.mount`;
- the wrist point and rotation follow the human rule: the hand's wrist point, and the palmar frame
  (`frames.palm_frame`) of the hand's keypoints rendered in the human 25-point layout;
- fingertips: the hand chain's tips, by the hand table's finger map (robot finger -> human finger);
- camera: `frames.Calibration` (the head camera the retargeting places on the torso), robot metres.

A robot hand with fewer than five fingers (Dex3-1: thumb, index, middle) fills each missing fingertip
slot with the tip of the nearest present finger on the little-finger side of it (Dex3-1: ring and
little = middle). Why not zeros, as the reference's pre-training transform does: a zero is the camera
origin, far outside where hands are, and its 10 Hz delta is 0, i.e. a fingertip that stays still in
the world while the hand moves; a copied tip moves with the hand and curls with its neighbour, which
is what human ring and little fingertips do (their flexion is coupled to the middle finger's).
"""
from __future__ import annotations

import numpy as np

from converters.retarget.fk import chain_frames, end_pose, points
from converters.retarget.frames import Calibration, palm_frame
from schemas.actions import HUMAN_ACTION_48, PSI0_ACTION
from schemas.embodiments import (HUMAN_HAND_KNUCKLE, HUMAN_HAND_MID, HUMAN_HAND_TIP, HUMAN_HAND_WRIST, SIDES,
                                 Embodiment)
from schemas.rotations import rot6d

HUMAN_FINGERS = tuple(HUMAN_HAND_TIP)          # thumb, index, middle, ring, little


def stand_in_finger(present: tuple[str, ...], finger: str) -> str:
    """The present human finger whose tip a missing `finger` copies: the nearest one in anatomical order,
    on the little-finger side first when two are equally near."""
    order = HUMAN_FINGERS
    here = order.index(finger)
    ranked = sorted((f for f in present if f != "thumb"), key=lambda f: (abs(order.index(f) - here),
                                                                         order.index(f) < here))
    if not ranked:
        raise ValueError(f"no finger to stand in for {finger!r} among {present}")
    return ranked[0]


def hand_keypoints(emb: Embodiment, side: str, q: np.ndarray) -> np.ndarray:
    """(T, dof) native hand joints -> (T, 25, 3) human-layout keypoints in the hand chain base frame (the
    mirror image for a mirrored hand). Missing fingers' points copy their stand-in finger's; a missing
    little knuckle is extrapolated across the palm (2 middle - index), as the retargeting renders it."""
    hs = emb.hand.side(side)
    spec = hs.chain
    rots, poss = chain_frames(spec, q)
    t = rots.shape[0]
    out = np.zeros((t, 25, 3))
    out[:] = points(spec, rots, poss, ["wrist"])
    by_human = {human: robot for robot, human in hs.finger_map}
    present = tuple(by_human)
    for human in HUMAN_FINGERS:
        robot = by_human.get(human) or by_human[stand_in_finger(present, human)]
        if human != "thumb" and f"{robot}_base" in spec.points:
            out[:, HUMAN_HAND_KNUCKLE[human]] = points(spec, rots, poss, [f"{robot}_base"])[:, 0]
        out[:, HUMAN_HAND_MID[human]] = points(spec, rots, poss, [f"{robot}_mid"])[:, 0]
        out[:, HUMAN_HAND_TIP[human]] = points(spec, rots, poss, [f"{robot}_tip"])[:, 0]
    if "little" not in present:
        out[:, HUMAN_HAND_KNUCKLE["little"]] = 2 * out[:, HUMAN_HAND_KNUCKLE["middle"]] - out[:, HUMAN_HAND_KNUCKLE["index"]]
    if hs.mirror_input:
        out = out * np.array([-1.0, 1.0, 1.0])
    return out


def hand48_from_joints(emb: Embodiment, arms: np.ndarray, hands: dict[str, np.ndarray],
                       calibration: Calibration = Calibration()) -> np.ndarray:
    """Arm joints (T, 2 x arm dof: left then right, body order) + native hand joints per side -> (T, 48)
    HUMAN_ACTION_48 rows in the head camera frame."""
    chains = emb.arm_chains
    if chains is None:
        raise ValueError(f"{emb.name}: no arm chain to place the hands with")
    arms = np.asarray(arms, np.float64)
    t = arms.shape[0]
    cam_from_torso = np.linalg.inv(calibration.camera_in_torso())
    out = np.zeros((t, HUMAN_ACTION_48.size))
    dof = emb.body.arm_dof
    for k, side in enumerate(SIDES):
        wrist = cam_from_torso @ end_pose(chains[side], arms[:, k * dof:(k + 1) * dof]) @ emb.mount(side)
        kp = hand_keypoints(emb, side, hands[side])                               # hand base frame
        kp_cam = kp @ np.swapaxes(wrist[:, :3, :3], 1, 2) + wrist[:, None, :3, 3]
        rot = wrist[:, :3, :3] @ palm_frame(kp, side)
        out[:, HUMAN_ACTION_48.slice(f"{side}_hand.wrist_pos")] = kp_cam[:, HUMAN_HAND_WRIST]
        out[:, HUMAN_ACTION_48.slice(f"{side}_hand.wrist_rot")] = rot6d(rot)
        out[:, HUMAN_ACTION_48.slice(f"{side}_hand.tips")] = kp_cam[:, list(HUMAN_HAND_TIP.values())].reshape(t, -1)
    return out


def hand48_from_action(emb: Embodiment, action: np.ndarray, calibration: Calibration = Calibration()) -> np.ndarray:
    """(T, 36) PSI0_ACTION rows (hand blocks in Ψ₀ slots, arms in body order) -> (T, 48) HUMAN_ACTION_48."""
    action = np.asarray(action, np.float64)
    hands = {side: emb.hand.from_slots(action[:, PSI0_ACTION.slice(f"{side}_hand")]) for side in SIDES}
    return hand48_from_joints(emb, action[:, PSI0_ACTION.slice("arms")], hands, calibration)
