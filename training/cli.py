"""`train`: train the Psi0 policy on psi0 shards, one stage at a time (see training/stages.py).

Wires the pieces together: shards -> training.data loader, config -> Psi0Policy (+ --init weights),
stage defaults -> TrainConfig, then Trainer.fit. Under `torchrun` every rank runs this same main."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from schemas.actions import BATCH_PAD_DIM
from schemas.names import STATE
from training.data.representation import REPRESENTATIONS
from training.stages import STAGES, default_warmup, help_text, parse_lrs, parse_weights, stage_defaults

log = logging.getLogger("training")

EPILOG = """\
stages (defaults; every one can be overridden by the options above):
{stages}

examples:
  # stage 2 on the sample shards, tiny model, CPU, a few minutes
  train --shards out/demo/humanoid_everyday --stage 2 --config tiny --image-size native \\
        --batch-size 8 --steps 300 --out runs/s2
  # stage 1 on two sources mixed 70/30, 8 GPUs
  torchrun --nproc-per-node 8 -m training.cli --shards out/egodex out/humanoid_everyday \\
        --weights egodex=0.7,humanoid_everyday=0.3 --stage 1 --config full --vlm-path ~/Qwen3-VL-2B-Instruct \\
        --out runs/s1
  # stage 3 from stage 1's VLM and stage 2's expert
  train --shards out/teleop --stage 3 --config full --vlm-path ~/Qwen3-VL-2B-Instruct \\
        --init system2=runs/s1 expert=runs/s2 --out runs/s3
  # continue a run exactly where its newest checkpoint left it (same --out, same options)
  train ... --out runs/s3 --resume

outputs (in --out):
  metrics.jsonl              one JSON object per logged step: step, epoch, loss, lr, lr/<group>,
                             grad_norm, samples, samples_per_s and the model's own metrics
  run.json                   the resolved model / data / training configuration
  checkpoints/step_N/        model.safetensors, config.json, optimizer + RNG (safetensors), state.json;
                             written atomically, newest --keep-last kept
  final/                     the trained policy (policy.json, system2/, expert.safetensors) for deploy
"""


def _recipe_names() -> list[str]:
    from training.recipes import RECIPES
    return list(RECIPES)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the Psi0 policy (Qwen3-VL system-2 + flow-matching MM-DiT action expert) on psi0 "
                    "shards. One stage per run; each stage's defaults follow the reference training scripts.",
        epilog=EPILOG.format(stages=help_text()))
    data = p.add_argument_group("data")
    data.add_argument("--shards", nargs="+", required=True, metavar="PATH",
                      help="output roots of the ingest jobs (or catalog.json files, shard dirs, .zarr stores)")
    data.add_argument("--weights", metavar="SRC=W,...",
                      help="per-source mixing weights, e.g. egodex=0.7,humanoid_everyday=0.3 "
                           "(default: the stage's mix, else proportional to frames)")
    data.add_argument("--image-size", default=None, metavar="HxW",
                      help="resize camera images to HxW, or 'native' (default 240x320, the reference's)")
    data.add_argument("--cameras", nargs="+", default=None, metavar="KEY",
                      help="camera features to feed (default observation.images.egocentric)")
    data.add_argument("--normalization", choices=("minmax", "quantile", "quantile_clip", "meanstd", "none"),
                      help="action/state normalization from the catalog stats (default: the stage's); quantile_clip "
                           "= q01/q99 to [-1, 1] then clipped, the reference's bounds_q99")
    data.add_argument("--action-repr", default="absolute", choices=sorted(REPRESENTATIONS),
                      help="training targets: absolute rows, chunk = the policy horizon (default: what the robot "
                           "executes, lower body included), or he_joint_delta28 (the reference's HE post-training: "
                           "28-D upper-body joint deltas, chunk 16, padded to 36)")
    data.add_argument("--tokenizer", default=None, metavar="DIR",
                      help="stage 1: re-tokenize every shard with this FAST folder (ONE token space for the mix: "
                           "`psi0 tokenizer fit --input ROOT ... --out DIR`, or the Psi0 authors' folder); default: "
                           "each root's own tokenizer at its own id block")
    data.add_argument("--tokenizer-stats", default=None, metavar="FILE",
                      help="q01/q99 json for an authors' tokenizer folder (their assets/stats/*.json)")
    data.add_argument("--max-tokens", type=int, default=None,
                      help="FAST tokens kept per chunk, longer ones are truncated (default: 256 in stage 1, else 64)")
    data.add_argument("--format", default="lerobot", metavar="FORMAT",
                      help="shard format to read when twins exist: any format registered in shards.formats "
                           "(built in: lerobot, zarr; default lerobot)")
    data.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per rank (default 0)")
    data.add_argument("--samples-per-epoch", type=int, default=None,
                      help="epoch length for the mixture sampler (default: all frames once)")
    data.add_argument("--state-key", default=None, metavar="KEY",
                      help="state feature the policy conditions on (default observation.state; "
                           "observation.state_privileged = + simulator object poses, for CPU proofs on sim demos)")
    data.add_argument("--recipe", default=None, metavar="NAME",
                      help="the seed's recipe or an ablation (training/recipes.py): " + ", ".join(_recipe_names()))

    model = p.add_argument_group("model")
    model.add_argument("--stage", type=int, choices=sorted(STAGES), required=True, help="1, 2 or 3 (see below)")
    model.add_argument("--config", default=None, metavar="tiny|full|FILE",
                       help="policy config: a named one or a PolicyConfig JSON (default: the --resume / --init "
                            "checkpoint's, else full)")
    model.add_argument("--vlm-path", default=None, metavar="DIR",
                       help="local Qwen3-VL checkpoint directory (Qwen3-VL-2B-Instruct layout) for system-2")
    model.add_argument("--init", nargs="+", default=[], metavar="[PREFIX=]CKPT",
                       help="start from these weights (a run dir, step_* dir or model.safetensors), applied in "
                            "order; PREFIX= takes only that module, e.g. system2=runs/s1 expert=runs/s2")

    opt = p.add_argument_group("optimization")
    opt.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the stage's)")
    opt.add_argument("--batch-size", type=int, default=None, help="samples per device per micro-batch")
    opt.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    opt.add_argument("--lr", default=None, metavar="LR|GROUP=LR,...",
                     help="peak learning rate of the stage's main group (llm in stage 1, expert in 2 and 3), or "
                          "per group: llm=1e-4,projector=1e-5,vision=1e-6,expert=1e-4")
    opt.add_argument("--warmup", type=int, default=None,
                     help="linear warm-up steps (default: the stage's, at most 10%% of --steps)")
    opt.add_argument("--schedule", choices=("cosine", "constant"), default=None,
                     help="lr after warm-up (default: the stage's)")
    opt.add_argument("--lr-floor", type=float, default=None, help="cosine ends at this fraction of the peak (0)")
    opt.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (default: the stage's)")
    opt.add_argument("--clip-grad", type=float, default=None, help="max gradient norm, <= 0 disables (1.0)")
    opt.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                     help="auto = bf16 autocast on CUDA, fp32 on CPU")
    opt.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    opt.add_argument("--seed", type=int, default=0, help="data order and noise seed (default 0)")

    run = p.add_argument_group("run")
    run.add_argument("--out", required=True, metavar="DIR", help="run directory (metrics, checkpoints, final/)")
    run.add_argument("--resume", action="store_true",
                     help="continue from the newest checkpoint in --out (exactly: weights, optimizer, schedule, "
                          "data position, RNG); starts fresh if there is none")
    run.add_argument("--save-every", type=int, default=1000, help="checkpoint every N steps (and at the end)")
    run.add_argument("--keep-last", type=int, default=3, help="checkpoints to keep (default 3)")
    run.add_argument("--save-weights", choices=("all", "trainable"), default=None,
                     help="what checkpoints hold (default: the stage's; frozen parts come back from "
                          "--vlm-path / --init on resume)")
    run.add_argument("--log-every", type=int, default=10, help="metrics.jsonl line every N steps (default 10)")
    run.add_argument("--stop-after", type=int, default=None,
                     help="stop (with a checkpoint) after N steps of this invocation, e.g. for a time-limited slot")
    run.add_argument("--no-export", action="store_true", help="skip writing final/ at the end")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


class _TqdmHandler(logging.Handler):
    """Log lines that do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never kill training
            self.handleError(record)


LOGGERS = ("training", "psi0")
"""The loggers `train` configures for its process (handler, level, no propagation)."""


def _setup_logging(rank: int) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [train] %(message)s", datefmt="%H:%M:%S"))
    for name in LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(logging.INFO if rank == 0 else logging.WARNING)
        lg.propagate = False


def _parse_size(spec: str | None, default: tuple[int, int]) -> tuple[int, int] | None:
    if spec is None:
        return default
    if spec == "native":
        return None
    h, sep, w = spec.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit():
        raise ValueError(f"--image-size must be HxW (e.g. 240x320) or native, got {spec!r}")
    return int(h), int(w)


def _parse_init(specs: list[str]) -> list[tuple[list[str] | None, str]]:
    out = []
    for spec in specs:
        prefix, sep, path = spec.partition("=")
        if sep and prefix and "/" not in prefix and not Path(spec).exists():
            out.append(([x for x in prefix.split("+") if x], path))
        else:
            out.append((None, spec))
    return out


def _checkpoint_model_config(path: str | Path) -> dict[str, Any] | None:
    from training.checkpoint import resolve_checkpoint

    cfg = resolve_checkpoint(path) / "config.json"
    return json.loads(cfg.read_text()).get("model") if cfg.is_file() else None


def _checkpoint_run_config(path: str | Path) -> dict[str, Any]:
    from training.checkpoint import resolve_checkpoint

    cfg = resolve_checkpoint(path) / "config.json"
    return json.loads(cfg.read_text()) if cfg.is_file() else {}


def _fit_representation(policy_cfg, args: argparse.Namespace):
    """A representation with a fixed chunk (he_joint_delta28: 16) sets a preset's horizon; a fixed config must match."""
    from training.data.representation import get as get_repr
    from training.model.policy import POLICY_CONFIGS

    rep = get_repr(args.action_repr)
    if rep.chunk is None or rep.chunk == policy_cfg.horizon:
        return policy_cfg
    if args.config not in POLICY_CONFIGS:
        raise ValueError(f"--action-repr {rep.name} has chunk {rep.chunk}, the policy config horizon "
                         f"{policy_cfg.horizon}: use a preset --config or a config with horizon {rep.chunk}")
    largest = policy_cfg.max_delay - 1
    log.info("--action-repr %s: horizon %d -> %d", rep.name, policy_cfg.horizon, rep.chunk)
    return dataclasses.replace(policy_cfg, horizon=rep.chunk,
                               min_execute_horizon=min(policy_cfg.min_execute_horizon, rep.chunk - largest))


def _fit_token_spaces(policy_cfg, plan, args: argparse.Namespace, out: Path):
    """The policy's action-token table must hold every token space at its ids, and a run that starts from
    another run's system-2 must give each id the same tokenizer. A preset grows to fit (the token spaces
    and the `--init` checkpoints' tables; `plan` None: a stage that reads no tokens, only the latter);
    anything else that does not fit, or would collide, is refused with how to refit."""
    from training.checkpoint import latest_checkpoint
    from training.data.tokens import REFIT, collisions
    from training.model.policy import POLICY_CONFIGS

    roots = " ".join(str(s) for s in args.shards)
    donors = [path for prefixes, path in _parse_init(args.init) if not prefixes or "system2" in prefixes]
    if args.resume and latest_checkpoint(out) is not None:
        donors.append(str(latest_checkpoint(out)))
    for donor in donors if plan is not None else ():
        theirs = _checkpoint_run_config(donor).get("token_spaces")
        clash = collisions(plan.to_json(), theirs) if theirs else []
        if clash:
            raise ValueError(f"the shards' action tokens collide with {donor}'s: {'; '.join(clash[:3])}. "
                             + REFIT.format(roots=roots))
    if plan is not None and len(plan.spaces) > 1:
        log.warning("%d FAST tokenizers in this run, at disjoint ids %s; for one token space, %s", len(plan.spaces),
                    ", ".join(f"{s.first}..{s.last} ({'+'.join(s.sources)})" for s in plan.spaces),
                    REFIT.format(roots=roots))
    total = 0 if plan is None else plan.total
    if args.config in POLICY_CONFIGS:
        # a preset only names a size: its table fits the token spaces and the checkpoints it starts from
        donor_sizes = [int(d.get("fast_vocab_size", 0)) for d in map(_checkpoint_model_config,
                                                                     [p for _, p in _parse_init(args.init)]) if d]
        wanted = max([total, *donor_sizes]) if total or donor_sizes else policy_cfg.fast_vocab_size
        if wanted != policy_cfg.fast_vocab_size:
            log.info("--config %s: fast_vocab_size %d -> %d to fit the token spaces / --init checkpoints",
                     args.config, policy_cfg.fast_vocab_size, wanted)
            policy_cfg = dataclasses.replace(policy_cfg, fast_vocab_size=wanted)
    elif plan is not None and plan.total > policy_cfg.fast_vocab_size:
        raise ValueError(f"the shards' token spaces need {plan.total} action-token ids "
                         f"({', '.join(f'{s.first}..{s.last}' for s in plan.spaces)}), the policy maps only "
                         f"{policy_cfg.fast_vocab_size}: tokenizers would collide. " + REFIT.format(roots=roots))
    return policy_cfg


def _resolve_policy_config(args: argparse.Namespace, out: Path):
    from training.checkpoint import latest_checkpoint
    from training.model.policy import PolicyConfig

    if args.config:
        return PolicyConfig.load(args.config), f"--config {args.config}"
    if args.resume and latest_checkpoint(out) is not None:
        d = _checkpoint_model_config(latest_checkpoint(out))
        if d:
            return PolicyConfig.from_dict(d), f"the checkpoint being resumed ({latest_checkpoint(out)})"
    for _, path in _parse_init(args.init):
        d = _checkpoint_model_config(path)
        if d:
            return PolicyConfig.from_dict(d), f"--init {path}"
    return PolicyConfig.load("full"), "default (full)"


def check_shards(index: Any, fmt: str) -> None:
    """Refuse, before the first step, a shard whose files changed after it was written (content hashes,
    `shards.integrity`) or that cannot be parsed (a truncated parquet): the error names the file. The
    hashes checked here are remembered by this process, so DataLoader workers forked from it do not
    hash again."""
    from shards import formats
    from shards.location import Location

    for entry in index.shards:
        name, path = entry.path(fmt)
        reader = formats.get(name).open(Location.of(path))
        try:
            reader.info()
            reader.episodes()
            reader.columns(["episode_index"])
        finally:
            reader.close()


def _one_line(exc: BaseException) -> str:
    """The message of an exception, without the worker traceback a DataLoader worker wraps it in."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].endswith("Error") else last
    return text


def setup(args: argparse.Namespace, argv: list[str]):
    """Everything before the first step (errors here are the user's: bad paths, configs, options)."""
    from training.checkpoint import latest_checkpoint, load_weights
    from training.data import DataConfig, make_loader, open_shards
    from training.data.tokens import plan_tokens
    from training.dist import init_distributed
    from training.model.policy import Psi0Policy
    from training.trainer import TrainConfig, Trainer

    info = init_distributed(None if args.device == "auto" else args.device)
    stage = stage_defaults(args.stage)
    out = Path(args.out)
    if not args.resume and latest_checkpoint(out) is not None:
        raise ValueError(f"{out} already has checkpoints; pass --resume to continue it, or choose another --out")

    # ---- model config + data config
    policy_cfg, cfg_from = _resolve_policy_config(args, out)
    index = open_shards(args.shards)
    weights = parse_weights(args.weights)
    if weights is None and stage.weights:
        present = {s: w for s, w in stage.weights.items() if s in index.sources}
        weights = present if len(present) > 1 and set(present) == set(index.sources) else None
    unexpected = [s for s in index.sources if stage.sources and s not in stage.sources]
    if unexpected:
        log.warning("stage %d is meant for %s; also training on %s", args.stage, ", ".join(stage.sources),
                    ", ".join(unexpected))
    policy_cfg = _fit_representation(policy_cfg, args)
    token_plan = None
    if stage.uses_tokens or args.tokenizer:
        token_plan = plan_tokens(index, args.tokenizer, args.tokenizer_stats)
    policy_cfg = _fit_token_spaces(policy_cfg, token_plan, args, out)
    if args.recipe:
        from training.recipes import apply, check_fraction, get
        recipe = get(args.recipe)
        weights, overrides = apply(recipe, args.stage, weights)
        problems = check_fraction(recipe, {s: index.frames(s) for s in index.sources}, None)
        if problems:
            raise ValueError("; ".join(problems))
        policy_cfg = dataclasses.replace(policy_cfg, **overrides)
    state_key = args.state_key or STATE
    widths = [len(st["min"]) for st in (index.stats(s, state_key) for s in index.sources) if st is not None]
    state_width = max(widths, default=0)
    if args.state_key and not state_width:
        raise ValueError(f"--state-key {args.state_key}: no shard records that feature")
    if state_width > policy_cfg.state_dim:          # e.g. the privileged state: widen the state input
        policy_cfg = dataclasses.replace(policy_cfg, state_dim=state_width)
    data_kwargs: dict[str, Any] = dict(horizon=policy_cfg.horizon, state_key=state_key,
                                       pad_dim=max(BATCH_PAD_DIM, state_width),
                                       image_size=_parse_size(args.image_size, stage.image_size),
                                       normalization=args.normalization or stage.normalization, format=args.format,
                                       max_tokens=stage.max_tokens if args.max_tokens is None else args.max_tokens,
                                       action_repr=args.action_repr, tokenizer=args.tokenizer,
                                       tokenizer_stats=args.tokenizer_stats)
    if args.cameras:
        data_kwargs["cameras"] = tuple(args.cameras)
    data_cfg = DataConfig(**data_kwargs)
    check_shards(index, data_cfg.format)
    batch_size = args.batch_size or stage.batch_size
    loader, sampler = make_loader(args.shards, data_cfg, batch_size, seed=args.seed, rank=info.rank,
                                  world_size=info.world_size, num_workers=args.workers, weights=weights,
                                  samples_per_epoch=args.samples_per_epoch,
                                  pin_memory=info.device.type == "cuda", token_plan=token_plan)

    # ---- model + initial weights
    policy = Psi0Policy.build(policy_cfg, vlm_path=args.vlm_path)
    for prefixes, path in _parse_init(args.init):
        report = load_weights(policy, path, prefixes=prefixes)
        log.info("--init: %s%s", report, f" [{', '.join(prefixes)}]" if prefixes else "")
    lrs = parse_lrs(args.lr, stage)
    wd = stage.weight_decay if args.weight_decay is None else args.weight_decay
    groups = policy.trainable_parameter_groups(args.stage, lrs, weight_decay=wd)

    steps = args.steps or stage.steps
    train_cfg = TrainConfig(
        steps=steps, stage=args.stage, grad_accum=args.grad_accum,
        warmup=default_warmup(stage, steps) if args.warmup is None else args.warmup,
        schedule=args.schedule or stage.schedule, lr_floor=stage.lr_floor if args.lr_floor is None else args.lr_floor,
        weight_decay=wd, betas=stage.betas, clip_grad=stage.clip_grad if args.clip_grad is None else args.clip_grad,
        log_every=args.log_every, save_every=args.save_every, keep_last=args.keep_last,
        save_weights=args.save_weights or stage.save_weights, seed=args.seed, precision=args.precision,
        progress=not args.no_progress, lrs=lrs)
    run_config = {
        "model": policy_cfg.to_dict(), "data": _jsonable(dataclasses.asdict(data_cfg)),
        "shards": [str(s) for s in args.shards], "weights": weights, "sources": index.sources,
        "vlm_path": args.vlm_path, "init": list(args.init), "batch_size": batch_size, "recipe": args.recipe,
        "world_size": info.world_size, "argv": list(argv),
        "token_spaces": None if token_plan is None else token_plan.to_json(),
        "chunking": policy_cfg.chunking().to_dict(),
    }
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps({"stage": args.stage, "train": train_cfg.to_dict(), **run_config},
                                                 indent=2, sort_keys=True, default=str) + "\n")
        log.info("stage %d (%s); policy config from %s; %d frames from %s; batch %d x %d ranks x %d accum",
                 args.stage, stage.title, cfg_from, index.frames(), ", ".join(index.sources), batch_size,
                 info.world_size, args.grad_accum)
    trainer = Trainer(policy, loader, sampler, train_cfg, out, param_groups=groups, run_config=run_config,
                      dist_info=info)
    return trainer, policy


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from training.dist import init_distributed, shutdown

    info = init_distributed(None if args.device == "auto" else args.device)
    _setup_logging(info.rank)
    try:
        try:
            trainer, policy = setup(args, argv)
        except (ValueError, FileNotFoundError) as e:
            print(f"train: error: {e}", file=sys.stderr)
            return 2
        from shards.integrity import ShardIntegrityError, ShardReadError

        try:
            trainer.fit(resume=args.resume, stop_after=args.stop_after)
        except (ShardIntegrityError, ShardReadError) as e:       # a shard changed or broke during the run
            print(f"train: error: {_one_line(e)}", file=sys.stderr)
            return 2
        if trainer.stopped_by_signal:
            return 143                      # 128 + SIGTERM: checkpointed, not finished
        if info.is_main and trainer.step >= trainer.cfg.steps and not args.no_export:
            policy.save_pretrained(Path(args.out) / "final")
            log.info("wrote %s (Psi0Policy.from_pretrained loads it)", Path(args.out) / "final")
        return 0
    finally:
        shutdown(info)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
