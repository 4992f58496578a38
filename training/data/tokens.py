"""Token spaces of a run: which FAST tokenizer gives each shard's action tokens, and which VLM ids they get.

A FAST id means something only with its tokenizer. So:
- with `--tokenizer DIR` (one tokenizer, e.g. fitted over the stage-1 mixture, or the authors'), every
  shard's chunks are re-tokenized with it while loading (the chunks come from the shard's own columns,
  named in its catalog's `token_inputs`, built by `converters.tokenize.hand48`): one space, ids [0, V);
- otherwise each output root's own tokenizer (`OUT/tokenizer`) is used as written, roots with the same
  tokenizer (same file digest) share a space, and different tokenizers get disjoint id blocks one after
  the other. The policy's action-token table must hold them all (`TokenPlan.total`).
`TokenPlan.to_json()` is what a run records as `token_spaces`; `collisions` compares two records (a run
starting from another run's system-2 must give its ids the same meaning).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converters.tokenize import hand48
from converters.tokenize.fast import pad_token_arrays
from converters.tokenize.load import digest, load_tokenizer
from shards.reader import open_output
from training.data.index import ShardEntry, ShardIndex

REFIT = ("fit one tokenizer over the mixture and train with it: `psi0 tokenizer fit --input {roots} --out DIR` then "
         "`train ... --tokenizer DIR` (or re-ingest each source with `--tokenizer DIR`)")


@dataclass(frozen=True)
class TokenSpace:
    """One tokenizer's ids in the run: VLM action-token ids [first, first + size)."""

    digest: str
    first: int
    size: int
    sources: tuple[str, ...]
    where: tuple[str, ...]               # the tokenizer folders (output roots' or --tokenizer)
    space: str = ""                      # the chunks' meaning, e.g. human48_delta

    @property
    def last(self) -> int:
        return self.first + self.size - 1

    def to_json(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "tokenizer": self.digest, "ids": [self.first, self.last],
                "vocab_size": self.size, "space": self.space, "where": list(self.where)}


@dataclass
class TokenPlan:
    spaces: list[TokenSpace]
    shard_space: dict[str, int]          # shard_id -> index into spaces
    tokenizer: Any = None                # the run's one tokenizer: shards are re-tokenized with it
    token_inputs: dict[str, dict[str, str]] = field(default_factory=dict)   # shard_id -> role -> column

    @property
    def total(self) -> int:
        """Action-token ids the policy must map (one past the largest)."""
        return max((s.first + s.size for s in self.spaces), default=0)

    def offset(self, shard_id: str) -> int:
        return self.spaces[self.shard_space[shard_id]].first

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.spaces]


def _tokenizer_dir(entry: ShardEntry) -> Path | None:
    out = open_output(entry.catalog) if entry.catalog is not None else open_output(next(iter(entry.paths.values())))
    ref = out.tokenizer()
    return None if ref is None else Path(ref.local_dir())


def _token_inputs(entry: ShardEntry) -> tuple[dict[str, str], str]:
    """The columns the shard's chunks are built from, as its ingest job recorded them."""
    if entry.catalog is not None:
        config = open_output(entry.catalog).catalog.config or {}
    else:
        fmt, path = entry.path("lerobot")
        out = open_output(path)
        data = out.shard_json(out.record(entry.shard_id)) or {}
        config = data.get("config", {})
    inputs = config.get("token_inputs")
    if not inputs:
        raise ValueError(f"{entry.catalog or entry.paths}: its catalog records no token_inputs (ingested before "
                         "issue 14's token spaces): re-ingest it to re-tokenize with --tokenizer")
    return dict(inputs), str(config.get("token_space", ""))


def plan_tokens(index: ShardIndex, tokenizer_dir: str | Path | None = None, stats: str | Path | None = None
                ) -> TokenPlan:
    """The run's token spaces (see module doc). Raises ValueError for shards without tokens."""
    if tokenizer_dir is not None:
        tok = load_tokenizer(tokenizer_dir, stats)
        if not getattr(tok.config, "q01", None):
            raise ValueError(f"{tokenizer_dir}: no normalisation statistics; pass --tokenizer-stats FILE")
        inputs: dict[str, dict[str, str]] = {}
        spaces = set()
        for entry in index.shards:
            inputs[entry.shard_id], space = _token_inputs(entry)
            spaces.add(space)
        if len(spaces) > 1:
            raise ValueError(f"the shards' token chunks mean different things ({sorted(spaces)}): one tokenizer "
                             "cannot cover them")
        space = TokenSpace(digest(tokenizer_dir), 0, tok.vocab_size, tuple(index.sources), (str(tokenizer_dir),),
                           spaces.pop() if spaces else "")
        return TokenPlan([space], {e.shard_id: 0 for e in index.shards}, tok, inputs)
    by_digest: dict[str, dict[str, Any]] = {}
    shard_digest: dict[str, str] = {}
    missing = []
    cache: dict[str, tuple[str, int, str]] = {}
    for entry in index.shards:
        key = str(entry.catalog or entry.paths)
        if key not in cache:
            folder = _tokenizer_dir(entry)
            if folder is None:
                missing.append(key)
                continue
            space = _token_inputs(entry)[1] if entry.catalog is not None else ""
            cache[key] = (digest(folder), load_tokenizer(folder).vocab_size, space)
        d, size, space = cache[key]
        group = by_digest.setdefault(d, {"size": size, "sources": set(), "where": set(), "space": space})
        group["sources"].add(entry.source)
        group["where"].add(key)
        shard_digest[entry.shard_id] = d
    if missing:
        raise ValueError(f"no FAST tokenizer beside {sorted(set(missing))[:3]}: ingest with tokens, or pass "
                         "--tokenizer DIR")
    spaces, first = [], 0
    for d, group in sorted(by_digest.items(), key=lambda kv: (sorted(kv[1]["sources"]), kv[0])):
        spaces.append(TokenSpace(d, first, int(group["size"]), tuple(sorted(group["sources"])),
                                 tuple(sorted(group["where"])), group["space"]))
        first += int(group["size"])
    position = {s.digest: i for i, s in enumerate(spaces)}
    return TokenPlan(spaces, {sid: position[d] for sid, d in shard_digest.items()})


def collisions(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[str]:
    """Where two runs' token spaces give one VLM id two tokenizers (empty: compatible)."""
    found = []
    for a in ours:
        for b in theirs:
            overlap = a["ids"][0] <= b["ids"][1] and b["ids"][0] <= a["ids"][1]
            if overlap and a["tokenizer"] != b["tokenizer"]:
                found.append(f"ids {max(a['ids'][0], b['ids'][0])}..{min(a['ids'][1], b['ids'][1])}: tokenizer "
                             f"{a['tokenizer'][:12]} ({', '.join(a['sources'])}) here, {b['tokenizer'][:12]} "
                             f"({', '.join(b['sources'])}) there")
            elif a["tokenizer"] == b["tokenizer"] and a["ids"] != b["ids"]:
                found.append(f"tokenizer {a['tokenizer'][:12]} at ids {a['ids']} here, {b['ids']} there")
    return found


def retokenize(plan: TokenPlan, shard_id: str, reader: Any, episode_index: np.ndarray, frame_index: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """A shard's (N, W) tokens and (N,) lengths with the plan's one tokenizer, rows in the shard's order."""
    tok = plan.tokenizer
    inputs = plan.token_inputs[shard_id]
    cols = reader.columns(list(inputs.values()))
    fps = reader.info().fps
    n = len(episode_index)
    chunks = np.zeros((n, tok.config.horizon, tok.config.dims))
    for ep in np.unique(episode_index):
        rows = np.flatnonzero(episode_index == ep)
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        columns = {role: np.asarray(cols[c], np.float64).reshape(n, -1)[rows] for role, c in inputs.items()}
        chunks[rows] = hand48.chunks(columns, fps, tok.config.horizon)
    return pad_token_arrays(tok.encode(chunks), tok.max_tokens, tok.pad_id)
