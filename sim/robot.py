"""The simulated robot: Unitree G1 29-DoF (mjlab's MJCF: joints, inertias, collision capsules) with two
Dex3-1 hands built here from the project's kinematic table (`sim.embodiment.hand_table`).

Why these choices:
- mjlab's `g1.xml` ships inside its wheel; we read the file through package metadata (never importing
  `mjlab`, which pulls in warp/torch). Its STL meshes cost ~390 ms per 224x224 frame on a CPU
  renderer, so by default the robot is drawn with its collision capsules (7 ms); `meshes=True` for
  pictures.
- Every joint is a PD position servo (MuJoCo `<position>` actuator, effort-limited). Gains: AMO's
  Kp/Kd for legs, waist and arms (shoulders/elbow), softer wrists, Dex3-1 torque limits for fingers.
  Arms, waist and hands have gravity compensation (the real robot's feed-forward torque `tau_ff`).
- Two lower-body modes behind one interface (`sim.tracker`): `base="servo"` replaces the floating
  base by servoed virtual joints (x, y, z, yaw, pitch) that a stand-in tracker drives (feet do not
  bear weight); `base="free"` keeps the floating base for a learned lower-body policy (feet collide).

Contact groups (contype / conaffinity bits): floor 1, robot 2, furniture and objects 4. The robot
never collides with itself or the floor (servo base); arms and hands touch furniture and objects;
legs and torso touch objects only.
"""
from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from sim.embodiment import HandTable, body_joint_order, hand_table

_log = logging.getLogger("sim.mujoco")


def _warn(message: str) -> None:
    """MuJoCo's warnings (e.g. an unstable step) go to Python logging, not to a MUJOCO_LOG.TXT in the cwd."""
    _log.warning("mujoco: %s", message)


mujoco.set_mju_user_warning(_warn)

FLOOR_BIT, ROBOT_BIT, WORLD_BIT = 1, 2, 4
SIDES = ("left", "right")
BASE_JOINTS = ("base_x", "base_y", "base_z", "base_yaw", "base_pitch")
"""Virtual base joints of the servo mode (slides then hinges, composed in this order)."""

# (kp, kd, effort N*m, armature) per G1 joint suffix. Kp/Kd: AMO's play_amo.py (legs, waist, shoulders,
# elbow); wrists softer (4010 motors, 5 N*m). Effort / armature: mjlab g1_constants (motor classes).
_GAINS = {
    "hip_pitch": (150.0, 2.0, 88.0, 0.01018), "hip_roll": (150.0, 2.0, 139.0, 0.0251),
    "hip_yaw": (150.0, 2.0, 88.0, 0.01018), "knee": (300.0, 4.0, 139.0, 0.0251),
    "ankle_pitch": (80.0, 2.0, 50.0, 0.00722), "ankle_roll": (20.0, 1.0, 50.0, 0.00722),
    "waist_yaw": (400.0, 15.0, 88.0, 0.01018), "waist_roll": (400.0, 15.0, 50.0, 0.00722),
    "waist_pitch": (400.0, 15.0, 50.0, 0.00722),
    "shoulder_pitch": (80.0, 2.0, 25.0, 0.00361), "shoulder_roll": (80.0, 2.0, 25.0, 0.00361),
    "shoulder_yaw": (40.0, 1.0, 25.0, 0.00361), "elbow": (60.0, 1.0, 25.0, 0.00361),
    "wrist_roll": (20.0, 0.5, 25.0, 0.00361), "wrist_pitch": (20.0, 0.5, 5.0, 0.00425),
    "wrist_yaw": (20.0, 0.5, 5.0, 0.00425),
}
# Dex3-1: torque 2.45 N*m (thumb_0) / 1.4 N*m; link masses from Unitree's URDF (kg).
_HAND_KP, _HAND_KD, _HAND_ARMATURE = 2.0, 0.05, 0.0005
_HAND_EFFORT = {"thumb_0": 2.45}
_HAND_MASS = {"palm": 0.373, "0": 0.086, "1": 0.059, "2": 0.020}
_FINGER_RADIUS = 0.011
UPPER_BODY_PREFIXES = ("waist", "torso", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                       "left_wrist", "right_wrist", "left_hand", "right_hand")

GRASP_SITE_IN_PALM = np.array([0.105, -0.045, 0.0])
"""Centre of the closed hand's grasp, left-hand palm frame (y mirrored on the right): between the
finger pads (fingers curl towards -y) and the thumb (it closes towards +x). Found from the table's FK."""
IMPRATIO = 10.0
"""Ratio of frictional to normal constraint stiffness (elliptic cones): friction grasps hold instead of creeping."""
RENDER_TESSELLATION = (8, 4, 1)
"""MuJoCo visual quality (numslices, numstacks, numquads) for every model the sim builds."""
HEAD_CAMERA_POS = np.array([0.07, 0.0, 0.45])
HEAD_CAMERA_PITCH = 0.85
"""Head camera in torso_link: G1 head, pitched down (rad) to see the hands over a table."""


@dataclass(frozen=True)
class RobotConfig:
    base: str = "servo"            # "servo" (stand-in tracker) | "free" (a learned lower-body policy)
    meshes: bool = False           # draw mjlab's STL meshes (slow on a CPU renderer) instead of capsules
    color: tuple[float, float, float, float] = (0.72, 0.74, 0.78, 1.0)


def g1_mjcf_path() -> Path:
    """mjlab's G1 MJCF, located through package metadata (mjlab is installed with --no-deps; importing it
    would import warp)."""
    try:
        dist = importlib.metadata.distribution("mjlab")
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError("the G1 model comes from the `mjlab` wheel: pip install --no-deps mjlab "
                           "(tools/setup_env.sh does)") from exc
    path = Path(str(dist.locate_file("mjlab/asset_zoo/robots/unitree_g1/xmls/g1.xml")))
    if not path.is_file():
        raise RuntimeError(f"mjlab is installed but {path} is missing")
    return path


def _quat_from_matrix(r: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r, np.float64).reshape(9))
    return q


def camera_xyaxes(pitch_down: float) -> list[float]:
    """xyaxes of a camera looking along the parent's +x, tilted down by `pitch_down` (image right = -y)."""
    c, s = np.cos(pitch_down), np.sin(pitch_down)
    return [0.0, -1.0, 0.0, s, 0.0, c]


def _set_contacts(geom: mujoco.MjsGeom, contype: int, conaffinity: int) -> None:
    geom.contype, geom.conaffinity = contype, conaffinity


def _add_hand(spec: mujoco.MjSpec, wrist: mujoco.MjsBody, table: HandTable, color: list[float]) -> None:
    side = table.side
    s = 1.0 if side == "left" else -1.0
    palm = wrist.add_body(name=f"{side}_hand_palm_link", pos=table.palm_in_wrist.tolist())
    palm.gravcomp = 1.0
    palm.mass = _HAND_MASS["palm"]
    palm.inertia = [3e-4, 3e-4, 3e-4]
    palm.explicitinertial = True
    g = palm.add_geom(name=f"{side}_palm_collision", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.05, 0.014, 0.042],
                      pos=[0.05, 0.0, 0.0], rgba=color, friction=[1.2, 0.01, 0.001])
    _set_contacts(g, ROBOT_BIT, WORLD_BIT)
    palm.add_site(name=f"{side}_grasp", pos=(GRASP_SITE_IN_PALM * [1.0, s, 1.0]).tolist(), size=[0.01],
                  rgba=[1, 0, 0, 0], group=5)
    bodies: list[mujoco.MjsBody] = []
    children: dict[int, np.ndarray] = {}
    for i, j in enumerate(table.joints):
        if j.parent >= 0:
            children[j.parent] = j.origin[:3, 3]
    tip_of = {idx: off for idx, off in table.tips.values()}
    for i, j in enumerate(table.joints):
        parent = palm if j.parent < 0 else bodies[j.parent]
        body = parent.add_body(name=f"{side}_hand_{j.name}_link", pos=j.origin[:3, 3].tolist(),
                               quat=_quat_from_matrix(j.origin[:3, :3]).tolist())
        body.gravcomp = 1.0
        body.mass = _HAND_MASS[j.name[-1]]
        body.inertia = [2e-6, 2e-6, 2e-6]
        body.explicitinertial = True
        body.add_joint(name=f"{side}_hand_{j.name}_joint", type=mujoco.mjtJoint.mjJNT_HINGE, axis=list(j.axis),
                       range=[j.lower, j.upper], armature=_HAND_ARMATURE, damping=0.02)
        end = children.get(i, tip_of.get(i))
        if end is not None and np.linalg.norm(end) > 1e-6:
            g = body.add_geom(name=f"{side}_hand_{j.name}_collision", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                              fromto=[0.0, 0.0, 0.0, *np.asarray(end, float).tolist()], size=[_FINGER_RADIUS, 0, 0],
                              rgba=color, friction=[1.5, 0.02, 0.002], condim=4)
            _set_contacts(g, ROBOT_BIT, WORLD_BIT)
        bodies.append(body)
        act = spec.add_actuator(name=f"{side}_hand_{j.name}", target=f"{side}_hand_{j.name}_joint",
                                trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=_HAND_KP, kv=_HAND_KD)
        act.ctrlrange = [j.lower, j.upper]
        act.ctrllimited = True
        effort = _HAND_EFFORT.get(j.name, 1.4)
        act.forcerange = [-effort, effort]
        act.forcelimited = True
    del s


def build_robot(cfg: RobotConfig = RobotConfig()) -> mujoco.MjSpec:
    """An MjSpec holding the G1 + Dex3-1 robot (no floor, no scene); `sim.scene` adds the world."""
    spec = mujoco.MjSpec.from_file(str(g1_mjcf_path()))
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # elliptic friction cones with impratio 10 (MuJoCo's advice for grasping): with the default pyramidal
    # cones a friction grasp creeps, and a carried bag slid out of the hand within seconds of walking
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = IMPRATIO
    spec.visual.quality.offsamples = 0          # no multisampling: 4x cheaper CPU rendering
    # coarser tessellation of capsules / spheres / box faces (MuJoCo's defaults 28 / 16 / 4): at 224x224
    # the difference is invisible and a software-rendered frame costs about half
    spec.visual.quality.numslices, spec.visual.quality.numstacks, spec.visual.quality.numquads = RENDER_TESSELLATION
    color = list(cfg.color)
    for light in list(spec.lights):
        spec.delete(light)
    for cam in list(spec.cameras):
        spec.delete(cam)
    for geom in list(spec.geoms):
        if geom.name in ("left_hand_collision", "right_hand_collision"):
            spec.delete(geom)          # mjlab's rubber-hand capsule: the Dex3-1 hands replace it
            continue
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH:
            if cfg.meshes and "rubber_hand" not in str(geom.meshname):
                _set_contacts(geom, 0, 0)
            else:
                spec.delete(geom)
            continue
        # collision capsules: the robot's contact model, drawn unless meshes are on
        geom.group = 3 if cfg.meshes else 0
        geom.rgba = color
        is_foot = "foot" in geom.name
        if cfg.base == "free" and is_foot:
            _set_contacts(geom, ROBOT_BIT, FLOOR_BIT | WORLD_BIT)
        elif any(k in geom.name for k in ("shoulder", "elbow", "wrist", "hand")):
            _set_contacts(geom, ROBOT_BIT, WORLD_BIT)
        else:
            _set_contacts(geom, ROBOT_BIT, 0)
    if not cfg.meshes:
        for mesh in list(spec.meshes):
            spec.delete(mesh)
    for sensor in list(spec.sensors):
        spec.delete(sensor)

    pelvis = spec.body("pelvis")
    for body in spec.bodies:
        if body.name and (cfg.base == "servo" or body.name.startswith(UPPER_BODY_PREFIXES)):
            body.gravcomp = 1.0
    if cfg.base == "servo":
        for joint in list(pelvis.joints):
            spec.delete(joint)
        pelvis.pos = [0.0, 0.0, 0.0]
        axes = {"base_x": (mujoco.mjtJoint.mjJNT_SLIDE, [1, 0, 0]), "base_y": (mujoco.mjtJoint.mjJNT_SLIDE, [0, 1, 0]),
                "base_z": (mujoco.mjtJoint.mjJNT_SLIDE, [0, 0, 1]), "base_yaw": (mujoco.mjtJoint.mjJNT_HINGE, [0, 0, 1]),
                "base_pitch": (mujoco.mjtJoint.mjJNT_HINGE, [0, 1, 0])}
        gains = {"base_x": 20000.0, "base_y": 20000.0, "base_z": 40000.0, "base_yaw": 3000.0, "base_pitch": 3000.0}
        for name in BASE_JOINTS:
            jtype, axis = axes[name]
            pelvis.add_joint(name=name, type=jtype, axis=axis, armature=0.1)
            act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            act.set_to_position(kp=gains[name], dampratio=1.0)
    for name in body_joint_order():
        joint = spec.joint(f"{name}_joint")
        suffix = name.split("_", 1)[1] if name.startswith(("left", "right")) else name
        kp, kd, effort, armature = _GAINS[suffix]
        joint.armature = armature
        act = spec.add_actuator(name=name, target=f"{name}_joint", trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=kp, kv=kd)
        act.ctrlrange = list(joint.range)
        act.ctrllimited = True
        act.forcerange = [-effort, effort]
        act.forcelimited = True
    for side in SIDES:
        _add_hand(spec, spec.body(f"{side}_wrist_yaw_link"), hand_table(side), color)
    torso = spec.body("torso_link")
    torso.add_camera(name="head", pos=HEAD_CAMERA_POS.tolist(), xyaxes=camera_xyaxes(HEAD_CAMERA_PITCH), fovy=75.0)
    return spec


@dataclass(frozen=True)
class RobotIndex:
    """Addresses into a compiled model: qpos / qvel / ctrl indices in schemas order."""
    body_qpos: np.ndarray        # (29,) G1_BODY order
    body_qvel: np.ndarray
    body_ctrl: np.ndarray
    hand_qpos: np.ndarray        # (14,) left 7 + right 7, Dex3 order
    hand_qvel: np.ndarray
    hand_ctrl: np.ndarray
    base_qpos: np.ndarray        # servo mode: (5,) BASE_JOINTS; free mode: (7,) freejoint
    base_qvel: np.ndarray
    base_ctrl: np.ndarray        # servo mode only, else empty
    pelvis: int
    torso: int
    palms: dict[str, int]        # body ids of the hand palm links
    grasp_sites: dict[str, int]
    finger_geoms: dict[str, dict[str, list[int]]]   # side -> {"thumb": [...], "fingers": [...]} geom ids
    servo_base: bool

    @staticmethod
    def of(model: mujoco.MjModel) -> RobotIndex:
        def jq(name: str) -> int:
            return int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)])

        def jv(name: str) -> int:
            return int(model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)])

        def act(name: str) -> int:
            i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)
            if i < 0:
                raise KeyError(name)
            return i

        body = body_joint_order()
        hand_names = [f"{side}_hand_{j.name}" for side in SIDES for j in hand_table(side).joints]
        servo = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "base_x") >= 0
        if servo:
            base_q = np.array([jq(n) for n in BASE_JOINTS])
            base_v = np.array([jv(n) for n in BASE_JOINTS])
            base_c = np.array([act(n) for n in BASE_JOINTS])
        else:
            q0 = jq("floating_base_joint")
            v0 = jv("floating_base_joint")
            base_q, base_v, base_c = np.arange(q0, q0 + 7), np.arange(v0, v0 + 6), np.zeros(0, int)
        fingers: dict[str, dict[str, list[int]]] = {}
        for side in SIDES:
            groups: dict[str, list[int]] = {"thumb": [], "fingers": []}
            for j in hand_table(side).joints:
                gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{side}_hand_{j.name}_collision")
                if gid >= 0:
                    groups["thumb" if j.name.startswith("thumb") else "fingers"].append(gid)
            fingers[side] = groups
        bid = lambda n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)  # noqa: E731
        return RobotIndex(
            body_qpos=np.array([jq(f"{n}_joint") for n in body]), body_qvel=np.array([jv(f"{n}_joint") for n in body]),
            body_ctrl=np.array([act(n) for n in body]),
            hand_qpos=np.array([jq(f"{n}_joint") for n in hand_names]),
            hand_qvel=np.array([jv(f"{n}_joint") for n in hand_names]),
            hand_ctrl=np.array([act(n) for n in hand_names]),
            base_qpos=base_q, base_qvel=base_v, base_ctrl=base_c, pelvis=bid("pelvis"), torso=bid("torso_link"),
            palms={s: bid(f"{s}_hand_palm_link") for s in SIDES},
            grasp_sites={s: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"{s}_grasp") for s in SIDES},
            finger_geoms=fingers, servo_base=servo)
