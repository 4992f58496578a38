"""The three Psi0 training stages and their defaults (from the authors' training scripts, see
../shared/reference/psi0_official.md and psi0_amo_teleop_detail.md section 1e).

Stage 1  VLM pre-training: next-token prediction of FAST action tokens on EgoDex + Humanoid Everyday.
         Trains the LLM (1e-4) + projector and vision tower (1e-5); constant lr, no warm-up.
Stage 2  Action-expert post-training on Humanoid Everyday: VLM frozen, the flow-matching MM-DiT
         learns from scratch on the VLM's features (1e-4 constant after 1000 warm-up steps).
Stage 3  End-to-end fine-tuning on in-domain teleop shards: expert 1e-4, VLM parts at the reference's
         low rates (LLM 1e-7, projector 1e-5, vision 1e-6); cosine after 1000 warm-up steps, 40k steps,
         min/max normalization.

Group names ("llm", "projector", "vision", "expert") are those of Psi0Policy.trainable_parameter_groups.
Values the reference does not state are marked "ours".
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageDefaults:
    stage: int
    title: str
    trains: str                              # what learns (for --help and logs)
    sources: tuple[str, ...]                 # the sources the stage is meant for ("" = any: in-domain data)
    weights: dict[str, float] | None         # default mixture over those sources (None: by frame count)
    lrs: dict[str, float]                    # peak lr per parameter group
    primary: str                             # the group a bare `--lr X` sets
    batch_size: int                          # per device
    steps: int
    warmup: int
    schedule: str
    lr_floor: float
    weight_decay: float
    betas: tuple[float, float]
    clip_grad: float
    normalization: str
    save_weights: str                        # checkpoints hold "trainable" tensors or "all"
    uses_tokens: bool                        # stage reads the FAST tokens of the chunk
    max_tokens: int = 64                     # FAST tokens kept per chunk (1 x 48 hand deltas: at most 48)
    image_size: tuple[int, int] = (240, 320)
    notes: tuple[str, ...] = field(default=())


STAGES: dict[int, StageDefaults] = {
    1: StageDefaults(
        stage=1, title="VLM pre-training (FAST action tokens)",
        trains="system-2 (Qwen3-VL: LLM, projector, vision tower); the action expert is idle",
        sources=("egodex", "humanoid_everyday"), weights={"egodex": 0.5, "humanoid_everyday": 0.5},
        lrs={"llm": 1e-4, "projector": 1e-5, "vision": 1e-5}, primary="llm",
        batch_size=16, steps=200_000, warmup=0, schedule="constant", lr_floor=0.0, weight_decay=0.0,
        betas=(0.9, 0.999), clip_grad=1.0, normalization="quantile", save_weights="trainable", uses_tokens=True,
        max_tokens=256,
        notes=("200k steps = the reference's EgoDex pre-training checkpoint; 0.5/0.5 = its optional mix",)),
    2: StageDefaults(
        stage=2, title="action-expert post-training (flow matching, training-time RTC)",
        trains="the MM-DiT action expert, from scratch; system-2 frozen (eval mode, no gradients)",
        sources=("humanoid_everyday",), weights=None,
        lrs={"expert": 1e-4}, primary="expert",
        batch_size=64, steps=50_000, warmup=1000, schedule="constant", lr_floor=0.0, weight_decay=0.0,
        betas=(0.9, 0.999), clip_grad=1.0, normalization="quantile", save_weights="trainable", uses_tokens=False,
        notes=("steps: ours (the reference does not state them)",)),
    3: StageDefaults(
        stage=3, title="end-to-end fine-tuning on in-domain teleop data",
        trains="everything: action expert + system-2 at low rates",
        sources=(), weights=None,
        lrs={"expert": 1e-4, "llm": 1e-7, "projector": 1e-5, "vision": 1e-6}, primary="expert",
        batch_size=16, steps=40_000, warmup=1000, schedule="cosine", lr_floor=0.0, weight_decay=1e-6,
        betas=(0.95, 0.999), clip_grad=1.0, normalization="minmax", save_weights="all", uses_tokens=False,
        notes=("batch 16 per device = the reference's global 128 on 8 GPUs",)),
}


WARMUP_FRACTION = 0.1
"""A warm-up never takes more than this share of a run unless `--warmup` says so: a 150-step run
with the reference's 1000-step warm-up would end at 15 % of its learning rate and barely learn."""


def default_warmup(stage: StageDefaults, steps: int) -> int:
    """The stage's warm-up, capped at WARMUP_FRACTION of `steps`."""
    return min(stage.warmup, int(steps * WARMUP_FRACTION))


def stage_defaults(stage: int) -> StageDefaults:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage}")
    return STAGES[stage]


def parse_lrs(spec: str | None, stage: StageDefaults) -> dict[str, float]:
    """`--lr`: "3e-4" sets the stage's primary group; "expert=1e-4,vision=1e-6" sets named groups.
    Returns the stage's defaults with those applied."""
    lrs = dict(stage.lrs)
    if not spec:
        return lrs
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep:
            name, value = stage.primary, part
        name = name.strip()
        try:
            lrs[name] = float(value)
        except ValueError:
            raise ValueError(f"--lr: {part!r} is not NUMBER or GROUP=NUMBER") from None
        if lrs[name] < 0:
            raise ValueError(f"--lr: {name} must be >= 0")
    return lrs


def parse_weights(spec: str | None) -> dict[str, float] | None:
    """`--weights egodex=0.7,humanoid_everyday=0.3` -> {"egodex": 0.7, ...}."""
    if not spec:
        return None
    out: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--weights: {part!r} is not SOURCE=WEIGHT")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--weights: {part!r} is not SOURCE=WEIGHT") from None
        if out[name.strip()] < 0:
            raise ValueError(f"--weights: {name} must be >= 0")
    if not any(out.values()):
        raise ValueError("--weights: at least one weight must be > 0")
    return out


def _lr(v: float) -> str:
    return f"{v:.0e}".replace("e-0", "e-")


def help_text() -> str:
    """The stage table for `train --help`."""
    lines = []
    for s in STAGES.values():
        data = ", ".join(s.sources) if s.sources else "your in-domain teleop shards"
        if s.weights:
            data += " (mixed " + "/".join(f"{w:g}" for w in s.weights.values()) + ")"
        lrs = ", ".join(f"{k} {_lr(v)}" for k, v in s.lrs.items())
        sched = f"{s.schedule}" + (f", warm-up {s.warmup} (at most {WARMUP_FRACTION:.0%} of --steps)" if s.warmup else "")
        lines.append(f"  stage {s.stage}  {s.title}\n"
                     f"           data: {data}\n"
                     f"           trains: {s.trains}\n"
                     f"           lr: {lrs}; {sched}; {s.steps} steps; batch {s.batch_size}/device; "
                     f"AdamW betas {s.betas[0]:g}/{s.betas[1]:g}, wd {s.weight_decay:g}; clip {s.clip_grad:g}\n"
                     f"           normalization: {s.normalization}; checkpoints keep {s.save_weights} weights"
                     + "".join(f"\n           note: {n}" for n in s.notes))
    return "\n".join(lines)
