import numpy as np
import pytest

from converters.tokenize.fast import FastTokenizer, pad_token_arrays, unpad_token_arrays


def _chunks(n=600, h=10, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(scale=0.05, size=(n, h, d)), axis=1) + rng.normal(size=(n, 1, d)) * [1, 2, 0.1, 5, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def tok():
    return FastTokenizer.fit(_chunks(), vocab_size=512, scale=50)


def test_roundtrip_error_within_quantization_bound(tok):
    x = _chunks(seed=1)
    ids = tok.encode(x)
    y, valid = tok.decode(ids, return_valid=True)
    assert valid.all() and y.shape == x.shape
    q01, q99 = np.array(tok.config.q01), np.array(tok.config.q99)
    inside = ((x >= q01) & (x <= q99)).all(axis=(1, 2))
    assert inside.sum() > 100
    err = np.abs(y - x)[inside]
    assert (err <= tok.max_abs_error_bound() + 1e-9).all()
    # L2 per chunk in normalised space is bounded by 0.5/scale*sqrt(H*D)
    half = (q99 - q01) / 2
    l2 = np.sqrt((((y - x) / half) ** 2).sum(axis=(1, 2)))[inside]
    assert l2.max() <= 0.5 / tok.config.scale * np.sqrt(tok.config.coefficients) + 1e-9
    ratio = tok.config.coefficients / np.mean([len(i) for i in ids])
    print(f"compression ratio {ratio:.2f} coefficients/token")
    assert ratio > 1.2


def test_malformed_sequences_never_crash(tok):
    rng = np.random.default_rng(0)
    good = tok.encode(_chunks(n=5, seed=2))
    bad = [[], [tok.pad_id], [-5, 10**9], good[0][:3], good[0] + good[1], list(rng.integers(-10, tok.vocab_size + 10, 50)),
           list(rng.integers(0, tok.vocab_size, 1000))]
    for _ in range(50):
        bad.append(list(rng.integers(0, tok.vocab_size, rng.integers(0, 200))))
    out, valid = tok.decode(bad, return_valid=True)
    assert out.shape == (len(bad), tok.config.horizon, tok.config.dims) and np.isfinite(out).all()
    assert not valid[:5].any()
    lo, hi = np.array(tok.config.q01), np.array(tok.config.q99)
    assert ((out >= lo - 1e-9) & (out <= hi + 1e-9)).all()


def test_bad_encode_input_is_a_clear_error(tok):
    with pytest.raises(ValueError):
        tok.encode(np.zeros((2, 3, 3)))
    x = _chunks(n=1)
    x[0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        tok.encode(x)


def test_save_load_and_deterministic_fit(tok, tmp_path):
    tok.save(tmp_path / "a")
    FastTokenizer.fit(_chunks(), vocab_size=512, scale=50).save(tmp_path / "b")
    assert (tmp_path / "a/tokenizer.json").read_bytes() == (tmp_path / "b/tokenizer.json").read_bytes()
    assert (tmp_path / "a/config.json").read_bytes() == (tmp_path / "b/config.json").read_bytes()
    loaded = FastTokenizer.load(tmp_path / "a")
    x = _chunks(n=20, seed=3)
    assert loaded.encode(x) == tok.encode(x)


def test_padded_arrays_roundtrip(tok):
    ids = tok.encode(_chunks(n=7, seed=4))
    arr, lens = pad_token_arrays(ids, tok.config.coefficients, tok.pad_id)
    assert arr.dtype == np.int32 and arr.shape == (7, tok.config.coefficients)
    assert unpad_token_arrays(arr, lens) == ids
    np.testing.assert_allclose(tok.decode(unpad_token_arrays(arr, lens)), tok.decode(ids))


def _write_egodex(root, n_files=2, t=45, seed=0):
    import h5py
    from scipy.spatial.transform import Rotation

    from schemas.embodiments import EGODEX_JOINTS
    rng = np.random.default_rng(seed)
    for k in range(n_files):
        d = root / "part1" / "pick_cup"
        d.mkdir(parents=True, exist_ok=True)
        with h5py.File(d / f"{k}.hdf5", "w") as f:
            f["camera/intrinsic"] = np.array([[736.6, 0, 960], [0, 736.6, 540], [0, 0, 1]], np.float32)
            cam = np.tile(np.eye(4, dtype=np.float32), (t, 1, 1))
            cam[:, :3, 3] = np.linspace(0, 0.1, t)[:, None]
            f["transforms/camera"] = cam
            for j in EGODEX_JOINTS:
                tr = np.tile(np.eye(4, dtype=np.float32), (t, 1, 1))
                tr[:, :3, :3] = Rotation.from_rotvec(rng.normal(scale=0.1, size=3)).as_matrix()
                tr[:, :3, 3] = rng.normal(scale=0.1, size=3) + np.cumsum(rng.normal(scale=0.003, size=(t, 3)), 0) + [0, 0, 0.5]
                f[f"transforms/{j}"] = tr
            f.attrs["llm_description"] = "pick the cup"
        _write_mp4(d / f"{k}.mp4", t)


def _write_mp4(path, frames, fps=30):
    """A tiny video beside the poses: `psi0 tokenizer fit` reads EgoDex through converters.egodex, which
    (like the ingest job) only accepts an episode whose MP4 has as many frames as it has poses."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            img = np.full((32, 32, 3), 4 * i % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())


def _write_shard(root, d=6, t=30):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(0)
    (root / "data/chunk-000").mkdir(parents=True)
    (root / "meta").mkdir()
    (root / "meta/info.json").write_text(json.dumps({"codebase_version": "v3.0"}))
    acts = np.cumsum(rng.normal(scale=0.05, size=(2 * t, d)), 0).astype(np.float32)
    table = pa.table({"action": pa.FixedSizeListArray.from_arrays(pa.array(acts.reshape(-1)), d),
                      "episode_index": np.repeat([0, 1], t), "frame_index": np.tile(np.arange(t), 2)})
    pq.write_table(table, root / "data/chunk-000/file-000.parquet")


def test_cli_fit_and_info_on_egodex_and_lerobot(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    _write_egodex(tmp_path / "egodex")
    _write_shard(tmp_path / "shard")
    for src, extra, dims in ((tmp_path / "egodex", ["--horizon", "2"], 48),
                             (tmp_path / "shard", ["--horizon", "4", "--column", "action"], 6)):
        out = tmp_path / ("tok_" + src.name)
        r = subprocess.run([sys.executable, "-m", "psi0", "tokenizer", "fit", "--input", str(src), "--out", str(out),
                            "--vocab-size", "1500", *extra], cwd=repo, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.strip().splitlines()[-1])["chunks"] > 0
        tok = FastTokenizer.load(out)
        assert tok.config.dims == dims
        r = subprocess.run([sys.executable, "-m", "psi0", "tokenizer", "info", str(out)], cwd=repo, capture_output=True, text=True)
        assert r.returncode == 0 and json.loads(r.stdout)["dims"] == dims
    r = subprocess.run([sys.executable, "-m", "psi0", "tokenizer", "fit", "--input", str(tmp_path / "nope"), "--out",
                        str(tmp_path / "x")], cwd=repo, capture_output=True, text=True)
    assert r.returncode == 2 and "nope" in r.stderr
    r = subprocess.run([sys.executable, "-m", "psi0", "tokenizer", "fit", "--input", str(tmp_path / "shard"), "--out",
                        str(tmp_path / "x")], cwd=repo, capture_output=True, text=True)
    assert r.returncode == 2 and "no token space" in r.stderr and "--column" in r.stderr


def test_tokenize_episode_columns_fixed_shape_and_decodable(tok):
    from converters.source import action_chunks
    from converters.tokenize.columns import tokenize_episode
    from converters.tokenize.fast import unpad_token_arrays
    from schemas import Episode, EpisodeMeta, FeatureSpec, build_frames
    t = 25
    acts = _chunks(n=1, h=t, d=8, seed=5)[0]
    ep = Episode(EpisodeMeta("humanoid_everyday", "he/x/0", "g1_dex3", 30.0, "t", "t"),
                 build_frames(np.arange(t) / 30.0, {"action": acts}), {"action": FeatureSpec("action", "float32", (8,))})
    out = tokenize_episode(ep, tok, action_chunks(ep, tok.config.horizon))
    tokens, lens = out.column("action.tokens"), out.column("action.tokens_len")
    assert tokens.shape == (t, tok.config.coefficients) and tokens.dtype == np.int32 and lens.shape == (t,)
    dec = tok.decode(unpad_token_arrays(tokens, lens))
    np.testing.assert_allclose(dec[0], np.clip(acts[:10], tok.config.q01, tok.config.q99), atol=tok.max_abs_error_bound().max())
    np.testing.assert_allclose(dec[-1], np.clip(np.repeat(acts[-1:], 10, 0), tok.config.q01, tok.config.q99),
                               atol=tok.max_abs_error_bound().max())


def test_tokenize_episode_egodex_delta_mode():
    from converters.egodex import EGODEX
    from converters.retarget.human_action import HumanActionConfig, absolute_per_frame, delta_chunks
    from converters.tokenize.columns import tokenize_episode
    from schemas import Episode, EpisodeError, EpisodeMeta, FeatureSpec, RejectReason, build_frames
    rng = np.random.default_rng(0)
    t = 40
    cols = {f"human.{s}_hand.keypoints": (rng.normal(scale=0.05, size=(1, 75)) + np.cumsum(rng.normal(scale=0.002, size=(t, 75)), 0)
                                          + np.tile([0, 0, 0.5], 25)) for s in ("left", "right")}
    cam = np.tile(np.eye(4), (t, 1, 1))
    cam[:, :3, 3] = np.linspace(0, 0.05, t)[:, None]
    cols["human.camera.pose"] = cam.reshape(t, 16)
    kps = {s: cols[f"human.{s}_hand.keypoints"].reshape(t, 25, 3) for s in ("left", "right")}
    cols["action"] = absolute_per_frame(kps)          # the reader's absolute 48-D (palmar wrist frame)
    ep = Episode(EpisodeMeta("egodex", "egodex/x/0", "human", 30.0, "t", "t"), build_frames(np.arange(t) / 30.0, cols),
                 {k: FeatureSpec(k, "float32", (v.shape[1],)) for k, v in cols.items()})
    chunks = EGODEX.token_chunks(ep, horizon=1)
    assert chunks.shape == (t, 1, 48)
    # the same deltas as from the keypoints themselves: one wrist convention in state, action and tokens
    _, ref = delta_chunks(kps, cam, HumanActionConfig(chunk=1), every_frame=True)
    np.testing.assert_allclose(chunks, ref, atol=2e-5)
    tok48 = FastTokenizer.fit(chunks, vocab_size=400, scale=100)
    out = tokenize_episode(ep, tok48, chunks)
    assert out.column("action.tokens").shape == (t, 48) and (out.column("action.tokens_len") > 0).all()
    with pytest.raises(EpisodeError) as err:                 # chunks of another space do not fit the tokenizer
        tokenize_episode(ep, tok48, chunks[:, :, :24])
    assert err.value.reason is RejectReason.SHAPE_MISMATCH
