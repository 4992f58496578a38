"""`--where` expressions over episode metadata, evaluated column-wise (never `eval`).

    duration > 2 and embodiment != "human"
    hand_qa.detection_rate >= 0.8 or task in ["Stack the two cups.", "Wipe the table"]
    glob(task, "Pick*") and not startswith(source_id, "egodex/part2/")
    quality["retarget.right_arm.position_m.p95"] < 0.03

Names: source, task, task_category (or category), embodiment, source_id (or id), shard, episode_index,
frames, fps, duration (seconds), and every numeric quality score the ingest recorded, by its dotted name
or as quality["key"]. A missing score is NaN: every comparison with it is false. Only comparisons,
and/or/not, in/not in over literal lists, + - * /, literals and the functions glob, startswith,
contains, has (the score exists) are allowed; anything else is a clear error.
"""
from __future__ import annotations

import ast
import fnmatch
from typing import Any, Callable

import numpy as np

from shards.views_table import QUALITY_PREFIX, Categorical, EpisodeTable

ALIASES = {"category": "task_category", "id": "source_id"}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}
_FLIP = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}
_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide}


class ExprError(ValueError):
    pass


class _Strings:
    """A string column: Categorical codes, or per-row strings (source ids)."""

    def __init__(self, cat: Categorical):
        self.cat = cat

    def test(self, predicate: Callable[[str], bool]) -> np.ndarray:
        return self.cat.where(predicate)


def names(table: EpisodeTable) -> list[str]:
    """Every name an expression over `table` may use."""
    base = ["source", "task", "task_category", "embodiment", "source_id", "shard", "episode_index", "frames", "fps",
            "duration"]
    return base + table.quality_keys()


class Evaluator:
    def __init__(self, table: EpisodeTable):
        self.table = table
        self._cache: dict[str, Any] = {}

    def column(self, name: str) -> Any:
        name = ALIASES.get(name, name)
        if name in self._cache:
            return self._cache[name]
        t = self.table
        if name == "source":
            value: Any = _Strings(t.source)
        elif name == "task":
            value = _Strings(t.task)
        elif name in ("task_category", "embodiment"):
            value = _Strings(t.load_meta()[name])
        elif name == "source_id":
            value = _Strings(Categorical(np.arange(len(t), dtype=np.int32), t.source_id.to_pylist()))
        elif name == "shard":
            value = _Strings(Categorical(t.shard.astype(np.int32), [s.shard_id for s in t.shards]))
        elif name == "episode_index":
            value = t.episode.astype(np.float64)
        elif name == "frames":
            value = t.frames.astype(np.float64)
        elif name == "fps":
            value = t.load_meta()["fps"]
        elif name == "duration":
            value = t.duration()
        else:
            meta = t.load_meta()
            key = name[len(QUALITY_PREFIX):] if name.startswith(QUALITY_PREFIX) else name
            col = meta.get(QUALITY_PREFIX + key)
            if col is None:
                known = ", ".join(names(t))
                raise ExprError(f"unknown name {name!r} in --where (known: {known})")
            value = col
        self._cache[name] = value
        return value

    def evaluate(self, text: str) -> np.ndarray:
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise ExprError(f"--where {text!r}: {exc.msg}") from None
        out = self._eval(tree.body)
        if isinstance(out, _Strings) or not isinstance(out, np.ndarray) or out.dtype != bool:
            raise ExprError(f"--where {text!r} is not a condition (compare something)")
        return out

    # ---- nodes ---------------------------------------------------------------------------------
    def _name(self, node: ast.AST) -> str | None:
        """Dotted names: `hand_qa.detection_rate` parses as attributes; join them back."""
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute):
            head = self._name(node.value)
            return None if head is None else f"{head}.{node.attr}"
        return None

    def _eval(self, node: ast.AST) -> Any:
        n = len(self.table)
        if isinstance(node, ast.BoolOp):
            parts = [self._bool(self._eval(v)) for v in node.values]
            return np.logical_and.reduce(parts) if isinstance(node.op, ast.And) else np.logical_or.reduce(parts)
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand)
            if isinstance(node.op, ast.Not):
                return ~self._bool(value)
            if isinstance(node.op, ast.USub) and not isinstance(value, _Strings):
                return -value
            raise ExprError(f"unsupported operator {type(node.op).__name__}")
        if isinstance(node, ast.Compare):
            result = np.ones(n, bool)
            left = self._eval(node.left)
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp)
                result &= self._compare(op, left, right)
                left = right
            return result
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            a, b = self._eval(node.left), self._eval(node.right)
            if isinstance(a, (_Strings, str)) or isinstance(b, (_Strings, str)):
                raise ExprError("arithmetic on text")
            with np.errstate(divide="ignore", invalid="ignore"):
                return _ARITH[type(node.op)](a, b)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [self._literal(e) for e in node.elts]
        if isinstance(node, ast.Subscript):
            base = self._name(node.value)
            key = node.slice
            if base in ("quality", "meta") and isinstance(key, ast.Constant) and isinstance(key.value, str):
                return self.column(QUALITY_PREFIX + key.value)
            raise ExprError('only quality["score name"] may be subscripted')
        if isinstance(node, ast.Call):
            return self._call(node)
        name = self._name(node)
        if name is not None:
            return self.column(name)
        raise ExprError(f"unsupported expression {ast.dump(node)[:60]}")

    def _literal(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -node.operand.value
        raise ExprError("lists may hold only literals")

    def _bool(self, value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray) and value.dtype == bool:
            return value
        raise ExprError("and/or/not need conditions on both sides")

    def _compare(self, op: ast.cmpop, left: Any, right: Any) -> np.ndarray:
        n = len(self.table)
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, list):
                raise ExprError("`in` needs a literal list on its right")
            if isinstance(left, _Strings):
                wanted = {str(v) for v in right}
                hit = left.test(lambda s: s in wanted)
            else:
                hit = np.isin(np.asarray(left, np.float64), np.asarray(right, np.float64))
            return ~hit if isinstance(op, ast.NotIn) else hit
        if type(op) not in _COMPARE:
            raise ExprError(f"unsupported comparison {type(op).__name__}")
        if isinstance(left, _Strings) or isinstance(right, _Strings):
            if isinstance(right, _Strings) and not isinstance(left, _Strings):
                left, right, op = right, left, _FLIP[type(op)]()
            if isinstance(right, _Strings):
                raise ExprError("compare a text column with a literal, not another column")
            fn = _COMPARE[type(op)]
            return left.test(lambda s: bool(fn(s, str(right))))
        if isinstance(left, str) or isinstance(right, str):
            raise ExprError("a number compared with text")
        with np.errstate(invalid="ignore"):
            out = _COMPARE[type(op)](np.broadcast_to(np.asarray(left, np.float64), (n,)),
                                     np.broadcast_to(np.asarray(right, np.float64), (n,)))
        return np.asarray(out, bool)

    def _call(self, node: ast.Call) -> np.ndarray:
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        args = [self._eval(a) for a in node.args]
        if fname in ("glob", "startswith", "contains") and len(args) == 2 and isinstance(args[0], _Strings) \
                and isinstance(args[1], str):
            pattern = args[1]
            test = {"glob": lambda s: fnmatch.fnmatchcase(s, pattern), "startswith": lambda s: s.startswith(pattern),
                    "contains": lambda s: pattern in s}[fname]
            return args[0].test(test)
        if fname == "has" and len(node.args) == 1:
            name = self._name(node.args[0]) or (node.args[0].value if isinstance(node.args[0], ast.Constant) else None)
            col = self.column(QUALITY_PREFIX + str(name).removeprefix(QUALITY_PREFIX))
            return ~np.isnan(col)
        raise ExprError(f"unknown function call {fname!r}: glob(col, 'pat'), startswith(col, 's'), "
                        "contains(col, 's'), has(score)")


def where(table: EpisodeTable, text: str) -> np.ndarray:
    """Boolean mask of the rows where `text` holds."""
    return Evaluator(table).evaluate(text)
