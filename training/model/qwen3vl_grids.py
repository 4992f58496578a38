"""Qwen3-VL's per-image position bookkeeping, computed once per image grid instead of once per step.

transformers' Qwen3-VL (4.57) rebuilds three position tables on every forward with Python loops over the
images and rows of the batch: the vision tower's interpolated learned position embedding
(`fast_pos_embed_interpolate`, with a `.tolist()` round trip), its 2-D rotary positions (`rot_pos_emb`),
and the language model's 3-D M-RoPE position ids (`get_rope_index`, one Python loop per row). Their
inputs are the image grids and the token layout, which repeat step after step: on the tiny CPU preset
the three took a third of a stage-2 training step (batch 32), and on a GPU their `.item()` / `.tolist()`
calls stall the stream.

Here the index work is cached per batch of grids (and per row layout for M-RoPE); what depends on
weights (the learned embedding lookup, the rotary frequencies) is still computed every call, so
gradients reach `pos_embed` as before. The image grids and the per-image patch counts (`cu_seqlens`) are
read back to the host once per vision-tower forward, not by each table builder and each of the 24 blocks.
Every output is equal, bit for bit, to transformers' own (`tests/test_qwen3vl_grids.py` checks them against
the originals).
"""
from __future__ import annotations

import threading
import types
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

_CACHE_SIZE = 256


class _Lru(OrderedDict):
    """A small LRU: the grids and layouts of a run are few, but a long-lived server must not grow."""

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        hit = self.get(key)
        if hit is None:
            hit = make()
            self[key] = hit
            if len(self) > _CACHE_SIZE:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return hit


class _ForwardScope:
    """Host copies of small index tensors, read back once per vision-tower forward instead of once per use:
    the tower hands the same `grid_thw` to two table builders and the same `cu_seqlens` to every block, and
    on a GPU every read is a stream sync (Qwen3-VL-2B has 24 vision blocks). Values live only while the
    forward runs (per thread), so a tensor changed in place between forwards is read again."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def open(self) -> Iterator[None]:
        outer = getattr(self._local, "memo", None)
        self._local.memo = {}
        try:
            yield
        finally:
            self._local.memo = outer

    def get_or(self, tag: str, tensor: torch.Tensor, make: Callable[[torch.Tensor], Any]) -> Any:
        memo = getattr(self._local, "memo", None)
        if memo is None:                        # called outside a tower forward (a block on its own)
            return make(tensor)
        hit = memo.get(tag)
        if hit is not None and hit[0] is tensor:
            return hit[1]
        value = make(tensor)
        memo[tag] = (tensor, value)
        return value


def _grid_rows(grid_thw: torch.Tensor) -> tuple[tuple[int, int, int], ...]:
    return tuple(tuple(int(v) for v in row) for row in grid_thw.tolist())


def _grid_key(visual: Any, grid_thw: torch.Tensor) -> tuple[tuple[int, int, int], ...]:
    return visual._psi0_scope.get_or("grid", grid_thw, _grid_rows)


def _seq_lengths(cu_seqlens: torch.Tensor) -> list[int]:
    return (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()


# ------------------------------------------------------------------------------ vision tower positions

def _interp_plan(n_side: int, t: int, h: int, w: int, merge: int) -> tuple[list[list[int]], list[list[float]], torch.Tensor]:
    """One image's bilinear corners and weights (as transformers computes them) and the row order that
    its repeat over `t` and its merge-block permutation produce."""
    h_idxs = torch.linspace(0, n_side - 1, h)
    w_idxs = torch.linspace(0, n_side - 1, w)
    h_floor, w_floor = h_idxs.int(), w_idxs.int()
    h_ceil = (h_idxs.int() + 1).clip(max=n_side - 1)
    w_ceil = (w_idxs.int() + 1).clip(max=n_side - 1)
    dh, dw = h_idxs - h_floor, w_idxs - w_floor
    base_h, base_h_ceil = h_floor * n_side, h_ceil * n_side
    indices = [(base_h[None].T + w_floor[None]).flatten(), (base_h[None].T + w_ceil[None]).flatten(),
               (base_h_ceil[None].T + w_floor[None]).flatten(), (base_h_ceil[None].T + w_ceil[None]).flatten()]
    weights = [((1 - dh)[None].T * (1 - dw)[None]).flatten(), ((1 - dh)[None].T * dw[None]).flatten(),
               (dh[None].T * (1 - dw)[None]).flatten(), (dh[None].T * dw[None]).flatten()]
    order = (torch.arange(h * w).repeat(t).view(t, h // merge, merge, w // merge, merge)
             .permute(0, 1, 3, 2, 4).flatten())
    return [i.tolist() for i in indices], [x.tolist() for x in weights], order


def _fast_pos_embed_interpolate(self: Any, grid_thw: torch.Tensor) -> torch.Tensor:
    """`Qwen3VLVisionModel.fast_pos_embed_interpolate`, same values and same gradients: the corners,
    weights and row order of a batch of grids are built once (the lookup runs over the same rows in the
    same order as transformers', so even the embedding's gradient sums in the same order)."""
    weight = self.pos_embed.weight
    key = (_grid_key(self, grid_thw), weight.device, weight.dtype)

    def plan() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx: list[list[int]] = [[] for _ in range(4)]
        wts: list[list[float]] = [[] for _ in range(4)]
        orders, offset = [], 0
        for g in key[0]:
            i4, w4, order = _interp_plan(self.num_grid_per_side, *g, self.config.spatial_merge_size)
            for k in range(4):
                idx[k].extend(i4[k])
                wts[k].extend(w4[k])
            orders.append(order + offset)
            offset += g[1] * g[2]
        return (torch.tensor(idx, dtype=torch.long, device=weight.device),
                torch.tensor(wts, dtype=weight.dtype, device=weight.device), torch.cat(orders).to(weight.device))

    idx_tensor, weight_tensor, order = self._psi0_grid_cache.get_or(("interp",) + key, plan)
    pos_embeds = self.pos_embed(idx_tensor) * weight_tensor[:, :, None]
    patch_pos_embeds = pos_embeds[0] + pos_embeds[1] + pos_embeds[2] + pos_embeds[3]
    return patch_pos_embeds[order]


def _rot_pos_emb(self: Any, grid_thw: torch.Tensor) -> torch.Tensor:
    """`Qwen3VLVisionModel.rot_pos_emb`, same values: the (row, col) of every patch is cached per batch
    of grids; the frequency table is rebuilt each call as transformers does."""
    grids = _grid_key(self, grid_thw)
    max_hw = max(max(h, w) for _, h, w in grids)
    freq_table = self.rotary_pos_emb(max_hw)
    device = freq_table.device

    def plan() -> torch.Tensor:
        merge = self.spatial_merge_size
        parts = []
        for t, h, w in grids:
            mh, mw = h // merge, w // merge
            rows = (torch.arange(mh)[:, None, None, None] * merge + torch.arange(merge)[None, None, :, None])
            cols = (torch.arange(mw)[None, :, None, None] * merge + torch.arange(merge)[None, None, None, :])
            coords = torch.stack((rows.expand(mh, mw, merge, merge).reshape(-1),
                                  cols.expand(mh, mw, merge, merge).reshape(-1)), dim=-1)
            parts.append(coords.repeat(t, 1) if t > 1 else coords)
        return torch.cat(parts).to(device)

    pos_ids = self._psi0_grid_cache.get_or(("rot", grids, device), plan)
    return freq_table[pos_ids].flatten(1)


def _vision_attention_forward(self: Any, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor,
                              rotary_pos_emb: torch.Tensor | None = None,
                              position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                              **kwargs: Any) -> torch.Tensor:
    """`Qwen3VLVisionAttention.forward` with SDPA: when every image has the same number of patches (a
    batch of camera frames), one attention call over an image axis instead of one call per image.
    Anything else goes to transformers' loop."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # noqa: PLC0415
    from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb_vision  # noqa: PLC0415

    lengths = self._psi0_scope.get_or("lengths", cu_seqlens, _seq_lengths)     # set with this forward
    if self.config._attn_implementation != "sdpa" or len(set(lengths)) != 1 or position_embeddings is None:
        return type(self).forward(self, hidden_states, cu_seqlens, rotary_pos_emb=rotary_pos_emb,
                                  position_embeddings=position_embeddings, **kwargs)
    seq_length, n, per = hidden_states.shape[0], len(lengths), lengths[0]
    q, k, v = self.qkv(hidden_states).reshape(seq_length, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    q, k, v = (x.reshape(n, per, self.num_heads, -1).transpose(1, 2) for x in (q, k, v))  # (images, heads, patches, d)
    out, _ = ALL_ATTENTION_FUNCTIONS["sdpa"](self, q, k, v, attention_mask=None, scaling=self.scaling,
                                             dropout=0.0 if not self.training else self.attention_dropout,
                                             is_causal=False, **kwargs)
    return self.proj(out.reshape(seq_length, -1).contiguous())


def _scoped_tower_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    """`Qwen3VLVisionModel.forward` inside one `_ForwardScope`."""
    with self._psi0_scope.open():
        return type(self).forward(self, *args, **kwargs)


def install_grid_cache(model: Any) -> None:
    """Give `model` (a `Qwen3VLForConditionalGeneration` or `Qwen3VLModel`) cached vision-tower position
    tables and batched per-image attention, on this instance only. Idempotent."""
    inner = getattr(model, "model", model)
    visual = inner.visual
    if getattr(visual, "_psi0_grid_cache", None) is None:
        visual._psi0_grid_cache = _Lru()
        visual._psi0_scope = _ForwardScope()
        visual.forward = types.MethodType(_scoped_tower_forward, visual)
        visual.fast_pos_embed_interpolate = types.MethodType(_fast_pos_embed_interpolate, visual)
        visual.rot_pos_emb = types.MethodType(_rot_pos_emb, visual)
        for block in visual.blocks:
            block.attn._psi0_scope = visual._psi0_scope
            block.attn.forward = types.MethodType(_vision_attention_forward, block.attn)


# ------------------------------------------------------------------------- language model M-RoPE ids

class MRopePositions:
    """3-D M-RoPE position ids of a batch, equal to `Qwen3VLModel.get_rope_index`'s, computed once per
    distinct row layout. A row's ids depend only on where its vision-start, image and video tokens and
    its padding lie (and on the image grid), so rows are keyed on exactly that; batches whose images
    have different grids are left to transformers (`None`)."""

    def __init__(self, model: Any):
        self.inner = getattr(model, "model", model)
        cfg = self.inner.config
        self.special = torch.tensor([cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id])
        self._rows: _Lru = _Lru()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 image_grid_thw: torch.Tensor | None) -> torch.Tensor | None:
        if image_grid_thw is None or image_grid_thw.shape[0] == 0:
            return None
        grids = image_grid_thw.cpu()
        if not bool((grids == grids[0]).all()):
            return None
        grid = tuple(int(v) for v in grids[0].tolist())
        special = torch.isin(input_ids, self.special.to(input_ids.device))
        if bool((input_ids == int(self.special[1])).any()):
            return None                       # video tokens need their own grids: transformers' path
        layout = torch.where(special, input_ids, torch.full_like(input_ids, -1))
        layout = torch.where(attention_mask.bool(), layout, torch.full_like(layout, -2)).cpu()
        rows_np = layout.numpy()
        keys = [(grid, r.tobytes()) for r in rows_np]
        table = [self._rows.get_or(k, lambda r=r: self._row_positions(torch.from_numpy(r.copy()), grids[:1]))
                 for k, r in zip(keys, rows_np)]
        return torch.stack(table, dim=1).to(input_ids.device)

    def _row_positions(self, layout: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """transformers' own computation for one row (its layout stands in for the tokens: it only tests
        token ids against the three special ids, and -2 marks padding)."""
        n_images = max(1, int((layout == int(self.special[2])).sum()))
        pos, _ = self.inner.get_rope_index(layout[None], grid.repeat(n_images, 1), None,
                                           attention_mask=(layout != -2).long()[None])
        return pos[:, 0]
