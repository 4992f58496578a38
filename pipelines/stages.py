"""Pure stage functions of an ingest job. Runners (local, Ray, Beam) only decide *where* they run.

    discover → plan (dedupe, deterministic shard chunks) → [fit tokenizer: pass 1, poses only]
             → per shard: load(ref) = read + validate + transforms → write_shard → finalize

Nothing here depends on worker count or scheduling, so every runner produces the same bytes.
"""
from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from schemas.episode import Episode, EpisodeError, Rejected, RejectReason, SourceRef
from schemas.names import SHARDS_DIR, TOKENIZER_DIR
from schemas.validation import validate_episode
from schemas import remote
from shards import objectstore
from shards.catalog import finalize as finalize_catalog
from shards.commit import clean_staging
from shards.video import VideoConfig
from shards.writer import ShardConfig, ShardResult, is_committed, shard_dir_name, write_shard

log = logging.getLogger("psi0.pipelines")
SOURCES = {"egodex": "converters.egodex", "humanoid_everyday": "converters.humanoid_everyday",
           "teleop": "converters.teleop"}


@dataclass(frozen=True)
class JobConfig:
    """Everything that determines a job's output bytes (serialized into the catalog)."""

    source: str
    input: str
    output: str
    formats: tuple[str, ...] = ("lerobot",)
    episodes_per_shard: int = 32
    video_width: int = 224
    video_height: int = 224
    video_codec: str = "libsvtav1"
    video_crf: int = 30
    video_gop: int = 2
    retarget: bool = False
    hand_qa: bool = False                   # MediaPipe agreement check of EgoDex hand poses vs video
    tokenize: bool = False
    token_column: str | None = "action"     # None: EgoDex 48-D delta chunks from keypoints
    token_horizon: int = 16
    token_vocab: int = 2048
    token_scale: float = 100.0
    token_fit_episodes: int = 512

    def shard_config(self) -> ShardConfig:
        video = VideoConfig(self.video_width, self.video_height, self.video_codec, self.video_crf, self.video_gop)
        return ShardConfig(formats=tuple(self.formats), video=video)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["formats"] = list(self.formats)
        out.pop("input")
        out.pop("output")     # locations don't change bytes; keep catalogs comparable across machines
        return out


@dataclass(frozen=True)
class ShardPlan:
    shard_id: str
    refs: tuple[SourceRef, ...]


@dataclass
class Plan:
    shards: list[ShardPlan]
    rejects: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        return sorted([r.source_id for s in self.shards for r in s.refs] + list(self.rejects))


def source_module(source: str) -> Any:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose from {sorted(SOURCES)}")
    return importlib.import_module(SOURCES[source])


def discover(config: JobConfig) -> list[SourceRef]:
    return sorted(source_module(config.source).discover(config.input))


def plan(refs: list[SourceRef], config: JobConfig) -> Plan:
    """Dedupe by source_id (first by uri wins), then chunk sorted refs into shards `<source>-<i:05d>`."""
    by_id: dict[str, list[SourceRef]] = {}
    for ref in sorted(refs, key=lambda r: (r.source_id, r.uri, r.member)):
        by_id.setdefault(ref.source_id, []).append(ref)
    kept, rejects = [], {}
    for source_id, copies in by_id.items():
        kept.append(copies[0])
        for k, dup in enumerate(copies[1:], start=1):
            rejects[f"{source_id}#duplicate-{k}"] = Rejected(
                source_id, "plan", RejectReason.DUPLICATE_ID,
                f"episode id {source_id} appears again in {dup.uri}{'!' + dup.member if dup.member else ''}; "
                f"kept {copies[0].uri}{'!' + copies[0].member if copies[0].member else ''}",
                {"uri": dup.uri, "member": dup.member}).to_json()
    n = max(1, config.episodes_per_shard)
    shards = [ShardPlan(f"{config.source}-{i // n:05d}", tuple(kept[i:i + n])) for i in range(0, len(kept), n)]
    return Plan(shards, rejects)


Transform = Callable[[Episode], Episode]


def build_transforms(config: JobConfig, tokenizer: Any | None) -> list[Transform]:
    """Per-episode transforms after validation, in order: hand QA, retarget, then FAST tokens."""
    steps: list[Transform] = []
    if config.hand_qa:
        steps.append(_egodex_hand_qa)
    if config.retarget:
        from converters.retarget import retarget_episode
        steps.append(retarget_episode)
    if tokenizer is not None:
        from converters.tokenize.columns import tokenize_episode
        steps.append(lambda ep: tokenize_episode(ep, tokenizer, column=config.token_column))
    return steps


def _egodex_hand_qa(episode: Episode) -> Episode:
    """Hand QA with the episode's own intrinsics, at the resolution its video really has."""
    from converters.handqa import hand_qa_episode
    extra = episode.meta.extra
    k = np.asarray(extra["camera_intrinsic"], np.float64) if "camera_intrinsic" in extra else None
    size = (int(extra.get("video_width", 1920)), int(extra.get("video_height", 1080)))
    return hand_qa_episode(episode, intrinsics=k, native_size=size)


def load(ref: SourceRef, config: JobConfig, transforms: list[Transform]) -> Episode | Rejected:
    """read + validate + transforms. Never raises: any failure becomes a Rejected with a reason."""
    stage = "read"
    try:
        episode = source_module(config.source).read(ref)
        stage = "validate"
        validate_episode(episode)
        stage = "transform"
        for step in transforms:
            episode = step(episode)
        return episode
    except EpisodeError as err:
        return err.rejected(ref.source_id, stage)
    except Exception as exc:  # noqa: BLE001 - a bug or a surprise in one input must not kill the job
        tb = traceback.format_exc(limit=3)
        return Rejected(ref.source_id, stage, RejectReason.WORKER_ERROR, f"{type(exc).__name__}: {exc}",
                        {"traceback": tb.splitlines()[-4:]})


def run_shard(shard: ShardPlan, config: JobConfig, transforms: list[Transform]) -> ShardResult | None:
    """Write one planned shard unless already committed (resume). Returns None when skipped."""
    shard_config = config.shard_config()
    if remote.is_url(config.output):
        return _run_shard_remote(shard, config, transforms)
    if is_committed(Path(config.output), shard.shard_id, shard_config.formats):
        return None
    fault_point("shard-start")
    episodes = (_with_fault(item) for item in _prefetched(shard.refs, config, transforms))
    return write_shard(episodes, config.output, shard.shard_id, shard_config)


def _run_shard_remote(shard: ShardPlan, config: JobConfig, transforms: list[Transform]) -> ShardResult | None:
    """Object-store output: write + commit the shard in a local staging root, then publish each format's
    directory with its `shard.json` uploaded last (see shards.objectstore)."""
    shard_config = config.shard_config()
    names = [shard_dir_name(shard.shard_id, fmt) for fmt in shard_config.formats]
    urls = {name: remote.join(config.output, SHARDS_DIR, name) for name in names}
    if all(objectstore.committed_shard(url) is not None for url in urls.values()):
        return None
    fault_point("shard-start")
    staging = Path(tempfile.mkdtemp(prefix=f"psi0-{shard.shard_id}-"))
    try:
        episodes = (_with_fault(item) for item in _prefetched(shard.refs, config, transforms))
        result = write_shard(episodes, staging, shard.shard_id, shard_config)
        for name in names:
            objectstore.publish_shard(staging / SHARDS_DIR / name, urls[name],
                                      after_data=lambda: fault_point("upload"))
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _prefetched(refs: tuple[SourceRef, ...], config: JobConfig, transforms: list[Transform]) -> Iterator[Episode | Rejected]:
    """`load` the next episode in a background thread while the writer encodes the current one's video
    (HDF5/JSON parsing, validation and transforms hide behind the codec). Order is preserved."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
        pending = [pool.submit(load, ref, config, transforms) for ref in refs[:1]]
        for i in range(len(refs)):
            if i + 1 < len(refs):
                pending.append(pool.submit(load, refs[i + 1], config, transforms))
            yield pending.pop(0).result()


def fit_tokenizer(refs: list[SourceRef], config: JobConfig) -> Any | None:
    """Pass 1 (poses only, no video): fit FAST on a deterministic sample; reuse a saved one on resume."""
    if not config.tokenize:
        return None
    from converters.tokenize.columns import egodex_delta_chunks
    from converters.tokenize.fast import FastTokenizer
    from converters.tokenize.sources import frame_chunks

    if remote.is_url(config.output):
        saved = load_tokenizer(tokenizer_location(config))
        if saved is not None:
            return saved
    else:
        directory = Path(config.output) / TOKENIZER_DIR
        if (directory / "tokenizer.json").is_file():
            return FastTokenizer.load(directory)
    step = max(1, len(refs) // max(1, config.token_fit_episodes))
    chunks = []
    for ref in refs[::step]:
        loaded = load(ref, config, [])
        if isinstance(loaded, Rejected):
            continue
        if config.token_column is None:
            chunks.append(egodex_delta_chunks(loaded, config.token_horizon))
        else:
            chunks.append(frame_chunks(loaded.column(config.token_column).astype(np.float64), config.token_horizon))
    if not chunks:
        log.warning("no readable episode to fit the tokenizer on; writing without action tokens")
        return None
    tokenizer = FastTokenizer.fit(np.concatenate(chunks), scale=config.token_scale, vocab_size=config.token_vocab,
                                  seed=0)
    if remote.is_url(config.output):     # tokenizer.json is the marker: uploaded last
        with tempfile.TemporaryDirectory(prefix="psi0-tokenizer-") as tmp:
            tokenizer.save(tmp)
            objectstore.upload_tree(Path(tmp), tokenizer_location(config), last="tokenizer.json")
        return tokenizer
    tmp = directory.with_name(directory.name + ".tmp")
    tokenizer.save(tmp)
    os.replace(tmp, directory)
    return tokenizer


def tokenizer_location(config: JobConfig) -> str:
    """`<output>/tokenizer` as a path or URL."""
    if remote.is_url(config.output):
        return remote.join(config.output, TOKENIZER_DIR)
    return str(Path(config.output) / TOKENIZER_DIR)


def load_tokenizer(location: str) -> Any | None:
    """A saved FAST tokenizer from a directory or URL (downloaded to a temp dir), None if not there."""
    from converters.tokenize.fast import FastTokenizer

    if not remote.is_url(location):
        return FastTokenizer.load(location)
    if not remote.exists(remote.join(location, "tokenizer.json")):
        return None
    with tempfile.TemporaryDirectory(prefix="psi0-tokenizer-") as tmp:
        objectstore.download_tree(location, Path(tmp))
        return FastTokenizer.load(tmp)


def prepare(config: JobConfig) -> tuple[Plan, Any | None]:
    """Everything before the heavy pass: clean debris, discover, plan, fit the tokenizer.
    (On an object store there is no staging debris: a partial shard is replaced when it is redone.)"""
    if not remote.is_url(config.output):
        Path(config.output).mkdir(parents=True, exist_ok=True)
        removed = clean_staging(Path(config.output))
        if removed:
            log.info("removed %d partial shard(s) from an interrupted run: %s", len(removed), ", ".join(removed))
    refs = discover(config)
    the_plan = plan(refs, config)
    tokenizer = fit_tokenizer([r for s in the_plan.shards for r in s.refs], config)
    return the_plan, tokenizer


def finalize(config: JobConfig, the_plan: Plan, tokenizer: Any | None) -> Any:
    fault_point("finalize")
    tok = None
    if tokenizer is not None:
        tok = {"path": TOKENIZER_DIR, "config": asdict(tokenizer.config)}
    return finalize_catalog(config.output, plan_rejects=the_plan.rejects, expected_inputs=the_plan.inputs,
                            config=config.to_json(), tokenizer=tok)


# ---------------------------------------------------------------- fault injection for crash tests
_FAULT_COUNTS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """`PSI0_FAULT=<name>:<n>` SIGKILLs this process the n-th time `name` is reached (tests only).

    With `PSI0_FAULT_ONCE=<file>` only the first process to get there dies (it creates the file first):
    how a test kills one Ray worker mid-episode and lets the retried task succeed."""
    spec = os.environ.get("PSI0_FAULT", "")
    if not spec or not spec.startswith(name + ":"):
        return
    _FAULT_COUNTS[name] = _FAULT_COUNTS.get(name, 0) + 1
    if _FAULT_COUNTS[name] >= int(spec.split(":", 1)[1]):
        once = os.environ.get("PSI0_FAULT_ONCE")
        if once:
            try:
                os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        os.kill(os.getpid(), 9)


def _with_fault(item: Episode | Rejected) -> Episode | Rejected:
    fault_point("episode")
    return item
