"""The `psi0 dataset` verbs as functions over episode tables: union (merge), filter, sample, split.

Every verb starts from `resolve(inputs)`: the union of its inputs (output roots and views, an episode
held by two inputs counted once), with feature renames applied and features checked for
compatibility (one fps; one dtype/shape/meaning per feature name, or per source with `mixture`).
Each verb returns the selected table plus the counts of its steps; `make_view` turns that into the
manifest. All of it is metadata: no frame is read except for stats of partially held shards
(`shards.views_stats`) and by `dedup` (`shards.views_dedup`).
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from shards import formats
from shards.location import Location
from shards.views import (ViewError, file_sha256, is_view_file, load_view, selection_json, software, _relative)
from shards.views_expr import where as where_mask
from shards.views_stats import view_stats
from shards.views_table import (QUALITY_PREFIX, EpisodeTable, ShardRow, concat, describe, open_root,
                                root_catalog)

MISSING_FRAME_KEYS = ("missing_frame_fraction", "tracker_lost_fraction")
"""Quality scores that measure frames without valid data (teleop records the tracker-lost fraction)."""


def mix64(x: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of x ^ seed: a seeded, stable pseudo-random key per episode."""
    key = np.uint64(np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)[0])
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) ^ key) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


# ------------------------------------------------------------------------------------------ inputs
@dataclass
class Working:
    """The union of a verb's inputs: table, renames per root, provenance."""

    table: EpisodeTable
    renames: dict[int, dict[str, str]]
    inputs: list[dict[str, Any]]
    lineage: list[dict[str, Any]]
    input_roots: list[list[int]]                 # per input: the root indices it contributed
    headers: dict[int, dict[str, Any]] = field(default_factory=dict)   # shard row -> fps, features, cameras
    features: dict[str, Any] = field(default_factory=dict)
    fps: float | None = None
    mixture: bool = False


def parse_renames(specs: Sequence[str] | None, n_inputs: int) -> dict[int | None, dict[str, str]]:
    """`old=new` (every input) or `K:old=new` (input K, counted from 0) -> {K or None: {old: new}}."""
    out: dict[int | None, dict[str, str]] = {}
    for spec in specs or ():
        target: int | None = None
        body = spec
        head, sep, rest = spec.partition(":")
        if sep and head.isdigit():
            target, body = int(head), rest
            if target >= n_inputs:
                raise ViewError(f"--rename {spec}: there are only {n_inputs} inputs (counted from 0)")
        old, sep, new = body.partition("=")
        if not sep or not old or not new:
            raise ViewError(f"--rename {spec!r}: expected OLD=NEW or INPUT:OLD=NEW")
        out.setdefault(target, {})[old] = new
    return out


def _compose(existing: dict[str, str], more: dict[str, str]) -> dict[str, str]:
    """Renames applied after `existing` (whose results are what `more` names)."""
    out = dict(existing)
    back = {v: k for k, v in existing.items()}
    for old, new in more.items():
        source = back.get(old, old)
        out[source] = new
    return {k: v for k, v in out.items() if k != v}


def resolve(paths: Sequence[str], renames: Sequence[str] | None = None, mixture: bool = False,
            check: bool = True) -> Working:
    """Open and verify the inputs, take their union, apply renames, check feature compatibility."""
    if not paths:
        raise ViewError("no inputs")
    tables: list[EpisodeTable] = []
    table_renames: list[dict[int, dict[str, str]]] = []
    inputs: list[dict[str, Any]] = []
    lineage: list[dict[str, Any]] = []
    for raw in paths:
        loc = Location.of(raw)
        if is_view_file(loc):
            view = load_view(loc)
            tables.append(view.table)
            table_renames.append(view.renames)
            inputs.append({"kind": "view", "path": str(raw), "uri": loc.uri, "sha256": view.sha256})
            for record in view.lineage():
                if record["sha256"] not in {r["sha256"] for r in lineage}:
                    lineage.append(record)
        else:
            try:
                catalog = root_catalog(loc)
            except FileNotFoundError as exc:
                raise ViewError(str(exc)) from None
            sha = file_sha256(catalog)
            tables.append(open_root(catalog, 0, sha))
            table_renames.append({})
            inputs.append({"kind": "root", "path": str(raw), "uri": catalog.parent.uri, "sha256": sha})
    table, root_maps = _union(tables)
    per_root: dict[int, dict[str, str]] = {}
    for t_renames, rmap in zip(table_renames, root_maps):
        for old_root, names in t_renames.items():
            new_root = rmap[old_root]
            if new_root in per_root and per_root[new_root] != names:
                raise ViewError(f"inputs rename the features of {table.roots[new_root].uri} differently "
                                f"({per_root[new_root]} vs {names})")
            per_root[new_root] = dict(names)
    cli = parse_renames(renames, len(paths))
    input_roots = [sorted(set(rmap.values())) for rmap in root_maps]
    for target, names in cli.items():
        for i, roots in enumerate(input_roots):
            if target is None or target == i:
                for r in roots:
                    per_root[r] = _compose(per_root.get(r, {}), names)
    work = Working(table, {k: v for k, v in per_root.items() if v}, inputs, lineage, input_roots, mixture=mixture)
    if check:
        check_features(work)
    return work


def _union(tables: list[EpisodeTable]) -> tuple[EpisodeTable, list[dict[int, int]]]:
    """One table over the inputs: a root given twice is one root, an episode given twice is one row."""
    whole = concat(tables)
    root_key: dict[tuple[str, str], int] = {}
    roots = []
    remap_root = []
    for info in whole.roots:
        key = (info.uri, info.sha256)
        if key not in root_key:
            same_place = [r for r in roots if r.uri == info.uri]
            if same_place:
                raise ViewError(f"two inputs hold {info.uri} with different catalogs (it changed in between)")
            root_key[key] = len(roots)
            roots.append(info)
        remap_root.append(root_key[key])
    shard_key: dict[tuple[int, str], int] = {}
    shards: list[ShardRow] = []
    remap_shard = []
    for s in whole.shards:
        key = (remap_root[s.root], s.shard_id)
        if key not in shard_key:
            shard_key[key] = len(shards)
            shards.append(ShardRow(key[0], s.shard_id, s.source, s.records))
        remap_shard.append(shard_key[key])
    whole.roots, whole.shards = roots, shards
    whole.shard = np.asarray(remap_shard, np.int32)[whole.shard] if len(whole) else whole.shard
    keys = (whole.shard.astype(np.int64) << 32) | whole.episode.astype(np.int64)
    _, first = np.unique(keys, return_index=True)
    if len(first) != len(whole):
        whole = whole.take(np.sort(first))
    # per input: its roots' old index -> new index
    maps, base = [], 0
    for t in tables:
        maps.append({i: remap_root[base + i] for i in range(len(t.roots))})
        base += len(t.roots)
    return whole.sorted(), maps


# ------------------------------------------------------------------------------------------ features
_HEADERS: dict[str, dict[str, dict[str, Any]]] = {}


def forget_headers() -> None:
    """Drop this process's cached shard headers (a benchmark timing a fresh process; a long-lived process
    that wants them re-read). Headers are keyed by root content hash, so a changed root is re-read anyway."""
    _HEADERS.clear()


def shard_header(work: Working, srow: int) -> dict[str, Any]:
    """fps, features and cameras of a shard (read once per shard, cached with the root's episode table),
    renamed."""
    if srow in work.headers:
        return work.headers[srow]
    row = work.table.shards[srow]
    root = work.table.roots[row.root]
    key = f"{root.uri}\0{root.sha256}"
    headers = _HEADERS.get(key)
    if headers is None:
        headers = _HEADERS[key] = read_headers(root, [s for s in work.table.shards if s.root == row.root])
    raw = headers[row.shard_id]
    names = work.renames.get(row.root, {})
    out = {"fps": raw["fps"], "features": {names.get(k, k): v for k, v in raw["features"].items()},
           "cameras": {names.get(k, k): v for k, v in raw["cameras"].items()}}
    work.headers[srow] = out
    return out


def read_headers(root: Any, rows: list[ShardRow]) -> dict[str, dict[str, Any]]:
    """{shard id: fps, features, cameras} for every shard of a root (cached per root location and catalog
    sha256: headers come from the shard folders, not the catalog)."""
    import hashlib
    import json

    from shards.views_table import cache_dir

    base = cache_dir()
    name = hashlib.sha256(f"{root.uri}\0{root.sha256}".encode()).hexdigest()
    path = None if base is None else base / f"{name}.headers.json"
    if path is not None and path.is_file():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    out = {}
    for row in rows:
        rec = row.record
        reader = formats.get(rec.format).open(root.location.child(rec.path))
        try:
            info = reader.info()
            out[row.shard_id] = {"fps": float(info.fps), "features": info.features,
                                 "cameras": {c.key: [c.height, c.width] for c in info.cameras}}
        finally:
            reader.close()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(out))
            os.replace(tmp, path)
        except OSError:
            pass
    return out


BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index", "timestamp.source")


def _signature(spec: dict[str, Any]) -> tuple[Any, ...]:
    names = spec.get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if spec.get("dtype") == "video":
        names = None
    return (str(spec.get("dtype")), tuple(spec.get("shape") or ()), tuple(names) if isinstance(names, list) else None)


def _describe_sig(sig: tuple[Any, ...]) -> str:
    dtype, shape, names = sig
    text = f"{dtype}{list(shape)}"
    if names:
        text += f" ({', '.join(map(str, names[:3]))}{', …' if len(names) > 3 else ''})"
    return text


def check_features(work: Working) -> None:
    """One fps for the whole union; per feature one dtype/shape/dim-name list (per source when
    `mixture`). Raises ViewError naming the feature, the variants and where each comes from."""
    table = work.table
    touched = np.unique(table.shard).tolist() if len(table) else []
    fps: dict[float, str] = {}
    variants: dict[str, dict[tuple[Any, ...], tuple[str, str]]] = {}
    for srow in touched:
        head = shard_header(work, srow)
        row = table.shards[srow]
        where = f"{table.roots[row.root].uri} ({row.shard_id})"
        fps.setdefault(head["fps"], where)
        for key, spec in head["features"].items():
            if key in BOOKKEEPING:
                continue
            variants.setdefault(key, {}).setdefault(_signature(spec), (row.source, where))
    if len(fps) > 1:
        listed = "; ".join(f"{v:g} fps in {w}" for v, w in fps.items())
        raise ViewError(f"inputs have different frame rates ({listed}): a view needs one fps")
    work.fps = next(iter(fps), None)
    features: dict[str, Any] = {}
    for key, found in sorted(variants.items()):
        if len(found) > 1:
            sources = [src for src, _ in found.values()]
            if work.mixture and len(set(sources)) == len(sources):
                features[key] = {src: _sig_json(sig) for sig, (src, _) in found.items()}
                continue
            (a, (_, wa)), (b, (_, wb)) = list(found.items())[:2]
            kind = "different shapes" if (a[0], a[1]) != (b[0], b[1]) else "the same shape but different dimension names"
            hint = ("rename one of them (--rename K:OLD=NEW, K counted from 0)" if not work.mixture else
                    "the variants come from the same source: rename one of them (--rename K:OLD=NEW)")
            raise ViewError(f"incompatible feature {key!r}: {_describe_sig(a)} in {wa} vs {_describe_sig(b)} in {wb} "
                            f"({kind}); {hint}" + ("" if work.mixture else
                                                    ", or pass --mixture to keep per-source features (training "
                                                    "normalizes each source on its own; export needs one feature set)"))
        features[key] = _sig_json(next(iter(found)))
    work.features = features


def _sig_json(sig: tuple[Any, ...]) -> dict[str, Any]:
    dtype, shape, names = sig
    return {"dtype": dtype, "shape": list(shape), "names": list(names) if names else None}


# ------------------------------------------------------------------------------------------ filter
@dataclass
class Step:
    name: str
    kept: int
    dropped: int

    def to_json(self) -> dict[str, Any]:
        return {"step": self.name, "kept": self.kept, "dropped": self.dropped}


@dataclass
class FilterSpec:
    sources: list[str] = field(default_factory=list)
    embodiments: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)              # exact task strings
    task_globs: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    episodes: list[str] = field(default_factory=list)           # episode keys / source ids to keep
    exclude_episodes: list[str] = field(default_factory=list)
    min_duration: float | None = None
    max_duration: float | None = None
    min_quality: dict[str, float] = field(default_factory=dict)
    max_quality: dict[str, float] = field(default_factory=dict)
    min_hand_qa: float | None = None
    max_retarget_residual: float | None = None
    max_missing_frames: float | None = None
    keep_unscored: bool = False
    where: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {}, False)}


def _score_mask(table: EpisodeTable, keys: list[str], test: Any, keep_unscored: bool) -> np.ndarray:
    """Rows passing `test` on every one of `keys` they have; rows with none of them pass only when
    `keep_unscored`."""
    meta = table.load_meta()
    ok = np.ones(len(table), bool)
    scored = np.zeros(len(table), bool)
    for key in keys:
        col = meta[QUALITY_PREFIX + key]
        has = ~np.isnan(col)
        scored |= has
        with np.errstate(invalid="ignore"):
            ok &= ~has | test(col)
    return ok & (scored | keep_unscored)


def _keys_matching(table: EpisodeTable, predicate: Any) -> list[str]:
    return [k for k in table.quality_keys() if predicate(k)]


def filter_table(table: EpisodeTable, spec: FilterSpec) -> tuple[EpisodeTable, list[Step]]:
    """Apply each condition in turn, recording how many episodes each kept and dropped."""
    steps: list[Step] = []
    mask = np.ones(len(table), bool)

    def step(name: str, cond: np.ndarray) -> None:
        nonlocal mask
        before = int(mask.sum())
        mask &= cond
        steps.append(Step(name, int(mask.sum()), before - int(mask.sum())))

    if spec.sources:
        wanted = set(spec.sources)
        step(f"source in {sorted(wanted)}", table.source.where(lambda s: s in wanted))
    if spec.embodiments:
        wanted_e = set(spec.embodiments)
        step(f"embodiment in {sorted(wanted_e)}", table.load_meta()["embodiment"].where(lambda s: s in wanted_e))
    if spec.tasks or spec.task_globs:
        exact, globs = set(spec.tasks), list(spec.task_globs)
        step("task " + " or ".join([f"== {t!r}" for t in sorted(exact)] + [f"matches {g!r}" for g in globs]),
             table.task.where(lambda s: s in exact or any(fnmatch.fnmatchcase(s, g) for g in globs)))
    if spec.categories:
        cats = set(spec.categories)
        step(f"task_category in {sorted(cats)}", table.load_meta()["task_category"].where(lambda s: s in cats))
    if spec.episodes:
        wanted_ids = set(spec.episodes)
        keys = table.keys()
        ids = table.source_id.to_pylist()
        step(f"episode in a list of {len(wanted_ids)}",
             np.fromiter((k in wanted_ids or s in wanted_ids for k, s in zip(keys, ids)), bool, len(table)))
    if spec.exclude_episodes:
        drop = set(spec.exclude_episodes)
        keys = table.keys()
        ids = table.source_id.to_pylist()
        step(f"episode not in a list of {len(drop)}",
             np.fromiter((k not in drop and s not in drop for k, s in zip(keys, ids)), bool, len(table)))
    if spec.min_duration is not None or spec.max_duration is not None:
        dur = table.duration()
        lo = -np.inf if spec.min_duration is None else spec.min_duration
        hi = np.inf if spec.max_duration is None else spec.max_duration
        with np.errstate(invalid="ignore"):
            step(f"duration in [{lo:g}, {hi:g}] s", (dur >= lo) & (dur <= hi))
    for key, value in sorted(spec.min_quality.items()):
        step(f"{key} >= {value:g}", _score_mask(table, [key] if key in table.quality_keys() else _absent(table, key),
                                                lambda c, v=value: c >= v, spec.keep_unscored))
    for key, value in sorted(spec.max_quality.items()):
        step(f"{key} <= {value:g}", _score_mask(table, [key] if key in table.quality_keys() else _absent(table, key),
                                                lambda c, v=value: c <= v, spec.keep_unscored))
    if spec.min_hand_qa is not None:
        keys = _keys_matching(table, lambda k: k == "hand_qa.detection_rate")
        step(f"hand_qa.detection_rate >= {spec.min_hand_qa:g}",
             _score_mask(table, keys, lambda c: c >= spec.min_hand_qa, spec.keep_unscored))
    if spec.max_retarget_residual is not None:
        keys = _keys_matching(table, lambda k: k.startswith("retarget.") and k.endswith("_m.p95"))
        step(f"every retarget.*_m.p95 <= {spec.max_retarget_residual:g} m",
             _score_mask(table, keys, lambda c: c <= spec.max_retarget_residual, spec.keep_unscored))
    if spec.max_missing_frames is not None:
        keys = _keys_matching(table, lambda k: k in MISSING_FRAME_KEYS)
        step(f"missing-frame fraction ({', '.join(keys) or 'not recorded'}) <= {spec.max_missing_frames:g}",
             _score_mask(table, keys, lambda c: c <= spec.max_missing_frames, spec.keep_unscored))
    for text in spec.where:
        step(f"where {text}", where_mask(table, text))
    return table.take(mask), steps


def _absent(table: EpisodeTable, key: str) -> list[str]:
    raise ViewError(f"no episode has the quality score {key!r}; scores here: {', '.join(table.quality_keys()) or 'none'}")


# ------------------------------------------------------------------------------------------ sample
def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to `weights` summing to `total` (ties to the earlier group)."""
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), np.int64)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    rest = total - int(counts.sum())
    order = np.lexsort((np.arange(len(weights)), -(exact - counts)))
    counts[order[:rest]] += 1
    return counts


def sample_table(table: EpisodeTable, fraction: float | None = None, count: int | None = None, seed: int = 0,
                 stratify: str | None = None, by: str = "episodes") -> tuple[EpisodeTable, list[Step]]:
    """A seeded sample: `fraction` of the episodes (or of the frames, `by="frames"`) or `count` episodes,
    optionally stratified by task (each task contributes its share). Deterministic in (seed, episodes)."""
    if (fraction is None) == (count is None):
        raise ViewError("sample needs exactly one of --fraction or --count")
    if fraction is not None and not 0 < fraction <= 1:
        raise ViewError(f"--fraction must be in (0, 1], got {fraction}")
    if count is not None and count < 0:
        raise ViewError("--count must be >= 0")
    if by not in ("episodes", "frames"):
        raise ViewError("--by must be episodes or frames")
    if stratify not in (None, "task"):
        raise ViewError("--stratify supports only: task")
    n = len(table)
    key = mix64(table.hashes(), seed)
    strata = table.task.codes if stratify == "task" else np.zeros(n, np.int32)
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)] if n else []
    weights = np.asarray([table.frames[g].sum() if by == "frames" else len(g) for g in groups], np.float64)
    total_w = float(weights.sum())
    if count is not None:
        target_total = min(count, n) if by == "episodes" else None
    else:
        target_total = int(round(fraction * n)) if by == "episodes" else None
    keep = np.zeros(n, bool)
    if by == "episodes":
        quota = _largest_remainder(weights, int(target_total))
        for g, q in zip(groups, quota):
            keep[g[np.argsort(key[g], kind="stable")[:q]]] = True
    else:
        goal = (fraction if fraction is not None else min(1.0, count / max(n, 1))) * total_w
        shares = _largest_remainder(weights, int(round(goal))) if total_w else np.zeros(len(groups))
        for g, share in zip(groups, shares):
            order = g[np.argsort(key[g], kind="stable")]
            cum = np.cumsum(table.frames[order])
            take = int(np.searchsorted(cum, share, side="left")) + 1 if share > 0 else 0
            keep[order[:min(take, len(order))]] = True
    what = f"{fraction:g}" if fraction is not None else f"{count} episodes"
    name = f"sample {what} by {by}, seed {seed}" + (f", stratified by {stratify}" if stratify else "")
    return table.take(keep), [Step(name, int(keep.sum()), n - int(keep.sum()))]


# ------------------------------------------------------------------------------------------ split
def parse_fractions(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.replace("_", "").replace("-", "").isalnum():
            raise ViewError(f"--fractions {text!r}: expected NAME=FRACTION,... e.g. train=0.8,val=0.2")
        try:
            out[name] = float(value)
        except ValueError:
            raise ViewError(f"--fractions: {value!r} is not a number") from None
    if not out or any(v < 0 for v in out.values()) or abs(sum(out.values()) - 1.0) > 1e-6:
        raise ViewError(f"--fractions must be >= 0 and sum to 1, got {out}")
    return out


def split_table(table: EpisodeTable, fractions: dict[str, float], seed: int = 0,
                by: str = "episode") -> dict[str, tuple[EpisodeTable, list[Step]]]:
    """Disjoint splits covering the table, never splitting an episode; `by="task"` keeps every episode of
    a task in one split (task-level hold-out). Exact episode counts by episode; by task, each task goes to
    the split its place in the seeded task order falls into (cumulative episode share)."""
    if by not in ("episode", "task"):
        raise ViewError("--by must be episode or task")
    names = list(fractions)
    n = len(table)
    assign = np.zeros(n, np.int64)
    if by == "episode":
        order = np.argsort(mix64(table.hashes(), seed), kind="stable")
        counts = _largest_remainder(np.asarray([fractions[k] for k in names]), n)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for i in range(len(names)):
            assign[order[bounds[i]:bounds[i + 1]]] = i
    else:
        tasks = table.task.values
        import hashlib

        task_hash = np.asarray([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
                                for t in tasks], np.uint64)
        task_order = np.argsort(mix64(task_hash, seed), kind="stable") if len(tasks) else np.zeros(0, int)
        sizes = np.bincount(table.task.codes, minlength=len(tasks))[task_order]
        mid = (np.cumsum(sizes) - sizes / 2.0) / max(n, 1)
        edges = np.cumsum([fractions[k] for k in names])
        split_of_task = np.empty(len(tasks), np.int64)
        split_of_task[task_order] = np.minimum(np.searchsorted(edges, mid, side="right"), len(names) - 1)
        assign = split_of_task[table.task.codes] if n else assign
    out = {}
    for i, name in enumerate(names):
        mask = assign == i
        out[name] = (table.take(mask), [Step(f"split {name} ({fractions[name]:g}) by {by}, seed {seed}",
                                             int(mask.sum()), n - int(mask.sum()))])
    return out


# ------------------------------------------------------------------------------------------ manifest
def make_view(work: Working, table: EpisodeTable, operation: dict[str, Any], steps: Iterable[Step],
              out: str | Location, stats: str = "exact", dropped: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The manifest of `table` (a subset of `work.table`) made by `operation`, to be written at `out`."""
    table = table.sorted()
    selection, remap = selection_json(table)
    out_loc = Location.of(out)
    base = out_loc.parent
    roots = []
    for old, new in sorted(remap.items(), key=lambda kv: kv[1]):
        info = table.roots[old]
        entry: dict[str, Any] = {"uri": info.uri, "sha256": info.sha256, "kind": "root"}
        rel = _relative(info.location, base)
        if rel:
            entry["rel"] = rel
        if work.renames.get(old):
            entry["renames"] = dict(sorted(work.renames[old].items()))
        roots.append(entry)
    inputs = []
    for entry in work.inputs:
        item = {k: entry[k] for k in ("kind", "uri", "sha256")}
        rel = _relative(Location.of(entry["uri"]), base)
        if rel:
            item["rel"] = rel
        inputs.append(item)
    counts = describe(table)
    touched = np.unique(table.shard).tolist() if len(table) else []
    fps_of = {s: shard_header(work, s)["fps"] for s in touched}
    shard_fps = np.asarray([fps_of.get(s, 0.0) for s in range(len(table.shards))] or [0.0])
    per_row = shard_fps[table.shard] if len(table) else np.zeros(0)
    counts["hours"] = float((table.frames / np.where(per_row > 0, per_row, np.inf)).sum() / 3600)
    computed = view_stats(table, work.renames, stats)
    tokenizer = _tokenizer(table, remap)
    data: dict[str, Any] = {
        "format": "psi0.view/1", "software": software(), "operation": operation, "inputs": inputs,
        "lineage": work.lineage, "roots": roots, "selection": selection, "counts": counts,
        "steps": [s.to_json() for s in steps], "tasks": sorted(table.task.counts()),
        "features": work.features, "fps": work.fps, "mixture": work.mixture,
        "stats": computed.stats, "stats_by_source": computed.by_source, "stats_info": computed.info(),
        "tokenizer": tokenizer,
    }
    if dropped is not None:
        data["dropped"] = dropped
    return data


def _tokenizer(table: EpisodeTable, remap: dict[int, int]) -> dict[str, Any] | None:
    """The roots' FAST tokenizer when they all have the same one (token ids must mean one thing)."""
    found = [(new, table.roots[old]) for old, new in sorted(remap.items(), key=lambda kv: kv[1])]
    if not found or any(r.tokenizer is None for _, r in found):
        return None
    first = found[0][1].tokenizer
    if len(found) > 1 and len({_tokenizer_hash(r) for _, r in found}) > 1:
        return None
    return {"root": found[0][0], "path": first.get("path") or "tokenizer", "config": first.get("config") or {}}


def _tokenizer_hash(root: Any) -> str:
    """sha256 over the files of a root's tokenizer folder (same config is not the same vocabulary)."""
    import hashlib

    folder = root.location.child(str(root.tokenizer.get("path") or "tokenizer"))
    digest = hashlib.sha256()
    for f in folder.glob("**/*"):
        digest.update(f.relative_to(folder).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()
