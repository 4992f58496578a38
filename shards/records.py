"""Type checks of the records `shards.reader` reads from disk (catalog.json, a shard's shard.json record).

A catalog is data, not code: a crafted or damaged one can put a string where a count belongs (the
dashboard once rendered it as HTML; training divided by it). `check_catalog` refuses any record whose
fields do not have their schema's types, naming the field and showing a short, inert excerpt of the
value. Extra keys are refused too (`ShardRecord(**record)` would fail on them anyway).
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from schemas.catalog import ShardRecord

SHARD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "shard_id": str, "format": str, "path": str, "source": str, "episodes": int, "frames": int, "inputs": list,
    "content_hash": str,
}
INGESTED: dict[str, type | tuple[type, ...]] = {"status": str, "shard": str, "episode_index": int, "frames": int,
                                                 "task": str}
REJECTED: dict[str, type | tuple[type, ...]] = {"status": str, "stage": str, "reason": str, "message": str,
                                                 "details": dict}
assert set(SHARD_FIELDS) == {f.name for f in fields(ShardRecord)}


class RecordError(ValueError):
    """A record read from disk whose fields do not match its schema."""


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", list: "a list", dict: "an object", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_fields(where: str, record: Any, schema: dict[str, type | tuple[type, ...]],
                  optional: tuple[str, ...] = ()) -> None:
    if not isinstance(record, dict):
        raise RecordError(f"{where} must be an object, got {type(record).__name__} {_show(record)}")
    for key, kind in schema.items():
        if key not in record:
            if key in optional:
                continue
            raise RecordError(f"{where}.{key} is missing")
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise RecordError(f"{where}.{key} must be {_type_name(kind)}, got {type(value).__name__} {_show(value)}")
        if kind is int and value < 0:
            raise RecordError(f"{where}.{key} must not be negative, got {value}")


def check_shard_record(where: str, record: Any) -> None:
    """A `ShardRecord` as JSON: exactly its fields, each of its type (inputs: strings)."""
    _check_fields(where, record, SHARD_FIELDS)
    extra = sorted(set(record) - set(SHARD_FIELDS))
    if extra:
        raise RecordError(f"{where} has unknown field(s) {extra[:3]}")
    for i, source_id in enumerate(record["inputs"]):
        if not isinstance(source_id, str):
            raise RecordError(f"{where}.inputs[{i}] must be a string, got {type(source_id).__name__} {_show(source_id)}")


def _check_numbers(where: str, value: Any) -> None:
    """Stats values: numbers (or null), possibly in nested lists."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_numbers(f"{where}[{i}]", v)
        return
    raise RecordError(f"{where} must be numbers, got {type(value).__name__} {_show(value)}")


def check_catalog(data: Any, where: str = "catalog.json") -> None:
    """Every field of a catalog has its schema's type; raises RecordError naming the first that does not."""
    if not isinstance(data, dict):
        raise RecordError(f"{where} must be an object, got {type(data).__name__}")
    shards = data.get("shards", [])
    if not isinstance(shards, list):
        raise RecordError(f"{where}: shards must be a list")
    for i, record in enumerate(shards):
        check_shard_record(f"{where}: shards[{i}]", record)
    inputs = data.get("inputs", {})
    if not isinstance(inputs, dict):
        raise RecordError(f"{where}: inputs must be an object")
    for source_id, fate in inputs.items():
        label = f"{where}: inputs[{_show(source_id)}]"
        status = fate.get("status") if isinstance(fate, dict) else None
        if status == "ingested":
            _check_fields(label, fate, INGESTED, optional=("task",))
        elif status == "rejected":
            _check_fields(label, fate, REJECTED, optional=("details", "message", "stage"))
        else:
            raise RecordError(f"{label}.status must be 'ingested' or 'rejected', got {_show(status)}")
    stats = data.get("stats", {})
    if not isinstance(stats, dict):
        raise RecordError(f"{where}: stats must be an object")
    for feature, values in stats.items():
        if not isinstance(values, dict):
            raise RecordError(f"{where}: stats[{_show(feature)}] must be an object")
        for key, value in values.items():
            _check_numbers(f"{where}: stats[{_show(feature)}].{key}", value)
    tokenizer = data.get("tokenizer")
    if tokenizer is not None:
        _check_fields(f"{where}: tokenizer", tokenizer, {"path": str, "config": dict}, optional=("path", "config"))
    if not isinstance(data.get("config", {}), dict):
        raise RecordError(f"{where}: config must be an object")
