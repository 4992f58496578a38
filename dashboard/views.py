"""Views in the dashboard: a view's lineage and step counts, and an episode selection saved as a view.

The dashboard stays read-only: a selection comes back as a download (`selection.view.json`, the same
manifest `psi0 dataset filter ROOT --episodes @ids.txt --out VIEW.json` writes), never a file on the
server. Only `shards` is imported (no torch)."""
from __future__ import annotations

import math
from typing import Any

from fastapi import HTTPException

from dashboard.data import ShardError, Store
from shards.views import ViewError

DROPPED_SHOWN = 200


def view_info(store: Store, root: int) -> dict[str, Any]:
    """{"root", "view": null} for an output root; for a view its operation, inputs, lineage (with every
    step's kept/dropped counts), counts, stats basis and (the first) dropped duplicates."""
    try:
        idx = store.root(root)
    except KeyError:
        raise HTTPException(404, "no such root")
    out = idx.output
    if out is None or not getattr(out, "is_view", False):
        return {"root": root, "view": None, "error": idx.error}
    data = out.view.data
    dropped = list(data.get("dropped") or [])
    return {"root": root, "view": {
        "path": str(store.roots[root]), "sha256": out.view.sha256, "operation": data.get("operation"),
        "inputs": data.get("inputs", []), "lineage": out.lineage(), "steps": data.get("steps", []),
        "counts": data.get("counts", {}), "stats": data.get("stats_info") or {}, "fps": data.get("fps"),
        "features": sorted(data.get("features") or {}), "mixture": bool(data.get("mixture")),
        "dropped": dropped[:DROPPED_SHOWN], "dropped_total": len(dropped)}}


def selected_ids(store: Store, root: int, source: str | None = None, task: str | None = None, q: str | None = None,
                 score: str | None = None, min_score: float | None = None) -> list[str]:
    """The ingested episodes of one root that the Episodes page's filters show."""
    try:
        rows = [r for r in store.root(root).rows if r.status == "ingested"]
    except KeyError:
        raise HTTPException(404, "no such root")
    if source:
        rows = [r for r in rows if r.source == source]
    if task:
        rows = [r for r in rows if r.task == task]
    if q:
        ql = q.lower()
        rows = [r for r in rows if ql in r.source_id.lower() or ql in r.task.lower()]
    if score and min_score is not None:
        scores = store.qualities(root)
        rows = [r for r in rows if scores.get(r.source_id, {}).get(score, -math.inf) >= min_score]
    return [r.source_id for r in rows]


def selection_view(store: Store, root: int, **filters: Any) -> dict[str, Any]:
    """The manifest of a view holding exactly the selected episodes of root `root`."""
    from shards import views_ops as ops

    ids = selected_ids(store, root, **filters)
    where = store.locations[root]
    try:
        work = ops.resolve([where.uri], mixture=True)
        spec = ops.FilterSpec(episodes=ids)
        table, steps = ops.filter_table(work.table, spec)
        operation = {"verb": "filter", "from": "dashboard",
                     "filters": {k: v for k, v in filters.items() if v not in (None, "")},
                     "options": {"episodes": ids}}
        return ops.make_view(work, table, operation, steps, where.parent.join("selection.view.json"))
    except (ViewError, ShardError, ValueError) as exc:
        raise HTTPException(422, f"cannot make a view of this selection: {exc}")
