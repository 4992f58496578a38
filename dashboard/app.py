"""FastAPI app of the dashboard: a JSON API over output roots plus the static front end.

Read-only by construction (GET/HEAD only), binds wherever the caller says (the CLI defaults to
127.0.0.1), serves video straight from shard files with HTTP Range, never imports torch."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from dashboard.data import Row, ShardError, Store, safe_path

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".mp4": "video/mp4"}
CHUNK = 1 << 16
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def create_app(roots: list[str | Path]) -> FastAPI:
    """App over `roots` (each an output root with catalog.json)."""
    store = Store([Path(r) for r in roots])
    app = FastAPI(title="psi0 dashboard", docs_url="/api/docs", redoc_url=None)
    app.state.store = store

    @app.exception_handler(ShardError)
    async def _shard_error(_: Request, exc: ShardError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=422)

    @app.get("/api/roots")
    def roots_() -> list[dict[str, Any]]:
        return [{"root": i, "path": str(p), "error": store.root(i).error} for i, p in enumerate(store.roots)]

    @app.get("/api/overview")
    def overview() -> dict[str, Any]:
        rows = store.all_rows()
        ing = [r for r in rows if r.status == "ingested"]
        errors = [store.root(i).error for i in range(len(store.roots)) if store.root(i).error]
        shards, hours = [], 0.0
        for i in range(len(store.roots)):
            cat = store.root(i).catalog
            for s in (cat.shards if cat else []):
                entry = {"root": i, **s.to_json(), "fps": None, "error": None}
                entry.pop("inputs")
                if s.format == "lerobot" and s.episodes:  # a Zarr twin holds the same frames: count hours once
                    try:
                        fps = float(store.shard_info(i, s.shard_id).get("fps") or 0)
                        entry["fps"] = fps
                        hours += s.frames / fps / 3600 if fps else 0.0
                    except ShardError as e:
                        entry["error"] = e.to_json()["error"]
                shards.append(entry)
        stats: dict[str, Any] = {}
        for i in range(len(store.roots)):
            cat = store.root(i).catalog
            if cat:
                stats.update({(k if len(store.roots) == 1 else f"{i}:{k}"): v for k, v in cat.stats.items()})
        names = _feature_names(store)
        return {
            "roots": [str(p) for p in store.roots], "errors": errors,
            "sources": dict(sorted(Counter(r.source for r in rows).items())),
            "shards": shards, "episodes": len(ing), "inputs": len(rows), "rejected": len(rows) - len(ing),
            "frames": sum(r.frames for r in ing), "hours": hours,
            "tasks": dict(Counter(r.task for r in ing if r.task).most_common()),
            "rejects_by_reason": dict(Counter(r.reason for r in rows if r.status == "rejected").most_common()),
            "stats": stats, "names": names,
        }

    @app.get("/api/episodes")
    def episodes(source: str | None = None, task: str | None = None, status: str | None = None,
                 q: str | None = None, offset: int = Query(0, ge=0),
                 limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        rows = store.all_rows()
        if source:
            rows = [r for r in rows if r.source == source]
        if task:
            rows = [r for r in rows if r.task == task]
        if status:
            rows = [r for r in rows if r.status == status]
        if q:
            ql = q.lower()
            rows = [r for r in rows if ql in r.source_id.lower() or ql in r.task.lower()]
        return {"total": len(rows), "offset": offset, "limit": limit,
                "items": [r.to_json() for r in rows[offset:offset + limit]]}

    def _row(id_: str) -> Row:
        root, _, sid = id_.partition(":")
        if not root.isdigit() or not sid:
            raise HTTPException(404, "bad episode id")
        try:
            idx = store.root(int(root))
        except KeyError:
            raise HTTPException(404, "no such root")
        row = next((r for r in idx.rows if r.source_id == sid), None)
        if row is None:
            raise HTTPException(404, "no such episode")
        return row

    @app.get("/api/episode")
    def episode(id: str) -> dict[str, Any]:
        return store.episode(_row(id))

    @app.get("/api/rejects")
    def rejects(reason: str | None = None, offset: int = Query(0, ge=0),
                limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
        rows = [r for r in store.all_rows() if r.status == "rejected" and (not reason or r.reason == reason)]
        items = []
        for r in rows[offset:offset + limit]:
            fate = store.root(r.root).catalog.inputs.get(r.source_id, {})
            items.append({**r.to_json(), "details": fate.get("details", {})})
        return {"total": len(rows), "offset": offset, "limit": limit, "items": items}

    @app.api_route("/files/{root}/{rel:path}", methods=["GET", "HEAD"])
    def files(root: int, rel: str, request: Request) -> Response:
        if not 0 <= root < len(store.roots):
            raise HTTPException(404, "no such root")
        rel = unquote(rel)  # a second decoding pass so %2e%2e is judged like ..
        try:
            path = safe_path(store.roots[root], rel)
        except PermissionError:
            raise HTTPException(403, "path outside root")
        media = MEDIA_TYPES.get(path.suffix.lower())
        if media is None:
            raise HTTPException(403, "only video files are served")
        if not path.is_file():
            raise HTTPException(404, "not found")
        return _ranged(path, media, request)

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _feature_names(store: Store) -> dict[str, list[str]]:
    """Dimension names per feature, from the first readable shard that declares them."""
    out: dict[str, list[str]] = {}
    for i in range(len(store.roots)):
        cat = store.root(i).catalog
        for s in (cat.shards if cat else []):
            if s.format != "lerobot":
                continue
            try:
                info = store.shard_info(i, s.shard_id)
            except ShardError:
                continue
            for k, spec in info.get("features", {}).items():
                names = spec.get("names")
                if isinstance(names, list) and spec.get("dtype") != "video" and k not in out:
                    out[k] = [str(n) for n in names]
    return out


def _ranged(path: Path, media: str, request: Request) -> Response:
    size = path.stat().st_size
    header = request.headers.get("range")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    if not header:
        return FileResponse(path, media_type=media, headers=headers)
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(size - int(m.group(2)), 0), size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    length = end - start + 1
    headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(length)})
    if request.method == "HEAD":
        return Response(status_code=206, headers=headers, media_type=media)
    return StreamingResponse(_read(path, start, length), status_code=206, media_type=media, headers=headers)


def _read(path: Path, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        while length > 0:
            buf = f.read(min(CHUNK, length))
            if not buf:
                break
            length -= len(buf)
            yield buf
