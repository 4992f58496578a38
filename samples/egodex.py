"""Write EgoDex episodes in the real on-disk format: `<split>/<task>/<n>.hdf5` + `<n>.mp4`.

The HDF5 carries `/camera/intrinsic`, `/transforms/<joint>` (69: camera + 68 joints, world frame,
ARKit Y-up), `/confidences/<joint>` (68, optional) and the description attributes. The MP4 is
H.264 at 30 fps, rendered from the same poses: a table, objects, and two skin-coloured hands
(palm polygon + five jointed fingers) drawn at the projected keypoints, so a hand detector sees
hands where the poses say they are. Same seed => same bytes (no timestamps anywhere).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samples.motion import hand_pose, min_jerk_path, random_knots, rot_x, rot_y, rot_z, transform
from schemas.embodiments import EGODEX_JOINTS, MEDIAPIPE_FROM_HUMAN25, SIDES, human_hand_joints
from schemas.video_codecs import x264_options

FPS = 30
DEFAULT_RESOLUTION = (480, 270)
FX_1080P = 736.6339            # EgoDex's published focal length at 1920x1080

# task -> (split, llm_type, description(s), verbs, objects)
TASKS: dict[str, dict[str, Any]] = {
    "basic_pick_place": {"split": "part1", "llm_type": "unidirectional",
                         "llm_description": "Pick up the red block and place it on the plate.",
                         "verbs": ["pick", "place"], "objects": ["red block", "plate"]},
    "add_remove_lid": {"split": "part1", "llm_type": "reversible",
                       "llm_description": "Put the lid on the jar.",
                       "llm_description2": "Take the lid off the jar.",
                       "verbs": ["put", "remove"], "objects": ["lid", "jar"]},
    "stack_unstack_cups": {"split": "part2", "llm_type": "reversible",
                           "llm_description": "Stack the two cups.",
                           "llm_description2": "Unstack the two cups.",
                           "verbs": ["stack", "unstack"], "objects": ["cup"]},
}


@dataclass
class EgodexEpisode:
    """Everything one episode's files hold, kept so tests can compare a read-back against it."""

    task: str
    index: int
    transforms: dict[str, np.ndarray]          # name -> (N, 4, 4) float32, world frame
    confidences: dict[str, np.ndarray] | None  # name -> (N,) float32
    intrinsic: np.ndarray                      # (3, 3) float32
    attrs: dict[str, Any]
    resolution: tuple[int, int]
    instruction: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.transforms["camera"])


def intrinsic_for(width: int, height: int) -> np.ndarray:
    """EgoDex intrinsics scaled to a (width, height) video (principal point at the centre)."""
    f = FX_1080P * width / 1920.0
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float32)


# ------------------------------------------------------------------------------------------ motion
def make_episode(rng: np.random.Generator, task: str, index: int, n_frames: int,
                 resolution: tuple[int, int] = DEFAULT_RESOLUTION, with_confidences: bool = True,
                 attrs_as_bytes: bool = False) -> EgodexEpisode:
    """A person at a table reaching, grasping and releasing with both hands (minimum-jerk reaches)."""
    t = np.arange(n_frames) / FPS
    duration = max(t[-1], 1e-3)

    # Head: standing, looking ~45 degrees down at the table, with a slow small sway.
    phase = rng.uniform(0, 2 * np.pi, 3)
    yaw = 0.05 * np.sin(2 * np.pi * 0.35 * t + phase[0])
    pitch = -0.9 + 0.04 * np.sin(2 * np.pi * 0.25 * t + phase[1])
    head = np.stack([0.02 * np.sin(2 * np.pi * 0.3 * t + phase[2]), 1.30 + 0.0 * t, 0.0 + 0.01 * np.sin(t)], 1)
    # OpenCV camera axes in ARKit's Y-up world: rotate a camera looking along -Z (x right, y down).
    base = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    cam_R = rot_y(yaw) @ rot_x(pitch) @ base
    transforms: dict[str, np.ndarray] = {"camera": transform(cam_R, head)}

    n_seg = 3
    hands: dict[str, dict[str, np.ndarray]] = {}
    for k, side in enumerate(SIDES):
        sign = -1.0 if side == "left" else 1.0
        knots = random_knots(rng, duration, n_seg)
        pos = np.stack([sign * rng.uniform(0.05, 0.18, n_seg + 1), rng.uniform(1.0, 1.1, n_seg + 1),
                        rng.uniform(-0.42, -0.25, n_seg + 1)], 1)
        angles = np.stack([rng.uniform(-0.3, 0.3, n_seg + 1) + sign * 0.45,     # yaw inwards
                           rng.uniform(-0.15, 0.25, n_seg + 1),                 # fingers near horizontal
                           rng.uniform(-0.6, 0.6, n_seg + 1)], 1)               # roll
        closure_knots = np.where(np.arange(n_seg + 1) % 2 == (k % 2), rng.uniform(0.0, 0.15, n_seg + 1),
                                 rng.uniform(0.3, 0.6, n_seg + 1))[:, None]
        p = min_jerk_path(t, knots, pos)
        a = min_jerk_path(t, knots, angles)
        g = min_jerk_path(t, knots, closure_knots)[:, 0]
        # Hand frame: z along the fingers (forward, -Z world), y out of the back of the hand (up),
        # then yaw (about world Y), finger tilt down towards the palm, and roll about the fingers.
        hand_base = np.stack([[-1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]], 1)   # columns x, y, z
        R = rot_y(a[:, 0]) @ hand_base @ rot_x(a[:, 1]) @ rot_z(sign * a[:, 2])
        hands[side] = hand_pose(side, transform(R, p), g)
        transforms.update(hands[side])

    _body(transforms, head, hands)
    transforms = {name: transforms[name].astype(np.float32) for name in ("camera",) + EGODEX_JOINTS}

    confidences = None
    if with_confidences:
        confidences = {}
        for name in EGODEX_JOINTS:
            tip_drop = 0.15 if name.endswith("Tip") else 0.05
            wobble = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6.3))
            confidences[name] = np.clip(0.98 - tip_drop * wobble, 0, 1).astype(np.float32)

    spec = TASKS[task]
    which = "2" if (spec["llm_type"] == "reversible" and index % 2 == 1) else "1"
    attrs: dict[str, Any] = {
        "task": task, "llm_type": spec["llm_type"], "llm_description": spec["llm_description"],
        "which_llm_description": which, "llm_verbs": spec["verbs"], "llm_objects": spec["objects"],
        "environment": "kitchen table", "object": spec["objects"][0], "session_name": f"{task}_session_{index // 4}",
        "annotated": True, "annotator_version": "v2", "extra": "", "description": spec["llm_description"],
        "type": "manipulation",
    }
    if "llm_description2" in spec:
        attrs["llm_description2"] = spec["llm_description2"]
        attrs["description2"] = spec["llm_description2"]
    instruction = spec["llm_description2"] if which == "2" else spec["llm_description"]
    return EgodexEpisode(task, index, transforms, confidences, intrinsic_for(*resolution), attrs, resolution,
                         instruction, {"attrs_as_bytes": attrs_as_bytes})


def _body(transforms: dict[str, np.ndarray], head: np.ndarray, hands: dict[str, dict[str, np.ndarray]]) -> None:
    """Hip, spine, neck, shoulders and arms under the head; elbows hang between shoulder and wrist."""
    n = len(head)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    hip = head + np.array([0.0, -0.55, 0.12])
    neck_base = head + np.array([0.0, -0.16, 0.06])
    for i in range(1, 8):
        transforms[f"spine{i}"] = transform(eye, hip + (neck_base - hip) * i / 8)
    transforms["hip"] = transform(eye, hip)
    for i in range(1, 5):
        transforms[f"neck{i}"] = transform(eye, neck_base + (head - neck_base) * i / 5)
    for side in SIDES:
        sign = -1.0 if side == "left" else 1.0
        shoulder = neck_base + np.array([sign * 0.18, -0.04, 0.0])
        wrist = hands[side][f"{side}Hand"][:, :3, 3]
        elbow = 0.5 * (shoulder + wrist) + np.array([sign * 0.08, -0.12, 0.05])
        transforms[f"{side}Shoulder"] = transform(eye, shoulder)
        transforms[f"{side}Arm"] = transform(eye, shoulder + np.array([sign * 0.02, -0.02, 0.0]))
        transforms[f"{side}Forearm"] = transform(eye, elbow)


# ------------------------------------------------------------------------------------------ files
def write_hdf5(path: Path, ep: EgodexEpisode, drop: tuple[str, ...] = ()) -> None:
    """The EgoDex HDF5 layout; `drop` names datasets to leave out (for fault injection)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    as_bytes = bool(ep.extra.get("attrs_as_bytes"))
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        for key, value in sorted(ep.attrs.items()):
            f.attrs[key] = _attr_value(value, as_bytes)
        if "camera/intrinsic" not in drop:
            f.create_dataset("camera/intrinsic", data=ep.intrinsic, track_times=False)
        for name, value in ep.transforms.items():
            if f"transforms/{name}" not in drop:
                f.create_dataset(f"transforms/{name}", data=value, track_times=False)
        if ep.confidences is not None:
            for name, value in ep.confidences.items():
                if f"confidences/{name}" not in drop:
                    f.create_dataset(f"confidences/{name}", data=value, track_times=False)


def _attr_value(value: Any, as_bytes: bool) -> Any:
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, list):
        return np.array([v.encode() for v in value], dtype="S") if as_bytes else np.array(value, dtype=object)
    if isinstance(value, str) and as_bytes:
        return np.bytes_(value.encode("utf-8"))
    return value


def write_mp4(path: Path, ep: EgodexEpisode, n_frames: int | None = None, seed: int = 0,
              faststart: bool = False) -> None:
    """H.264 MP4 rendered from the episode's poses (`n_frames` overrides the count, for faults;
    `faststart` puts the index before the media data, as streaming-friendly files do)."""
    import av

    width, height = ep.resolution
    n = ep.length if n_frames is None else n_frames
    path.parent.mkdir(parents=True, exist_ok=True)
    background = _background(width, height, ep.intrinsic, ep.transforms["camera"][0], seed)
    options = {"fflags": "+bitexact"} | ({"movflags": "+faststart"} if faststart else {})
    with av.open(str(path), "w", format="mp4", options=options) as out:
        # A fixed thread count: x264 is deterministic for a given count, whatever the machine's cores.
        # x264 capped where its AVX-512 code wrote different bytes for the same frames (schemas.video_codecs).
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "20", "preset": "veryfast", "threads": "4"}
                                | x264_options())
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            j = min(i, ep.length - 1)
            img = render_frame(background, ep, j)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


# ------------------------------------------------------------------------------------------ rendering
SKIN = (224, 172, 140)
SKIN_DARK = (170, 120, 95)
NAIL = (236, 200, 185)
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
         (13, 14), (14, 15), (15, 16), (17, 18), (18, 19), (19, 20), (0, 5), (0, 17))


def project(points_world: np.ndarray, cam_to_world: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (M, 3) -> pixels (M, 2) and depths (M,) with OpenCV's pinhole model."""
    R, t = cam_to_world[:3, :3].astype(np.float64), cam_to_world[:3, 3].astype(np.float64)
    pc = (points_world.astype(np.float64) - t) @ R
    z = np.maximum(pc[:, 2], 1e-3)
    uv = np.stack([K[0, 0] * pc[:, 0] / z + K[0, 2], K[1, 1] * pc[:, 1] / z + K[1, 2]], 1)
    return uv, pc[:, 2]


def _background(width: int, height: int, K: np.ndarray, cam: np.ndarray, seed: int) -> np.ndarray:
    """Wall, wooden table top and a few objects, as seen from the first frame's head pose."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = (200, 205, 210)
    table = np.array([[-0.6, 0.85, -0.08], [0.6, 0.85, -0.08], [0.6, 0.85, -0.9], [-0.6, 0.85, -0.9]])
    uv, _ = project(table, cam, K.astype(np.float64))
    cv2.fillPoly(img, [np.round(uv).astype(np.int32)], (150, 111, 75), lineType=cv2.LINE_AA)
    grain = rng.normal(0, 6, (height, width, 1)).astype(np.int16)
    img = np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    objects = (((-0.05, 0.85, -0.45), 0.06, (200, 40, 40)), ((0.15, 0.85, -0.4), 0.09, (235, 235, 230)),
               ((-0.2, 0.85, -0.35), 0.05, (60, 90, 200)))
    for center, size, colour in objects:
        c = np.array(center)
        quad = c + np.array([[-size, 0, -size], [size, 0, -size], [size, 0, size], [-size, 0, size]]) / 2
        uv, _ = project(quad, cam, K.astype(np.float64))
        cv2.fillPoly(img, [np.round(uv).astype(np.int32)], colour, lineType=cv2.LINE_AA)
    return img


def render_frame(background: np.ndarray, ep: EgodexEpisode, i: int) -> np.ndarray:
    """Background + both hands (farther hand first): forearm, outlined palm polygon, then each
    finger as outlined limbs of finger width, nails at the tips."""
    import cv2

    img = background.copy()
    K = ep.intrinsic.astype(np.float64)
    cam = ep.transforms["camera"][i]
    drawn = []
    for side in SIDES:
        names = human_hand_joints(side)
        pts = np.stack([ep.transforms[names[j]][i, :3, 3] for j in MEDIAPIPE_FROM_HUMAN25]
                       + [ep.transforms[f"{side}Forearm"][i, :3, 3]])
        uv, z = project(pts, cam, K)
        drawn.append((float(z[:21].mean()), uv, z))

    def pt(p: np.ndarray) -> tuple[int, int]:
        return int(round(p[0])), int(round(p[1]))

    for _, uv, z in sorted(drawn, key=lambda d: -d[0]):
        if (z <= 0.05).any():
            continue
        radius = np.clip(0.0095 * K[0, 0] / z, 1.5, 300)
        # Forearm: from the elbow towards the wrist, about 6 cm wide.
        arm_w = int(max(3, round(0.06 * K[0, 0] / z[0])))
        cv2.line(img, pt(uv[21]), pt(uv[0]), SKIN_DARK, arm_w + 2, cv2.LINE_AA)
        cv2.line(img, pt(uv[21]), pt(uv[0]), SKIN, arm_w, cv2.LINE_AA)
        palm = cv2.convexHull(np.round(uv[[0, 1, 2, 5, 9, 13, 17]]).astype(np.int32))
        cv2.fillPoly(img, [palm], SKIN, lineType=cv2.LINE_AA)
        cv2.polylines(img, [palm], True, SKIN_DARK, 1, cv2.LINE_AA)
        for a, b in BONES[:16]:
            thick = int(max(2, round(radius[a] + radius[b])))
            cv2.line(img, pt(uv[a]), pt(uv[b]), SKIN_DARK, thick + 2, cv2.LINE_AA)
        for a, b in BONES[:16]:
            thick = int(max(2, round(radius[a] + radius[b])))
            cv2.line(img, pt(uv[a]), pt(uv[b]), SKIN, thick, cv2.LINE_AA)
        for k in (4, 8, 12, 16, 20):
            cv2.circle(img, pt(uv[k]), int(max(1, round(radius[k] * 0.6))), NAIL, -1, cv2.LINE_AA)
    return img


# ------------------------------------------------------------------------------------------ sample
def write_sample(out: Path, seed: int = 0, resolution: tuple[int, int] = DEFAULT_RESOLUTION,
                 episodes_per_task: int = 2, seconds: float = 2.5) -> list[EgodexEpisode]:
    """`out/<split>/<task>/<n>.{hdf5,mp4}` for every task in TASKS. Returns what was written."""
    written = []
    for t_idx, task in enumerate(sorted(TASKS)):
        for index in range(episodes_per_task):
            rng = np.random.default_rng([seed, t_idx, index])
            n = int(round(seconds * FPS)) + int(rng.integers(-6, 7))
            # One episode stores bytes attributes and one has no confidences: both occur in the wild.
            ep = make_episode(rng, task, index, n, resolution, with_confidences=not (t_idx == 2 and index == 1),
                              attrs_as_bytes=(t_idx == 1 and index == 0))
            folder = out / TASKS[task]["split"] / task
            write_hdf5(folder / f"{index}.hdf5", ep)
            write_mp4(folder / f"{index}.mp4", ep, seed=seed * 1000 + t_idx)
            written.append(ep)
    return written
