"""The unit of data that flows between stages: an `Episode`, or a `Rejected` record saying why not.

Readers return one or the other and never raise past a worker. Episodes are small and picklable:
per-frame numbers live in an Arrow table, video is a *reference* (`VideoRef`) that the shard
writer streams, never decoded frames held in memory.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from schemas.json_text import dumps_indent1

SCHEMA_VERSION = "psi0.episode/1"


class RejectReason(str, Enum):
    """Machine-readable reasons an input ends in quarantine instead of a shard."""

    UNREADABLE = "unreadable"                    # file cannot be opened / parsed at all
    MISSING_KEY = "missing_key"                  # a required dataset/field is absent
    MISSING_VIDEO = "missing_video"              # the paired video/frames are absent
    VIDEO_DECODE_ERROR = "video_decode_error"    # truncated / corrupt video stream
    FRAME_COUNT_MISMATCH = "frame_count_mismatch"  # poses vs video frame counts differ
    EMPTY_EPISODE = "empty_episode"              # zero (or too few) frames
    NON_FINITE = "non_finite"                    # NaN / inf in numeric data
    NOT_RIGID = "not_rigid"                      # a 4x4 pose is not a rigid transform
    NON_MONOTONIC_TIME = "non_monotonic_time"    # timestamps go backwards / repeat
    FPS_MISMATCH = "fps_mismatch"                # timestamps disagree with the declared rate
    SHAPE_MISMATCH = "shape_mismatch"            # a vector has the wrong length
    OUT_OF_RANGE = "out_of_range"                # values far outside physical limits
    DUPLICATE_ID = "duplicate_id"                # a second input with an already-seen id
    BAD_METADATA = "bad_metadata"                # unusable description / task fields
    RETARGET_ERROR = "retarget_error"            # retargeting residual above threshold
    HAND_QA_FAILED = "hand_qa_failed"            # poses disagree with the video (MediaPipe)
    WORKER_ERROR = "worker_error"                # an unexpected exception inside a stage


@dataclass(frozen=True)
class Rejected:
    """Why an input was quarantined. `stage` names the pipeline stage that refused it."""

    source_id: str
    stage: str
    reason: RejectReason
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": "rejected", "stage": self.stage, "reason": self.reason.value,
                "message": self.message, "details": self.details}


class EpisodeError(Exception):
    """Raised inside readers/stages to turn into a `Rejected`; carries the reason."""

    def __init__(self, reason: RejectReason, message: str, **details: Any):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details

    def rejected(self, source_id: str, stage: str) -> Rejected:
        return Rejected(source_id, stage, self.reason, self.message, jsonable(self.details))


@dataclass(frozen=True, order=True)
class SourceRef:
    """A discovered input, small and picklable, handed from `discover` to `read` across workers.

    `source_id` is the logical, stable episode id (the catalog key); `uri` locates the input
    (a file, a directory, or a zip archive whose `member` is the episode folder).
    """

    source_id: str
    source: str
    uri: str
    member: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return dict(self.extra).get(key, default)


@dataclass(frozen=True)
class FeatureSpec:
    """One per-frame feature: LeRobot-style dtype/shape/names. Vectors are 1-D, every dim named."""

    key: str
    dtype: str                      # "float32", "int64", "bool", "video"
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None

    def to_lerobot(self) -> dict[str, Any]:
        if self.dtype == "video":
            return {"dtype": "video", "shape": list(self.shape), "names": ["height", "width", "channels"]}
        return {"dtype": self.dtype, "shape": list(self.shape), "names": list(self.names) if self.names else None}


@dataclass(frozen=True)
class VideoRef:
    """Where a camera stream's frames come from; decoded lazily by the shard writer.

    kind="video": `uri` is a video file PyAV can open (frames in presentation order).
    kind="images": `frames` lists image files, inside the zip `uri` when `member_of_zip` is
    true, else relative to the directory `uri`.
    """

    camera: str
    kind: Literal["video", "images"]
    uri: str
    frame_count: int
    fps: float
    width: int
    height: int
    codec: str | None = None
    frames: tuple[str, ...] = ()
    member_of_zip: bool = False

    @property
    def key(self) -> str:
        return f"observation.images.{self.camera}"


@dataclass
class EpisodeMeta:
    """Per-episode metadata carried into the shard's episode records and the catalog."""

    source: str                      # "egodex" | "humanoid_everyday" | "teleop"
    source_id: str                   # globally unique, stable: e.g. "egodex/part1/basic_pick_place/3"
    embodiment: str                  # "human" | "g1_dex3" | "h1_inspire"
    fps: float
    task: str                        # natural-language instruction
    task_name: str                   # stable task key (folder / archive name)
    task_category: str = ""
    quality: dict[str, float] = field(default_factory=dict)
    derived: dict[str, str] = field(default_factory=dict)   # feature/dim -> how it was derived
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass
class Episode:
    """Metadata + per-frame Arrow table + camera references.

    `frames` always has `timestamp` (float32 seconds from the episode start); vector features are
    `fixed_size_list<float32>` columns whose specs (with dim names) are in `features`.
    """

    meta: EpisodeMeta
    frames: pa.Table
    features: dict[str, FeatureSpec]
    videos: dict[str, VideoRef] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return self.frames.num_rows

    def column(self, key: str) -> np.ndarray:
        """A column as a dense numpy array: (T,) for scalars, (T, D) for vectors."""
        return column_to_numpy(self.frames.column(key))


def vector_column(values: np.ndarray) -> pa.Array:
    """(T, D) float array -> fixed_size_list<float32>[D] Arrow array (zero-copy when float32)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"expected (T, D), got {values.shape}")
    flat = pa.array(values.reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def column_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Inverse of `vector_column` (also handles plain scalar columns)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_fixed_size_list(col.type):
        width = col.type.list_size
        return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return np.stack([np.asarray(v, dtype=np.float32) for v in col.to_pylist()])
    return col.to_numpy(zero_copy_only=False)


def build_frames(timestamps: np.ndarray, vectors: dict[str, np.ndarray]) -> pa.Table:
    """Frames table from timestamps (T,) and named (T, D) arrays, in the given column order."""
    cols: dict[str, pa.Array] = {"timestamp": pa.array(np.asarray(timestamps, np.float32), type=pa.float32())}
    for key, arr in vectors.items():
        cols[key] = vector_column(arr)
    return pa.table(cols)


def jsonable(obj: Any) -> Any:
    """Plain JSON types, recursively: enums by value, numpy scalars and arrays (and anything else with a
    `tolist`, e.g. torch tensors) as Python values; non-finite Python floats as null. The one copy used for
    episode metadata, teleop session files and checkpoint state."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if _plain_leaves(obj):      # shard.json's stats: ~150k floats the per-item walk took 0.25 s over
            return list(obj)
        return [jsonable(v) for v in obj]
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


_PLAIN = frozenset({str, int, bool, type(None)})
_NUMBERS = frozenset({float, int})


def _plain_leaves(items: list | tuple) -> bool:
    """True if `jsonable` would return every item unchanged: exact str/int/bool/None, or floats (with
    ints) that are all finite - checked at C speed by their sum, which is finite only if every term is
    (a finite sum that overflows just takes the per-item path)."""
    kinds = set(map(type, items))
    if kinds <= _PLAIN:
        return True
    if not kinds <= _NUMBERS:
        return False
    try:
        return math.isfinite(sum(items))
    except OverflowError:           # an int too large for a float
        return False


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, fixed separators): identical inputs give identical bytes.
    The text of `json.dumps(..., sort_keys=True, indent=1, ensure_ascii=False)`, written mostly by the
    C encoder (`json_text`): shard.json is megabytes and the pure-Python indent encoder was ~10% of ingest."""
    return dumps_indent1(jsonable(obj)) + "\n"
