import json

import numpy as np
import pytest

from schemas.stats import (GRID_ENCODING, GRID_POINTS, QUANTILE_KEYS, QUANTILES, FeatureStats, grid_from_json,
                           grid_interp, merge_all, quantile_grid)

DISTRIBUTIONS = {
    "normal": lambda rng, n: rng.normal(size=(n, 3)),
    "heavy_tailed": lambda rng, n: rng.standard_cauchy(size=(n, 2)),
    "lognormal": lambda rng, n: rng.lognormal(sigma=2.0, size=(n, 2)),
    "bimodal": lambda rng, n: np.where(rng.random((n, 2)) < 0.3, rng.normal(-5, 0.1, (n, 2)), rng.normal(3, 1, (n, 2))),
    "discrete": lambda rng, n: rng.integers(0, 4, size=(n, 2)).astype(float),
    "constant": lambda rng, n: np.full((n, 2), 0.75),
}


def _rank_error(values: np.ndarray, estimate: np.ndarray, q: float) -> float:
    """How far `estimate` is from being a q-quantile, in rank (0 when it is one)."""
    below = (values < estimate).mean(axis=0)
    at_or_below = (values <= estimate).mean(axis=0)
    return float(np.maximum(0, np.maximum(below - q, q - at_or_below)).max())


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_merged_quantiles_within_half_percent_rank_of_exact(name):
    rng = np.random.default_rng(0)
    values = DISTRIBUTIONS[name](rng, 60_000)
    parts = np.array_split(values, 23)                     # uneven parts, like shards
    merged = merge_all({"x": FeatureStats.from_values(p)} for p in parts)["x"]
    stats = merged.to_lerobot()
    for key, q in zip(QUANTILE_KEYS, QUANTILES):
        assert _rank_error(values, np.asarray(stats[key]), q) <= 0.005, (name, key)
    np.testing.assert_allclose(stats["mean"], values.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["std"], values.std(axis=0), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(stats["min"], values.min(axis=0))
    np.testing.assert_array_equal(stats["max"], values.max(axis=0))
    assert stats["count"] == [len(values)]


def test_merge_order_does_not_matter_and_serialization_round_trips():
    rng = np.random.default_rng(1)
    parts = [FeatureStats.from_values(rng.normal(size=(n, 4))) for n in (10, 500, 3000, 7)]
    a = merge_all({"x": p} for p in parts)["x"].to_lerobot()
    b = merge_all({"x": p} for p in reversed(parts))["x"].to_lerobot()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9)
    restored = FeatureStats.from_json(json.loads(json.dumps(parts[2].to_json())))
    np.testing.assert_allclose(restored.to_lerobot()["q50"], parts[2].to_lerobot()["q50"], rtol=1e-6)


def test_single_part_quantiles_are_exact():
    x = np.random.default_rng(2).normal(size=(1000, 2))
    stats = FeatureStats.from_values(x).to_lerobot()
    np.testing.assert_allclose(stats["q50"], np.quantile(x, 0.5, axis=0), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [1, 2, 3, 400, 401, 1237])
def test_quantile_grid_is_numpys_linear_quantile_bit_for_bit(name, n):
    """The sort-based grid replaces np.quantile (50x slower at 401 points); it must give numpy's own values."""
    x = DISTRIBUTIONS[name](np.random.default_rng(n), n)
    expected = np.quantile(x, np.linspace(0, 1, GRID_POINTS), axis=0, method="linear")
    got = quantile_grid(np.sort(x, axis=0))
    assert got.shape == expected.shape
    assert got.tobytes() == (expected + 0.0).tobytes()
    assert quantile_grid(np.sort(x[:, 0])).tobytes() == (expected[:, 0] + 0.0).tobytes()     # one column, 1-D


def test_quantile_grid_writes_zero_as_positive_zero():
    """numpy may return -0.0 or +0.0 for a column of mixed signed zeros depending on its partition order;
    the grid always says +0.0, so the stats' bytes depend only on the values."""
    x = np.array([[-0.0], [0.0], [-0.0], [0.0], [-0.0]])
    grid = quantile_grid(np.sort(x, axis=0), 5)
    assert not np.signbit(grid).any()


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("points", [2, 3, 5, GRID_POINTS])
def test_grid_interp_is_numpys_interp_per_column_bit_for_bit(name, points):
    """One vectorised interpolation replaces a per-dimension np.interp (LeRobot's stats.json quantiles)."""
    rng = np.random.default_rng(points)
    grid = quantile_grid(np.sort(DISTRIBUTIONS[name](rng, 997), axis=0), points).astype(np.float32).astype(np.float64)
    grid = np.concatenate([grid, np.full((points, 1), np.inf), np.full((points, 1), -np.inf)], axis=1)
    xp = np.linspace(0, 1, points)
    for q in (*QUANTILES, 0.0, 1.0, 0.5, *rng.random(5)):
        expected = np.array([np.interp(q, xp, grid[:, d]) for d in range(grid.shape[1])])
        assert grid_interp(q, grid).tobytes() == expected.tobytes(), (name, points, q)


def test_grid_interp_on_a_grid_point_next_to_an_infinity_is_numpys_value():
    """numpy returns fp[j] where q is a sample point; 0 * inf in the slope formula would give NaN there."""
    grid = np.array([[0.0, -1.0], [1.0, 2.0], [np.inf, -np.inf], [5.0, 3.0], [6.0, 4.0]])
    xp = np.linspace(0, 1, len(grid))
    for q in (0.25, 0.5, 0.75, 0.3):
        expected = np.array([np.interp(q, xp, grid[:, d]) for d in range(grid.shape[1])])
        assert grid_interp(q, grid).tobytes() == expected.tobytes(), q
    assert grid_interp(0.25, grid).tolist() == [1.0, 2.0]


def test_grids_are_stored_as_float32_bytes_and_old_list_grids_still_read():
    """shard.json keeps each grid as base64 float32 bytes (~5x smaller than 17-digit JSON numbers, printed in
    milliseconds); the values read back are the float32 values the list form held, and shards written
    before keep reading."""
    rng = np.random.default_rng(5)
    stats = FeatureStats.from_values(rng.lognormal(sigma=2.0, size=(3000, 7)))
    stored = json.loads(json.dumps(stats.to_json()))
    (count, grid), = stored["grids"]
    assert count == 3000 and grid["encoding"] == GRID_ENCODING and grid["shape"] == [GRID_POINTS, 7]
    restored = FeatureStats.from_json(stored)
    float32_values = stats.grids[0][1].astype(np.float32).astype(np.float64)
    assert restored.grids[0][1].tobytes() == float32_values.tobytes()
    legacy = {**stored, "grids": [[count, stats.grids[0][1].astype(np.float32).tolist()]]}   # the old list form
    assert FeatureStats.from_json(legacy).grids[0][1].tobytes() == float32_values.tobytes()
    assert restored.to_lerobot() == FeatureStats.from_json(legacy).to_lerobot()
    with pytest.raises(ValueError, match="unknown stats grid encoding"):
        grid_from_json({**grid, "encoding": "float16"})
    with pytest.raises(ValueError, match="needs"):
        grid_from_json({**grid, "shape": [GRID_POINTS, 8]})
