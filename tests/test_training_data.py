"""training.data against real shards written by the ingest pipeline (EgoDex + Humanoid Everyday samples,
LeRobot v3 + Zarr v3, several shards per source): values equal the parquet rows, frames equal
LeRobotDataset's, formats agree, normalization inverts, and the sampler mixes, shards and resumes exactly."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from schemas.actions import PSI0_ACTION
from schemas.episode import column_to_numpy
from training.data import ChunkDataset, DataConfig, MixtureSampler, collate, make_loader, open_shards

os.environ.setdefault("HF_HUB_OFFLINE", "1")
H = 8

CAM = "observation.images.egocentric"
SOURCES = ("egodex", "humanoid_everyday")


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """Two output roots from the real job (local runner), tiny video, 2 episodes per shard, FAST tokens."""
    from pipelines.runners import run_local
    from pipelines.stages import JobConfig
    from samples import egodex as egodex_sample
    from samples import humanoid_everyday as he_sample

    base = tmp_path_factory.mktemp("shards")
    egodex_sample.write_sample(base / "in" / "egodex", resolution=(96, 64), episodes_per_task=1, seconds=1.2)
    he_sample.write_sample(base / "in" / "humanoid_everyday", resolution=(96, 64), seconds=1.2)
    out = {}
    for source, horizon in (("egodex", 1), ("humanoid_everyday", 8)):
        cfg = JobConfig(source=source, input=str(base / "in" / source), output=str(base / source),
                        formats=("lerobot", "zarr"), episodes_per_shard=2, video_width=64, video_height=48,
                        tokenize=True, token_horizon=horizon, token_vocab=1024,
                        token_fit_episodes=8)
        catalog = run_local(cfg)
        assert catalog.counts()["rejected"] == 0
        out[source] = base / source
    return out


@pytest.fixture(scope="module")
def index(roots):
    return open_shards([roots[s] for s in SOURCES])


def _raw_shard(shard_dir: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(shard_dir / "data" / "chunk-000" / "file-000.parquet")
    return {k: column_to_numpy(table.column(k)) for k in table.column_names}


def test_open_shards_every_kind_of_path(roots, index):
    assert index.sources == list(SOURCES)
    assert len({s.shard_id for s in index.shards}) == len(index.shards) >= 5
    assert all(set(s.paths) == {"lerobot", "zarr"} for s in index.shards)        # twins merged
    total = index.frames()
    assert index.weights == pytest.approx({s: index.frames(s) / total for s in SOURCES})
    again = open_shards([roots["egodex"] / "catalog.json", roots["humanoid_everyday"]])
    assert [(s.shard_id, s.frames) for s in again.shards] == [(s.shard_id, s.frames) for s in index.shards]
    # single shard dirs / zarr stores: stats re-merged from shard.json equal the catalog's
    he_dirs = sorted(p for p in (roots["humanoid_everyday"] / "shards").iterdir() if not p.name.endswith(".zarr"))
    he_zarrs = sorted((roots["humanoid_everyday"] / "shards").glob("*.zarr"))
    loose = open_shards(he_dirs[:-1] + he_zarrs[-1:])
    assert loose.frames() == index.frames("humanoid_everyday")
    catalog = json.loads((roots["humanoid_everyday"] / "catalog.json").read_text())
    for key in ("min", "max", "mean"):
        np.testing.assert_allclose(loose.stats("humanoid_everyday", "action")[key], catalog["stats"]["action"][key],
                                   rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="unknown source"):
        open_shards([roots["egodex"]], weights={"egodx": 1.0})
    with pytest.raises(FileNotFoundError):
        open_shards([roots["egodex"] / "nope"])


def test_sample_values_equal_parquet_rows(index):
    ds = ChunkDataset(index, DataConfig(horizon=H, normalization="none", image_size=(32, 40), max_tokens=40))
    checked_end = 0
    for shard_no, entry in enumerate(ds.shards):
        raw = _raw_shard(entry.paths["lerobot"])
        tasks = pq.read_table(entry.paths["lerobot"] / "meta" / "tasks.parquet").to_pydict()
        task_of = dict(zip(tasks["task_index"], tasks["__index_level_0__"]))
        ends = {}
        for e in np.unique(raw["episode_index"]):
            ends[int(e)] = int(np.nonzero(raw["episode_index"] == e)[0][-1]) + 1
        for row in (0, 3, entry.frames - 3, entry.frames - 1):
            s = ds[int(ds.offsets[shard_no]) + row]
            end = ends[int(raw["episode_index"][row])]
            d = raw["action"].shape[1]
            rows = np.minimum(np.arange(row, row + H), end - 1)
            chunk = raw["action"][rows]
            np.testing.assert_array_equal(s["actions"][:, :d].numpy(), chunk)
            # the real dims, less those `action.mask` says are no label somewhere in the chunk (HE H1: roll,
            # pitch, height), are the loss's dims
            labelled = (raw["action.mask"][rows] > 0.5).all(0) if "action.mask" in raw else np.ones(d, bool)
            assert not s["actions"][:, d:].any() and not s["action_mask"][d:].any()
            np.testing.assert_array_equal(s["action_mask"][:d].numpy(), labelled)
            np.testing.assert_array_equal(s["action_pad"].numpy(), np.arange(row, row + H) >= end)
            checked_end += int(s["action_pad"].any())
            ds_ = raw["observation.state"].shape[1]
            np.testing.assert_array_equal(s["state"][:ds_].numpy(), raw["observation.state"][row])
            assert s["state_mask"].sum() == ds_
            n = min(int(raw["action.tokens_len"][row]), 40)
            assert s["tokens_len"] == n and s["tokens"].dtype == torch.int64 and s["tokens"].shape == (40,)
            assert s["tokens_full_len"] == int(raw["action.tokens_len"][row])
            offset = ds.token_plan.offset(entry.shard_id)      # each root's tokenizer at its own id block
            np.testing.assert_array_equal(s["tokens"][:n].numpy(), raw["action.tokens"][row, :n] + offset)
            assert not s["tokens"][n:].any()
            assert s["images"].shape == (1, 3, 32, 40) and s["images"].dtype == torch.uint8
            assert s["source"] == entry.source and s["frame_index"] == int(raw["frame_index"][row])
            assert s["episode_index"] == int(raw["episode_index"][row])
            assert s["embodiment"] == ("human" if entry.source == "egodex" else s["embodiment"]) and s["embodiment"]
            assert s["task"] == task_of[int(raw["task_index"][row])] and s["task"]
    assert checked_end >= len(ds.shards)       # end-of-episode padding exercised in every shard


def test_images_equal_lerobot_dataset(roots):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    shard = sorted((roots["humanoid_everyday"] / "shards").glob("humanoid_everyday-0000[0-9]"))[1]
    lerobot = LeRobotDataset("psi0/test", root=shard, video_backend="pyav",
                             delta_timestamps={"action": [k / 30 for k in range(H)]})
    ds = ChunkDataset(open_shards([shard]), DataConfig(horizon=H, normalization="none", image_size=None))
    assert len(ds) == len(lerobot)
    for i in (0, 7, 1, len(ds) - 1, len(ds) // 2, len(ds) // 2 + 1):       # backward, forward and far jumps
        ref, ours = lerobot[i], ds[i]
        expected = (ref[CAM] * 255).round().to(torch.uint8)
        assert torch.equal(ours["images"][0], expected), i
        np.testing.assert_array_equal(ours["actions"][:, :36].numpy(), ref["action"].numpy())
        np.testing.assert_array_equal(ours["action_pad"].numpy(), ref["action_is_pad"].numpy())
        assert ours["task"] == ref["task"] and isinstance(ref["task"], str) and ref["task"], i   # the text, both


def test_zarr_and_lerobot_give_the_same_sample(index):
    cfg = DataConfig(horizon=H, image_size=(48, 64))
    lr, zr = ChunkDataset(index, cfg), ChunkDataset(index, DataConfig(**{**cfg.__dict__, "format": "zarr"}))
    assert {fmt for fmt, _ in zr.locations} == {"zarr"} and {fmt for fmt, _ in lr.locations} == {"lerobot"}
    for i in range(0, len(lr), 37):
        a, b = lr[i], zr[i]
        for key in a:
            if key == "images":
                mse = ((a[key].float() - b[key].float()) ** 2).mean().item()
                assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 30, i      # AV1 crf 30 vs the lossless frames
            elif isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), (i, key)
            else:
                assert a[key] == b[key], (i, key)


@pytest.mark.parametrize("mode", ["minmax", "quantile", "meanstd"])
def test_normalization_uses_catalog_stats_and_round_trips(index, roots, mode):
    ds = ChunkDataset(index, DataConfig(horizon=H, normalization=mode, image_size=(16, 16)))
    raw_ds = ChunkDataset(index, DataConfig(horizon=H, normalization="none", image_size=(16, 16)))
    stats = json.loads((roots["humanoid_everyday"] / "catalog.json").read_text())["stats"]["action"]
    for i in (5, len(ds) - 2, 200):
        s, r = ds[i], raw_ds[i]
        d = ds.action_dim(s["source"])
        back = ds.denormalize(s["source"], s["actions"])
        assert back.shape == (H, d)
        np.testing.assert_allclose(back.numpy(), r["actions"][:, :d].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ds.denormalize(s["source"], s["actions"].numpy()), back.numpy(), rtol=1e-6)
        if mode == "minmax":
            x = s["actions"][:, :d].numpy()
            assert x.min() >= -1 - 1e-5 and x.max() <= 1 + 1e-5
        if mode == "minmax" and s["source"] == "humanoid_everyday":
            lo, hi = np.asarray(stats["min"]), np.asarray(stats["max"])
            live = hi - lo > 1e-6
            expect = 2 * (r["actions"][:, :d].numpy() - lo) / np.where(live, hi - lo, 1) - 1
            np.testing.assert_allclose(s["actions"][:, :d].numpy()[:, live], expect[:, live], atol=1e-5)


def test_reference_delta_representation_and_quantile_clip(index):
    """`he_joint_delta28` (the reference's HE post-training): 28 upper-body joint deltas, chunk 16, the rest of
    the 36-D action zero and masked; `quantile_clip` (bounds_q99): quantile normalisation clipped to [-1, 1]."""
    from schemas.actions import PSI0_ACTION

    upper = PSI0_ACTION.slice("upper_body")
    with pytest.raises(ValueError, match="chunk 16"):
        DataConfig(horizon=H, action_repr="he_joint_delta28")
    raw_ds = ChunkDataset(index, DataConfig(horizon=16, normalization="none", image_size=(16, 16),
                                            action_repr="he_joint_delta28"))
    shard = next(i for i, e in enumerate(raw_ds.shards) if e.source == "humanoid_everyday")
    raw = _raw_shard(raw_ds.shards[shard].paths["lerobot"])
    end = int(np.nonzero(raw["episode_index"] == raw["episode_index"][0])[0][-1]) + 1
    for row in (0, end - 10):
        s = raw_ds[int(raw_ds.offsets[shard]) + row]
        frames = raw["action"][np.minimum(np.arange(row, row + 17), end - 1)]
        np.testing.assert_allclose(s["actions"][:, :28].numpy(), np.diff(frames[:, upper], axis=0), atol=1e-6)
        assert not s["actions"][:, 28:].any() and s["action_mask"].sum() == 28 and s["action_mask"][:28].all()
        np.testing.assert_array_equal(s["action_pad"].numpy(), np.arange(row, row + 16) + 1 >= end)
    clipped = ChunkDataset(index, DataConfig(horizon=H, normalization="quantile_clip", image_size=(16, 16)))
    plain = ChunkDataset(index, DataConfig(horizon=H, normalization="quantile", image_size=(16, 16)))
    seen_outside = False
    for i in range(0, len(plain), 7):
        a, b = clipped[i]["actions"].numpy(), plain[i]["actions"].numpy()
        np.testing.assert_allclose(a, np.clip(b, -1, 1), atol=1e-6)
        seen_outside |= bool((np.abs(b) > 1).any())
    assert seen_outside                                 # q01/q99 leave 2 % outside: clipping was exercised


def test_mixture_weights_respected(index):
    ds = ChunkDataset(open_shards([s.paths["lerobot"] for s in index.shards],
                                  weights={"egodex": 0.8, "humanoid_everyday": 0.2}), DataConfig(horizon=H))
    sampler = MixtureSampler(ds, seed=3, samples_per_epoch=5000)
    draws = np.fromiter(iter(sampler), np.int64)
    is_egodex = np.array([ds.shards[ds.locate(int(i))[0]].source == "egodex" for i in draws])
    assert len(draws) == 5000 and abs(is_egodex.mean() - 0.8) < 0.002
    assert abs(is_egodex[:500].mean() - 0.8) < 0.06                  # mixed throughout, not in runs
    # within a source, draws sweep its frames evenly (a permutation per pass)
    counts = np.bincount(draws[~is_egodex], minlength=len(ds))[ds.offsets[2]:]
    assert counts.max() - counts[counts > 0].min() <= 1


def test_sampler_deterministic_and_a_permutation_by_default(index):
    ds = ChunkDataset(index, DataConfig(horizon=H))
    a = MixtureSampler(ds, seed=7)
    first = list(a)
    assert sorted(first) == list(range(len(ds)))                     # every frame once per epoch
    assert list(MixtureSampler(ds, seed=7)) == first
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(second) == sorted(first)
    assert list(MixtureSampler(ds, seed=8)) != first


def test_ddp_ranks_disjoint_and_covering(index):
    ds = ChunkDataset(index, DataConfig(horizon=H))
    single = list(MixtureSampler(ds, seed=1))
    ranks = [list(MixtureSampler(ds, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == -(-len(ds) // 3)
    interleaved = [ranks[p % 3][p // 3] for p in range(3 * len(ranks[0]))]
    assert interleaved[:len(ds)] == single                            # rank r = positions r, r+3, ...
    assert set().union(*map(set, ranks)) == set(range(len(ds)))
    unpadded = [set(interleaved[r:len(ds):3]) for r in range(3)]
    assert not (unpadded[0] & unpadded[1]) and not (unpadded[1] & unpadded[2]) and not (unpadded[0] & unpadded[2])


def test_sampler_resumes_mid_epoch_exactly(index):
    ds = ChunkDataset(index, DataConfig(horizon=H))
    full = MixtureSampler(ds, seed=5, rank=1, world_size=2, samples_per_epoch=900)
    full.set_epoch(2)
    expected = list(full)
    part = MixtureSampler(ds, seed=5, rank=1, world_size=2, samples_per_epoch=900)
    part.set_epoch(2)
    it = iter(part)
    head = [next(it) for _ in range(123)]
    state = part.state_dict()
    assert state["epoch"] == 2 and state["position"] == 123
    resumed = MixtureSampler(ds, seed=5, rank=1, world_size=2, samples_per_epoch=900)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    resumed.set_epoch(2)                                              # the loop's usual call keeps the position
    assert head + list(resumed) == expected
    resumed.set_epoch(3)
    assert len(list(resumed)) == 450
    with pytest.raises(ValueError, match="seed"):
        MixtureSampler(ds, seed=6, rank=1, world_size=2, samples_per_epoch=900).load_state_dict(state)


def _keys(batch):
    return list(zip(batch["source"], batch["episode_index"].tolist(), batch["frame_index"].tolist()))


def test_loader_workers_and_resume(roots):
    cfg = DataConfig(horizon=H, image_size=(24, 32))
    paths = [roots[s] for s in SOURCES]
    loader0, _ = make_loader(paths, cfg, batch_size=16, seed=2, num_workers=0)
    base = [b for b in loader0]
    loader2, sampler2 = make_loader(paths, cfg, batch_size=16, seed=2, num_workers=2)
    got, state = [], None
    for i, batch in enumerate(loader2):
        got.append(batch)
        if i == 4:
            state = sampler2.state_dict()     # workers have prefetched further; the position must not count it
            break
    assert state["position"] == 5 * 16
    for a, b in zip(base, got):
        assert _keys(a) == _keys(b)
        for key in ("images", "actions", "state", "tokens", "action_pad"):
            assert torch.equal(a[key], b[key]), key
    assert got[0]["images"].shape == (16, 1, 3, 24, 32) and got[0]["actions"].shape == (16, H, 48)
    loader3, sampler3 = make_loader(paths, cfg, batch_size=16, seed=2, num_workers=2)
    sampler3.load_state_dict(state)
    rest = [_keys(b) for b in loader3]
    assert [k for b in base for k in _keys(b)][5 * 16:] == [k for b in rest for k in b]


def test_collate_and_extra_action_keys(index):
    ds = ChunkDataset(index, DataConfig(horizon=4, image_size=(16, 16),
                                        action_keys=("action", "action.lower_body")))
    he = ds[len(ds) - 1]
    ego = ds[0]
    # the last HE episode is an H1: its torso roll, pitch and height are no labels (action.mask), the
    # extra key's dims are all real
    masked = [PSI0_ACTION.index(f"lower_body.{d}") for d in ("torso_roll", "torso_pitch", "torso_height")]
    assert he["source"] == "humanoid_everyday" and he["embodiment"] == "h1_inspire"
    assert he["action_mask"].sum() == 36 - 3 + 8 and not he["action_mask"][masked].any()
    assert ego["source"] == "egodex" and ego["action_mask"].sum() == 48
    batch = collate([he, ego])
    assert batch["actions"].shape == (2, 4, 48) and batch["source"] == ["humanoid_everyday", "egodex"]
    assert batch["episode_index"].dtype == torch.int64 and isinstance(batch["task"], list)
    two = ChunkDataset(index, DataConfig(horizon=4, image_size=(16, 16), cameras=(CAM, "observation.images.wrist")))
    s = two[3]
    assert s["images"].shape == (2, 3, 16, 16) and s["image_mask"].tolist() == [True, False]
    assert s["images"][0].any() and not s["images"][1].any()              # absent camera: zeros, masked
    with pytest.raises(ValueError, match="none of the sources"):
        ChunkDataset(index, DataConfig(action_keys=("action", "action.typo")))
