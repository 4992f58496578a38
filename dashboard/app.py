"""FastAPI app of the dashboard: a JSON API over output roots plus the static front end.

Read-only by construction (GET/HEAD only), binds wherever the caller says (the CLI defaults to
127.0.0.1), serves video straight from shard files with HTTP Range (local or object-store roots),
never imports torch. Shards are read through `shards.reader`, whatever their registered format.

Hostile websites: every request must name, in its Host header, a host the server was started for
(localhost names and the bound address, `allowed_hosts`), else 403 — a DNS-rebinding page cannot read
the API from the user's browser. With `token` set (the CLI sets one when binding a non-loopback
address) every request must carry it (`?token=`, then a cookie; or `Authorization: Bearer`), else 401.
Hostile data: what the front end shows is escaped there, records read from disk are type-checked
(`shards.reader`), and malformed requests (huge Range values, over-long paths, symlink loops) get a
clean 4xx."""
from __future__ import annotations

import math
import re
import secrets
from collections import Counter
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

import numpy as np

from dashboard import tokens as tok_mod
from dashboard.data import TOKENS, TOKENS_LEN, Row, ShardError, Store
from dashboard.histograms import DEFAULT_BINS, from_grids, from_quantiles, merged_grids, wanted
from dashboard.zarr_shard import TooLarge, VideoCache, check_size
from schemas import HUMAN_ACTION_48_DELTA
from shards.formats import BaseReader
from shards.location import Location

DELTA_KEYS = ("human.left_hand.keypoints", "human.right_hand.keypoints", "human.camera.pose")

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".mp4": "video/mp4"}
CHUNK = 1 << 16
_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")     # 19 digits: any file size; more is not a Range
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
TOKEN_COOKIE = "psi0_dashboard_token"
MAX_PATH = 1024          # longest /files path served (a file system refuses far less per name)


def host_name(header: str) -> str:
    """The host part of a Host header, lower case: `[::1]:8050` -> `::1`, `Example.org.:80` -> `example.org`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0].rstrip(".") if header.count(":") == 1 else header.rstrip(".")


def create_app(roots: list[str | Path], *, allowed_hosts: list[str] | tuple[str, ...] = LOOPBACK_HOSTS,
               token: str | None = None) -> FastAPI:
    """App over `roots` (each an output root with catalog.json, a bare shard, or an s3:// URL of one).
    Only requests whose Host header names one of `allowed_hosts` are served; with `token`, only requests
    that carry it."""
    store = Store(list(roots))
    videos = VideoCache()
    app = FastAPI(title="psi0 dashboard", docs_url="/api/docs", redoc_url=None)
    app.state.store = store
    app.state.videos = videos
    hosts = {host_name(h) for h in allowed_hosts}

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Response:
        host = host_name(request.headers.get("host", ""))
        if host not in hosts:
            return JSONResponse({"error": {"kind": "bad_host", "message": "this dashboard does not serve that host name "
                                                                           "(DNS rebinding protection)"}},
                                status_code=403)
        if token is not None:
            given = (request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
                     or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
            if not given or not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": {"kind": "unauthorized", "message": "open the URL with ?token=... "
                                                                                 "that `psi0 dashboard` printed"}},
                                    status_code=401)
            response = await call_next(request)
            if request.query_params.get("token"):
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return response
        return await call_next(request)

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
            recs = cat.shards if cat else []
            lerobot_ids = {s.shard_id for s in recs if s.format == "lerobot"}
            for s in recs:
                entry = {"root": i, **s.to_json(), "fps": None, "error": None}
                entry.pop("inputs")
                # a Zarr twin holds the same frames as its LeRobot copy: count hours once
                counted = s.format == "lerobot" or s.shard_id not in lerobot_ids
                if counted and s.episodes:
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
            "stats": stats, "names": names, "quality_keys": _quality_keys(store),
            "tokenizer": [store.root(i).catalog.tokenizer is not None if store.root(i).catalog else False
                          for i in range(len(store.roots))],
        }

    @app.get("/api/histograms")
    def histograms_(bins: int = Query(DEFAULT_BINS, ge=2, le=256)) -> dict[str, Any]:
        """Per-dimension histograms of every numeric feature, from the shards' quantile grids."""
        out: dict[str, Any] = {}
        for i in range(len(store.roots)):
            prefix = "" if len(store.roots) == 1 else f"{i}:"
            out.update({prefix + k: v for k, v in _root_histograms(store, i, bins).items()})
        return out

    @app.get("/api/episodes")
    def episodes(source: str | None = None, task: str | None = None, status: str | None = None,
                 q: str | None = None, score: str | None = None, min_score: float | None = None,
                 sort: str | None = Query(None, pattern="^-?score$"), offset: int = Query(0, ge=0),
                 limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        """Filtered, paginated inputs. `score` names a quality key (e.g. `hand_qa.detection_rate`):
        `min_score` keeps episodes with score >= it, `sort=score` / `-score` orders by it (missing last)."""
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
        scores: dict[str, float] = {}
        if score:
            for r in rows:
                v = store.qualities(r.root).get(r.source_id, {}).get(score) if r.status == "ingested" else None
                if v is not None:
                    scores[r.id] = v
            if min_score is not None:
                rows = [r for r in rows if scores.get(r.id, -math.inf) >= min_score]
            if sort:
                sign = -1.0 if sort.startswith("-") else 1.0
                rows = sorted(rows, key=lambda r: (r.id not in scores, sign * scores.get(r.id, 0.0)))
        items = [{**r.to_json(), "score": scores.get(r.id)} for r in rows[offset:offset + limit]]
        return {"total": len(rows), "offset": offset, "limit": limit, "score": score, "items": items}

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

    @app.get("/api/tokens")
    def tokens(id: str, frame: int = Query(0, ge=0)) -> dict[str, Any]:
        """The FAST tokens of the chunk starting at `frame`, decoded with the root's tokenizer, and the
        true chunk they encode."""
        row = _row(id)
        if row.status != "ingested":
            raise HTTPException(404, "rejected input has no tokens")
        idx = store.root(row.root)
        if not idx.catalog or not idx.catalog.tokenizer:
            raise HTTPException(404, "this root has no tokenizer")
        raw = store.load_episode(row)
        data = raw["data"]
        if TOKENS not in data or TOKENS_LEN not in data:
            raise HTTPException(404, "episode has no action.tokens")
        frame = min(frame, raw["length"] - 1)
        tok = _tokenizer(store, row.root)
        cfg = idx.catalog.config
        column = cfg.get("token_column", "action")      # None: EgoDex delta chunks from keypoints
        h = tok.config.horizon
        truth, names = None, []
        if column and column in data:
            truth = tok_mod.frame_chunk(np.asarray(data[column], np.float64), frame, h)
            names = raw["features"].get(column, {}).get("names") or []
        elif column is None and all(k in data for k in DELTA_KEYS):
            truth = tok_mod.egodex_delta_chunk(*(np.asarray(data[k], np.float64) for k in DELTA_KEYS), frame, h,
                                               raw["fps"])
            names = list(HUMAN_ACTION_48_DELTA.dims)
        if truth is not None and truth.shape != (h, tok.config.dims):
            truth = None
        lens = data[TOKENS_LEN][frame]
        view = tok_mod.chunk_view(tok, data[TOKENS][frame], int(lens[0] if isinstance(lens, list) else lens), truth,
                                  names if len(names) == tok.config.dims else [])
        return {"frame": frame, "column": column or "egodex delta (HUMAN_ACTION_48_DELTA)", **view}

    @app.api_route("/zarrvideo/{root}/{shard}/{episode}/{key}.mp4", methods=["GET", "HEAD"])
    def zarr_video(root: int, shard: str, episode: int, key: str, request: Request) -> Response:
        """An H.264 MP4 of one camera of one episode of a shard that keeps frames, not video files
        (Zarr), encoded on first request (once, however many requests ask; sizes bounded: `zarr_shard`)."""
        if not 0 <= root < len(store.roots):
            raise HTTPException(404, "no such root")
        try:
            rec = store.shard_record(root, shard)
        except ShardError:
            raise HTTPException(404, "no such shard")
        reader = store.reader(root, shard)
        try:
            if reader.video_file(key, episode) is not None:
                raise HTTPException(404, "this camera is a video file: see the episode's /files URL")
            cam = next((c for c in reader.info().cameras if c.key == key), None)
            if cam is None:
                raise HTTPException(404, f"no camera {key!r} in this shard")
            length = reader.episode(episode).length
            check_size(length, cam.width, cam.height)          # claimed sizes, before a frame is read
            fps = store.shard_info(root, shard).get("fps") or 30.0

            def frames() -> Any:
                if type(reader).frame is not BaseReader.frame:  # the format reads one frame (chunk) at a time
                    return (reader.frame(key, episode, i) for i in range(length))
                return reader.frames(key, episode)

            blob = videos.get((root, store.root(root).mtime, rec.shard_id, rec.format, episode, key), frames, fps)
        except TooLarge as e:
            return JSONResponse({"error": {"kind": "too_large", "message": str(e), "shard": shard}}, status_code=413)
        except (KeyError, IndexError) as e:
            raise HTTPException(404, str(e))
        except (ShardError, HTTPException):
            raise
        except Exception as e:  # noqa: BLE001 - unreadable chunks: an error panel, not a 500
            raise ShardError("corrupt_shard", f"{type(e).__name__}: {e}", shard=shard)
        return _ranged_bytes(blob, "video/mp4", request)

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
        if len(rel) > MAX_PATH:
            raise HTTPException(414, "path too long")
        try:
            where = store.locations[root].child(rel)
        except PermissionError:
            raise HTTPException(403, "path outside root")
        media = MEDIA_TYPES.get(Path(where.name).suffix.lower())
        if media is None:
            raise HTTPException(403, "only video files are served")
        try:
            if not where.is_file():
                raise HTTPException(404, "not found")
            if where.is_url:
                return _ranged_remote(where, media, request)
            return _ranged(where.path, media, request)
        except OSError:              # a name the file system refuses (too long, a loop): not a file we serve
            raise HTTPException(404, "not found")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _feature_names(store: Store) -> dict[str, list[str]]:
    """Dimension names per feature, from the first readable shard (LeRobot or Zarr) that declares them."""
    out: dict[str, list[str]] = {}
    for i in range(len(store.roots)):
        cat = store.root(i).catalog
        for s in (cat.shards if cat else []):
            try:
                info = store.shard_info(i, s.shard_id)
            except ShardError:
                continue
            for k, spec in info.get("features", {}).items():
                names = spec.get("names")
                if isinstance(names, list) and spec.get("dtype") != "video" and k not in out:
                    out[k] = [str(n) for n in names]
    return out


def _quality_keys(store: Store) -> list[str]:
    keys: set[str] = set()
    for i in range(len(store.roots)):
        for q in store.qualities(i).values():
            keys.update(q)
    return sorted(keys)


def _tokenizer(store: Store, i: int) -> Any:
    idx = store.root(i)
    if idx.tokenizer is None:
        assert idx.output is not None
        try:
            ref = idx.output.tokenizer()
        except PermissionError:
            raise ShardError("bad_tokenizer_path", "the catalog's tokenizer path points outside its root")
        if ref is None:
            raise ShardError("bad_tokenizer", "this root has no tokenizer")
        try:
            idx.tokenizer = tok_mod.load_tokenizer(ref.local_dir())
        except Exception as e:  # noqa: BLE001 - missing/corrupt tokenizer files -> error panel
            raise ShardError("bad_tokenizer", f"cannot load tokenizer from {ref.location.name}: "
                                              f"{type(e).__name__}: {e}")
    return idx.tokenizer


def _root_histograms(store: Store, i: int, bins: int) -> dict[str, Any]:
    idx = store.root(i)
    if bins in idx.histograms:
        return idx.histograms[bins]
    parts, seen = [], set()
    for rec in (idx.catalog.shards if idx.catalog else []):
        if rec.shard_id in seen:      # twins share stats
            continue
        try:
            assert idx.output is not None
            data = idx.output.shard_json(rec)
            if data is None:
                raise FileNotFoundError(f"{rec.path} has no shard.json")
            parts.append(data["stats"])
            seen.add(rec.shard_id)
        except Exception:  # noqa: BLE001 - no grid for this shard: fall back below
            parts = None
            break
    out: dict[str, Any] = {}
    if parts:
        try:
            out = {k: from_grids(v, bins) for k, v in sorted(merged_grids(parts).items())}
        except Exception:  # noqa: BLE001 - malformed grids: fall back to the catalog's quantiles
            out = {}
    if not out and idx.catalog:
        for k, st in idx.catalog.stats.items():
            h = from_quantiles(st, bins) if wanted(k) else None
            if h is not None:
                out[k] = h
    idx.histograms[bins] = out
    return out


def _ranged_bytes(blob: bytes, media: str, request: Request) -> Response:
    size = len(blob)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    span = _parse_range(request.headers.get("range"), size)
    if span is None:
        return Response(blob if request.method != "HEAD" else b"", media_type=media,
                        headers={**headers, "Content-Length": str(size)})
    if span == "bad":
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span
    headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
    body = b"" if request.method == "HEAD" else blob[start:end + 1]
    return Response(body, status_code=206, media_type=media, headers=headers)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """None (no Range), "bad" (unsatisfiable / malformed: 416) or the inclusive (start, end)."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return "bad"
    if m.group(1):                  # at most 19 digits each (the regex): int() stays cheap
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(size - int(m.group(2)), 0), size - 1
    if start >= size or start > end:
        return "bad"
    return start, end


def _ranged_remote(where: Location, media: str, request: Request) -> Response:
    """A file on an object store, whole or by HTTP Range (one ranged GET per request)."""
    size = where.size()
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    span = _parse_range(request.headers.get("range"), size)
    if span is None:
        body = b"" if request.method == "HEAD" else where.read_bytes()
        return Response(body, media_type=media, headers={**headers, "Content-Length": str(size)})
    if span == "bad":
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span
    headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
    body = b"" if request.method == "HEAD" else where.read_range(start, end + 1)
    return Response(body, status_code=206, media_type=media, headers=headers)


def _ranged(path: Path, media: str, request: Request) -> Response:
    size = path.stat().st_size
    header = request.headers.get("range")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    if not header:
        return FileResponse(path, media_type=media, headers=headers)
    span = _parse_range(header, size)
    if span is None or span == "bad":
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span
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
