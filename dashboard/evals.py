"""The dashboard's eval page: `psi0 eval` outputs (summary.json, episodes.jsonl, videos/, curves/) under
the `--evals` roots, read-only.

Routes (registered by `register`): `/api/evals` (runs with per-task success, Wilson interval, means),
`/api/evals/{run}/episodes`, `/api/evals/{run}/curves/{file}`, `/evalvideo/{run}/{file}` (MP4 with HTTP
Range) and `/evals` (the page). A run is addressed by its index in the discovered list; file names must
match a plain pattern and resolve inside that run's own folder, so no request can reach other files.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from fastapi import HTTPException, Request
from fastapi.responses import FileResponse

SUMMARY = "summary.json"
EPISODES = "episodes.jsonl"
EVAL_CONFIG = "eval.json"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
MAX_DEPTH = 3


def find_runs(roots: list[str | Path]) -> list[Path]:
    """Eval output dirs (holding summary.json) at or below each root (a few levels), sorted per root."""
    runs: list[Path] = []
    for root in roots:
        root = Path(root)
        found = [root] if (root / SUMMARY).is_file() else []
        frontier = [root]
        for _ in range(MAX_DEPTH):
            nxt = []
            for d in frontier:
                for child in sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []:
                    if (child / SUMMARY).is_file():
                        found.append(child)
                    nxt.append(child)
            frontier = nxt
        runs.extend(dict.fromkeys(found))
    return runs


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def run_entry(i: int, run: Path, roots: list[Path]) -> dict[str, Any]:
    summary = _json(run / SUMMARY)
    cfg = _json(run / EVAL_CONFIG) if (run / EVAL_CONFIG).is_file() else {}
    name = next((str(run.relative_to(r)) or run.name for r in roots if run == r or r in run.parents), run.name)
    return {"run": i, "name": name if name != "." else run.name, "policy": summary.get("policy"),
            "success_rate": summary.get("success_rate"), "ci95": summary.get("ci95"),
            "episodes": summary.get("episodes"), "rtc": summary.get("rtc"), "latency_ms": summary.get("latency_ms"),
            "grasp_assist": summary.get("grasp_assist"), "wall_s": summary.get("wall_s"),
            "tasks": summary.get("tasks", {}), "started": cfg.get("started")}


def safe_file(run: Path, sub: str, name: str) -> Path:
    """run/sub/name when `name` is a plain file name that exists there; FileNotFoundError otherwise."""
    if not _NAME.match(name) or name.startswith("."):
        raise FileNotFoundError(name)
    base = (run / sub).resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        raise FileNotFoundError(name)
    return path


def register(app: Any, roots: list[str | Path], ranged: Callable[[Path, str, Any], Any], static: Path) -> None:
    """Add the eval routes to the dashboard's FastAPI app."""
    root_paths = [Path(r) for r in roots]

    def runs() -> list[Path]:
        return find_runs(root_paths)

    def run_dir(run: int) -> Path:
        found = runs()
        if not 0 <= run < len(found):
            raise HTTPException(404, f"no eval run {run}")
        return found[run]

    @app.get("/api/evals")
    def evals() -> list[dict[str, Any]]:
        out = []
        for i, run in enumerate(runs()):
            try:
                out.append(run_entry(i, run, root_paths))
            except (OSError, ValueError) as e:
                out.append({"run": i, "name": run.name, "error": f"{type(e).__name__}: {e}"})
        return out

    @app.get("/api/evals/{run}/episodes")
    def eval_episodes(run: int) -> list[dict[str, Any]]:
        path = run_dir(run) / EPISODES
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                r = json.loads(line) if line.strip() else None
            except ValueError:                              # a torn last line of a run still being written
                r = None
            if not isinstance(r, dict):
                continue
            for key in ("video", "curves"):                # only the file name leaves the server
                r[key] = Path(r[key]).name if isinstance(r.get(key), str) and r[key] else None
            rows.append(r)
        return rows

    @app.get("/api/evals/{run}/curves/{name}")
    def eval_curves(run: int, name: str) -> Any:
        try:
            return _json(safe_file(run_dir(run), "curves", name))
        except FileNotFoundError:
            raise HTTPException(404, "no such curve file") from None

    @app.api_route("/evalvideo/{run}/{name}", methods=["GET", "HEAD"])
    def eval_video(run: int, name: str, request: Request) -> Any:
        if not name.endswith(".mp4"):
            raise HTTPException(404, "videos are .mp4")
        try:
            path = safe_file(run_dir(run), "videos", name)
        except FileNotFoundError:
            raise HTTPException(404, "no such video") from None
        return ranged(path, "video/mp4", request)

    @app.get("/evals")
    def eval_page() -> Any:
        return FileResponse(static / "evals.html")
