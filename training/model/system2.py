"""System-2: Qwen3-VL as the policy's vision-language backbone.

What it adds on top of `Qwen3VLForConditionalGeneration`:

* **Action tokens in the VLM vocabulary** (`ActionTokenMap`). FAST token `k` is VLM id `first_id + k`
  with `first_id` = the text tokenizer's length (the first id no text token uses), followed by
  `<|action_start|>` and `<|action_end|>`. The tokens are *named* in the tokenizer as the Ψ₀ authors
  name them (`<|a_k|>`, then the two markers as special tokens), so a saved checkpoint opens in
  transformers with its tokenizer and `tokenizer.decode` shows actions. Qwen3-VL-2B's tokenizer has
  151,669 entries but its embedding 151,936 rows: the 267 padded rows cannot hold a 2,048-token FAST
  vocabulary, so the embedding (and the tied LM head) is grown to the next multiple of 64 and the new
  rows start at the mean text embedding plus small noise. No text token is overwritten, so the map is
  a pure function of (text tokenizer length, FAST vocabulary size) and a saved checkpoint reloads to
  the same map.
* **Batched prompt building on tensors** (`build_inputs`): uint8 camera images go through a torch
  re-implementation of Qwen's image processor (`VisionPreprocess`, bit-exact with
  `Qwen2VLImageProcessor` when no resize is needed; runs on the GPU with the batch), prompts are the
  Qwen chat template `<|im_start|>user\\n<vision>...<task><|im_end|>\\n<|im_start|>assistant\\n`
  tokenised once per distinct task and cached, then `<action_start>` + action tokens + `<action_end>`.
  Prompts are left-padded so every prompt ends at the same column and the action part is aligned.
* **Losses and features without full-vocabulary logits**: `lm_loss` projects only the positions that
  carry labels through the LM head; `features` returns hidden states of chosen decoder layers for
  the action expert.
"""
from __future__ import annotations

import copy
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.model.qwen3vl_grids import MRopePositions, install_grid_cache

# Same output as Qwen3-VL-Instruct's template for user turns made of images and text.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IGNORE = -100
SYSTEM2_META = "psi0_system2.json"
ACTION_START = "<|action_start|>"
ACTION_END = "<|action_end|>"


def action_token(k: int) -> str:
    """The name of FAST token `k` in the VLM tokenizer (the Ψ₀ authors' `<|a_k|>`)."""
    return f"<|a_{k}|>"


def name_action_tokens(tokenizer: Any, fast_vocab_size: int) -> tuple[Any, int]:
    """`tokenizer` with `<|a_0|>` ... `<|a_{V-1}|>`, `<|action_start|>`, `<|action_end|>` (in that order,
    right after its text tokens; a copy is named, the caller's tokenizer is not changed), and the id of
    `<|a_0|>`. A tokenizer saved with another number of action tokens is refused (its ids would mean
    other tokens)."""
    names = [action_token(k) for k in range(int(fast_vocab_size))]
    vocab = tokenizer.get_vocab()
    if names[0] in vocab:
        first = vocab[names[0]]
        want = list(range(first, first + len(names) + 2))
        got = [vocab.get(n, -1) for n in names + [ACTION_START, ACTION_END]]
        extra = vocab.get(action_token(len(names)))
        if got != want or extra is not None:
            raise ValueError(f"the tokenizer names action tokens differently (expected {len(names)} contiguous "
                             f"<|a_k|> from id {first} then the markers); rebuild it from the text tokenizer")
        return tokenizer, first
    tokenizer = copy.deepcopy(tokenizer)
    first = len(tokenizer)
    tokenizer.add_tokens(names)
    tokenizer.add_special_tokens({"additional_special_tokens": [ACTION_START, ACTION_END]},
                                 replace_additional_special_tokens=False)
    if (tokenizer.convert_tokens_to_ids(names[0]) != first
            or tokenizer.convert_tokens_to_ids(ACTION_END) != first + len(names) + 1):
        raise ValueError("the tokenizer did not place the action tokens right after its text tokens")
    return tokenizer, first


QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)  # in Qwen's id order (151643 ... 151656 in the real vocabulary)
"""Qwen2/Qwen3 special tokens in id order: the real checkpoint's tokenizer and the tiny preset share them."""


# --------------------------------------------------------------------------------------- token map

@dataclass(frozen=True)
class ActionTokenMap:
    """FAST ids [0, fast_vocab_size) <-> VLM ids [first_id, first_id + fast_vocab_size) (named `<|a_k|>`),
    then the markers `<|action_start|>` = first_id + fast_vocab_size and `<|action_end|>` = that + 1."""

    first_id: int
    fast_vocab_size: int

    @property
    def start_id(self) -> int:
        return self.first_id + self.fast_vocab_size

    @property
    def end_id(self) -> int:
        return self.start_id + 1

    @property
    def stop(self) -> int:
        """One past the last reserved id: the embedding needs at least this many rows."""
        return self.end_id + 1

    def to_vlm(self, fast_ids: torch.Tensor) -> torch.Tensor:
        if fast_ids.numel() and (int(fast_ids.min()) < 0 or int(fast_ids.max()) >= self.fast_vocab_size):
            raise ValueError(f"FAST ids must lie in [0, {self.fast_vocab_size}), got "
                             f"[{int(fast_ids.min())}, {int(fast_ids.max())}]")
        return fast_ids.long() + self.first_id

    def is_action(self, vlm_ids: torch.Tensor) -> torch.Tensor:
        return (vlm_ids >= self.first_id) & (vlm_ids < self.start_id)

    def to_fast(self, vlm_ids: torch.Tensor) -> torch.Tensor:
        """VLM ids -> FAST ids; ids that are not action tokens become -1."""
        return torch.where(self.is_action(vlm_ids), vlm_ids.long() - self.first_id, torch.full_like(vlm_ids, -1))


# ------------------------------------------------------------------------------- image preprocessing
def smart_resize(h: int, w: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's rule: sides divisible by `factor`, pixel count within [min_pixels, max_pixels]."""
    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb = max(factor, math.floor(h / beta / factor) * factor)
        wb = max(factor, math.floor(w / beta / factor) * factor)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


@dataclass(frozen=True)
class VisionPreprocess:
    """Torch version of Qwen2VLImageProcessor for uint8 camera batches (same patch layout)."""

    patch_size: int = 16
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)
    min_pixels: int = 65536
    max_pixels: int = 16777216

    @classmethod
    def from_dict(cls, d: dict) -> "VisionPreprocess":
        size = d.get("size") or {}
        return cls(patch_size=int(d.get("patch_size", 16)), temporal_patch_size=int(d.get("temporal_patch_size", 2)),
                   merge_size=int(d.get("merge_size", 2)),
                   image_mean=tuple(d.get("image_mean", (0.5, 0.5, 0.5))),
                   image_std=tuple(d.get("image_std", (0.5, 0.5, 0.5))),
                   min_pixels=int(d.get("min_pixels") or size.get("shortest_edge", 65536)),
                   max_pixels=int(d.get("max_pixels") or size.get("longest_edge", 16777216)))

    def target_size(self, h: int, w: int) -> tuple[int, int]:
        return smart_resize(h, w, self.patch_size * self.merge_size, self.min_pixels, self.max_pixels)

    def tokens_per_image(self, h: int, w: int) -> int:
        th, tw = self.target_size(h, w)
        return (th // self.patch_size) * (tw // self.patch_size) // self.merge_size ** 2

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (N, 3, H, W) -> pixel_values (N*gh*gw, 3*T*p*p), image_grid_thw (N, 3) int64."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
        n, c, h, w = images.shape
        th, tw = self.target_size(h, w)
        x = images
        if (th, tw) != (h, w):
            # bicubic + antialias straight on uint8 (rounded, clamped: PIL-like, as the HF processor)
            x = F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(th, tw), mode="bicubic",
                              antialias=True, align_corners=False)
        p, m, t = self.patch_size, self.merge_size, self.temporal_patch_size
        gh, gw = th // p, tw // p
        # Qwen's patch order (merge-block-major), permuted while still 1 byte per value
        x = x.reshape(n, c, gh // m, m, p, gw // m, m, p).permute(0, 2, 5, 3, 6, 1, 4, 7).contiguous()
        # (v / 255 - mean) / std as one affine per channel
        std = torch.tensor(self.image_std, dtype=torch.float32, device=x.device)
        scale = (1.0 / (255.0 * std)).view(c, 1, 1)
        shift = (-torch.tensor(self.image_mean, dtype=torch.float32, device=x.device) / std).view(c, 1, 1)
        y = x.to(torch.float32).mul_(scale).add_(shift)
        # a still image is T identical frames: (..., c, p, p) -> (..., c, T, p, p)
        y = y.unsqueeze(-3).expand(*y.shape[:-2], t, p, p).reshape(n * gh * gw, c * t * p * p)
        grid = torch.tensor([[1, gh, gw]], dtype=torch.long, device=images.device).expand(n, 3).contiguous()
        return y.to(dtype), grid

    def to_processor_dict(self) -> dict:
        return {"patch_size": self.patch_size, "temporal_patch_size": self.temporal_patch_size,
                "merge_size": self.merge_size, "image_mean": list(self.image_mean),
                "image_std": list(self.image_std),
                "size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}}


# ------------------------------------------------------------------------------------- system 2
class _AllowOnly:
    """Logits processor: only `allowed` ids may be generated (constrained decoding of action tokens)."""

    def __init__(self, allowed: torch.Tensor):
        self.allowed = allowed

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(scores, float("-inf"))
        mask[:, self.allowed.to(scores.device)] = 0
        return scores + mask


class System2(nn.Module):
    """Qwen3-VL with FAST action tokens, batched prompt building, LM loss, features and decoding."""

    def __init__(self, model, tokenizer, vision: VisionPreprocess, fast_vocab_size: int, seed: int = 0):
        super().__init__()
        self.model = model
        self.tokenizer, first = name_action_tokens(tokenizer, fast_vocab_size)
        self.vision = vision
        self.token_map = ActionTokenMap(first_id=first, fast_vocab_size=int(fast_vocab_size))
        cfg = model.config
        self.image_token_id = cfg.image_token_id
        self.vision_start_id = cfg.vision_start_token_id
        self.vision_end_id = cfg.vision_end_token_id
        ids = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
        self.im_start_id, self.im_end_id, self.pad_id = ids
        self._prompt_cache: OrderedDict[tuple, list[int]] = OrderedDict()
        install_grid_cache(model)
        self._mrope = MRopePositions(model)
        self._ensure_action_rows(seed)

    # ---------------------------------------------------------------- construction / persistence
    def _ensure_action_rows(self, seed: int) -> None:
        emb = self.model.get_input_embeddings()
        rows = emb.weight.shape[0]
        if rows >= self.token_map.stop:
            return  # the padded rows beyond the tokenizer already hold the action block
        new_rows = ((self.token_map.stop + 63) // 64) * 64
        old = emb.weight.data
        g = torch.Generator().manual_seed(seed)
        mean = old[: self.token_map.first_id].float().mean(0)
        std = old[: self.token_map.first_id].float().std(0).mean()
        extra = mean + 0.02 * std * torch.randn(new_rows - rows, old.shape[1], generator=g)
        cfg = self.model.config
        tied = cfg.tie_word_embeddings or getattr(cfg.text_config, "tie_word_embeddings", False)
        new_emb = nn.Embedding(new_rows, old.shape[1], padding_idx=emb.padding_idx, device=old.device, dtype=old.dtype)
        new_emb.weight.data.copy_(torch.cat([old, extra.to(old)], 0))
        self.model.set_input_embeddings(new_emb)
        head = self.model.lm_head
        new_head = nn.Linear(old.shape[1], new_rows, bias=False, device=old.device, dtype=old.dtype)
        if tied:
            new_head.weight = new_emb.weight
        else:
            hw = head.weight.data
            hmean = hw[: self.token_map.first_id].float().mean(0)
            new_head.weight.data.copy_(torch.cat([hw, (hmean + 0.02 * std * torch.randn(
                new_rows - rows, hw.shape[1], generator=g)).to(hw)], 0))
        self.model.lm_head = new_head
        self.model.config.text_config.vocab_size = new_rows
        self.model.config.vocab_size = new_rows

    @classmethod
    def from_pretrained(cls, path: str | Path, fast_vocab_size: int = 2048, dtype: torch.dtype = torch.float32,
                        attn_implementation: str = "sdpa") -> "System2":
        """Load a local Qwen3-VL checkpoint directory (config.json, *.safetensors, tokenizer and
        preprocessor files) -- the original Qwen3-VL-2B-Instruct or one saved by `save_pretrained`."""
        from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a Qwen3-VL checkpoint directory (no config.json)")
        model = Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=dtype, local_files_only=True,
                                                                attn_implementation=attn_implementation)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        pp = path / "preprocessor_config.json"
        vision = VisionPreprocess.from_dict(json.loads(pp.read_text())) if pp.is_file() else VisionPreprocess(
            patch_size=model.config.vision_config.patch_size)
        meta = path / SYSTEM2_META
        if meta.is_file():
            fast_vocab_size = int(json.loads(meta.read_text())["fast_vocab_size"])
        return cls(model, tokenizer, vision, fast_vocab_size)

    def processor(self):
        """A transformers `Qwen3VLProcessor` equivalent to this wrapper's preprocessing (for tools
        that want the HF interface; training uses the faster tensor path in `build_inputs`)."""
        from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        v = self.vision
        ip = Qwen2VLImageProcessor(patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size,
                                   merge_size=v.merge_size, image_mean=list(v.image_mean), image_std=list(v.image_std),
                                   min_pixels=v.min_pixels, max_pixels=v.max_pixels)
        vp = Qwen3VLVideoProcessor(patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size,
                                   merge_size=v.merge_size)
        template = self.tokenizer.chat_template or CHAT_TEMPLATE
        return Qwen3VLProcessor(image_processor=ip, tokenizer=self.tokenizer, video_processor=vp,
                                chat_template=template)

    def save_pretrained(self, path: str | Path) -> None:
        """Write the real checkpoint layout (loadable by `from_pretrained` and by transformers)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path, safe_serialization=True)
        self.processor().save_pretrained(path)
        (path / SYSTEM2_META).write_text(json.dumps({"fast_vocab_size": self.token_map.fast_vocab_size,
                                                     "first_action_id": self.token_map.first_id}, indent=1) + "\n")

    def gradient_checkpointing_enable(self) -> None:
        """Recompute decoder/vision blocks in backward (full-size stage 1/3 on one GPU)."""
        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ------------------------------------------------------------------------------ properties
    @property
    def hidden_size(self) -> int:
        return self.model.config.text_config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.model.config.text_config.num_hidden_layers

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Named parameters split into 'vision' (ViT blocks), 'projector' (patch mergers incl.
        deepstack) and 'llm' (language model, embeddings, LM head); shared tensors listed once."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"vision": [], "projector": [], "llm": []}
        for name, p in self.model.named_parameters():  # named_parameters de-duplicates tied weights
            if ".visual." in f".{name}":
                key = "projector" if (".merger." in name or "deepstack_merger" in name) else "vision"
            else:
                key = "llm"
            groups[key].append((name, p))
        return groups

    # --------------------------------------------------------------------------- input building
    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, task: str, n_cams: int, tokens_per_image: int) -> list[int]:
        """Token ids of the chat prompt (images first, then the instruction), ending after
        `<|im_start|>assistant\\n`. Cached per (task, cameras, image size)."""
        key = (task, n_cams, tokens_per_image)
        hit = self._prompt_cache.get(key)
        if hit is not None:
            self._prompt_cache.move_to_end(key)
            return hit
        vis = [self.vision_start_id] + [self.image_token_id] * tokens_per_image + [self.vision_end_id]
        ids = ([self.im_start_id] + self._text_ids("user\n") + vis * n_cams + self._text_ids(task)
               + [self.im_end_id] + self._text_ids("\n") + [self.im_start_id] + self._text_ids("assistant\n"))
        self._prompt_cache[key] = ids
        if len(self._prompt_cache) > 4096:
            self._prompt_cache.popitem(last=False)
        return ids

    def build_inputs(self, images: torch.Tensor, tasks: Sequence[str], tokens: torch.Tensor | None = None,
                     tokens_len: torch.Tensor | None = None) -> dict[str, Any]:
        """Model inputs for a batch. Layout per row: [left pad][prompt][<action_start>][actions]
        [<action_end>][right pad]. `labels` are -100 except on action tokens and `<action_end>`;
        `context_len` = prompt + `<action_start>` columns (what the action expert may read)."""
        if images.ndim != 5:
            raise ValueError(f"images must be (B, n_cams, 3, H, W), got {tuple(images.shape)}")
        b, n_cams, _, h, w = images.shape
        if len(tasks) != b:
            raise ValueError(f"{len(tasks)} tasks for a batch of {b}")
        dev = self.device
        pixel_values, grid = self.vision(images.to(dev).flatten(0, 1), dtype=self.model.dtype)
        per_image = self.vision.tokens_per_image(h, w)
        prompts = [self.prompt_ids(t, n_cams, per_image) for t in tasks]
        plen = max(len(p) for p in prompts)
        ctx_len = plen + 1
        if tokens is not None:
            tokens = tokens.to(dev)
            n = (torch.full((b,), tokens.shape[1], device=dev) if tokens_len is None else tokens_len.to(dev)).long()
            n = n.clamp(0, tokens.shape[1])
            amax = int(n.max()) if b else 0
            total = ctx_len + amax + 1
        else:
            total = ctx_len
        ids = torch.full((b, total), self.pad_id, dtype=torch.long)
        attn = torch.zeros((b, total), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, plen - len(p): plen] = torch.tensor(p, dtype=torch.long)
            attn[i, plen - len(p): plen] = 1
        ids, attn = ids.to(dev), attn.to(dev)
        ids[:, plen] = self.token_map.start_id
        attn[:, plen] = 1
        labels = torch.full_like(ids, IGNORE)
        if tokens is not None and total > ctx_len:
            cols = torch.arange(amax + 1, device=dev)[None]  # action slots + end marker
            is_tok = cols < n[:, None]
            is_end = cols == n[:, None]
            toks = tokens[:, :amax].long()
            if amax:
                bad = is_tok[:, :amax] & ((toks < 0) | (toks >= self.token_map.fast_vocab_size))
                if bool(bad.any()):
                    raise ValueError(f"action tokens outside [0, {self.token_map.fast_vocab_size}) within tokens_len")
            vlm = torch.where(is_tok[:, :amax], toks + self.token_map.first_id, torch.full_like(toks, self.pad_id))
            part = torch.cat([vlm, torch.full((b, 1), self.pad_id, device=dev, dtype=torch.long)], 1)
            part = torch.where(is_end, torch.full_like(part, self.token_map.end_id), part)
            ids[:, ctx_len:] = part
            attn[:, ctx_len:] = (is_tok | is_end).long()
            labels[:, ctx_len:] = torch.where(is_tok | is_end, part, torch.full_like(part, IGNORE))
        return {"input_ids": ids, "attention_mask": attn, "pixel_values": pixel_values, "image_grid_thw": grid,
                "labels": labels, "context_len": ctx_len}

    def inputs_from_batch(self, batch: dict, with_tokens: bool) -> dict[str, Any]:
        return self.build_inputs(batch["images"], batch["task"], batch.get("tokens") if with_tokens else None,
                                 batch.get("tokens_len") if with_tokens else None)

    # ----------------------------------------------------------------------------- forward passes
    def run(self, inputs: dict[str, Any], layers: Sequence[int] = (), need_last: bool = True
            ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """One backbone pass (no LM head). Returns the final normed hidden states (None when
        `need_last` is False) and the outputs of the requested decoder layers (python indexing; the
        last layer is returned after the final RMSNorm, i.e. exactly what the LM head reads).
        Without `need_last`, decoder layers past the deepest requested one are not run at all."""
        lm = self.model.model.language_model
        n = len(lm.layers)
        idx = [(i + n) if i < 0 else i for i in layers]
        if any(i < 0 or i >= n for i in idx):
            raise ValueError(f"layers {tuple(layers)} out of range for {n} decoder layers")
        depth = n if (need_last or not idx or max(idx) == n - 1) else max(idx) + 1
        captured: dict[int, torch.Tensor] = {}
        hooks = []
        for i in sorted(set(idx)):
            if i == n - 1:
                continue
            hooks.append(lm.layers[i].register_forward_hook(
                lambda _m, _a, out, i=i: captured.__setitem__(i, out[0] if isinstance(out, tuple) else out)))
        full_stack = lm.layers
        try:
            if depth < n:
                lm.layers = nn.ModuleList(list(full_stack)[:depth])
            self.model.model.rope_deltas = None
            positions = self._mrope(inputs["input_ids"], inputs["attention_mask"], inputs["image_grid_thw"])
            out = self.model.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                   pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
                                   position_ids=positions, use_cache=False)
        finally:
            lm.layers = full_stack
            for hk in hooks:
                hk.remove()
        last = out.last_hidden_state if depth == n else None
        feats = [last if i == n - 1 else captured[i] for i in idx]
        return last, feats

    def token_loss(self, inputs: dict[str, Any], hidden: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Next-token cross-entropy over labelled positions only (LM head applied to those rows)."""
        labels = inputs["labels"][:, 1:]
        sel = labels != IGNORE
        if not bool(sel.any()):
            zero = hidden.sum() * 0.0
            return zero, {"lm_loss": 0.0, "token_acc": 0.0, "n_tokens": 0}
        h = hidden[:, :-1][sel]
        logits = self.model.lm_head(h).float()
        target = labels[sel]
        loss = F.cross_entropy(logits, target)
        acc = (logits.argmax(-1) == target).float().mean()
        return loss, {"lm_loss": float(loss.detach()), "token_acc": float(acc), "n_tokens": int(sel.sum())}

    def lm_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Stage 1: next-token prediction on the FAST action tokens (and `<action_end>`)."""
        if batch.get("tokens") is None:
            raise ValueError("stage-1 batches need 'tokens' (FAST ids) and 'tokens_len'")
        inputs = self.inputs_from_batch(batch, with_tokens=True)
        last, _ = self.run(inputs)
        return self.token_loss(inputs, last)

    def features(self, batch: dict, layers: Sequence[int] = (-1,), inputs: dict | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context for the action expert: hidden states of `layers` over the prompt and
        `<action_start>` (never over action tokens), concatenated on the channel axis ->
        (B, L, hidden * len(layers)), plus the valid-token mask (B, L) bool."""
        inputs = inputs if inputs is not None else self.inputs_from_batch(batch, with_tokens=False)
        _, feats = self.run(inputs, layers, need_last=False)
        c = inputs["context_len"]
        ctx = torch.cat([f[:, :c] for f in feats], -1)
        return ctx, inputs["attention_mask"][:, :c].bool()

    @torch.no_grad()
    def generate_actions_tokens(self, images: torch.Tensor, tasks: Sequence[str], max_tokens: int = 64
                                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding constrained to action tokens and `<action_end>`. Returns FAST ids
        (B, max_tokens) int64 padded with `fast_vocab_size` (FAST's pad id) and lengths (B,)."""
        inputs = self.build_inputs(images, tasks)
        tm = self.token_map
        allowed = torch.arange(tm.first_id, tm.start_id + 0)
        allowed = torch.cat([allowed, torch.tensor([tm.end_id])])
        self.model.model.rope_deltas = None
        out = self.model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                  pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
                                  max_new_tokens=max_tokens + 1, do_sample=False, num_beams=1,
                                  logits_processor=[_AllowOnly(allowed)], eos_token_id=tm.end_id,
                                  pad_token_id=self.pad_id, use_cache=True)
        new = out[:, inputs["input_ids"].shape[1]:].cpu()
        b = new.shape[0]
        result = torch.full((b, max_tokens), tm.fast_vocab_size, dtype=torch.long)
        lengths = torch.zeros(b, dtype=torch.long)
        for i in range(b):
            row = new[i]
            end = (row == tm.end_id).nonzero()
            k = int(end[0]) if len(end) else min(len(row), max_tokens)
            k = min(k, max_tokens)
            result[i, :k] = tm.to_fast(row[:k])
            lengths[i] = k
        return result, lengths
