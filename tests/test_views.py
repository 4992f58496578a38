"""Views (`psi0 dataset`): every verb on the built-in samples' output roots, split disjointness and coverage,
stats merged from sketches vs stats recomputed over the view's frames, refusing changed / vanished inputs and
incompatible merges, renames, --where, dedup, presets, inspect, and training over a view."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from schemas.stats import QUANTILE_KEYS, QUANTILES, FeatureStats
from shards.dataset_cli import main as dataset
from shards.reader import open_output
from shards.views import ViewError, decode_ranges, encode_ranges, load_view
from train_inprocess import train_in_process
from views_fixture import copy_root, reseal, sample_roots

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def roots() -> dict[str, Path]:
    return sample_roots()


def run(*argv: str) -> None:
    assert dataset([str(a) for a in argv]) == 0, argv


def view_episodes(path: Path) -> list[tuple[str, str, int, str]]:
    out = open_output(path)
    return sorted((e.source_id, e.shard, e.episode_index, e.task) for e in out.episodes())


def view_frames(path: Path, key: str) -> dict[str, np.ndarray]:
    """The view's frames of one feature per shard, read episode by episode through the view's own readers."""
    out = open_output(path)
    parts: dict[str, list[np.ndarray]] = {}
    for e in out.episodes():
        reader, info = out.episode(e.source_id)
        parts.setdefault(e.shard, []).append(reader.columns([key], episode=info.index)[key].reshape(info.length, -1))
    return {k: np.concatenate(v).astype(np.float64) for k, v in parts.items()}


def interpolated_cdf(parts: list[np.ndarray], v: np.ndarray, left: bool) -> np.ndarray:
    """The frame-weighted mean of each part's piecewise-linear CDF (the inverse of np.quantile's linear
    method) at v per dimension; `left`: its limit from below."""
    total = np.zeros(len(v))
    count = 0
    for x in parts:
        n = len(x)
        for d in range(x.shape[1]):
            s = np.sort(x[:, d])
            k = int(np.searchsorted(s, v[d], side="left" if left else "right"))
            if n == 1 or k == 0:
                h = 0.0 if k == 0 else 1.0
            elif k == n:
                h = 1.0
            else:
                gap = s[k] - s[k - 1]
                h = ((k - 1) + ((v[d] - s[k - 1]) / gap if gap > 0 else 1.0)) / (n - 1)
            total[d] += n * h
        count += n
    return total / count


def assert_within_sketch_bound(parts: list[np.ndarray], estimate: np.ndarray, q: float) -> None:
    """The sketch's guarantee: each part's grid CDF is within 1/400 of its interpolated CDF H from below, so a
    merged q-quantile v has H(v) >= q and H(v-) <= q + 1/400. shard.json stores grids as float32, so v may sit
    up to one float32 spacing from the float64 grid value: H is evaluated that far to either side."""
    ulp = np.spacing(np.abs(estimate).astype(np.float32)).astype(np.float64)
    assert (interpolated_cdf(parts, estimate + ulp, left=False) >= q - 1e-12).all(), q
    assert (interpolated_cdf(parts, estimate - ulp, left=True) <= q + 1 / 400 + 1e-12).all(), q


def test_ranges_round_trip():
    for idx in ([], [0], [0, 1, 2, 5, 7, 8, 9], list(range(1000)) + [5000]):
        assert decode_ranges(encode_ranges(idx)).tolist() == sorted(set(idx))
    assert encode_ranges([3, 1, 2, 9]) == "1-3,9"


def test_every_verb_on_the_samples(roots, tmp_path):
    he, eg = roots["he"], roots["eg"]
    whole_he = view_episodes(he)
    run("filter", he, "--embodiment", "g1_dex3", "--out", tmp_path / "g1.json")
    g1 = view_episodes(tmp_path / "g1.json")
    assert 0 < len(g1) < len(whole_he)
    assert {open_output(tmp_path / "g1.json").episode(sid)[1].embodiment for sid, *_ in g1} == {"g1_dex3"}

    run("filter", eg, "--task-glob", "*lid*", "--min-duration", "0.5", "--out", tmp_path / "lid.json")
    assert {t for *_, t in view_episodes(tmp_path / "lid.json")} == {"Put the lid on the jar.", "Take the lid off the jar."}
    run("filter", eg, "--task", "Stack the two cups.", "--where", "frames >= 1 and not glob(task, 'Un*')",
        "--out", tmp_path / "stack.json")
    assert [t for *_, t in view_episodes(tmp_path / "stack.json")] == ["Stack the two cups."]
    run("filter", eg, "--episodes", "egodex/part1/add_remove_lid/0,egodex/part2/stack_unstack_cups/1",
        "--out", tmp_path / "ids.json")
    assert [s for s, *_ in view_episodes(tmp_path / "ids.json")] == ["egodex/part1/add_remove_lid/0",
                                                                    "egodex/part2/stack_unstack_cups/1"]
    run("filter", eg, "--min-quality", "left_hand_confidence_mean=0", "--out", tmp_path / "conf.json")
    assert len(view_episodes(tmp_path / "conf.json")) == len(view_episodes(eg))

    run("sample", eg, "--count", "3", "--seed", "1", "--out", tmp_path / "s3.json")
    s3 = view_episodes(tmp_path / "s3.json")
    run("sample", eg, "--count", "3", "--seed", "1", "--out", tmp_path / "s3b.json")
    assert len(s3) == 3 and view_episodes(tmp_path / "s3b.json") == s3              # seeded: the same draw
    run("sample", eg, "--fraction", "0.5", "--stratify", "task", "--out", tmp_path / "half.json")
    assert len(view_episodes(tmp_path / "half.json")) == 3

    run("merge", tmp_path / "lid.json", tmp_path / "stack.json", tmp_path / "lid.json", "--out", tmp_path / "m.json")
    assert view_episodes(tmp_path / "m.json") == sorted(view_episodes(tmp_path / "lid.json")
                                                        + view_episodes(tmp_path / "stack.json"))

    data = json.loads((tmp_path / "s3.json").read_text())
    assert data["format"] == "psi0.view/1" and data["operation"]["verb"] == "sample" and data["operation"]["seed"] == 1
    assert data["inputs"] == [{"kind": "root", "uri": str(eg), "sha256": data["roots"][0]["sha256"],
                               "rel": data["inputs"][0]["rel"]}]
    assert data["software"]["psi0"] and data["counts"]["episodes"] == 3 and data["steps"][0]["kept"] == 3


def test_split_is_disjoint_covers_and_never_splits_an_episode(roots, tmp_path):
    eg = roots["eg"]
    whole = set(view_episodes(eg))
    for by in ("episode", "task"):
        for seed in (0, 1, 2):
            out = tmp_path / f"{by}{seed}"
            run("split", eg, "--fractions", "train=0.5,val=0.25,test=0.25", "--by", by, "--seed", str(seed),
                "--out", out)
            parts = {name: set(view_episodes(out / f"{name}.json")) for name in ("train", "val", "test")}
            assert set().union(*parts.values()) == whole
            assert sum(len(p) for p in parts.values()) == len(whole)
            if by == "episode":                  # 6 episodes: 3 / 1.5 / 1.5, the remainder to the earlier split
                assert [len(parts[k]) for k in ("train", "val", "test")] == [3, 2, 1]
            else:
                tasks = {k: {t for *_, t in p} for k, p in parts.items()}
                assert not (tasks["train"] & tasks["val"]) and not (tasks["train"] & tasks["test"]) \
                    and not (tasks["val"] & tasks["test"])
    with pytest.raises(ViewError, match="sum to 1"):
        from shards.views_ops import parse_fractions
        parse_fractions("train=0.8,val=0.3")


def test_view_stats_equal_stats_recomputed_over_the_views_frames(roots, tmp_path):
    he, eg = roots["he"], roots["eg"]
    copy = copy_root(he, tmp_path / "he2")
    run("sample", he, "--count", "3", "--seed", "4", "--out", tmp_path / "part.json")       # partly held shards
    run("merge", he, copy, "--out", tmp_path / "merged.json")                            # whole shards, 2 roots
    run("filter", eg, "--task-glob", "*cups*", "--out", tmp_path / "cups.json")
    for name in ("part.json", "merged.json", "cups.json"):
        view = load_view(tmp_path / name)
        stats = view.data["stats"]
        for key in ("action", "observation.state"):
            parts = list(view_frames(tmp_path / name, key).values())
            values = np.concatenate(parts)
            exact = FeatureStats.from_values(values).to_lerobot()
            assert stats[key]["count"] == [len(values)]
            np.testing.assert_allclose(stats[key]["mean"], exact["mean"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(stats[key]["std"], exact["std"], rtol=1e-7, atol=1e-9)
            np.testing.assert_array_equal(stats[key]["min"], exact["min"])
            np.testing.assert_array_equal(stats[key]["max"], exact["max"])
            for qk, q in zip(QUANTILE_KEYS, QUANTILES):
                assert_within_sketch_bound(parts, np.asarray(stats[key][qk]), q)
        info = view.data["stats_info"]
        assert info["basis"] == "selection"
    assert load_view(tmp_path / "part.json").data["stats_info"]["shards_recomputed"] >= 1
    assert load_view(tmp_path / "merged.json").data["stats_info"]["shards_recomputed"] == 0


def test_changed_or_vanished_inputs_are_refused(roots, tmp_path):
    root = copy_root(roots["eg"], tmp_path / "eg")
    run("filter", root, "--task-glob", "*cups*", "--out", tmp_path / "a.json")
    run("sample", tmp_path / "a.json", "--count", "1", "--out", tmp_path / "b.json")
    load_view(tmp_path / "b.json")
    # a shard file of an input modified after it was written (its catalog unchanged): reading it through the
    # view refuses, naming the file
    from shards.integrity import ShardIntegrityError, forget

    out = open_output(tmp_path / "b.json")
    record = out.catalog.shards[0]
    parquet = next(out.location(record).path.glob("data/*/*.parquet"))
    saved = parquet.read_bytes()
    parquet.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
    forget()
    with pytest.raises(ShardIntegrityError, match=r"file-000\.parquet differs"):
        out.open_shard(record)
    parquet.write_bytes(saved)
    forget()
    out.open_shard(record)
    original = (tmp_path / "a.json").read_bytes()
    (tmp_path / "a.json").write_bytes(original.replace(b'"verb": "filter"', b'"verb": "filter "'))
    with pytest.raises(ViewError, match=r"input view .*a\.json changed"):
        load_view(tmp_path / "b.json")
    (tmp_path / "a.json").write_bytes(original)
    # a hand-edited or foreign file is refused by name, never a traceback from deep inside
    good = json.loads(original)
    for bad in ({**good, "roots": [1]}, {**good, "roots": [{"kind": "root"}]}, {**good, "inputs": "x"},
                {**good, "selection": [{"root": 0}]}):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ViewError, match=r"bad\.json: malformed view"):
            load_view(tmp_path / "bad.json")
    catalog = root / "catalog.json"
    catalog.write_text(catalog.read_text() + " ")
    with pytest.raises(ViewError, match=rf"input root {root}.* changed"):
        load_view(tmp_path / "a.json")
    assert dataset(["sample", str(tmp_path / "a.json"), "--count", "1", "--out", str(tmp_path / "c.json")]) == 2
    shutil.rmtree(root)
    with pytest.raises(ViewError, match=rf"input root {root} vanished"):
        open_output(tmp_path / "a.json")


def _edit_info(root: Path, edit) -> None:
    for info in root.glob("shards/*/meta/info.json"):
        data = json.loads(info.read_text())
        edit(data)
        info.write_text(json.dumps(data))
    reseal(root)                # a different dataset, not a tampered one


def test_incompatible_merges_are_refused_with_the_reason(roots, tmp_path):
    he, eg = roots["he"], roots["eg"]
    with pytest.raises(ViewError, match=r"incompatible feature 'action': float32\[48\].* vs float32\[36\]"):
        from shards.views_ops import resolve
        resolve([str(eg), str(he)])
    run("merge", eg, he, "--mixture", "--out", tmp_path / "mix.json")
    mix = load_view(tmp_path / "mix.json")
    assert set(mix.data["features"]["action"]) == {"egodex", "humanoid_everyday"}
    assert set(mix.data["stats_by_source"]) == {"egodex", "humanoid_everyday"} and "action" not in mix.data["stats"]

    slow = copy_root(he, tmp_path / "slow")
    _edit_info(slow, lambda d: d.update(fps=15))
    with pytest.raises(ViewError, match="different frame rates"):
        resolve([str(he), str(slow)])
    renamed_dims = copy_root(he, tmp_path / "dims")
    _edit_info(renamed_dims, lambda d: d["features"]["action"].update(names=[f"x{i}" for i in range(36)]))
    with pytest.raises(ViewError, match="'action'.*different dimension names"):
        resolve([str(he), str(renamed_dims)], mixture=True)           # same source: --mixture does not help
    with pytest.raises(ViewError, match="'action'"):
        resolve([str(renamed_dims), str(he)], renames=["0:observation.state=nothing"])


def test_rename_reaches_every_reader(roots, tmp_path):
    he = roots["he"]
    other = copy_root(he, tmp_path / "other")
    _edit_info(other, lambda d: d["features"].update(
        {"observation.images.head": d["features"].pop("observation.images.egocentric")}))
    from shards.views_export import plan_export

    run("merge", he, other, "--out", tmp_path / "noren.json")          # two camera names: a view may hold that
    with pytest.raises(ViewError, match="different features.*observation.images"):
        plan_export(tmp_path / "noren.json", "lerobot", tmp_path / "x")  # one dataset may not
    run("merge", he, other, "--rename", "1:observation.images.head=observation.images.egocentric",
        "--out", tmp_path / "cam.json")
    plan = plan_export(tmp_path / "cam.json", "lerobot", tmp_path / "x")
    assert list(plan.cameras) == ["observation.images.egocentric"] and plan.episodes == 10
    run("filter", he, "--embodiment", "g1_dex3", "--rename", "observation.state=observation.state.robot",
        "--out", tmp_path / "ren.json")
    out = open_output(tmp_path / "ren.json")
    reader = out.open_shard(out.shard_ids()[0])
    assert "observation.state.robot" in reader.info().features and "observation.state" not in reader.info().features
    cols = reader.columns(["observation.state.robot", "observation.state"])
    assert list(cols) == ["observation.state.robot"] and cols["observation.state.robot"].shape[1] == 36
    assert "observation.state.robot" in out.stats() and "observation.state" not in out.stats()
    run("sample", tmp_path / "ren.json", "--count", "1", "--rename", "observation.state.robot=state",
        "--out", tmp_path / "ren2.json")
    assert load_view(tmp_path / "ren2.json").data["roots"][0]["renames"] == {"observation.state": "state"}


def test_where_expressions(roots):
    from shards.views_expr import ExprError, where
    from shards.views_ops import resolve

    table = resolve([str(roots["he"])]).table
    emb = table.load_meta()["embodiment"].strings()
    tasks = table.task.strings()
    np.testing.assert_array_equal(where(table, 'embodiment == "h1_inspire"'), np.array(emb) == "h1_inspire")
    np.testing.assert_array_equal(where(table, 'task in ["Walk and turn", "Wipe the table"] or frames > 27'),
                                  np.array([t in ("Walk and turn", "Wipe the table") for t in tasks]) | (table.frames > 27))
    np.testing.assert_array_equal(where(table, "duration * 30 == frames"), np.ones(len(table), bool))
    np.testing.assert_array_equal(where(table, 'startswith(id, "humanoid_everyday/wipe")'),
                                  np.array([s.startswith("humanoid_everyday/wipe") for s in table.source_id.to_pylist()]))
    for bad in ("__import__('os')", "frames.__class__", "nonexistent > 1", "frames", "task + 1", "open('x') == 1"):
        with pytest.raises(ExprError):
            where(table, bad)


def _invert_video(path: Path) -> None:
    """Re-encode an MP4 with every picture's colours inverted (same length, rate and size)."""
    import av

    from shards.video import EpisodeEncoder, VideoConfig

    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(stream)]
    height, width = frames[0].shape[:2]
    tmp = path.parent / f"{path.stem}.inverted.mp4"
    enc = EpisodeEncoder(tmp, fps, VideoConfig(width=width, height=height))
    for img in frames:
        enc.add(av.VideoFrame.from_ndarray(255 - img, format="rgb24").reformat(format="yuv420p"))
    enc.close()
    tmp.replace(path)


def test_dedup_fingerprint_resample_equals_numpy_interp_bit_for_bit():
    """The one-pass resample of every column gives np.interp's values per column exactly (dedup decisions and
    their recorded distances must not move), with infinities and NaNs in the columns too."""
    from shards.views_dedup import resample

    rng = np.random.default_rng(0)
    for length in [*range(1, 40), 95, 96, 97, 900, 901, 3001]:
        for points in (2, 3, 32, 33, 100):
            v = rng.normal(size=(length, 5)) * 10.0 ** rng.integers(-3, 4, size=5)
            v[:, 2] = np.where(rng.random(length) < 0.1, np.inf, v[:, 2])
            v[:, 3] = np.where(rng.random(length) < 0.1, -np.inf, v[:, 3])
            v[:, 4] = np.where(rng.random(length) < 0.1, np.nan, v[:, 4])
            if length == 1:
                expected = np.repeat(v, points, axis=0)
            else:
                src, dst = np.linspace(0, 1, length), np.linspace(0, 1, points)
                expected = np.stack([np.interp(dst, src, v[:, d]) for d in range(5)], axis=1)
            got = resample(v, points)
            assert np.array_equal(got, expected, equal_nan=True), (length, points)
            assert np.array_equal(np.signbit(got), np.signbit(expected)), (length, points)


def test_dedup_exact_and_near(roots, tmp_path):
    he = roots["he"]
    twin = copy_root(he, tmp_path / "twin")
    run("merge", he, twin, "--out", tmp_path / "both.json")
    assert len(view_episodes(tmp_path / "both.json")) == 10
    run("dedup", tmp_path / "both.json", "--no-near", "--out", tmp_path / "d.json")
    d = load_view(tmp_path / "d.json")
    assert len(d.table) == 5 and {s.root for s in d.table.shards} == {0}             # kept: the first input's
    assert len(d.data["dropped"]) == 5 and all(x["kind"] == "exact" for x in d.data["dropped"])
    assert all(x["episode"].endswith("@1") and x["duplicate_of"].endswith("@0") for x in d.data["dropped"])

    # a near copy: one shard's state and action perturbed by 0.1 % of each dimension's range
    near = copy_root(he, tmp_path / "near")
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = near / "shards" / "humanoid_everyday-00000" / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    schema_meta = table.schema.metadata
    for key in ("observation.state", "action"):
        col = table.column(key).combine_chunks()
        values = col.flatten().to_numpy().reshape(len(table), -1)
        span = values.max(axis=0) - values.min(axis=0)               # constant dims (padding) stay constant
        noisy = values + (1e-3 * span * np.random.default_rng(0).normal(size=values.shape)).astype(np.float32)
        table = table.set_column(table.column_names.index(key), key,
                                 pa.FixedSizeListArray.from_arrays(pa.array(noisy.reshape(-1)), values.shape[1]))
    pq.write_table(table.replace_schema_metadata(schema_meta), path)
    shutil.rmtree(near / "shards" / "humanoid_everyday-00000.zarr")
    reseal(near)
    run("merge", he, near, "--out", tmp_path / "both2.json")
    run("dedup", tmp_path / "both2.json", "--out", tmp_path / "d2.json")
    dropped = {x["episode"]: x for x in load_view(tmp_path / "d2.json").data["dropped"]}
    assert len(dropped) == 5
    perturbed = {k for k, x in dropped.items() if x["kind"] == "near"}
    assert len(perturbed) == 2 and all(0 < dropped[k]["distance"] <= 0.01 for k in perturbed)
    run("dedup", tmp_path / "both2.json", "--threshold", "0", "--out", tmp_path / "d3.json")
    assert len(load_view(tmp_path / "d3.json").data["dropped"]) == 3

    # --video: the near copies' pictures are the originals' -> still near; invert their pictures -> the poses
    # alone still match, poses + video no longer do
    run("dedup", tmp_path / "both2.json", "--video", "--out", tmp_path / "v1.json")
    assert len(load_view(tmp_path / "v1.json").data["dropped"]) == 5
    for mp4 in (near / "shards" / "humanoid_everyday-00000" / "videos").rglob("*.mp4"):
        _invert_video(mp4)
    reseal(near)
    run("merge", he, near, "--out", tmp_path / "both3.json")
    run("dedup", tmp_path / "both3.json", "--out", tmp_path / "v2.json")
    assert len(load_view(tmp_path / "v2.json").data["dropped"]) == 5
    run("dedup", tmp_path / "both3.json", "--video", "--out", tmp_path / "v3.json")
    dropped = load_view(tmp_path / "v3.json").data["dropped"]
    assert len(dropped) == 3 and all(x["kind"] == "exact" for x in dropped)


def test_near_duplicate_search_has_no_false_negatives():
    from shards.views_dedup import DedupSpec, _near

    rng = np.random.default_rng(3)
    n, k, d = 300, 32, 4
    base = rng.normal(size=(n, k, d))
    base[1::3] = base[0::3][: len(base[1::3])] + rng.normal(scale=1e-3, size=base[1::3].shape)
    poses = [("s", b) for b in base]
    keep = np.ones(n, bool)
    dropped: list = []
    _near([str(i) for i in range(n)], poses, [None] * n, keep, dropped, DedupSpec(threshold=0.01))
    lo, hi = base.min(axis=(0, 1)), base.max(axis=(0, 1))
    flat = ((base - lo) / (hi - lo)).reshape(n, -1)
    brute_keep = np.ones(n, bool)
    for i in range(n):
        earlier = [j for j in range(i) if brute_keep[j]]
        if earlier and (np.sqrt(((flat[earlier] - flat[i]) ** 2).mean(axis=1)) <= 0.01).any():
            brute_keep[i] = False
    np.testing.assert_array_equal(keep, brute_keep)
    assert (~keep).sum() == len(base[1::3])


def test_presets_and_inspect_show_the_lineage(roots, tmp_path):
    from shards.inspect import render, summarize
    from shards.views_presets import build_preset

    views = build_preset("stage1-mix", [roots["eg"], roots["he"]], tmp_path / "recipe", seed=0)
    mix = load_view(views["train"])
    verbs = [(step["operation"]["verb"], step["operation"].get("preset")) for step in mix.lineage()]
    assert verbs == [("filter", "egodex-10pct"), ("sample", "egodex-10pct"), ("filter", "he-only"),
                     ("merge", "stage1-mix")]
    assert mix.data["counts"]["sources"] == {"egodex": 1, "humanoid_everyday": 5}
    text = render(summarize(views["train"]))
    assert "lineage" in text and "sample 0.1 by episodes, seed 0, stratified by task: kept 1, dropped 5" in text
    held = build_preset("holdout", [roots["eg"]], tmp_path / "ho", seed=0)
    assert set(held) == {"train", "val"}
    assert dataset(["preset", "no-such", str(roots["eg"]), str(tmp_path / "x")]) == 2


def test_training_data_reads_only_the_views_episodes(roots, tmp_path):
    from training.data import DataConfig, make_loader, open_shards

    run("filter", roots["he"], "--embodiment", "g1_dex3", "--out", tmp_path / "g1.json")
    view = load_view(tmp_path / "g1.json")
    index = open_shards([tmp_path / "g1.json"])
    assert index.frames() == int(view.table.frames.sum())
    assert any(s.episodes is not None for s in index.shards)        # a partly held shard
    stats = index.stats("humanoid_everyday", "action")
    np.testing.assert_allclose(stats["mean"], view.data["stats_by_source"]["humanoid_everyday"]["action"]["mean"])
    loader, sampler = make_loader([tmp_path / "g1.json"], DataConfig(image_size=None), batch_size=8, seed=0)
    assert len(loader.dataset) == index.frames()
    embodiments = set()
    for batch in loader:
        embodiments.update(batch["embodiment"])
    assert embodiments == {"g1_dex3"}
    ds = loader.dataset
    assert sorted(sampler.indices(0)) == list(range(len(ds)))           # an epoch: every sample once
    rows = set()
    for i in range(len(ds)):                                              # ... and the samples are the view's frames
        shard, row = ds.locate(i)
        cols = ds.columns(shard)
        real = int(cols.rows[row]) if cols.rows is not None else row
        rows.add((ds.shards[shard].shard_id, int(cols.episode_index[real]), int(cols.frame_index[real])))
    expected = {(e.shard, e.episode_index, f) for e in open_output(tmp_path / "g1.json").episodes()
                for f in range(e.frames)}
    assert rows == expected
    run("filter", roots["he"], "--embodiment", "h1_inspire", "--out", tmp_path / "h1.json")
    with pytest.raises(ValueError, match="merge them"):
        open_shards([tmp_path / "g1.json", tmp_path / "h1.json"]).stats("humanoid_everyday", "action")


@pytest.mark.slow
def test_train_cli_trains_on_a_view(roots, tmp_path):
    run("filter", roots["he"], "--embodiment", "g1_dex3", "--out", tmp_path / "g1.json")
    train_in_process("--shards", str(tmp_path / "g1.json"), "--stage", "2", "--config", "tiny", "--image-size", "native",
                     "--batch-size", "4", "--steps", "2", "--out", str(tmp_path / "run"), "--no-progress",
                     "--device", "cpu", "--log-every", "1")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and all(np.isfinite(x["loss"]) for x in lines)
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["shards"] == [str(tmp_path / "g1.json")]


def test_cli_help_teaches():
    for argv in (["--help"], ["filter", "--help"], ["export", "--help"], ["preset", "--help"]):
        out = subprocess.run([sys.executable, "-m", "psi0", "dataset", *argv], cwd=REPO, capture_output=True, text=True,
                             timeout=60, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stderr
