"""`canonical_json` writes exactly the bytes the plain `json.dumps(indent=1)` path wrote.

Shard hashes, metadata columns and catalog records are all canonical JSON, so the faster encoder
(`schemas/json_text.py`) and `jsonable`'s fast path for flat lists must not move a single byte. The
reference below is the definition both replaced; random documents cover every leaf type, nesting
shape and non-finite float the two have to agree on.
"""
from __future__ import annotations

import json
import math
import random
from enum import Enum
from typing import Any

import numpy as np
import pytest

from schemas.episode import canonical_json
from schemas.json_text import dumps_indent1


class Colour(str, Enum):
    RED = "red"


class Level(Enum):
    HIGH = 3


def reference_jsonable(obj: Any) -> Any:
    """`jsonable` as it was before the fast path: one item at a time."""
    if isinstance(obj, dict):
        return {str(k): reference_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [reference_jsonable(v) for v in obj]
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def reference_canonical(obj: Any) -> str:
    return json.dumps(reference_jsonable(obj), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def plain_dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False)


STRINGS = ["", "a", "é", "日本語", "🤖", "quote\"back\\slash", "tab\tnew\nline", "\x00\x1f\x7f", "\u2028\u2029",
           "\ud800", "key with spaces", "Z", "a\u0301"]
FLOATS = [0.0, -0.0, 1.5, -2.25, 0.1, 1e-7, 1e16, 1e308, -1e308, 5e-324, 123456789.123456789,
          float("nan"), float("inf"), float("-inf")]
INTS = [0, 1, -1, 7, 2**31, 2**63, -(2**63) - 1, 2**70, 10**30, 10**400]


def leaf(rng: random.Random, numpy_too: bool) -> Any:
    kinds = ["str", "float", "float", "int", "bool", "none", "randfloat"]
    if numpy_too:
        kinds += ["npfloat", "npint", "nparray", "enum"]
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(STRINGS)
    if kind == "float":
        return rng.choice(FLOATS)
    if kind == "randfloat":
        return rng.uniform(-1e3, 1e3)
    if kind == "int":
        return rng.choice(INTS)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "npfloat":
        return rng.choice([np.float32, np.float64])(rng.choice(FLOATS[:7] + [1e16, float("nan"), float("inf")]))
    if kind == "npint":
        return np.int64(rng.randint(-5, 5))
    if kind == "nparray":
        return np.array([rng.choice(FLOATS) for _ in range(rng.randint(0, 4))])
    return rng.choice([Colour.RED, Level.HIGH])


def flat_list(rng: random.Random, numpy_too: bool) -> list | tuple:
    """Innermost containers: all floats (the fast paths), floats with one odd item, or mixed leaves."""
    n = rng.randint(0, 12)
    shape = rng.choice(["floats", "floats+odd", "ints+floats", "mixed"])
    if shape == "floats":
        items: list = [rng.uniform(-1, 1) for _ in range(n)]
    elif shape == "floats+odd":
        items = [rng.uniform(-1, 1) for _ in range(n)] + [rng.choice(FLOATS + [1e308, True, 10**400])]
        rng.shuffle(items)
    elif shape == "ints+floats":
        items = [rng.choice([rng.uniform(-1, 1), rng.randint(-9, 9)]) for _ in range(n)]
    else:
        items = [leaf(rng, numpy_too) for _ in range(n)]
    return tuple(items) if rng.random() < 0.2 else items


def document(rng: random.Random, depth: int, numpy_too: bool) -> Any:
    roll = rng.random()
    if depth == 0 or roll < 0.25:
        return leaf(rng, numpy_too)
    if roll < 0.45:
        return flat_list(rng, numpy_too)
    if roll < 0.7:
        return [document(rng, depth - 1, numpy_too) for _ in range(rng.randint(0, 4))]
    keys = rng.sample(STRINGS, rng.randint(0, 5))
    if numpy_too and rng.random() < 0.2:
        keys.append(rng.choice([3, Colour.RED]))        # jsonable makes every key a str
    return {k: document(rng, depth - 1, numpy_too) for k in keys}


@pytest.mark.parametrize("seed", range(400))
def test_random_json_documents_encode_as_json_dumps_does(seed: int) -> None:
    doc = document(random.Random(seed), depth=5, numpy_too=False)
    assert dumps_indent1(doc) == plain_dumps(doc)


@pytest.mark.parametrize("seed", range(400))
def test_random_documents_canonicalise_as_before(seed: int) -> None:
    doc = document(random.Random(10_000 + seed), depth=5, numpy_too=True)
    assert canonical_json(doc) == reference_canonical(doc)


@pytest.mark.parametrize("doc", [
    {}, [], (), [[]], [{}], {"a": []}, {"a": {}}, [[[]], [{}], {}], {"": {"": [[], {}]}},
    0, -0.0, 1e308, float("nan"), float("-inf"), True, None, "🤖", 10**400,
    [float("nan"), 1.0], [1e308, 1e308], [10**400, 0.5], [True, 1.0], (1, (2, (3,))),
])
def test_edge_documents(doc: Any) -> None:
    assert dumps_indent1(doc) == plain_dumps(doc)
    assert canonical_json(doc) == reference_canonical(doc)


def test_non_string_keys_take_json_dumps_own_path() -> None:
    for doc in ({1: "a", 2: [1.0]}, {"x": {1.5: 2, 2.5: [{}]}}, {"x": [{None: 1}]}):
        assert dumps_indent1(doc) == plain_dumps(doc)
    with pytest.raises(TypeError):
        dumps_indent1({"a": [{1: 1, "b": 2}]})         # unsortable keys fail as json.dumps fails
    with pytest.raises(TypeError):
        plain_dumps({"a": [{1: 1, "b": 2}]})


def test_unjsonable_leaf_raises_the_same_type_error() -> None:
    for doc in ([object()], {"a": [1, [object()]]}, {"a": {"b": 1j}}):
        with pytest.raises(TypeError) as ours:
            dumps_indent1(doc)
        with pytest.raises(TypeError) as theirs:
            plain_dumps(doc)
        assert str(ours.value) == str(theirs.value)


def test_shard_json_shaped_document() -> None:
    """The shape that made this matter: per-feature stats of long float lists beside fates and hashes."""
    rng = random.Random(7)
    stats = {f"feature.{i}": {"mean": list(np.asarray([rng.uniform(-1, 1) for _ in range(48)])),
                              "std": np.asarray([rng.uniform(0, 1) for _ in range(48)]),
                              "min": [rng.uniform(-2, -1) for _ in range(48)],
                              "q": [[rng.uniform(-1, 1) for _ in range(48)] for _ in range(5)],
                              "count": [rng.randint(1, 100)], "finite": [math.nan, 1.0]}
             for i in range(20)}
    doc = {"stats": stats, "fates": {f"ep/{i}": {"frames": i, "status": Colour.RED, "task": "Pick é"}
                                     for i in range(6)},
           "files": {f"f{i}.parquet": "ab" * 32 for i in range(4)}, "config": {"formats": ("lerobot", "zarr")}}
    assert canonical_json(doc) == reference_canonical(doc)
