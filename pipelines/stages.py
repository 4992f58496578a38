"""The stages of an ingest job. Runners (local, Ray, Beam) only decide *where* they run.

    discover → plan (dedupe, deterministic shard chunks) → fit tokenizer (pass 1, no video)
             → per shard: load(ref) = read + transforms → write + commit → finalize (catalog.json)

This module only orchestrates: what a source does lives in its `converters.registry` entry (reading,
token chunks, hand QA), per-episode steps are `converters.transforms`, and where the output goes is
`pipelines.output.OutputRoot`. Nothing here depends on worker count or scheduling, so every runner
produces the same bytes.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np

from converters.registry import get as get_source
from converters.source import Source
from converters.tokenize.fast import FastTokenizer
from converters.tokenize.load import digest_of, load_tokenizer
from converters.transforms import Compose, Retarget, Tokenize, Transform, Validate, compose, stage_of
from pipelines.output import OutputRoot
from pipelines.prefetch import decoded_ahead
from schemas.catalog import Catalog
from schemas.episode import Episode, EpisodeError, Rejected, RejectReason, SourceRef
from schemas.names import TOKENIZER_DIR
from shards.scheduling import realtime_codecs
from shards.video import VideoConfig
from shards.writer import ShardConfig, ShardResult

log = logging.getLogger("psi0.pipelines")


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
    hand_qa: bool = False                   # the source's hand-pose QA step (EgoDex: MediaPipe vs video)
    tokenize: bool = False
    token_horizon: int = 16
    token_vocab: int = 2048
    token_scale: float = 100.0
    token_fit_episodes: int = 512
    tokenizer: str | None = None            # use this FAST folder (ours or the Ψ₀ authors') instead of fitting one
    tokenizer_stats: str | None = None      # normalisation stats for an authors' folder (their assets/stats json)
    realtime: int = 0                       # SCHED_FIFO priority of a shard's codec threads; 0: ordinary (no bytes change)

    def __post_init__(self) -> None:
        source = get_source(self.source)              # ValueError for an unknown source
        if not 0 <= self.realtime <= 99:
            raise ValueError(f"realtime must be a SCHED_FIFO priority 1-99, or 0 for ordinary; got {self.realtime}")
        if self.hand_qa and source.hand_qa() is None:
            raise ValueError(f"source {self.source!r} has no hand QA step (--hand-qa is for "
                             f"{', '.join(n for n in _sources_with_hand_qa())})")

    @property
    def source_impl(self) -> Source:
        return get_source(self.source)

    @property
    def out(self) -> OutputRoot:
        return OutputRoot(self.output)

    def shard_config(self) -> ShardConfig:
        video = VideoConfig(self.video_width, self.video_height, self.video_codec, self.video_crf, self.video_gop)
        return ShardConfig(formats=tuple(self.formats), video=video)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["formats"] = list(self.formats)
        out.pop("input")
        out.pop("output")     # locations don't change bytes; keep catalogs comparable across machines
        out.pop("realtime")   # nor does scheduling
        for key in ("tokenizer", "tokenizer_stats"):          # locations too: the catalog's tokenizer has its digest
            if out[key] is None:
                out.pop(key)
            else:
                out[key] = "given"
        source = self.source_impl
        out["token_column"] = source.token_column     # what the tokens were made of (None: derived)
        out["token_space"] = source.token_space
        out["token_inputs"] = dict(source.token_inputs)
        return out


def _sources_with_hand_qa() -> list[str]:
    from converters.registry import SOURCES  # noqa: PLC0415

    return sorted(name for name, source in SOURCES.items() if source.hand_qa() is not None)


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


def discover(config: JobConfig) -> list[SourceRef]:
    return sorted(config.source_impl.discover(config.input))


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


def build_transforms(config: JobConfig, tokenizer: FastTokenizer | None) -> Compose:
    """The per-episode chain after reading, in order: validate, the source's hand QA, retarget, FAST tokens."""
    source = config.source_impl
    return compose(Validate(),
                   source.hand_qa() if config.hand_qa else None,
                   Retarget() if config.retarget else None,
                   Tokenize(tokenizer, source.token_chunks) if tokenizer is not None else None)


def load(ref: SourceRef, config: JobConfig, transforms: Compose | Iterable[Transform]) -> Episode | Rejected:
    """read + transforms. Never raises: any failure becomes a Rejected naming the stage and a reason."""
    stage = "read"
    try:
        episode = config.source_impl.read(ref)
        for step in transforms.steps if isinstance(transforms, Compose) else transforms:
            stage = stage_of(step)
            episode = step(episode)
        return episode
    except EpisodeError as err:
        return err.rejected(ref.source_id, stage)
    except Exception as exc:  # noqa: BLE001 - a bug or a surprise in one input must not kill the job
        tb = traceback.format_exc(limit=3)
        where = f"{ref.uri}!{ref.member}" if ref.member else ref.uri
        frames = traceback.extract_tb(exc.__traceback__)
        code = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} {frames[-1].name}" if frames else ""
        return Rejected(ref.source_id, stage, RejectReason.WORKER_ERROR,
                        f"{where}: {stage} failed: {type(exc).__name__}: {exc}",
                        {"file": where, "stage": stage, "code": code, "traceback": tb.splitlines()[-4:]})


def run_shard(shard: ShardPlan, config: JobConfig, transforms: Compose) -> ShardResult | None:
    """Write one planned shard unless already committed (resume). Returns None when skipped."""
    shard_config = config.shard_config()
    if config.out.is_committed(shard.shard_id, shard_config.formats):
        return None
    with realtime_codecs(config.realtime):       # the loader and decoder threads start inside: they inherit it
        episodes = decoded_ahead(shard.refs, lambda ref: load(ref, config, transforms), shard_config.video,
                                 early=getattr(config.source_impl, "videos", None))
        return config.out.write_shard(shard.shard_id, episodes, shard_config)


def fit_tokenizer(refs: list[SourceRef], config: JobConfig) -> FastTokenizer | None:
    """Pass 1 (no video): fit FAST on the source's token chunks of a deterministic sample of episodes;
    reuse the one a previous run saved (resume). With `config.tokenizer`, that folder is used (and saved
    beside the shards) instead: e.g. one tokenizer fitted over a stage-1 mixture, or the authors'."""
    if not config.tokenize:
        return None
    saved = config.out.load_tokenizer()
    if config.tokenizer is not None:
        given = load_tokenizer(config.tokenizer, config.tokenizer_stats)
        if saved is not None and digest_of(saved) != digest_of(given):
            raise ValueError(f"{config.output} was tokenized with another tokenizer ({config.out.tokenizer_location}); "
                             "write to a new output root to use --tokenizer " + str(config.tokenizer))
        if saved is None:
            config.out.save_tokenizer(given)
        return given
    if saved is not None:
        return saved
    source = config.source_impl
    step = max(1, len(refs) // max(1, config.token_fit_episodes))
    chunks = []
    for ref in refs[::step]:
        loaded = load(ref, config, compose(Validate()))
        if isinstance(loaded, Rejected):
            continue
        try:
            chunks.append(source.token_chunks(loaded, config.token_horizon))
        except Exception as exc:  # noqa: BLE001 - left out of the fit; the Tokenize stage rejects it with the reason
            log.warning("tokenizer fit: %s left out (%s: %s)", ref.source_id, type(exc).__name__, exc)
    if not chunks:
        log.warning("no readable episode to fit the tokenizer on; writing without action tokens")
        return None
    tokenizer = FastTokenizer.fit(np.concatenate(chunks), scale=config.token_scale, vocab_size=config.token_vocab,
                                  seed=0)
    config.out.save_tokenizer(tokenizer)
    return tokenizer


def prepare(config: JobConfig) -> tuple[Plan, FastTokenizer | None]:
    """Everything before the heavy pass: clean debris, discover, plan, fit the tokenizer."""
    removed = config.out.prepare()
    if removed:
        log.info("removed %d partial shard(s) from an interrupted run: %s", len(removed), ", ".join(removed))
    refs = discover(config)
    the_plan = plan(refs, config)
    tokenizer = fit_tokenizer([r for s in the_plan.shards for r in s.refs], config)
    return the_plan, tokenizer


def finalize(config: JobConfig, the_plan: Plan, tokenizer: FastTokenizer | None) -> Catalog:
    """Write catalog.json: every input's fate (ingested or rejected), the merged stats, the tokenizer."""
    tok = None
    if tokenizer is not None:
        tok = {"path": TOKENIZER_DIR, "config": asdict(tokenizer.config), "digest": digest_of(tokenizer)}
    return config.out.finalize(plan_rejects=the_plan.rejects, expected_inputs=the_plan.inputs,
                               config=config.to_json(), tokenizer=tok)
