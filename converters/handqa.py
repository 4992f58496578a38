"""MediaPipe hand-pose QA for EgoDex: do the recorded 3-D hand joints agree with the video?

Project the 25-joint hands (camera frame, OpenCV pinhole: x right, y down, z forward) with the
intrinsics, run MediaPipe Hand Landmarker (Tasks API) on sampled frames, match detections to the
projected hands (minimum mean landmark distance, so MediaPipe's selfie-convention handedness labels
cannot mislead us; label agreement is reported separately) and score the episode:
- `detection_rate`: fraction of (frame, in-view hand) pairs with a matched detection;
- `mean_px_error`: mean landmark distance of matched hands, in pixels of the decoded frame, and as a
  fraction of the image diagonal (`mean_error_frac`, the thresholded number: resolution independent).

The model file comes from env `PSI0_HAND_MODEL` or `<sys.prefix>/share/psi0/hand_landmarker.task`
(assembled offline by `python tools/build_hand_model.py`).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from converters.egodex import DEFAULT_INTRINSIC, NATIVE_SHAPE
from schemas import Episode, EpisodeError, RejectReason
from schemas.embodiments import MEDIAPIPE_FROM_HUMAN25

EGODEX_INTRINSICS = np.array(DEFAULT_INTRINSIC)
EGODEX_SIZE = (NATIVE_SHAPE[1], NATIVE_SHAPE[0])
"""EgoDex's camera (w, h) at native resolution: what an episode without its own intrinsics is scored with."""


def model_path() -> Path:
    env = os.environ.get("PSI0_HAND_MODEL")
    path = Path(env) if env else Path(sys.prefix) / "share" / "psi0" / "hand_landmarker.task"
    if not path.is_file():
        raise FileNotFoundError(f"MediaPipe hand model not found at {path}; build it with "
                                f"`python tools/build_hand_model.py` (or set PSI0_HAND_MODEL)")
    return path


def project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels; points at or behind the camera -> NaN."""
    p = np.asarray(points, dtype=np.float64)
    z = p[..., 2:3]
    uv = (p[..., :2] / np.where(z > 1e-6, z, np.nan)) @ np.asarray(intrinsics)[:2, :2].T + np.asarray(intrinsics)[:2, 2]
    return uv


def scaled_intrinsics(k: np.ndarray, native: tuple[int, int], actual: tuple[int, int]) -> np.ndarray:
    """Intrinsics for a frame decoded at `actual` (w, h) when calibrated at `native` (w, h)."""
    sx, sy = actual[0] / native[0], actual[1] / native[1]
    return np.diag([sx, sy, 1.0]) @ np.asarray(k, dtype=np.float64)


@dataclass(frozen=True)
class Detection:
    label: str                 # MediaPipe's handedness label ("Left" / "Right")
    landmarks: np.ndarray      # (21, 2) pixels
    score: float = 1.0


@dataclass(frozen=True)
class HandQAConfig:
    samples: int = 8
    max_mean_error_frac: float = 0.05      # of the image diagonal
    min_detection_rate: float = 0.25
    min_confidence: float = 0.3
    mirrored_labels: bool = True           # MediaPipe labels assume a mirrored (selfie) image


@dataclass
class HandQAResult:
    detection_rate: float
    mean_px_error: float
    mean_error_frac: float
    label_agreement: float
    pairs: int

    def quality(self) -> dict[str, float]:
        return {"hand_qa.detection_rate": self.detection_rate, "hand_qa.mean_px_error": self.mean_px_error,
                "hand_qa.mean_error_frac": self.mean_error_frac, "hand_qa.label_agreement": self.label_agreement,
                "hand_qa.pairs": float(self.pairs)}


def score(projected: dict[str, np.ndarray], detections: Sequence[Sequence[Detection]], image_size: tuple[int, int],
          cfg: HandQAConfig = HandQAConfig()) -> HandQAResult:
    """projected: side -> (F, 21, 2) pixels of sampled frames; detections: per frame. Pure, testable scoring."""
    w, h = image_size
    diag = float(np.hypot(w, h))
    pairs = matched = agree = 0
    errors: list[float] = []
    for f, dets in enumerate(detections):
        in_view = {}
        for side, pts in projected.items():
            p = pts[f]
            ok = np.isfinite(p).all(-1) & (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
            if ok.mean() >= 0.5:
                in_view[side] = p
        pairs += len(in_view)
        used: set[int] = set()
        # greedy assignment on mean landmark distance (2 hands at most: greedy == optimal up to ties)
        cands = sorted((float(np.nanmean(np.linalg.norm(d.landmarks - p, axis=-1))), side, i)
                       for side, p in in_view.items() for i, d in enumerate(dets))
        done: set[str] = set()
        for dist, side, i in cands:
            if side in done or i in used:
                continue
            done.add(side)
            used.add(i)
            matched += 1
            errors.append(dist)
            label = dets[i].label.lower()
            if cfg.mirrored_labels:
                label = {"left": "right", "right": "left"}.get(label, label)
            agree += label == side
    mean_err = float(np.mean(errors)) if errors else float("inf")
    return HandQAResult(detection_rate=matched / pairs if pairs else 0.0, mean_px_error=mean_err,
                        mean_error_frac=mean_err / diag, label_agreement=agree / matched if matched else 0.0, pairs=pairs)


class HandDetector:
    """MediaPipe Hand Landmarker (IMAGE mode) on RGB uint8 frames."""

    def __init__(self, cfg: HandQAConfig = HandQAConfig(), path: Path | None = None) -> None:
        from mediapipe.tasks.python import BaseOptions
        from mediapipe.tasks.python.vision import HandLandmarker, HandLandmarkerOptions, RunningMode
        opts = HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path or model_path())),
                                     running_mode=RunningMode.IMAGE, num_hands=2,
                                     min_hand_detection_confidence=cfg.min_confidence,
                                     min_hand_presence_confidence=cfg.min_confidence)
        self._lm = HandLandmarker.create_from_options(opts)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        import mediapipe as mp
        h, w = rgb.shape[:2]
        res = self._lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        out = []
        for lms, hand in zip(res.hand_landmarks, res.handedness):
            pts = np.array([[lm.x * w, lm.y * h] for lm in lms])
            out.append(Detection(hand[0].category_name, pts, float(hand[0].score)))
        return out

    def close(self) -> None:
        self._lm.close()

    def __enter__(self) -> "HandDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sample_frames(length: int, samples: int) -> np.ndarray:
    """Deterministic, evenly spaced frame indices (centres of `samples` equal bins)."""
    if length <= 0:
        return np.zeros(0, dtype=np.int64)
    n = min(samples, length)
    return np.unique(((np.arange(n) + 0.5) * length / n).astype(np.int64))


def decode_frames(uri: str, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode the frames at `indices` (presentation order) of a video file as RGB uint8 arrays."""
    import av
    wanted = set(int(i) for i in indices)
    out: dict[int, np.ndarray] = {}
    with av.open(uri) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
                if len(out) == len(wanted):
                    break
    return out


def projected_hands(episode: Episode, indices: np.ndarray, intrinsics: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for side in ("left", "right"):
        kp = episode.column(f"human.{side}_hand.keypoints").reshape(-1, 25, 3)[indices][:, list(MEDIAPIPE_FROM_HUMAN25)]
        out[side] = project(kp, intrinsics)
    return out


def hand_qa_episode(episode: Episode, cfg: HandQAConfig = HandQAConfig(), detector: HandDetector | None = None,
                    intrinsics: np.ndarray | None = None, native_size: tuple[int, int] = EGODEX_SIZE) -> Episode:
    """Stage: score the episode's first video against its hand joints; record quality; reject on disagreement."""
    if not episode.videos:
        raise EpisodeError(RejectReason.MISSING_VIDEO, "hand QA needs a video")
    video = next(iter(episode.videos.values()))
    idx = sample_frames(min(episode.length, video.frame_count), cfg.samples)
    frames = decode_frames(video.uri, idx)
    idx = np.array(sorted(frames))
    if len(idx) == 0:
        raise EpisodeError(RejectReason.VIDEO_DECODE_ERROR, "no frames decoded for hand QA")
    h, w = frames[int(idx[0])].shape[:2]
    k = scaled_intrinsics(EGODEX_INTRINSICS if intrinsics is None else intrinsics, native_size, (w, h))
    own = detector is None
    det = detector or HandDetector(cfg)
    try:
        detections = [det.detect(frames[int(i)]) for i in idx]
    finally:
        if own:
            det.close()
    result = score(projected_hands(episode, idx, k), detections, (w, h), cfg)
    if result.pairs and (result.detection_rate < cfg.min_detection_rate or result.mean_error_frac > cfg.max_mean_error_frac):
        raise EpisodeError(RejectReason.HAND_QA_FAILED,
                           f"hand poses disagree with the video: detection rate {result.detection_rate:.2f}, "
                           f"mean error {result.mean_px_error:.1f}px ({result.mean_error_frac:.3f} of diagonal)",
                           **result.quality())
    quality = dict(episode.meta.quality) | result.quality()
    return Episode(replace(episode.meta, quality=quality), episode.frames, episode.features, dict(episode.videos))


# ----------------------------------------------------------------------------- synthetic hands (sample data, tests)
def open_hand_keypoints(side: str, wrist: Sequence[float] = (0.0, 0.06, 0.45)) -> np.ndarray:
    """A flat, open human hand (25 EgoDex joints, metres) facing an OpenCV camera, wrist at `wrist`, fingers up."""
    s = -1.0 if side == "right" else 1.0
    kp = np.zeros((25, 3))
    spread = {5: 0.035, 10: 0.012, 15: -0.010, 20: -0.030}
    lengths = {5: (0.04, 0.025, 0.02), 10: (0.045, 0.028, 0.022), 15: (0.042, 0.026, 0.02), 20: (0.035, 0.02, 0.018)}
    for base, x in spread.items():
        kp[base] = [s * x * 0.5, -0.04, 0.0]
        kp[base + 1] = [s * x, -0.085, 0.0]
        y = -0.085
        for j, seg in enumerate(lengths[base]):
            y -= seg
            kp[base + 2 + j] = [s * x * (1 + 0.15 * (j + 1)), y, 0.0]
    kp[1:5] = [[s * 0.025, -0.02, 0], [s * 0.05, -0.04, 0], [s * 0.065, -0.06, 0], [s * 0.075, -0.08, 0]]
    return kp + np.asarray(wrist, dtype=np.float64)


def render_hands(hands: Sequence[np.ndarray], intrinsics: np.ndarray, size: tuple[int, int],
                 background: tuple[int, int, int] = (40, 60, 90)) -> np.ndarray:
    """Draw 25-joint camera-frame hands as skin-coloured palm + finger capsules with a dark outline (RGB uint8).
    MediaPipe's landmarker detects these (see tests/test_handqa.py)."""
    import cv2
    w, h = size
    img = np.full((h, w, 3), background, np.uint8)
    chains = [[0, 1, 2, 3, 4], [6, 7, 8, 9], [11, 12, 13, 14], [16, 17, 18, 19], [21, 22, 23, 24]]
    thick = max(2, int(round(12 * w / 256)))
    for kp in hands:
        uv = project(kp, intrinsics)
        if not np.isfinite(uv).all():
            continue
        palm = cv2.convexHull(uv[[0, 1, 2, 6, 11, 16, 21]].astype(np.int32))
        for colour, extra in (((90, 60, 50), 2), ((205, 150, 120), 0)):
            cv2.fillConvexPoly(img, palm, colour)
            if extra:
                cv2.polylines(img, [palm], True, colour, 2 * extra)
            for chain in chains:
                for a, b in zip(chain[:-1], chain[1:]):
                    cv2.line(img, tuple(int(v) for v in uv[a]), tuple(int(v) for v in uv[b]), colour,
                             thickness=thick + 2 * extra, lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)
