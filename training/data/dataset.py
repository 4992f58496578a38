"""`ChunkDataset`: one sample per frame of every shard — images at t, task, state at t, the
normalized action chunk [t, t+H) with end-of-episode padding (in the configured action representation,
`training.data.representation`), the dims that are labels (`action_mask`: the source's real dims and
its `action.mask` column), and the FAST tokens of that chunk in the run's token space (`tokens.py`:
one tokenizer re-tokenizing every shard, or each root's own tokenizer at its disjoint id block).
Over a view, only the frames of the episodes it holds (`ShardEntry.episodes`): a shard's sample k maps
to its k-th selected row, one array lookup.

Map-style, so any sampler (and DataLoader worker sharding) works. Every shard is read through its
format's reader (`shards.formats`); readers, their columns and video decoders are cached per
process, so a forked worker never reuses its parent's open files.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from shards import formats
from shards.frames import VideoCache
from shards.location import Location
from shards.views_reader import renamed
from training.data.columns import ShardColumns, load_columns
from training.data import representation
from training.data.config import DataConfig
from training.data.index import ShardIndex
from training.data.normalize import Affine
from training.data.tokens import TokenPlan, plan_tokens, retokenize

log = logging.getLogger("psi0.training.data")


class ChunkDataset(Dataset):
    """Samples over every frame of the indexed shards (see module doc for the sample layout)."""

    def __init__(self, index: ShardIndex, cfg: DataConfig = DataConfig(), token_plan: TokenPlan | None = None):
        self.index = index
        self.cfg = cfg
        self.repr = representation.get(cfg.action_repr)
        self.shards = index.shards
        self.token_plan = token_plan if token_plan is not None else self._default_plan()
        self.locations = [s.path(cfg.format) for s in self.shards]       # (fmt, path) actually read
        fallback = [s.shard_id for s, (fmt, _) in zip(self.shards, self.locations) if fmt != cfg.format]
        if fallback:
            log.info("%d shard(s) have no %s twin; reading their other format (e.g. %s)", len(fallback),
                     cfg.format, fallback[0])
        self.offsets = np.concatenate([[0], np.cumsum([s.frames for s in self.shards])]).astype(np.int64)
        self._action_keys: dict[str, tuple[str, ...]] = {}
        self._action_norm: dict[str, Affine] = {}
        self._state_norm: dict[str, Affine | None] = {}
        for source in index.sources:
            self._build_norm(source)
        missing = [k for k in cfg.action_keys if not any(k in keys for keys in self._action_keys.values())]
        if missing:
            raise ValueError(f"action key(s) {missing} are in none of the sources {index.sources}")
        self._pid = -1
        self._columns: OrderedDict[int, ShardColumns] = OrderedDict()
        self._videos: VideoCache | None = None

    def _default_plan(self) -> TokenPlan | None:
        """The token plan when none is given: the config's tokenizer, else the roots' own (None: no tokens)."""
        if self.cfg.tokenizer is not None:
            return plan_tokens(self.index, self.cfg.tokenizer, self.cfg.tokenizer_stats)
        try:
            return plan_tokens(self.index)
        except (ValueError, FileNotFoundError):
            return None                      # shards without tokens (stage 2/3 data)

    # --- normalization -------------------------------------------------------------------------
    def _build_norm(self, source: str) -> None:
        cfg = self.cfg
        keys, parts = [], []
        for key in cfg.action_keys:
            stats = self.index.stats(source, key)
            if stats is None:
                continue
            keys.append(key)
            if self.repr.kind == "delta":
                stats = self._delta_stats(source, key)
                kept = self.repr.kept(len(stats["min"]))
                stats = {k: v[kept] for k, v in stats.items()}
            parts.append(Affine.from_stats(stats, cfg.normalization, len(stats["min"])))
        if not parts:
            raise ValueError(f"source {source!r} has none of the action keys {cfg.action_keys}")
        norm = Affine.concat(parts)
        if len(norm.center) > cfg.pad_dim:
            raise ValueError(f"{source}: action has {len(norm.center)} dims > pad_dim {cfg.pad_dim}")
        state = self.index.stats(source, cfg.state_key)
        if state is not None and len(state["min"]) > cfg.pad_dim:
            raise ValueError(f"{source}: {cfg.state_key} has {len(state['min'])} dims > pad_dim {cfg.pad_dim}")
        self._action_keys[source] = tuple(keys)
        self._action_norm[source] = norm
        self._state_norm[source] = (None if state is None
                                    else Affine.from_stats(state, cfg.normalization, len(state["min"])))

    def _delta_stats(self, source: str, key: str) -> dict[str, np.ndarray]:
        """Stats of frame-to-frame deltas of `key` over the source's shards (the catalog holds absolute stats)."""
        deltas = []
        for entry in (s for s in self.shards if s.source == source):
            fmt, path = entry.path(self.cfg.format)
            reader = formats.get(fmt).open(Location.of(path))
            try:
                cols = reader.columns([key, "episode_index", "frame_index"])
            finally:
                reader.close()
            values = np.asarray(cols[key], np.float64).reshape(len(cols[key]), -1)
            episodes = np.asarray(cols["episode_index"]).reshape(-1)
            order = np.lexsort((np.asarray(cols["frame_index"]).reshape(-1), episodes))
            values, episodes = values[order], episodes[order]
            same = episodes[1:] == episodes[:-1]
            deltas.append((values[1:] - values[:-1])[same])
        d = np.concatenate(deltas) if deltas else np.zeros((0, 1))
        if len(d) == 0:
            raise ValueError(f"source {source!r}: no two consecutive frames to take deltas of")
        return {"min": d.min(0), "max": d.max(0), "mean": d.mean(0), "std": d.std(0),
                "q01": np.quantile(d, 0.01, axis=0), "q99": np.quantile(d, 0.99, axis=0)}

    def action_dim(self, source: str) -> int:
        return len(self._action_norm[source].center)

    def normalize_actions(self, source: str, actions: np.ndarray) -> np.ndarray:
        return self._action_norm[source].apply(np.asarray(actions, np.float32))

    def denormalize(self, source: str, actions: Any) -> Any:
        """Normalized (..., pad_dim) or (..., D) actions -> the source's raw (..., D) action values."""
        norm = self._action_norm[source]
        d = len(norm.center)
        if isinstance(actions, torch.Tensor):
            # float64 like `Affine.invert`, so both paths give the same float32 values (the centre of a
            # near-constant dim is not representable in float32)
            center = torch.as_tensor(norm.center, dtype=torch.float64, device=actions.device)
            scale = torch.as_tensor(np.where(np.isinf(norm.scale), 0.0, norm.scale), dtype=torch.float64,
                                    device=actions.device)
            return (actions[..., :d].double() * scale + center).float()
        return norm.invert(np.asarray(actions, np.float32)[..., :d])

    def norm_stats(self) -> dict[str, dict[str, Any]]:
        """Per source: the affine maps in use (JSON-able), for checkpoints and deployment."""
        out = {}
        for source in self.index.sources:
            a, s = self._action_norm[source], self._state_norm[source]
            out[source] = {"mode": self.cfg.normalization, "action_keys": list(self._action_keys[source]),
                           "action": {"center": a.center.tolist(), "scale": a.scale.tolist()},
                           "state": None if s is None else {"center": s.center.tolist(), "scale": s.scale.tolist()}}
        return out

    # --- per-process caches --------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_pid=-1, _columns=OrderedDict(), _videos=None)
        return state

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():       # fresh process (worker fork/spawn): never share open files
            self._pid = os.getpid()
            self._columns = OrderedDict()
            self._videos = VideoCache(self.cfg.cache_videos)     # shared by every shard's reader

    def columns(self, shard: int) -> ShardColumns:
        self._ensure_process()
        cols = self._columns.get(shard)
        if cols is not None:
            self._columns.move_to_end(shard)
            return cols
        fmt, path = self.locations[shard]
        cfg = self.cfg
        entry = self.shards[shard]
        reader = renamed(formats.get(fmt).open(Location.of(path), videos=self._videos), entry.renames)
        cols = load_columns(reader, self._action_keys[entry.source], cfg.state_key, cfg.tokens_key,
                            cfg.tokens_len_key, cfg.mask_key)
        if self.token_plan is not None and self.token_plan.tokenizer is not None:
            cols.tokens, cols.tokens_len = retokenize(self.token_plan, entry.shard_id, reader,
                                                      cols.episode_index, cols.frame_index)
        if entry.episodes is not None:
            spans = {e.index: e for e in reader.episodes()}
            missing = [i for i in entry.episodes if i not in spans]
            if missing:
                raise ValueError(f"{path}: the view holds episode(s) {missing[:3]} the shard does not have")
            cols.rows = np.concatenate([np.arange(spans[i].start, spans[i].start + spans[i].length)
                                        for i in entry.episodes]).astype(np.int64)
        held = len(cols.rows) if cols.rows is not None else cols.frames
        if held != entry.frames:
            raise ValueError(f"{path}: {held} frames on disk, index says {entry.frames}")
        if cols.action_keys != self._action_keys[self.shards[shard].source]:
            raise ValueError(f"{path}: has action keys {cols.action_keys}, its source's stats have "
                             f"{self._action_keys[self.shards[shard].source]}")
        self._columns[shard] = cols
        while len(self._columns) > max(1, cfg.cache_shards):
            self._columns.popitem(last=False)[1].reader.close()
        return cols

    # --- samples -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Global sample index -> (shard number, row within the shard)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return shard, int(index - self.offsets[shard])

    def __getitem__(self, index: int) -> dict[str, Any]:
        cfg = self.cfg
        shard, row = self.locate(int(index))
        cols = self.columns(shard)
        if cols.rows is not None:
            row = int(cols.rows[row])
        source = self.shards[shard].source
        end = cols.end_row(row)
        rep = self.repr
        steps = np.arange(row, row + rep.frames_needed(cfg.horizon))
        pad = steps[-cfg.horizon:] >= end             # a delta's step k is real while row + k + 1 is
        rows = np.minimum(steps, end - 1)
        targets = rep.targets(cols.action[rows])
        d = targets.shape[1]
        actions = np.zeros((cfg.horizon, cfg.pad_dim), np.float32)
        actions[:, :d] = self._action_norm[source].apply(targets)
        action_mask = np.zeros(cfg.pad_dim, bool)
        action_mask[:d] = True
        if cols.action_valid is not None:          # dims that are no label anywhere in the chunk are masked
            valid = cols.action_valid[rows].all(axis=0)
            action_mask[:d] &= valid[rep.kept(len(valid))]
        state = np.zeros(cfg.pad_dim, np.float32)
        state_mask = np.zeros(cfg.pad_dim, bool)
        if cols.state is not None:
            ds = cols.state.shape[1]
            norm = self._state_norm[source]
            state[:ds] = cols.state[row] if norm is None else norm.apply(cols.state[row])
            state_mask[:ds] = True
        tokens = np.zeros(cfg.max_tokens, np.int64)
        n_tok = n_real = 0
        if cols.tokens is not None:
            n_real = int(cols.tokens_len[row]) if cols.tokens_len is not None else cols.tokens.shape[1]
            n_tok = min(n_real, cfg.max_tokens)
            offset = 0 if self.token_plan is None else self.token_plan.offset(self.shards[shard].shard_id)
            tokens[:n_tok] = cols.tokens[row, :n_tok] + offset
        images, image_mask = self._images(cols, row)
        ep = int(cols.episode_index[row])
        return {
            "images": torch.from_numpy(images), "image_mask": torch.from_numpy(image_mask),
            "task": cols.tasks[int(cols.task_index[row])] if cols.tasks else "",
            "state": torch.from_numpy(state), "state_mask": torch.from_numpy(state_mask),
            "actions": torch.from_numpy(actions), "action_pad": torch.from_numpy(pad),
            "action_mask": torch.from_numpy(action_mask),
            "tokens": torch.from_numpy(tokens), "tokens_len": torch.tensor(n_tok, dtype=torch.int64),
            "tokens_full_len": torch.tensor(n_real, dtype=torch.int64),     # > tokens_len: truncated chunk
            "source": source, "embodiment": cols.embodiment[cols.episode_row[ep]],
            "episode_index": ep, "frame_index": int(cols.frame_index[row]),
        }

    def _images(self, cols: ShardColumns, row: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        out: list[np.ndarray | None] = []
        ep, frame = int(cols.episode_index[row]), int(cols.frame_index[row])
        for cam in cfg.cameras:
            out.append(cols.reader.image(cam, ep, frame, cfg.image_size) if cam in cols.cameras else None)
        shape = next((o.shape for o in out if o is not None),
                     (3, *(cfg.image_size or (1, 1))))
        mask = np.array([o is not None for o in out], bool)
        return np.stack([o if o is not None else np.zeros(shape, np.uint8) for o in out]), mask


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; strings and ints become lists / int64 tensors."""
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], (int, np.integer)):
            out[key] = torch.tensor(values, dtype=torch.int64)
        else:
            out[key] = values
    return out
