"""The Psi0 policy: system-2 (Qwen3-VL) + system-1 (flow-matching MM-DiT action expert), three stages.

Stage 1  VLM pre-training: next-token prediction on FAST action tokens (system2.lm_loss); expert idle.
Stage 2  VLM frozen (eval mode, no autograd graph), expert trained from scratch with the flow loss
         and training-time RTC on the VLM's layer features.
Stage 3  end-to-end: flow loss through both; optionally + `stage3_lm_weight` x token loss, computed
         from the same forward pass (the prompt features are causal, so appending the action tokens
         does not leak them into the expert's context).

Batch contract (training.data): "images" uint8 (B, n_cams, 3, H, W); "task" list[str];
"state" (B, 48) + "state_mask" (B, 48) bool; "actions" (B, H, 48) normalised + "action_pad" (B, H)
bool (True = past the episode end) + "action_mask" (B, 48) bool (real dims); "tokens" int64 (B, 64)
+ "tokens_len" (B,). The expert predicts the first `action_dim` dims (36 = PSI0_ACTION).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from schemas.actions import BATCH_PAD_DIM, PSI0_ACTION
from schemas.chunking import REFERENCE_CHUNKING, ChunkingSpec
from training.model.action_expert import CONFIGS as EXPERT_CONFIGS
from training.model.action_expert import ActionExpert, ActionExpertConfig, count_params
from training.model.system2 import System2

POLICY_JSON = "policy.json"
EXPERT_WEIGHTS = "expert.safetensors"

# Learning rates per stage and parameter group. Pre-training (stage 1) and fine-tuning follow the
# reference: 1e-4 for the trained network, 1e-5 projector, lower for the vision tower.
DEFAULT_LRS: dict[int, dict[str, float]] = {
    1: {"llm": 1e-4, "projector": 1e-5, "vision": 1e-5},
    2: {"expert": 1e-4},
    3: {"expert": 1e-4, "llm": 1e-5, "projector": 1e-5, "vision": 1e-6},
}


@dataclass
class PolicyConfig:
    """Everything needed to rebuild the policy. `system2` is "tiny" (random small Qwen3-VL) or a
    local Qwen3-VL checkpoint directory; `expert` overrides fields of the named expert base config
    (context_dim, action_dim, state_dim and horizon are filled in from the fields here)."""

    name: str = "custom"
    system2: str = "tiny"
    fast_vocab_size: int = 2048
    action_dim: int = PSI0_ACTION.size
    state_dim: int = BATCH_PAD_DIM
    horizon: int = REFERENCE_CHUNKING.horizon
    feature_layers: tuple[int, ...] = (-1,)
    expert_base: str = "full"
    expert: dict[str, Any] = field(default_factory=dict)
    tiny_vlm: dict[str, int] = field(default_factory=lambda: {"hidden": 64, "layers": 2})
    stage3_lm_weight: float = 0.0
    sample_steps: int = REFERENCE_CHUNKING.flow_steps
    seed: int = 0
    max_delay: int = REFERENCE_CHUNKING.max_delay
    min_execute_horizon: int = REFERENCE_CHUNKING.min_execute_horizon

    def __post_init__(self) -> None:
        self.feature_layers = tuple(int(i) for i in self.feature_layers)
        if not self.feature_layers:
            raise ValueError("feature_layers must name at least one VLM layer")
        if "max_delay" in self.expert:
            raise ValueError("set max_delay on the policy config (one definition, schemas.chunking), not in `expert`")
        self.chunking()                     # validates horizon / max_delay / min_execute_horizon together

    def chunking(self) -> ChunkingSpec:
        """The constants training and serving share (saved with the config; deploy/ builds its engine from them)."""
        return ChunkingSpec(horizon=self.horizon, max_delay=self.max_delay,
                            min_execute_horizon=self.min_execute_horizon, flow_steps=self.sample_steps)

    def expert_config(self, vlm_hidden: int) -> ActionExpertConfig:
        base = EXPERT_CONFIGS[self.expert_base]
        return dataclasses.replace(base, **{**self.expert, "context_dim": vlm_hidden * len(self.feature_layers),
                                            "action_dim": self.action_dim, "state_dim": self.state_dim,
                                            "horizon": self.horizon, "max_delay": self.max_delay})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["feature_layers"] = list(self.feature_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PolicyConfig fields: {sorted(unknown)}")
        d = dict(d)
        legacy = dict(d.get("expert") or {})
        if "max_delay" in legacy:           # configs written before the one definition: move it out of `expert`
            d["max_delay"] = legacy.pop("max_delay")
            d["expert"] = legacy
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, name_or_path: str | Path) -> "PolicyConfig":
        """A named config ("tiny", "full") or a JSON file with PolicyConfig fields."""
        if str(name_or_path) in POLICY_CONFIGS:
            return dataclasses.replace(POLICY_CONFIGS[str(name_or_path)])
        p = Path(name_or_path)
        if not p.is_file():
            raise FileNotFoundError(f"{name_or_path}: neither a named config {sorted(POLICY_CONFIGS)} nor a JSON file")
        return cls.from_dict(json.loads(p.read_text()))


POLICY_CONFIGS: dict[str, PolicyConfig] = {
    # CPU tests in seconds: 2-layer 64-wide Qwen3-VL, 2-block 64-wide expert
    "tiny": PolicyConfig(name="tiny", system2="tiny", fast_vocab_size=128, horizon=16, expert_base="tiny",
                         feature_layers=(-1,), sample_steps=10, min_execute_horizon=8),
    # Qwen3-VL-2B-Instruct (shape: QWEN3_VL_2B below; pass its directory as system2 / --vlm-path) + the
    # reference's 6-block expert; chunk 30, max_delay 8, s_min 15 (schemas.chunking.REFERENCE_CHUNKING)
    "full": PolicyConfig(name="full", system2="", fast_vocab_size=2048, expert_base="full", feature_layers=(-1,)),
    # the same with an 8-block expert (~474 M parameters, the size the paper quotes)
    "full8": PolicyConfig(name="full8", system2="", fast_vocab_size=2048, expert_base="full8", feature_layers=(-1,)),
}

# The `full` preset's system-2 shape: Qwen/Qwen3-VL-2B-Instruct as published on the Hugging Face hub.
# "config" holds the values of its config.json under the same keys (text_config / vision_config /
# top-level token ids), so every value names the field it comes from; "tokenizer_len" is len() of its
# tokenizer (151,643 byte-level BPE entries + 26 added tokens; not in config.json). A training run
# reads the real config from --vlm-path; this copy lets weight-free tools (benchmarks/gpu_full.py,
# meta-device parameter counts) build the same architecture without the checkpoint:
# 2,127,532,032 parameters, of which 406,957,056 are the vision tower and its mergers.
QWEN3_VL_2B: dict[str, Any] = {
    "config": {
        "text_config": {
            "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
            "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "hidden_act": "silu",
            "attention_bias": False, "rms_norm_eps": 1e-6, "max_position_embeddings": 262144,
            "rope_theta": 5000000, "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645,
            "rope_scaling": {"rope_type": "default", "mrope_interleaved": True, "mrope_section": [24, 20, 20]},
        },
        "vision_config": {
            "depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16, "in_channels": 3,
            "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2, "out_hidden_size": 2048,
            "num_position_embeddings": 2304, "deepstack_visual_indexes": [5, 11, 17],
            "hidden_act": "gelu_pytorch_tanh",
        },
        "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
        "vision_end_token_id": 151653, "tie_word_embeddings": True,
    },
    "tokenizer_len": 151669,
}


def _no_decay(name: str, p: nn.Parameter) -> bool:
    """Norm weights, biases, embeddings and learned positions are not weight-decayed."""
    return p.ndim < 2 or "embed" in name or name.endswith(".pos") or name == "pos" or "norm" in name


class Psi0Policy(nn.Module):
    """System-2 + system-1 with stage-aware losses, sampling with an RTC prefix, and checkpoints."""

    def __init__(self, system2: System2, expert: ActionExpert, cfg: PolicyConfig):
        super().__init__()
        want = cfg.expert_config(system2.hidden_size)
        if expert.cfg.context_dim != want.context_dim:
            raise ValueError(f"expert context_dim {expert.cfg.context_dim} != VLM hidden x layers {want.context_dim}")
        self.system2 = system2
        self.expert = expert
        self.cfg = cfg
        self.stage: int | None = None

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def build(cls, cfg: PolicyConfig, vlm_path: str | Path | None = None) -> "Psi0Policy":
        """Build from a config; `vlm_path` (or cfg.system2 when it is a path) loads Qwen3-VL weights."""
        src = str(vlm_path) if vlm_path else cfg.system2
        if src == "tiny":
            from training.model.tiny import tiny_system2
            s2 = tiny_system2(seed=cfg.seed, fast_vocab_size=cfg.fast_vocab_size, **cfg.tiny_vlm)
        elif src:
            s2 = System2.from_pretrained(src, fast_vocab_size=cfg.fast_vocab_size)
        else:
            raise ValueError(f"config {cfg.name!r} needs a Qwen3-VL checkpoint directory (--vlm-path)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            expert = ActionExpert(cfg.expert_config(s2.hidden_size))
        return cls(s2, expert, cfg)

    def save_pretrained(self, path: str | Path) -> None:
        """path/policy.json + path/system2/ (Qwen3-VL checkpoint layout) + path/expert.safetensors."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.system2.save_pretrained(path / "system2")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.expert.state_dict().items()},
                  str(path / EXPERT_WEIGHTS))
        cfg = dataclasses.replace(self.cfg, system2="system2")
        cfg.save(path / POLICY_JSON)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "Psi0Policy":
        from safetensors.torch import load_file

        path = Path(path)
        cfg = PolicyConfig.load(path / POLICY_JSON)
        s2 = System2.from_pretrained(path / "system2", fast_vocab_size=cfg.fast_vocab_size)
        expert = ActionExpert(cfg.expert_config(s2.hidden_size))
        expert.load_state_dict(load_file(str(path / EXPERT_WEIGHTS)))
        cfg = dataclasses.replace(cfg, system2=str(path / "system2"))
        return cls(s2, expert, cfg)

    def load_part(self, path: str | Path, part: str) -> None:
        """Copy one component ("system2" or "expert") from a policy saved by `save_pretrained` --
        how stage 3 starts from the stage-1 VLM and the stage-2 expert. Shapes must match."""
        from safetensors.torch import load_file

        path = Path(path)
        if part == "expert":
            self.expert.load_state_dict(load_file(str(path / EXPERT_WEIGHTS)))
        elif part == "system2":
            src = System2.from_pretrained(path / "system2", fast_vocab_size=self.cfg.fast_vocab_size)
            if src.token_map != self.system2.token_map:
                raise ValueError(f"action-token map differs: {src.token_map} vs {self.system2.token_map}")
            self.system2.model.load_state_dict(src.model.state_dict())
        else:
            raise ValueError(f"part must be 'system2' or 'expert', got {part!r}")

    # ----------------------------------------------------------------------------------- stages
    def set_stage(self, stage: int) -> "Psi0Policy":
        """requires_grad per stage: 1 = VLM only, 2 = expert only (VLM kept in eval mode), 3 = all."""
        if stage not in (1, 2, 3):
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        self.stage = stage
        self.system2.requires_grad_(stage in (1, 3))
        self.expert.requires_grad_(stage in (2, 3))
        return self.train(self.training)

    def train(self, mode: bool = True) -> "Psi0Policy":
        super().train(mode)
        if self.stage == 2:
            self.system2.eval()  # frozen: no dropout, deterministic features
        return self

    def trainable_parameter_groups(self, stage: int, lrs: dict[str, float] | None = None,
                                   weight_decay: float = 0.01) -> list[dict[str, Any]]:
        """AdamW param groups for `stage`: one per (module group, decay / no decay), each named
        ("llm", "vision", "projector", "expert" + ".no_decay"). Sets requires_grad via set_stage."""
        self.set_stage(stage)
        rates = {**DEFAULT_LRS[stage], **(lrs or {})}
        named: dict[str, list[tuple[str, nn.Parameter]]] = {}
        if stage in (1, 3):
            named.update(self.system2.parameter_groups())
        if stage in (2, 3):
            named["expert"] = list(self.expert.named_parameters())
        groups = []
        for key in ("llm", "projector", "vision", "expert"):
            if key not in named or key not in rates:
                continue
            for suffix, pick in (("", False), (".no_decay", True)):
                ps = [p for n, p in named[key] if p.requires_grad and _no_decay(n, p) == pick]
                if ps:
                    groups.append({"name": key + suffix, "params": ps, "lr": rates[key],
                                   "weight_decay": 0.0 if pick else weight_decay})
        return groups

    # ----------------------------------------------------------------------------------- losses
    def _expert_inputs(self, batch: dict) -> tuple[torch.Tensor, ...]:
        dev = self.system2.device
        a = self.cfg.action_dim
        actions = batch["actions"].to(dev).float()
        if actions.shape[1] != self.cfg.horizon:
            raise ValueError(f"batch chunk length {actions.shape[1]} != policy horizon {self.cfg.horizon}")
        if actions.shape[2] < a:
            raise ValueError(f"batch actions have {actions.shape[2]} dims < action_dim {a}")
        b, hz = actions.shape[:2]
        pad = batch.get("action_pad")
        real = torch.ones(b, hz, dtype=torch.bool, device=dev) if pad is None else ~pad.to(dev).bool()
        am = batch.get("action_mask")
        dims = torch.ones(b, a, dtype=torch.bool, device=dev) if am is None else am.to(dev).bool()[:, :a]
        return actions[..., :a], real, dims, self.state_input(batch)

    def state_input(self, batch: dict) -> torch.Tensor:
        dev = self.system2.device
        st = batch["state"].to(dev).float()
        if "state_mask" in batch:
            st = st * batch["state_mask"].to(dev).to(st.dtype)
        return st[:, : self.cfg.state_dim]

    def forward(self, batch: dict, stage: int, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """= loss(); lets DistributedDataParallel(policy)(batch, stage) hook its gradient sync."""
        return self.loss(batch, stage, generator)

    def loss(self, batch: dict, stage: int, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss and metrics for one batch of the given stage."""
        if stage == 1:
            loss, m = self.system2.lm_loss(batch)
            return loss, {"loss": float(loss.detach()), **m}
        actions, real, dims, state = self._expert_inputs(batch)
        metrics: dict[str, float] = {}
        if stage == 2:
            was = self.system2.training
            self.system2.eval()
            with torch.no_grad():
                ctx, cmask = self.system2.features(batch, self.cfg.feature_layers)
            self.system2.train(was)
            lm = None
        elif stage == 3:
            with_lm = self.cfg.stage3_lm_weight > 0 and "tokens" in batch
            inputs = self.system2.inputs_from_batch(batch, with_tokens=with_lm)
            last, feats = self.system2.run(inputs, self.cfg.feature_layers, need_last=with_lm)
            c = inputs["context_len"]
            ctx = torch.cat([f[:, :c] for f in feats], -1)
            cmask = inputs["attention_mask"][:, :c].bool()
            lm = None
            if with_lm:
                lm, m = self.system2.token_loss(inputs, last)
                metrics.update(m)
        else:
            raise ValueError(f"stage must be 1, 2 or 3, got {stage}")
        flow = self.expert.loss(actions, ctx.float(), state, pad_mask=real, context_mask=cmask,
                                generator=generator, dim_mask=dims)
        loss = flow if lm is None else flow + self.cfg.stage3_lm_weight * lm
        metrics.update({"loss": float(loss.detach()), "flow_loss": float(flow.detach())})
        return loss, metrics

    # --------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def sample_actions(self, batch: dict, prefix: torch.Tensor | None = None, delay: int = 0,
                       steps: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Action chunk (B, horizon, action_dim) in the normalised action space. With `prefix`
        (B, >= delay, action_dim) the first `delay` actions are the committed ones, kept exactly. A delay
        training never drew (>= max_delay, schemas.chunking) is refused."""
        delay = self.cfg.chunking().check_delay(delay)
        ctx, cmask = self.system2.features(batch, self.cfg.feature_layers)
        state = self.state_input(batch)
        if prefix is not None:
            prefix = prefix.to(ctx.device)[..., : self.cfg.action_dim].float()
        return self.expert.sample(ctx.float(), state, prefix=prefix, delay=delay,
                                  steps=steps or self.cfg.sample_steps, context_mask=cmask, generator=generator)


def full_parameter_counts() -> dict[str, int]:
    """Parameter counts of the full config's expert (context from Qwen3-VL-2B, hidden 2048)."""
    cfg = POLICY_CONFIGS["full"]
    return {"expert": count_params(cfg.expert_config(2048))}
