"""A trained run, ready to answer chunk requests in joint space: the policy, its normalization, and the
observation schema a client must send.

Training normalizes actions and state per source (`training.data.ChunkDataset`); the robot speaks
joint space. `ServedPolicy` owns that translation so neither the wire protocol nor the robot side ever
sees normalized numbers: observation state in joint units -> normalized -> model -> chunk ->
de-normalized. The normalization comes from `final/normalization.json` when the run has one (written by
`save_normalization`), else it is recomputed from the shards named in `run.json` (the same catalog stats
training used).

The schema (`ObservationSchema`) is the contract with clients: which state feature and its dimension
names, which cameras and at what size, the action space, chunk length, dataset rate and the model's
`max_delay`. A request that does not match it is refused with a message naming the mismatch.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.names import STATE

NORMALIZATION_FILE = "normalization.json"


@dataclass(frozen=True)
class ObservationSchema:
    """What a checkpoint consumes and produces (sent to clients as server metadata)."""

    state_key: str
    state_names: tuple[str, ...]
    cameras: tuple[str, ...]                 # feature keys, e.g. observation.images.egocentric
    image_size: tuple[int, int] | None       # (H, W) the model was trained at; None: as recorded
    action_names: tuple[str, ...]
    horizon: int
    fps: float
    max_delay: int
    source: str
    camera_size: tuple[int, int] | None = None   # (H, W) the training frames were recorded at (sim renders at this)

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ObservationSchema":
        size = d.get("image_size")
        return cls(state_key=d["state_key"], state_names=tuple(d["state_names"]), cameras=tuple(d["cameras"]),
                   image_size=tuple(size) if size else None, action_names=tuple(d["action_names"]),
                   horizon=int(d["horizon"]), fps=float(d["fps"]), max_delay=int(d["max_delay"]),
                   source=str(d["source"]), camera_size=tuple(d["camera_size"]) if d.get("camera_size") else None)

    def check(self, obs: dict[str, Any]) -> None:
        """Raise SchemaMismatch naming every way `obs` differs from this schema."""
        problems: list[str] = []
        state = obs.get("state")
        if not isinstance(state, np.ndarray) or state.shape != (self.state_dim,):
            got = getattr(state, "shape", type(state).__name__)
            problems.append(f"state must be a ({self.state_dim},) array of {self.state_key} "
                            f"({', '.join(self.state_names[:3])}, ...), got {got}")
        elif not np.isfinite(state).all():
            problems.append("state has non-finite values")
        names = obs.get("state_names")
        if names is not None and tuple(names) != self.state_names:
            diff = [f"{i}: {a!r} != {b!r}" for i, (a, b) in enumerate(zip(names, self.state_names)) if a != b][:3]
            problems.append(f"state_names differ from the checkpoint's {self.state_key} "
                            f"({len(names)} vs {self.state_dim} names; {'; '.join(diff) or 'lengths differ'})")
        images = obs.get("images") or {}
        if not isinstance(images, dict):
            problems.append("images must be a map camera -> (H, W, 3) uint8")
            images = {}
        for cam in self.cameras:
            img = images.get(cam, images.get(camera_short_name(cam)))
            if img is None:
                problems.append(f"missing camera {cam!r} (or {camera_short_name(cam)!r})")
            elif not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                problems.append(f"camera {cam!r} must be (H, W, 3) uint8, got "
                                f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}")
        if problems:
            raise SchemaMismatch("; ".join(problems))


class SchemaMismatch(ValueError):
    """An observation that does not fit the checkpoint (wrong state width or names, missing camera)."""


def camera_short_name(key: str) -> str:
    return key.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Normalizer:
    """Per-dimension affine maps of one source (training.data.normalize.Affine, as JSON-able arrays)."""

    action_center: np.ndarray
    action_scale: np.ndarray
    state_center: np.ndarray | None
    state_scale: np.ndarray | None

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        if self.state_center is None:
            return np.asarray(state, np.float32)
        return ((np.asarray(state, np.float32) - self.state_center) / self.state_scale).astype(np.float32)

    def normalize_actions(self, a: np.ndarray) -> np.ndarray:
        d = len(self.action_center)
        return ((np.asarray(a, np.float32)[..., :d] - self.action_center) / self.action_scale).astype(np.float32)

    def denormalize_actions(self, a: np.ndarray) -> np.ndarray:
        scale = np.where(np.isinf(self.action_scale), 0.0, self.action_scale).astype(np.float32)
        d = len(self.action_center)
        return (np.asarray(a, np.float32)[..., :d] * scale + self.action_center).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        def arr(x: np.ndarray | None) -> list | None:
            return None if x is None else [float(v) if np.isfinite(v) else "inf" for v in x]
        return {"action": {"center": arr(self.action_center), "scale": arr(self.action_scale)},
                "state": None if self.state_center is None
                else {"center": arr(self.state_center), "scale": arr(self.state_scale)}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Normalizer":
        def arr(x: list) -> np.ndarray:
            return np.array([np.inf if v == "inf" else v for v in x], np.float32)
        st = d.get("state")
        return cls(arr(d["action"]["center"]), arr(d["action"]["scale"]),
                   None if st is None else arr(st["center"]), None if st is None else arr(st["scale"]))


def final_dir(run: str | Path) -> Path:
    """RUN/final when RUN is a training run dir, else RUN itself (a final/ dir)."""
    run = Path(run)
    final = run / "final" if (run / "final").is_dir() else run
    if not (final / "policy.json").is_file():
        raise FileNotFoundError(f"{run}: no trained policy (expected {final / 'policy.json'}; train writes "
                                f"RUN/final at the end of a run)")
    return final


def run_config(run: str | Path) -> dict[str, Any]:
    """RUN/run.json (the resolved data / model config of training)."""
    path = final_dir(run).parent / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; `psi0 serve` needs the run's data config next to final/")
    return json.loads(path.read_text())


def _dataset(cfg: dict[str, Any]):
    from training.data import ChunkDataset, DataConfig, open_shards  # noqa: PLC0415
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["data"].items()}
    return ChunkDataset(open_shards(cfg["shards"]), DataConfig(**data))


def _feature(ds: Any, key: str) -> dict[str, Any]:
    from shards import formats  # noqa: PLC0415
    from shards.location import Location  # noqa: PLC0415
    fmt, path = ds.locations[0]
    reader = formats.get(fmt).open(Location.of(path))
    try:
        feat = reader.info().features.get(key)
    finally:
        reader.close()
    if feat is None:
        raise ValueError(f"{path}: no feature {key!r}")
    return feat


def _feature_names(ds: Any, key: str) -> tuple[str, ...]:
    feat = _feature(ds, key)
    names = feat.get("names")
    width = int(np.prod(feat["shape"]))
    if not names or len(names) != width:
        return tuple(f"{key}[{i}]" for i in range(width))
    return tuple(str(n) for n in names)


def describe_run(run: str | Path) -> tuple[ObservationSchema, Normalizer]:
    """The schema and normalization of a run: from final/normalization.json when present, else from the
    shards its run.json names (and the policy config)."""
    final = final_dir(run)
    cached = final / NORMALIZATION_FILE
    if cached.is_file():
        d = json.loads(cached.read_text())
        return ObservationSchema.from_json(d["schema"]), Normalizer.from_json(d["normalization"])
    cfg = run_config(run)
    ds = _dataset(cfg)
    sources = ds.index.sources
    if len(sources) != 1:
        raise ValueError(f"run trained on several sources {sources}: serve needs one source's normalization "
                         f"(write {cached} with save_normalization(run, source=...))")
    source = sources[0]
    stats = ds.norm_stats()[source]
    norm = Normalizer.from_json({"action": stats["action"], "state": stats["state"]})
    data = cfg["data"]
    size = data.get("image_size")
    model = cfg["model"]
    state_key = data.get("state_key", STATE)
    action_names: tuple[str, ...] = ()
    for key in data.get("action_keys", ["action"]):
        action_names += _feature_names(ds, key)
    schema = ObservationSchema(
        state_key=state_key, state_names=_feature_names(ds, state_key), cameras=tuple(data["cameras"]),
        image_size=tuple(size) if size else None, action_names=action_names[: int(model["action_dim"])],
        horizon=int(model["horizon"]), fps=float(ds.columns(0).reader.info().fps),
        max_delay=int(_policy_max_delay(final)), source=source,
        camera_size=tuple(int(v) for v in _feature(ds, data["cameras"][0])["shape"][:2]) if data["cameras"] else None)
    return schema, norm


def _policy_max_delay(final: Path) -> int:
    """The run's training-time RTC max_delay (one definition: schemas.chunking via the policy config)."""
    from training.model.policy import PolicyConfig  # noqa: PLC0415
    return int(PolicyConfig.load(final / "policy.json").chunking().max_delay)


def save_normalization(run: str | Path) -> Path:
    """Write final/normalization.json (schema + normalization) so serving needs no access to the shards."""
    from schemas.durable import write_json_atomic  # noqa: PLC0415
    schema, norm = describe_run(run)
    path = final_dir(run) / NORMALIZATION_FILE
    write_json_atomic(path, {"schema": schema.to_json(), "normalization": norm.to_json()})
    return path


class ServedPolicy:
    """`infer(obs, prefix, delay) -> (H, A)` joint-space chunk; rows < delay are the committed prefix."""

    def __init__(self, run: str | Path, device: str = "cpu", steps: int | None = None, seed: int = 0):
        import torch  # noqa: PLC0415

        from training.model.policy import Psi0Policy  # noqa: PLC0415
        self.run = Path(run)
        self.schema, self.norm = describe_run(run)
        self.policy = Psi0Policy.from_pretrained(final_dir(run)).to(device).eval()
        self.steps = steps
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.pad_dim = max(int(self.policy.cfg.state_dim), self.schema.state_dim)

    def metadata(self) -> dict[str, Any]:
        return {"schema": self.schema.to_json(), "policy": self.policy.cfg.name,
                "sample_steps": self.steps or self.policy.cfg.sample_steps}

    def batch(self, obs: dict[str, Any]) -> dict[str, Any]:
        """A request's observation -> the training sample layout, batch of one."""
        import torch  # noqa: PLC0415

        from shards.frames import resize_hwc  # noqa: PLC0415
        self.schema.check(obs)
        state = np.zeros(self.pad_dim, np.float32)
        state[: self.schema.state_dim] = self.norm.normalize_state(obs["state"])
        mask = np.zeros(self.pad_dim, bool)
        mask[: self.schema.state_dim] = True
        images = obs.get("images") or {}
        frames = [resize_hwc(np.asarray(images.get(c, images.get(camera_short_name(c)))), self.schema.image_size)
                  for c in self.schema.cameras]
        return {"images": torch.from_numpy(np.stack(frames))[None], "image_mask": torch.ones(1, len(frames), dtype=torch.bool),
                "task": [str(obs.get("instruction", ""))], "state": torch.from_numpy(state)[None],
                "state_mask": torch.from_numpy(mask)[None]}

    def infer(self, obs: dict[str, Any], prefix: np.ndarray | None = None, delay: int = 0) -> tuple[np.ndarray, dict]:
        """Joint-space chunk and diagnostics (`infer_ms`, `prefix_max_dev`: how far the model's own prefix
        rows were from the committed ones, over the dims that varied in training, before they are set
        exactly: the expert hard-sets them, so this is float round-off of normalize / de-normalize)."""
        import torch  # noqa: PLC0415
        t0 = time.perf_counter()
        batch = self.batch(obs)
        a = self.schema.action_dim
        prefix = np.zeros((0, a), np.float32) if prefix is None else np.asarray(prefix, np.float32)
        if prefix.ndim != 2 or prefix.shape[1] != a:
            raise SchemaMismatch(f"prefix must be (d, {a}) actions, got {prefix.shape}")
        if not np.isfinite(prefix).all():
            raise SchemaMismatch("prefix has non-finite values")
        if int(delay) > self.schema.max_delay - 1:
            raise SchemaMismatch(f"delay {int(delay)} was never drawn in training (max_delay {self.schema.max_delay}: "
                                 f"d <= {self.schema.max_delay - 1})")
        delay = int(max(0, min(delay, len(prefix))))
        pre = torch.from_numpy(self.norm.normalize_actions(prefix[:delay]))[None] if delay else None
        with torch.no_grad():
            chunk = self.policy.sample_actions(batch, prefix=pre, delay=delay, steps=self.steps,
                                               generator=self.generator)
        raw = self.norm.denormalize_actions(chunk[0].float().cpu().numpy())
        varies = np.isfinite(self.norm.action_scale)        # constant-in-training dims decode to their value
        dev = float(np.abs(raw[:delay, varies] - prefix[:delay, varies]).max()) if delay and varies.any() else 0.0
        raw[:delay] = prefix[:delay]
        return raw, {"infer_ms": (time.perf_counter() - t0) * 1e3, "prefix_max_dev": dev, "delay": delay}

    def warmup(self, n: int = 2) -> float:
        """Run `n` dummy requests (first calls allocate and compile); returns the last one's ms."""
        obs = dummy_observation(self.schema)
        ms = 0.0
        for _ in range(n):
            _, diag = self.infer(obs)
            ms = diag["infer_ms"]
        return ms


def dummy_observation(schema: ObservationSchema) -> dict[str, Any]:
    """A schema-conforming observation of zeros (warm-up, tests)."""
    h, w = schema.image_size or (64, 64)
    return {"state": np.zeros(schema.state_dim, np.float32), "instruction": "",
            "images": {c: np.zeros((h, w, 3), np.uint8) for c in schema.cameras}}
