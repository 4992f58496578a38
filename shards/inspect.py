"""`psi0 inspect OUT...` — what an output root holds: shards, episodes, frames, hours, tasks, rejects; for a
view (VIEW.json) also its lineage: every operation from the output roots to it, with its step counts."""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from shards.reader import open_output


def summarize(out_root: str | Path) -> dict[str, Any]:
    out = open_output(out_root)
    catalog = out.catalog
    fps = float(catalog.config.get("fps") or 30.0) if catalog.config else 30.0
    ingested = [v for v in catalog.inputs.values() if v["status"] == "ingested"]
    rejected = [v for v in catalog.inputs.values() if v["status"] == "rejected"]
    frames = sum(v["frames"] for v in ingested)
    return {
        "root": str(out_root),
        "shards": sorted({(s.shard_id, s.format) for s in catalog.shards}),
        "episodes": len(ingested), "frames": frames, "hours": frames / fps / 3600,
        "tasks": Counter(v.get("task", "") for v in ingested),
        "rejects": Counter(v["reason"] for v in rejected), "inputs": len(catalog.inputs),
        "tokenizer": out.tokenizer() is not None,
        "view": _view(out) if out.is_view else None,
    }


def _view(out: Any) -> dict[str, Any]:
    data = out.view.data
    return {"sha256": out.view.sha256, "operation": data.get("operation") or {}, "lineage": out.lineage(),
            "inputs": data.get("inputs", []), "stats": data.get("stats_info") or {},
            "dropped": len(data.get("dropped") or [])}


def _render_view(view: dict[str, Any]) -> list[str]:
    lines = [f"  view      sha256 {view['sha256'][:16]}…, stats {view['stats'].get('basis', 'none')}"]
    for entry in view["inputs"]:
        lines.append(f"  input     {entry['kind']:<4} {entry['uri']}  (sha256 {entry['sha256'][:12]}…)")
    lines.append("  lineage")
    for depth, step in enumerate(view["lineage"]):
        op = step.get("operation") or {}
        counts = step.get("counts") or {}
        opts = {k: v for k, v in (op.get("options") or {}).items() if v not in (None, [], {}, False)}
        lines.append(f"    {depth + 1}. {op.get('verb', '?')}{' (preset ' + op['preset'] + ')' if op.get('preset') else ''}"
                     f" -> {counts.get('episodes')} episodes, {counts.get('frames')} frames"
                     f"{'  ' + str(opts) if opts else ''}")
        for st in step.get("steps", []):
            lines.append(f"         {st['step']}: kept {st['kept']}, dropped {st['dropped']}")
    if view["dropped"]:
        lines.append(f"  dropped   {view['dropped']} duplicate(s) (see the view's 'dropped')")
    return lines


def render(summary: dict[str, Any]) -> str:
    fmts = Counter(fmt for _, fmt in summary["shards"])
    lines = [f"{summary['root']}",
             f"  shards    {len({sid for sid, _ in summary['shards']})} ({', '.join(f'{n} {f}' for f, n in sorted(fmts.items()))})",
             f"  inputs    {summary['inputs']} = {summary['episodes']} ingested + {sum(summary['rejects'].values())} rejected",
             f"  frames    {summary['frames']}  ({summary['hours'] * 60:.1f} min)",
             f"  tasks     {len(summary['tasks'])}"]
    lines += [f"    {n:5d}  {task}" for task, n in summary["tasks"].most_common(10)]
    if summary["rejects"]:
        lines.append("  rejects by reason")
        lines += [f"    {n:5d}  {reason}" for reason, n in summary["rejects"].most_common()]
    lines.append(f"  tokenizer {'yes' if summary['tokenizer'] else 'no'}")
    if summary.get("view"):
        lines += _render_view(summary["view"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="psi0 inspect", description=__doc__,
                                 epilog="example: psi0 inspect out/egodex out/shards/he-00000 views/egodex-10pct.json "
                                        "s3://bucket/out")
    ap.add_argument("roots", nargs="+",
                    help="output roots (folders holding catalog.json), catalog.json files, bare shard folders, "
                         "views (VIEW.json), or s3:// URLs of them")
    args = ap.parse_args(argv)
    for root in args.roots:
        print(render(summarize(root)))
    return 0
