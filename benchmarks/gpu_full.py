"""Full-size Psi0 on one GPU: training step time and memory per stage, RTC chunk latency (issue 19).

THE GPU RUN (one command, from the repository root, on a machine with one CUDA GPU):

    PYTHONPATH=$PWD python benchmarks/gpu_full.py --out benchmarks/results/gpu_full.json

It needs one CUDA GPU and the project's packages at requirements.lock's versions (CUDA torch,
transformers 4.57.6, tokenizers 0.22.2, huggingface-hub 0.35.3) and nothing else: no weights, no hub,
no network, no data, no video decoders. On an image with other versions, put the pinned wheels first:
`pip download --no-deps --only-binary=:all: -d whl transformers==4.57.6 tokenizers==0.22.2
huggingface-hub==0.35.3` (plus --python-version/--platform when downloading for another machine),
`pip install --no-deps --no-index --target /tmp/site whl/*.whl`, `PYTHONPATH=/tmp/site:$PWD`.
Expected: 2-4 min wall on an H100/H200-class GPU (build ~10 s, 4 x 55 RTC chunks + 2 x 55 VLM
prefixes ~30-60 s, 3 stages x 13 steps ~1 min, CUDA start-up), peak GPU memory well under 80 GB at
the reference batches; give it a 420 s timeout. The RTC part runs first, then the stages; --out is
rewritten after every part ("complete": false until the end) and a failing part is recorded under
"errors" while the others still run (exit code 1). The last stdout line is the JSON.

What it measures, with random weights in the real shapes:
  * system-2 = Qwen3-VL-2B-Instruct's published architecture (training.model.policy.QWEN3_VL_2B: 28
    decoder layers, hidden 2048, 24-block vision tower with DeepStack) with the embedding grown for
    the 2,048 FAST tokens exactly as System2 does for the real checkpoint, and the `full` expert;
    the same counts are also taken on the `meta` device without allocating anything.
  * per stage (1: VLM + FAST tokens, 2: frozen VLM + expert, 3: end to end): fp32 weights, bf16
    autocast, fused AdamW, gradient clipping -- the Trainer's step -- at the reference per-GPU batch
    (training.stages: 16, 64, 16) on 240x320 single-camera samples with full-length targets (stage
    1: 256 FAST tokens); median step time of >= 10 after warm-up, samples/s, peak allocated memory.
    On out-of-memory the stage is retried with activation checkpointing (stages 1 and 3,
    `--checkpointing auto`), then at half the batch, down to 1; the batch that ran is reported.
  * RTC chunk latency at batch 1 through the serving adapter the RTC engine calls
    (deploy.policy_adapter.Psi0ChunkPolicy): horizon 30, committed prefix of `--delay` actions, 8 and
    10 flow steps, bf16 autocast and fp32; the VLM runs once per chunk (counted with hooks) and its
    features are reused by every flow step; p50/p99 over >= 50 calls after warm-up.

Other uses:
  --tiny                the same code path on CPU with the tiny preset (tests/test_gpu_full.py)
  --gpu-memory-gb 80    cap the caching allocator to emulate a smaller GPU (fallbacks then show up)
  --fsdp                under torchrun: FSDP2 (torch.distributed.fsdp.fully_shard) per decoder layer,
                        vision block and expert block, parameters sharded over ranks (ZeRO-3 style);
                        training stages only. Tested on CPU with gloo (2 ranks, tiny preset).
  --vlm-path DIR        a real local Qwen3-VL checkpoint instead of random weights
"""
from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]   # benchmarks/tokenize.py shadows stdlib
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.model.action_expert import ActionExpert  # noqa: E402
from training.model.policy import POLICY_CONFIGS, QWEN3_VL_2B, PolicyConfig, Psi0Policy  # noqa: E402
from training.model.system2 import QWEN_SPECIAL_TOKENS, ActionTokenMap, System2, VisionPreprocess  # noqa: E402
from training.optim import build_optimizer  # noqa: E402
from training.stages import STAGES  # noqa: E402

TASKS = ("pick up the red cup and place it on the tray", "open the drawer with the left hand",
         "wave hello with the right hand", "push the cart to the table")
GB = 1024 ** 3


# ----------------------------------------------------------------------------------- sizes
@functools.lru_cache(maxsize=1)
def sample_layout() -> Any:
    """The loader's sample layout (`training.data.config.DataConfig()`: pad width, cameras). When the
    `training.data` package cannot be imported -- its __init__ pulls in the video decoders (PyAV),
    which a bare GPU image lacks -- its config module, which needs only `schemas`, is loaded alone."""
    try:
        from training.data.config import DataConfig
    except ImportError:
        import importlib.util

        name = "_psi0_training_data_config"
        spec = importlib.util.spec_from_file_location(name, _HERE.parent / "training" / "data" / "config.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module          # dataclasses resolves the module's annotations through it
        spec.loader.exec_module(module)
        DataConfig = module.DataConfig
    return DataConfig()


@dataclass(frozen=True)
class Profile:
    """What differs between the full-size run and the CPU smoke run; the code path is shared."""

    preset: str
    batches: dict[int, int]                      # per-GPU batch per stage
    image_hw: dict[int, tuple[int, int]]         # per stage
    max_tokens: int                              # FAST tokens per stage-1 sample (all used)
    cams: int


def profile(preset: str) -> Profile:
    """`full`: the reference batches and image size of training.stages, the loader's cameras.
    `tiny`: small enough for a CPU test in seconds."""
    cams = len(sample_layout().cameras)
    if preset == "full":
        return Profile("full", {s: d.batch_size for s, d in STAGES.items()},
                       {s: d.image_size for s, d in STAGES.items()}, STAGES[1].max_tokens, cams)
    if preset == "tiny":
        # 60x80 keeps the cameras' 3:4 and is resized (to 64x64) like 240x320 is (to 256x320)
        return Profile("tiny", {1: 2, 2: 4, 3: 2}, {s: (60, 80) for s in STAGES}, 16, cams)
    raise ValueError(f"preset must be 'full' or 'tiny', got {preset!r}")


# ------------------------------------------------------------------------- full-size system-2
@functools.lru_cache(maxsize=1)
def qwen_sized_tokenizer():
    """A tokenizer with Qwen3-VL's length and special-token ids (what fixes the action-token block
    and the prompt's vision ids), text split by the offline tiny BPE: the real tokenizer is not
    available without the hub. Instructions come out ~2x longer in tokens than with Qwen's BPE -- a
    few dozen tokens next to 80 image tokens per camera."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    from training.model.tiny import tiny_tokenizer

    cfg, length = QWEN3_VL_2B["config"], int(QWEN3_VL_2B["tokenizer_len"])
    first_special = cfg["image_token_id"] - QWEN_SPECIAL_TOKENS.index("<|image_pad|>")
    bpe = json.loads(tiny_tokenizer().backend_tokenizer.to_str())["model"]
    vocab: dict[str, int] = dict(bpe["vocab"])
    if len(vocab) > first_special:
        raise ValueError("the tiny BPE is larger than Qwen's text vocabulary")
    vocab.update({f"<|psi0_text_filler_{i}|>": i for i in range(len(vocab), first_special)})
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in bpe["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(QWEN_SPECIAL_TOKENS))   # ids first_special ... in Qwen's order
    n_more = length - first_special - len(QWEN_SPECIAL_TOKENS)   # Qwen's tool / think markers
    tok.add_special_tokens([f"<|psi0_added_filler_{i}|>" for i in range(n_more)])
    out = Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                             unk_token=None, bos_token=None, errors="replace", clean_up_tokenization_spaces=False)
    if len(out) != length:
        raise AssertionError(f"built a {len(out)}-entry tokenizer, wanted {length}")
    return out


def action_rows(tokenizer_len: int, fast_vocab_size: int, rows: int) -> int:
    """Embedding rows after System2 reserves the action-token block (its `_ensure_action_rows` rule:
    keep `rows` when the block fits, else grow to the next multiple of 64)."""
    stop = ActionTokenMap(first_id=tokenizer_len, fast_vocab_size=fast_vocab_size).stop
    return rows if rows >= stop else ((stop + 63) // 64) * 64


def random_qwen3_vl_2b(device: str | torch.device, fast_vocab_size: int, seed: int = 0) -> System2:
    """System-2 in Qwen3-VL-2B-Instruct's shape with random weights, built directly on `device`
    ("meta" allocates nothing). The embedding is created with the grown row count, so the module is
    the one `System2(from_pretrained(real checkpoint))` ends up with."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tok = qwen_sized_tokenizer()
    spec = copy.deepcopy(QWEN3_VL_2B["config"])
    spec["text_config"]["vocab_size"] = action_rows(len(tok), fast_vocab_size, spec["text_config"]["vocab_size"])
    cfg = Qwen3VLConfig(**spec)
    cfg._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            model = Qwen3VLForConditionalGeneration(cfg)
    return System2(model, tok, VisionPreprocess(patch_size=cfg.vision_config.patch_size,
                                                temporal_patch_size=cfg.vision_config.temporal_patch_size,
                                                merge_size=cfg.vision_config.spatial_merge_size),
                   fast_vocab_size, seed=seed)


def build_policy(preset: str, device: str | torch.device, seed: int = 0, vlm_path: str | None = None) -> Psi0Policy:
    """The named preset with random weights (or system-2 from `vlm_path`), on `device`."""
    cfg = PolicyConfig.load(preset)
    if preset == "tiny" and not vlm_path:
        return Psi0Policy.build(cfg).to(device)
    if vlm_path:
        return Psi0Policy.build(cfg, vlm_path=vlm_path).to(device)
    s2 = random_qwen3_vl_2b(device, cfg.fast_vocab_size, seed=cfg.seed + seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + seed + 1)
        with torch.device(device):
            expert = ActionExpert(cfg.expert_config(s2.hidden_size))
    return Psi0Policy(s2, expert, cfg)


def parameter_counts(policy: Psi0Policy) -> dict[str, int]:
    """Unique parameters (the tied LM head once) per group: system-2 parts, expert, total."""
    groups = policy.system2.parameter_groups()
    counts = {f"system2_{k}": sum(p.numel() for _, p in v) for k, v in groups.items()}
    counts["system2"] = sum(counts.values())
    counts["expert"] = sum(p.numel() for p in policy.expert.parameters())
    counts["total"] = counts["system2"] + counts["expert"]
    return counts


def meta_parameter_counts(preset: str = "full") -> dict[str, int]:
    """`parameter_counts` of the preset built on the meta device: no weight memory at all."""
    return parameter_counts(build_policy(preset, "meta"))


# ------------------------------------------------------------------------------------ batches
def make_batch(policy: Psi0Policy, b: int, image_hw: tuple[int, int], cams: int, max_tokens: int,
               seed: int = 0) -> dict[str, Any]:
    """A training batch in the loader's layout (training.data): uint8 images, tasks, padded state
    and actions with their masks, FAST tokens. Worst case for memory: no padded steps, every
    sample carries `max_tokens` action tokens."""
    g = torch.Generator().manual_seed(seed)
    pad = sample_layout().pad_dim
    cfg = policy.cfg
    h, w = image_hw
    return {
        "images": torch.randint(0, 256, (b, cams, 3, h, w), dtype=torch.uint8, generator=g),
        "task": [TASKS[i % len(TASKS)] for i in range(b)],
        "state": torch.rand(b, pad, generator=g) * 2 - 1,
        "state_mask": torch.ones(b, pad, dtype=torch.bool),
        "actions": torch.rand(b, cfg.horizon, pad, generator=g) * 2 - 1,
        "action_pad": torch.zeros(b, cfg.horizon, dtype=torch.bool),
        "action_mask": (torch.arange(pad) < cfg.action_dim)[None].expand(b, pad).clone(),
        "tokens": torch.randint(0, cfg.fast_vocab_size, (b, max_tokens), generator=g),
        "tokens_len": torch.full((b,), max_tokens, dtype=torch.long),
    }


def fed_image_size(s2: System2, hw: tuple[int, int], device: torch.device) -> tuple[int, int]:
    """The camera size to feed: `hw` when System2 can resize it on `device`, else Qwen's target size
    (same number of vision tokens, no resize). torch's uint8 bicubic(-antialias) interpolation exists
    on CPU only (CUDA kernels dispatch on floating types), so `VisionPreprocess` on a CUDA batch of
    240x320 images raises NotImplementedError; the run then records that it fed pre-sized images."""
    target = s2.vision.target_size(*hw)
    if target == tuple(hw):
        return tuple(hw)
    try:
        s2.vision(torch.zeros(1, 3, *hw, dtype=torch.uint8, device=device))
        return tuple(hw)
    except (NotImplementedError, RuntimeError) as exc:
        if "not implemented" not in str(exc).lower():
            raise
        return target


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# ------------------------------------------------------------------------------------- device
@dataclass
class Device:
    """Synchronisation, autocast and memory accounting for CUDA or CPU (where 'peak memory' is the
    process's max RSS, which only grows)."""

    device: torch.device
    precision: str                               # "bf16" (autocast) or "fp32"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def autocast(self, precision: str | None = None) -> contextlib.AbstractContextManager:
        if (precision or self.precision) == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / GB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB

    def reserved_gb(self) -> float | None:
        return torch.cuda.max_memory_reserved(self.device) / GB if self.cuda else None

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def name(self) -> str:
        if self.cuda:
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"

    @property
    def peak_kind(self) -> str:
        return "cuda_max_memory_allocated" if self.cuda else "cpu_process_max_rss"


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def fit_batch(run: Callable[[int, bool], dict[str, Any]], batch: int, checkpointing: Sequence[bool],
              free: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """The first (batch, checkpointing) that runs, from `batch` down by halving, trying the
    `checkpointing` options in order (cheapest first) at each batch. The record gets the requested
    batch and every configuration that ran out of memory."""
    failed: list[dict[str, Any]] = []
    b = batch
    while b >= 1:
        for ckpt in checkpointing:
            oom = False
            try:
                record = run(b, ckpt)
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not is_oom(exc):
                    raise
                oom = True
            if oom:              # outside `except`: the traceback (and the step's tensors) are gone
                failed.append({"batch": b, "checkpointing": ckpt})
                free()
                continue
            return {**record, "batch_requested": batch, "out_of_memory": failed}
        b //= 2
    raise RuntimeError(f"even batch 1 does not fit (tried {failed})")


# -------------------------------------------------------------------------------- training step
def set_checkpointing(policy: Psi0Policy, on: bool) -> None:
    """Activation checkpointing of the VLM's decoder layers and vision blocks (recomputed in
    backward); the expert's activations are small next to them."""
    if on:
        policy.system2.gradient_checkpointing_enable()
    else:
        policy.system2.model.gradient_checkpointing_disable()


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Global-norm clipping as the Trainer does; also for FSDP's sharded (DTensor) gradients."""
    norm = torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


def measure_stage(policy: Psi0Policy, stage: int, batch: int, checkpointing: bool, prof: Profile, dev: Device,
                  warmup: int, steps: int, seed: int = 0) -> dict[str, Any]:
    """Median wall time of the Trainer's step (zero_grad, autocast forward, backward, clip, AdamW)
    over `steps` after `warmup`, and the peak memory of the whole stage (weights, gradients,
    optimizer state, activations)."""
    defaults = STAGES[stage]
    set_checkpointing(policy, checkpointing)
    groups = policy.trainable_parameter_groups(stage, weight_decay=defaults.weight_decay)
    policy.train()
    optimizer = build_optimizer(groups, betas=defaults.betas)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    data = to_device(make_batch(policy, batch, prof.image_hw[stage], prof.cams, prof.max_tokens, seed), dev.device)
    dev.free()
    dev.reset_peak()
    times: list[float] = []
    losses: list[float] = []
    torch.manual_seed(seed + stage)      # flow noise / RTC delays: the same draws however the run got here
    try:
        for i in range(warmup + steps):
            dev.sync()
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with dev.autocast():
                out, metrics = policy(data, stage)      # forward = loss: FSDP's root hooks run
            out.backward()
            clip_grad_norm(params, defaults.clip_grad)
            optimizer.step()
            dev.sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            losses.append(float(metrics["loss"]))
        step_s = float(np.median(times))
        inputs = policy.system2.build_inputs(data["images"][:1], data["task"][:1],
                                             data["tokens"][:1] if stage == 1 else None,
                                             data["tokens_len"][:1] if stage == 1 else None)
        return {"batch": batch, "checkpointing": checkpointing, "step_s": round(step_s, 5),
                "step_s_min": round(min(times), 5), "step_s_max": round(max(times), 5), "timed_steps": len(times),
                "samples_per_s": round(batch * world_size() / step_s, 2), "peak_mem_gb": round(dev.peak_gb(), 3),
                "peak_reserved_gb": None if dev.reserved_gb() is None else round(dev.reserved_gb(), 3),
                "trainable_params": sum(p.numel() for p in params),
                "sequence_tokens": int(inputs["input_ids"].shape[1]),
                "context_tokens": int(inputs["context_len"]), "image_hw": list(prof.image_hw[stage]),
                "cams": prof.cams, "losses": losses}
    finally:
        optimizer.zero_grad(set_to_none=True)
        del optimizer, params, groups, data


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def say(msg: str) -> None:
    """Progress lines on stderr (rank 0 only); stdout's last line stays the JSON."""
    if is_main():
        print(msg, file=sys.stderr, flush=True)


def local_numel(module: torch.nn.Module) -> int:
    """Parameters held by this process (a rank's shards under FSDP)."""
    return sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in module.parameters())


def shard_fsdp(policy: Psi0Policy) -> None:
    """FSDP2 (ZeRO-3 style): every decoder layer, vision block and expert block is its own unit
    (all-gathered for its forward / backward, resharded after); the rest (embeddings, mergers, expert
    stems) is the root unit. Gradients are reduce-scattered, the optimizer steps on shards."""
    from torch.distributed.fsdp import fully_shard

    inner = policy.system2.model.model
    for block in list(inner.visual.blocks) + list(inner.language_model.layers) + list(policy.expert.blocks):
        fully_shard(block)
    fully_shard(policy)


# ---------------------------------------------------------------------------------- inference
class CallCounter:
    """Counts forward calls of modules (how often the VLM and the expert run per chunk)."""

    def __init__(self, **modules: torch.nn.Module):
        self.counts = {k: 0 for k in modules}
        self._hooks = [m.register_forward_hook(lambda *_a, k=k: self._bump(k)) for k, m in modules.items()]

    def _bump(self, key: str) -> None:
        self.counts[key] += 1

    def close(self) -> None:
        for h in self._hooks:
            h.remove()


def observation(policy: Psi0Policy, image_hw: tuple[int, int], cams: int, seed: int = 0) -> dict[str, Any]:
    """One robot observation as the serving adapter receives it (CPU tensors, batch 1)."""
    batch = make_batch(policy, 1, image_hw, cams, 0, seed)
    return {k: batch[k] for k in ("images", "task", "state", "state_mask")}


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "mean": round(float(a.mean()), 3), "min": round(float(a.min()), 3), "max": round(float(a.max()), 3)}


def timed(fn: Callable[[], Any], dev: Device, warmup: int, calls: int) -> tuple[list[float], Any]:
    out = None
    ms: list[float] = []
    for i in range(warmup + calls):
        dev.sync()
        t0 = time.perf_counter()
        out = fn()
        dev.sync()
        if i >= warmup:
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms, out


def measure_chunk_latency(policy: Psi0Policy, obs: dict[str, Any], flow_steps: int, delay: int, precision: str,
                          dev: Device, warmup: int, calls: int, seed: int = 0) -> dict[str, Any]:
    """Latency of one RTC chunk through `Psi0ChunkPolicy` (what the engine's runner calls):
    observation + committed prefix in, de-batched numpy chunk out."""
    from deploy.policy_adapter import Psi0ChunkPolicy

    chunk_policy = Psi0ChunkPolicy(policy, steps=flow_steps, seed=seed)
    rng = np.random.default_rng(seed)
    prefix = rng.uniform(-1, 1, (delay, policy.cfg.action_dim)).astype(np.float32)

    def call() -> np.ndarray:
        with dev.autocast(precision):
            return chunk_policy(obs, prefix, delay)

    dev.reset_peak()
    ms, chunk = timed(call, dev, warmup, calls)
    counter = CallCounter(vlm=policy.system2.model.model, expert=policy.expert)
    try:
        call()
    finally:
        counter.close()
    return {"flow_steps": flow_steps, "precision": precision, "delay": delay, "calls": calls,
            **{f"ms_{k}": v for k, v in percentiles(ms).items()},
            "chunk_shape": list(chunk.shape), "prefix_kept": bool(np.array_equal(chunk[:delay], prefix)),
            "vlm_forwards_per_chunk": counter.counts["vlm"], "expert_forwards_per_chunk": counter.counts["expert"],
            "peak_mem_gb": round(dev.peak_gb(), 3)}


def measure_vlm_prefix(policy: Psi0Policy, obs: dict[str, Any], precision: str, dev: Device, warmup: int,
                       calls: int) -> dict[str, Any]:
    """The once-per-chunk part alone: image preprocessing + VLM forward to the expert's context."""
    def call() -> torch.Tensor:
        with torch.no_grad(), dev.autocast(precision):
            return policy.system2.features(obs, policy.cfg.feature_layers)[0]

    ms, ctx = timed(call, dev, warmup, calls)
    return {"precision": precision, "calls": calls, "context_tokens": int(ctx.shape[1]),
            **{f"ms_{k}": v for k, v in percentiles(ms).items()}}


# ----------------------------------------------------------------------------------------- main
def default_delay() -> int:
    """The committed prefix the RTC engine uses before any measurement: its initial latency in
    control ticks, capped below the model's training-time max_delay."""
    from deploy.rtc import RTCConfig

    c = RTCConfig()
    return min(c.max_delay - 1, math.ceil(c.initial_latency_s * c.control_hz - 1e-9))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="also write the result JSON here (e.g. benchmarks/results/gpu_full.json)")
    ap.add_argument("--tiny", action="store_true", help="tiny preset (CPU, seconds): the test's smoke run")
    ap.add_argument("--preset", choices=("full", "tiny"),
                    help="model size (default: full on CUDA, tiny without a GPU, with a note)")
    ap.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="training-step precision: bf16 autocast over fp32 weights or plain fp32 "
                         "(auto: bf16 on CUDA, fp32 on CPU, as the Trainer)")
    ap.add_argument("--stages", default="1,2,3", help="training stages to measure (default 1,2,3)")
    ap.add_argument("--batches", help="per-stage batch sizes, e.g. 16,64,16 (default: training.stages' for full)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per stage (first ones allocate AdamW state)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per stage; the median is reported")
    ap.add_argument("--checkpointing", choices=("auto", "on", "off"), default="auto",
                    help="VLM activation checkpointing in stages 1 and 3: auto = only after an out-of-memory")
    ap.add_argument("--gpu-memory-gb", type=float,
                    help="cap the CUDA caching allocator at this many GB (emulates a smaller GPU)")
    ap.add_argument("--fsdp", action="store_true",
                    help="shard parameters / gradients / optimizer state over torchrun ranks (FSDP2); "
                         "skips the RTC latency (a batch-1 server runs on one device)")
    ap.add_argument("--flow-steps", default="8,10", help="Euler steps per chunk to time (default 8,10)")
    ap.add_argument("--rtc-precisions", default=None,
                    help="inference precisions to time, e.g. bf16,fp32 (default: bf16,fp32 on CUDA, fp32 on CPU)")
    ap.add_argument("--delay", type=int, default=None,
                    help="committed prefix length in ticks (default: the RTC engine's initial latency, 5)")
    ap.add_argument("--calls", type=int, default=50, help="timed chunks per setting (p50/p99 over these)")
    ap.add_argument("--rtc-warmup", type=int, default=5, help="untimed chunks per setting")
    ap.add_argument("--no-rtc", action="store_true", help="skip the chunk-latency part")
    ap.add_argument("--vlm-path", help="local Qwen3-VL checkpoint directory (default: random weights)")
    ap.add_argument("--meta-count", action="store_true",
                    help="also count the full preset's parameters on the meta device (always done with full)")
    ap.add_argument("--threads", type=int,
                    help="torch intra-op threads (default: torch's; 1 suits --tiny on a busy CPU)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.calls < 1 or args.rtc_warmup < 0:
        ap.error("--steps and --calls must be >= 1, warm-ups >= 0")
    return args


def resolve(args: argparse.Namespace) -> tuple[str, Device, Profile, list[int]]:
    if args.fsdp:
        from training.dist import init_distributed

        info = init_distributed(args.device)
        if not info.distributed:
            raise SystemExit("--fsdp needs a torchrun launch with WORLD_SIZE > 1")
        device = info.device
    else:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda":
            torch.cuda.set_device(device)
    preset = "tiny" if args.tiny else args.preset
    if preset is None:
        preset = "full" if device.type == "cuda" else "tiny"
        if preset == "tiny":
            print("no CUDA device: measuring the tiny preset (pass --preset full to insist)", file=sys.stderr)
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    prof = profile(preset)
    stages = [int(s) for s in args.stages.split(",") if s.strip()]
    if any(s not in STAGES for s in stages):
        raise SystemExit(f"--stages: each must be one of {sorted(STAGES)}")
    if args.batches:
        sizes = [int(b) for b in args.batches.split(",")]
        if len(sizes) != len(stages) or min(sizes) < 1:
            raise SystemExit("--batches needs one size >= 1 per --stages entry")
        prof = replace(prof, batches={**prof.batches, **dict(zip(stages, sizes))})
    if args.gpu_memory_gb and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpu_memory_gb * GB / total), device)
    return preset, Device(device, precision), prof, stages


def measure_rtc(policy: Psi0Policy, args: argparse.Namespace, prof: Profile, dev: Device) -> dict[str, Any]:
    """Every (precision, flow steps) chunk setting, the VLM prefix alone, and the headline: the
    policy's default flow steps at the run's first precision."""
    policy.eval()
    policy.zero_grad(set_to_none=True)
    dev.free()
    delay = default_delay() if args.delay is None else args.delay
    flow = [int(s) for s in args.flow_steps.split(",")]
    precisions = args.rtc_precisions.split(",") if args.rtc_precisions else (["bf16", "fp32"] if dev.cuda else ["fp32"])
    obs = observation(policy, prof.image_hw[3], prof.cams, args.seed)
    chunks = []
    for precision in precisions:
        for steps in flow:
            rec = measure_chunk_latency(policy, obs, steps, delay, precision, dev, args.rtc_warmup, args.calls,
                                        args.seed)
            chunks.append(rec)
            say(f"RTC chunk ({precision}, {steps} flow steps, prefix {delay}): p50 {rec['ms_p50']:.1f} ms  "
                f"p99 {rec['ms_p99']:.1f} ms  peak {rec['peak_mem_gb']:.2f} GB")
    vlm = [measure_vlm_prefix(policy, obs, p, dev, args.rtc_warmup, args.calls) for p in precisions]
    head_steps = policy.cfg.sample_steps if policy.cfg.sample_steps in flow else flow[0]
    head = next(c for c in chunks if c["precision"] == precisions[0] and c["flow_steps"] == head_steps)
    return {"rtc": {"horizon": policy.cfg.horizon, "batch": 1, "image_hw": list(prof.image_hw[3]), "cams": prof.cams,
                    "chunks": chunks, "vlm_prefix": vlm},
            "chunk_latency_ms_p50": head["ms_p50"], "chunk_latency_ms_p99": head["ms_p99"],
            "chunk_latency_flow_steps": head["flow_steps"], "chunk_latency_precision": head["precision"]}


def run(args: argparse.Namespace, save: Callable[[dict[str, Any]], None] = lambda r: None) -> dict[str, Any]:
    """The whole measurement. Parts run RTC first (the deployment number), then the stages; a part
    that fails records its error and the rest still run; `save` gets the result after every part, so
    a run cut short still leaves what it measured."""
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset, dev, prof, stages = resolve(args)
    import transformers

    result: dict[str, Any] = {"benchmark": "gpu_full", "complete": False, "preset": preset, "device": dev.name(),
                              "device_type": dev.device.type, "world_size": world_size(), "fsdp": bool(args.fsdp),
                              "torch": torch.__version__, "transformers": transformers.__version__,
                              "precision": dev.precision, "peak_mem_kind": dev.peak_kind,
                              "weights": args.vlm_path or "random",
                              "attn_implementation": "sdpa", "errors": [],
                              "chunk_latency_ms_p50": None, "chunk_latency_ms_p99": None, "stages": {}}
    if dev.cuda:
        result["gpu_memory_gb"] = round(torch.cuda.get_device_properties(dev.device).total_memory / GB, 1)
        result["gpu_memory_cap_gb"] = args.gpu_memory_gb
        result["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    if preset == "full" or args.meta_count:
        result["params_full_meta"] = meta_parameter_counts("full")

    t0 = time.perf_counter()
    policy = build_policy(preset, dev.device, seed=args.seed, vlm_path=args.vlm_path)
    result["build_s"] = round(time.perf_counter() - t0, 2)
    result["params"] = parameter_counts(policy)
    say(f"built {preset} policy on {dev.name()} in {result['build_s']} s: {result['params']['total']:,} parameters")
    fed = {s: fed_image_size(policy.system2, hw, dev.device) for s, hw in prof.image_hw.items()}
    result["images"] = {f"stage{s}": {"requested_hw": list(hw), "fed_hw": list(fed[s]),
                                      "vision_tokens": policy.system2.vision.tokens_per_image(*hw)}
                        for s, hw in prof.image_hw.items()}
    result["images_resized_on_device"] = all(fed[s] == tuple(hw) for s, hw in prof.image_hw.items())
    if not result["images_resized_on_device"]:
        say(f"System2 cannot resize uint8 images on {dev.device}: feeding {fed[3]} images instead "
            f"of {prof.image_hw[3]} (same vision tokens)")
    prof = replace(prof, image_hw=fed)
    save(result)

    def attempt(part: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:   # noqa: BLE001 -- one GPU session: keep measuring the other parts
            import traceback

            traceback.print_exc()
            result["errors"].append({"part": part, "error": f"{type(exc).__name__}: {exc}"[:2000]})
        dev.free()
        result["wall_s"] = round(time.perf_counter() - t_start, 1)
        save(result)

    if not args.fsdp and not args.no_rtc:         # before any training step: weights only in memory
        attempt("rtc", lambda: result.update(measure_rtc(policy, args, prof, dev)))
    if args.fsdp:
        shard_fsdp(policy)
        result["params_local_rank0"] = local_numel(policy)
    ckpt_options = {"auto": (False, True), "on": (True,), "off": (False,)}[args.checkpointing]
    for stage in stages:
        options = ckpt_options if stage in (1, 3) else (False,)   # stage 2: the VLM has no backward

        def one_stage(stage: int = stage, options: tuple[bool, ...] = options) -> None:
            rec = fit_batch(lambda b, ck: measure_stage(policy, stage, b, ck, prof, dev, args.warmup, args.steps,
                                                        args.seed), prof.batches[stage], options, dev.free)
            result["stages"][f"stage{stage}"] = rec
            say(f"stage {stage}: batch {rec['batch']}/{rec['batch_requested']}"
                f"{' +ckpt' if rec['checkpointing'] else ''}  step {rec['step_s'] * 1e3:.1f} ms  "
                f"{rec['samples_per_s']:.1f} samples/s  peak {rec['peak_mem_gb']:.2f} GB  "
                f"({rec['sequence_tokens']} tokens/sample)")

        attempt(f"stage{stage}", one_stage)
    set_checkpointing(policy, False)
    result["complete"] = True
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def save(result: dict[str, Any]) -> None:
        if args.out and is_main():
            from schemas.durable import write_json_atomic

            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.out, result)

    result = run(args, save)
    save(result)
    if world_size() > 1:
        import torch.distributed as dist

        rank = dist.get_rank()
        dist.destroy_process_group()
        if rank != 0:
            return 0
    print(json.dumps(result, sort_keys=True))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
