"""Write Humanoid Everyday episodes in the real on-disk format.

`<task>.zip` (with or without the root folder, with `__MACOSX/` junk) or extracted
`[<category>/]<task>/episode_<k>/` holding `data.json` (a list of per-frame dicts with `time`,
`robot_type` (G1 only), `states`, `actions`, `image`, `depth`, `lidar`), `color/*.jpg|png`,
`depth/*.lzma` (raw uint16, LZMA-alone) and `lidar/*.pcd` (binary PCD). Motion: minimum-jerk arm
reaches within joint limits, hands opening/closing within their ranges, a standing or walking
base whose odometry integrates its velocity. Same seed => same bytes (fixed zip dates, no clocks).
"""
from __future__ import annotations

import json
import lzma
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samples.motion import min_jerk_path, random_knots
from schemas.embodiments import DEX3_LEFT, DEX3_RIGHT, G1_ARMS, H1_ARMS

FPS = 30
DEFAULT_RESOLUTION = (320, 240)
T0 = 1_752_000_000.0            # a fixed UNIX epoch for `time` (no wall clock)

# name -> how it is stored, robot, episodes, walking?
TASKS: dict[str, dict[str, Any]] = {
    "pick_up_the_cup": {"store": "zip", "robot": "G1", "episodes": 2, "walk": False, "category": ""},
    "wipe_the_table": {"store": "dir", "robot": "H1", "episodes": 2, "walk": False, "category": "basic_manipulation"},
    "walk_and_turn": {"store": "zip_noroot", "robot": "G1", "episodes": 1, "walk": True, "category": ""},
}
DESCRIPTIONS = {"pick_up_the_cup": "Pick up the cup from the table."}

G1_ARM_NOMINAL = np.array([0.2, 0.25, 0.0, 0.9, 0.0, 0.0, 0.0, 0.2, -0.25, 0.0, 0.9, 0.0, 0.0, 0.0])
H1_ARM_NOMINAL = np.array([-0.3, 0.3, 0.0, 0.3, 0.0, 0.0, 0.0, -0.3, 0.3, 0.0, 0.3, 0.0, 0.0, 0.0])
ARM_REACH = np.array([0.45, 0.2, 0.3, 0.45, 0.5, 0.3, 0.25] * 2)
G1_LEG_NOMINAL = np.array([-0.1, 0.0, 0.0, 0.3, -0.2, 0.0] * 2 + [0.0, 0.0, 0.0])
H1_LEG_NOMINAL = np.array([0.0, 0.0, -0.1, 0.3, -0.2, 0.0] * 2 + [0.0])


@dataclass
class HeEpisode:
    """One episode's files plus the ground truth the tests compare against."""

    task: str
    index: int
    robot: str
    frames: list[dict[str, Any]]
    images: list[bytes]
    image_names: list[str]
    depth: list[bytes]
    depth_names: list[str]
    lidar: list[bytes]
    lidar_names: list[str]
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        """Relative path -> bytes, data.json included, in a fixed order."""
        out = {"data.json": json.dumps(self.frames, separators=(",", ":")).encode()}
        for names, blobs in ((self.image_names, self.images), (self.depth_names, self.depth),
                             (self.lidar_names, self.lidar)):
            out.update(zip(names, blobs))
        return out


def _quat_wxyz(rpy: np.ndarray) -> np.ndarray:
    r, p, y = (rpy[:, i] / 2 for i in range(3))
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.stack([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy], 1)


def _hand_range(space: Any) -> tuple[np.ndarray, np.ndarray]:
    """(open, closed) per Dex3 joint: open at the value nearest zero, closed at 80 % of the far end."""
    lo, hi = space.bounds()
    open_ = np.clip(0.0, lo, hi)
    far = np.where(np.abs(lo) > np.abs(hi), lo, hi)
    return open_, open_ + 0.8 * (far - open_)


def make_episode(rng: np.random.Generator, task: str, index: int, robot: str, n: int, walk: bool,
                 resolution: tuple[int, int] = DEFAULT_RESOLUTION, image_format: str = "jpg",
                 unpadded_lidar_names: bool = False, yaw0: float | None = None) -> HeEpisode:
    t = np.arange(n) / FPS
    duration = max(t[-1], 1e-3)
    g1 = robot == "G1"
    n_seg = 3
    knots = random_knots(rng, duration, n_seg)

    nominal, limits = (G1_ARM_NOMINAL, G1_ARMS) if g1 else (H1_ARM_NOMINAL, H1_ARMS)
    lo, hi = limits.bounds()
    way = np.clip(nominal + rng.uniform(-1, 1, (n_seg + 1, 14)) * ARM_REACH, lo + 0.05, hi - 0.05)
    command = min_jerk_path(t, knots, way)
    arm_state = np.concatenate([command[:1].repeat(2, 0), command[:-2]])[:n]      # tracks 2 frames behind
    closure = min_jerk_path(t, knots, np.where(np.arange(n_seg + 1) % 2 == 1, rng.uniform(0.6, 0.95, n_seg + 1),
                                               rng.uniform(0.0, 0.15, n_seg + 1))[:, None])[:, 0]
    if g1:
        o_l, c_l = _hand_range(DEX3_LEFT)
        o_r, c_r = _hand_range(DEX3_RIGHT)
        hand = np.concatenate([o_l + closure[:, None] * (c_l - o_l), o_r + closure[:, None] * (c_r - o_r)], 1)
    else:
        # Inspire, right 6 then left 6 (pinky..thumb rotation), 1 = open; the left closes a little later.
        lag = np.concatenate([closure[:1].repeat(3), closure[:-3]])
        hand = np.clip(1.0 - np.concatenate([closure[:, None] * rng.uniform(0.85, 1.0, 6),
                                             lag[:, None] * rng.uniform(0.85, 1.0, 6)], 1), 0, 1)
    sway = 0.02 * np.sin(2 * np.pi * 0.4 * t)[:, None]
    legs = (G1_LEG_NOMINAL if g1 else H1_LEG_NOMINAL) + sway

    # Base: roll/pitch sway; walking tasks accelerate forward and turn (minimum-jerk speed profile).
    yaw0 = float(rng.uniform(-np.pi, np.pi)) if yaw0 is None else yaw0
    speed_knots = np.array([0.0, 0.0, 0.0, 0.0])
    if walk:
        speed_knots = np.array([0.0, 0.3, 0.3, 0.0])
    v_fwd = min_jerk_path(t, knots, speed_knots[:, None])[:, 0]
    yaw_rate = min_jerk_path(t, knots, (np.array([0.0, 0.35, 0.35, 0.0]) if walk else np.zeros(4))[:, None])[:, 0]
    yaw = yaw0 + np.concatenate([[0.0], np.cumsum(0.5 * (yaw_rate[1:] + yaw_rate[:-1]) / FPS)])
    roll = 0.015 * np.sin(2 * np.pi * 0.7 * t + index)
    pitch = 0.02 * np.sin(2 * np.pi * 0.5 * t + 1.0)
    wrapped = np.angle(np.exp(1j * yaw))
    rpy = np.stack([roll, pitch, wrapped], 1)
    v_world = np.stack([np.cos(yaw) * v_fwd, np.sin(yaw) * v_fwd, np.zeros(n)], 1)
    height = 0.74 if g1 else 0.98
    position = np.concatenate([[[0.0, 0.0, 0.0]], np.cumsum(0.5 * (v_world[1:] + v_world[:-1]) / FPS, 0)])
    position[:, 2] = height + 0.005 * np.sin(2 * np.pi * 0.4 * t)
    gyro = np.stack([np.gradient(roll, t), np.gradient(pitch, t), yaw_rate], 1)
    accel = np.stack([np.gradient(v_fwd, t), np.zeros(n), np.full(n, 9.81)], 1)
    time = T0 + 1000.0 * index + t + 0.002 * np.sin(2 * np.pi * 1.3 * t)   # small, smooth capture jitter

    width, h_px = resolution
    ext = "png" if image_format == "png" else "jpg"
    image_names = [f"color/frame_{i:06d}.{ext}" for i in range(n)]
    depth_names = [f"depth/frame_{i:06d}.lzma" for i in range(n)]
    lidar_file = [f"lidar/{time[i]:.6f}.pcd" for i in range(n)]
    lidar_ref = [_unpadded(name) if unpadded_lidar_names else name for name in lidar_file]

    frames: list[dict[str, Any]] = []
    for i in range(n):
        states: dict[str, Any] = {
            "arm_state": _r(arm_state[i]), "leg_state": _r(legs[i]), "hand_state": _r(hand[i]),
            "imu": {"quaternion": _r(_quat_wxyz(rpy[i:i + 1])[0]), "accelerometer": _r(accel[i]),
                    "gyroscope": _r(gyro[i]), "rpy": _r(rpy[i])},
            "odometry": {"position": _r(position[i]), "velocity": _r(v_world[i]), "rpy": _r(rpy[i]),
                         "quat": _r(_quat_wxyz(rpy[i:i + 1])[0])},
        }
        if g1:
            states["hand_pressure_state"] = [_r(0.5 * closure[i] * np.ones(9)), _r(0.5 * closure[i] * np.ones(9))]
        left_pose = np.eye(4)
        left_pose[:3, 3] = (0.3, 0.2, 0.1 + 0.1 * closure[i])
        right_pose = np.eye(4)
        right_pose[:3, 3] = (0.3, -0.2, 0.1 + 0.1 * closure[i])
        frame: dict[str, Any] = {
            "time": round(float(time[i]), 6),
            "states": states,
            "actions": {"left_angles": _r(command[i, :7]), "right_angles": _r(command[i, 7:]), "sol_q": _r(command[i]),
                        "tau_ff": _r(np.zeros(14)), "armtime": round(float(time[i]) - 0.004, 6),
                        "iktime": round(float(time[i]) - 0.008, 6), "head_rmat": np.eye(3).tolist(),
                        "left_pose": _r(left_pose), "right_pose": _r(right_pose)},
            "image": image_names[i], "depth": depth_names[i], "lidar": lidar_ref[i],
        }
        if g1:
            frame = {"robot_type": "G1", **frame}
        frames.append(frame)

    images, depth, lidar = [], [], []
    for i in range(n):
        img = render(width, h_px, arm_state[i], closure[i], yaw[i] - yaw0, g1)
        images.append(_encode(img, ext))
        depth.append(_depth(width, h_px, closure[i]))
        lidar.append(_pcd(rng, 64 if resolution[0] <= 320 else 256))
    truth = {"time": time, "arm_state": arm_state, "sol_q": command, "hand_state": hand, "rpy": rpy,
             "velocity": v_world, "position": position, "yaw": yaw, "v_fwd": v_fwd, "yaw_rate": yaw_rate}
    return HeEpisode(task, index, robot, frames, images, image_names, depth, depth_names, lidar, lidar_file, truth)


def _unpadded(name: str) -> str:
    """`lidar/1752000000.120000.pcd` -> `lidar/1752000000.12.pcd` (how some recorders named them)."""
    stem, frac = name[:-4].rsplit(".", 1)
    return f"{stem}.{frac.rstrip('0') or '0'}.pcd"


def _r(x: np.ndarray) -> Any:
    """Rounded nested lists: compact, deterministic JSON."""
    return np.round(np.asarray(x, np.float64), 6).tolist()


def render(width: int, height: int, arms: np.ndarray, closure: float, turned: float, g1: bool) -> np.ndarray:
    """Egocentric view: floor/table that slides as the base turns, and two grey robot hands whose
    position follows the shoulder/elbow joints and whose fingers open and close."""
    import cv2

    img = np.empty((height, width, 3), np.uint8)
    img[:] = (185, 190, 200)
    shift = int(round(turned * width * 0.6)) % (2 * width)
    img[height // 2:] = (120, 100, 80)
    for k in range(-2, 4):
        x = k * width // 2 - shift + width
        cv2.line(img, (x, height // 2), (x + width // 4, height), (90, 75, 60), 2)
    cv2.rectangle(img, (width // 2 - width // 12, height // 2 + height // 10),
                  (width // 2 + width // 12, height // 2 + height // 4), (40, 40, 200), -1)
    for k, sign in ((0, -1), (1, 1)):
        a = arms[7 * k:7 * k + 7]
        cx = width / 2 + sign * width * (0.22 + 0.15 * np.sin(a[1] * sign)) + width * 0.15 * a[2]
        cy = height * (0.85 - 0.25 * np.tanh(a[0] + 0.5 * a[3]))
        c = (int(cx), int(cy))
        scale = width / 320
        cv2.circle(img, c, int(18 * scale), (70, 70, 75) if g1 else (210, 210, 215), -1, cv2.LINE_AA)
        spread = 14 * scale * (1.0 - 0.7 * closure)
        for f in (-1, 0, 1):
            tip = (int(cx + f * spread), int(cy - 30 * scale * (1 - 0.5 * closure)))
            cv2.line(img, c, tip, (50, 50, 55) if g1 else (190, 190, 195), int(max(2, 6 * scale)), cv2.LINE_AA)
    return img


def _encode(img: np.ndarray, ext: str) -> bytes:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(f".{ext}", img[:, :, ::-1], params)
    assert ok
    return buf.tobytes()


def _depth(width: int, height: int, closure: float) -> bytes:
    rows = np.linspace(2500, 700, height)[:, None]
    depth = np.broadcast_to(rows, (height, width)).astype(np.uint16).copy()
    depth[int(height * 0.6):, width // 3: 2 * width // 3] = int(450 + 100 * closure)
    return lzma.compress(depth.astype("<u2").tobytes(), format=lzma.FORMAT_ALONE, preset=1)


def _pcd(rng: np.random.Generator, points: int) -> bytes:
    ang = rng.uniform(0, 2 * np.pi, points)
    dist = rng.uniform(1.0, 6.0, points)
    xyz = np.stack([dist * np.cos(ang), dist * np.sin(ang), rng.uniform(-0.5, 1.5, points)], 1).astype(np.float32)
    xyz[:4] = 0.0                                       # real scans carry zero rows; readers drop them
    rec = np.zeros(points, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    rec["x"], rec["y"], rec["z"] = xyz.T
    rec["intensity"] = rng.uniform(0, 100, points).astype(np.float32)
    header = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\n"
              f"TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH {points}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\n"
              f"POINTS {points}\nDATA binary\n")
    return header.encode() + rec.tobytes()


# ------------------------------------------------------------------------------------------ storage
ZIP_DATE = (2025, 1, 1, 0, 0, 0)


def write_zip(path: Path, entries: dict[str, bytes], macosx_junk: bool = False) -> None:
    """Deterministic zip: fixed dates and permissions, images stored, the rest deflated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        names = sorted(entries)
        if macosx_junk:
            names += [f"__MACOSX/{n.rsplit('/', 1)[0]}/._{n.rsplit('/', 1)[-1]}" for n in names[:2]]
        for name in names:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            stored = name.endswith((".jpg", ".png", ".lzma"))
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, entries.get(name, b"\x00\x05\x16\x07junk"))
    tmp.replace(path)


def write_dir(folder: Path, entries: dict[str, bytes]) -> None:
    for name, blob in sorted(entries.items()):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)


def store_task(out: Path, task: str, episodes: list[HeEpisode], store: str, category: str = "") -> None:
    """`store`: "zip" (root folder inside), "zip_noroot" (episodes at the archive root), "dir"."""
    base = out / category if category else out
    entries: dict[str, bytes] = {}
    for ep in episodes:
        for name, blob in ep.files().items():
            entries[f"episode_{ep.index}/{name}"] = blob
    if store == "dir":
        write_dir(base / task, entries)
    elif store == "zip":
        write_zip(base / f"{task}.zip", {f"{task}/{k}": v for k, v in entries.items()}, macosx_junk=True)
    elif store == "zip_noroot":
        write_zip(base / f"{task}.zip", entries)
    else:
        raise ValueError(store)


def write_sample(out: Path, seed: int = 0, resolution: tuple[int, int] = DEFAULT_RESOLUTION,
                 seconds: float = 2.0) -> list[HeEpisode]:
    """The HE sample: 3 tasks (zip with root + junk, category folder, zip without root), G1 + H1."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t_idx, (task, spec) in enumerate(sorted(TASKS.items())):
        episodes = []
        for index in range(spec["episodes"]):
            rng = np.random.default_rng([seed, 100 + t_idx, index])
            n = int(round(seconds * FPS)) + int(rng.integers(-5, 6))
            episodes.append(make_episode(
                rng, task, index, spec["robot"], n, spec["walk"], resolution,
                image_format="png" if (spec["robot"] == "H1" and index == 1) else "jpg",
                unpadded_lidar_names=(spec["store"] == "zip_noroot"),
                yaw0=3.0 if spec["walk"] else None))            # walking past +pi exercises yaw unwrapping
        store_task(out, task, episodes, spec["store"], spec["category"])
        written.extend(episodes)
    (out / "task_description_dict.json").write_text(json.dumps(DESCRIPTIONS, indent=1, sort_keys=True) + "\n")
    return written
