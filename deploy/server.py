"""`psi0 serve`: the policy server (websocket + msgpack, see deploy/protocol.py for the why).

One aiohttp app on one port:
- `GET /healthz` -> 200 "OK" once the model is loaded and warmed up, 503 before (a load balancer or the
  robot client waits for 200 before it starts).
- `GET /ws` (also `/`) -> websocket: the server sends one metadata frame (the checkpoint's observation
  schema), then answers each `infer` request with a `chunk` (joint-space actions + `server_timing`) or an
  `error` frame (`schema_mismatch`, `bad_request`, `internal`); the connection survives errors.

Safety of the endpoint: binds 127.0.0.1 unless told otherwise; an optional shared token (`--token` or
PSI0_SERVE_TOKEN) is checked in constant time on the `Authorization: Bearer <token>` header before the
websocket upgrade; frames over `max_message_bytes` close the connection (code 1009) before they are
parsed; arrays are decoded without pickle. Inference runs on one worker thread: requests from several
clients queue (the model is not re-entrant) and `server_timing.queue_ms` says how long they waited.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from deploy.protocol import (AUTH_HEADER, AUTH_SCHEME, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PORT, PROTOCOL_VERSION,
                             ProtocolError, pack, unpack)

log = logging.getLogger("psi0.deploy.server")
TOKEN_ENV = "PSI0_SERVE_TOKEN"


class ChunkServer(Protocol):
    """What the server serves (deploy.bundle.ServedPolicy, or any object with these methods)."""

    def metadata(self) -> dict[str, Any]: ...
    def infer(self, obs: dict[str, Any], prefix: np.ndarray | None, delay: int) -> tuple[np.ndarray, dict]: ...
    def warmup(self, n: int = 2) -> float: ...


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT                   # 0: pick a free port (tests)
    token: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    warmup_calls: int = 2


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class PolicyServer:
    """The app (build with a ChunkServer); `serve_forever()` blocks, `ServerThread` runs it in a thread."""

    def __init__(self, policy: ChunkServer, cfg: ServerConfig = ServerConfig()):
        self.policy, self.cfg = policy, cfg
        self.ready = threading.Event()
        self.warmup_ms: float | None = None
        self.requests = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="psi0-infer")
        self._prev_total_ms: float | None = None

    # ------------------------------------------------------------------ app
    def app(self):
        from aiohttp import web  # noqa: PLC0415
        app = web.Application(client_max_size=self.cfg.max_message_bytes)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/", self._ws)
        app.on_startup.append(self._start_warmup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _start_warmup(self, app) -> None:
        loop = asyncio.get_running_loop()

        def warm() -> None:
            t0 = time.perf_counter()
            self.policy.warmup(self.cfg.warmup_calls)
            self.warmup_ms = (time.perf_counter() - t0) * 1e3
            self.ready.set()
            log.info("model warm after %.0f ms; serving", self.warmup_ms)
        app["warmup"] = loop.run_in_executor(self._pool, warm)

    async def _cleanup(self, app) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _healthz(self, request):
        from aiohttp import web  # noqa: PLC0415
        if self.ready.is_set():
            return web.Response(text="OK\n")
        return web.Response(status=503, text="warming up\n")

    def _authorized(self, request) -> bool:
        if not self.cfg.token:
            return True
        header = request.headers.get(AUTH_HEADER, "")
        scheme, _, value = header.partition(" ")
        return scheme == AUTH_SCHEME and hmac.compare_digest(value.strip().encode(), self.cfg.token.encode())

    async def _ws(self, request):
        from aiohttp import WSMsgType, web  # noqa: PLC0415
        if not self._authorized(request):
            return web.Response(status=401, text="missing or wrong token (Authorization: Bearer <token>)\n")
        if not self.ready.is_set():
            return web.Response(status=503, text="warming up\n")
        ws = web.WebSocketResponse(max_msg_size=self.cfg.max_message_bytes, compress=False, heartbeat=None)
        await ws.prepare(request)
        await ws.send_bytes(pack({"type": "metadata", "protocol": PROTOCOL_VERSION, **self.policy.metadata()}))
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                reply = await self._handle(msg.data, loop)
                await ws.send_bytes(pack(reply))
            elif msg.type == WSMsgType.TEXT:
                await ws.send_bytes(pack({"type": "error", "id": None, "code": "bad_request",
                                          "message": "text frames are not part of the protocol (binary msgpack only)"}))
            elif msg.type == WSMsgType.ERROR:
                log.warning("websocket closed with %s", ws.exception())
        return ws

    async def _handle(self, frame: bytes, loop) -> dict[str, Any]:
        received = time.perf_counter()
        try:
            msg = unpack(frame, self.cfg.max_message_bytes)
        except ProtocolError as e:
            return {"type": "error", "id": None, "code": "bad_request", "message": str(e)}
        rid = msg.get("id")
        if msg["type"] != "infer":
            return {"type": "error", "id": rid, "code": "bad_request", "message": f"unknown message type {msg['type']!r}"}
        obs, prefix = msg.get("obs"), msg.get("prefix")
        if not isinstance(obs, dict):
            return {"type": "error", "id": rid, "code": "bad_request", "message": "infer needs an 'obs' map"}
        try:
            delay = int(msg.get("delay", 0))
        except (TypeError, ValueError):
            return {"type": "error", "id": rid, "code": "bad_request", "message": "delay must be an integer"}

        def run() -> tuple[np.ndarray, dict, float]:
            started = time.perf_counter()
            chunk, diag = self.policy.infer(obs, prefix, delay)
            return chunk, diag, started

        from deploy.bundle import SchemaMismatch  # noqa: PLC0415
        try:
            chunk, diag, started = await loop.run_in_executor(self._pool, run)
        except SchemaMismatch as e:
            return {"type": "error", "id": rid, "code": "schema_mismatch", "message": str(e)}
        except Exception as e:  # noqa: BLE001 - a failed request is reported; the server keeps serving
            log.exception("inference failed")
            return {"type": "error", "id": rid, "code": "internal", "message": f"{type(e).__name__}: {e}"}
        total_ms = (time.perf_counter() - received) * 1e3
        timing = {"infer_ms": float(diag.get("infer_ms", 0.0)), "queue_ms": (started - received) * 1e3,
                  "total_ms": total_ms}
        if self._prev_total_ms is not None:
            timing["prev_total_ms"] = self._prev_total_ms
        self._prev_total_ms = total_ms
        self.requests += 1
        return {"type": "chunk", "id": rid, "actions": np.asarray(chunk, np.float32), "server_timing": timing,
                "diagnostics": {k: v for k, v in diag.items() if k != "infer_ms"}}

    # ------------------------------------------------------------------ running
    def serve_forever(self) -> None:
        from aiohttp import web  # noqa: PLC0415
        if not is_loopback(self.cfg.host) and not self.cfg.token:
            log.warning("serving on %s without a token: anyone on that network can drive the robot's policy "
                        "(pass --token or set %s)", self.cfg.host, TOKEN_ENV)
        web.run_app(self.app(), host=self.cfg.host, port=self.cfg.port, print=None, handle_signals=True)


class ServerThread:
    """Run a PolicyServer in a background thread (tests, the quick recipe, `psi0 eval --serve`).
    `start()` returns once it listens; `url` is its websocket address; `stop()` shuts it down."""

    def __init__(self, server: PolicyServer):
        self.server = server
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.server.cfg.host}:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://{self.server.cfg.host}:{self.port}"

    def start(self, wait_ready: bool = False, timeout: float = 120.0) -> "ServerThread":
        self._thread = threading.Thread(target=self._main, name="psi0-serve", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("policy server did not start")
        if self._error is not None:
            raise RuntimeError(f"policy server failed to start: {self._error}") from self._error
        if wait_ready and not self.server.ready.wait(timeout):
            raise TimeoutError("policy server did not finish warming up")
        return self

    def _main(self) -> None:
        from aiohttp import web  # noqa: PLC0415
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(self.server.app())
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.server.cfg.host, self.server.cfg.port)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


EPILOG = """examples:
  psi0 serve --run runs/s3                                  # ws://127.0.0.1:8765/ws, GET /healthz
  psi0 serve --run runs/s3 --host 0.0.0.0 --token "$(cat ~/.psi0_token)"   # reachable from the robot
  curl -s localhost:8765/healthz                            # 200 OK once the model is warm
  psi0 robot --server ws://gpu-box:8765/ws --robot sim --task pick_place_right

The protocol (deploy/protocol.py): one metadata frame from the server (the observation schema the client
must send: state feature + names, cameras, image size, chunk length, dataset rate, max_delay), then
{type: infer, obs, prefix, delay} -> {type: chunk, actions, server_timing} | {type: error, code, message}.
"""


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415
    import sys  # noqa: PLC0415
    ap = argparse.ArgumentParser(prog="psi0 serve", description="Serve a trained policy to robots over a "
                                 "websocket (msgpack, numpy arrays inline); RTC runs on the robot side.",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="training run dir (final/ + run.json) or a final/ dir")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    ap.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                    help=f"shared secret clients send as 'Authorization: Bearer TOKEN' (default ${TOKEN_ENV})")
    ap.add_argument("--max-message-mb", type=float, default=DEFAULT_MAX_MESSAGE_BYTES / 2**20,
                    help="largest request frame accepted (default 16 MiB); bigger frames close the connection")
    ap.add_argument("--device", default="cpu", help="torch device for the model (cpu, cuda, cuda:1)")
    ap.add_argument("--steps", type=int, default=None, help="flow-matching steps per chunk (default: the policy's)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.threads:
        import torch  # noqa: PLC0415
        torch.set_num_threads(args.threads)
    from deploy.bundle import ServedPolicy  # noqa: PLC0415
    try:
        policy = ServedPolicy(args.run, device=args.device, steps=args.steps)
    except (FileNotFoundError, ValueError) as e:
        print(f"psi0 serve: error: {e}", file=sys.stderr)
        return 2
    cfg = ServerConfig(host=args.host, port=args.port, token=args.token,
                       max_message_bytes=int(args.max_message_mb * 2**20))
    log.info("serving %s on ws://%s:%d/ws (health: http://%s:%d/healthz)", args.run, args.host, args.port,
             args.host, args.port)
    PolicyServer(policy, cfg).serve_forever()
    return 0
