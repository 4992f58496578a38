"""The robot-side client of `psi0 serve`: a blocking websocket client (websocket-client, pure Python, so
it runs on the robot's own computer) and `RemoteChunkPolicy`, the RTC engine's `ChunkPolicy` over it.

The RTC engine runs next to execution (deploy/rtc.py, `ThreadedRunner`): it measures each request's
latency on the robot's clock, so network time and jitter are part of the delay it predicts, and the
committed prefix it sends is what the robot executes while the request is in flight. The server never
decides timing.

Errors: a reply of type `error` raises `ServerError(code, message)` (e.g. `schema_mismatch`); a closed
or refused connection, or no reply within `timeout_s`, raises `LinkLost` (the supervisor's cue to hold,
then damp; deploy/safety.py). The next call reconnects.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from deploy.protocol import AUTH_HEADER, AUTH_SCHEME, DEFAULT_MAX_MESSAGE_BYTES, ProtocolError, pack, unpack


class LinkLost(ConnectionError):
    """The server cannot be reached or did not answer in time."""


class ServerError(RuntimeError):
    """The server answered with an error frame."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class PolicyClient:
    """`infer(obs, prefix, delay) -> (chunk, info)`; `metadata` is the server's first frame."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 5.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES):
        self.url, self.token, self.timeout_s, self.max_bytes = url, token, timeout_s, max_message_bytes
        self.metadata: dict[str, Any] | None = None
        self._ws = None
        self._next_id = 0
        self._lock = threading.Lock()

    def connect(self) -> dict[str, Any]:
        import websocket  # noqa: PLC0415
        header = [f"{AUTH_HEADER}: {AUTH_SCHEME} {self.token}"] if self.token else None
        try:
            ws = websocket.create_connection(self.url, timeout=self.timeout_s, header=header,
                                             enable_multithread=True)
            meta = unpack(ws.recv(), self.max_bytes)
        except websocket.WebSocketBadStatusException as e:
            if e.status_code in (401, 403):
                raise ServerError("unauthorized", f"{self.url} refused the token (HTTP {e.status_code})") from None
            raise LinkLost(f"cannot connect to {self.url}: HTTP {e.status_code}") from None
        except (OSError, websocket.WebSocketException) as e:
            raise LinkLost(f"cannot connect to {self.url}: {type(e).__name__}: {e}") from None
        except ProtocolError as e:
            raise LinkLost(f"{self.url} did not send protocol metadata: {e}") from None
        if meta.get("type") != "metadata":
            ws.close()
            raise LinkLost(f"{self.url}: expected a metadata frame first, got {meta.get('type')!r}")
        self._ws, self.metadata = ws, meta
        return meta

    def infer(self, obs: dict[str, Any], prefix: np.ndarray | None = None, delay: int = 0
              ) -> tuple[np.ndarray, dict[str, Any]]:
        import websocket  # noqa: PLC0415
        with self._lock:
            if self._ws is None:
                self.connect()
            self._next_id += 1
            rid = self._next_id
            msg = {"type": "infer", "id": rid, "obs": obs, "delay": int(delay),
                   "prefix": None if prefix is None else np.asarray(prefix, np.float32)}
            t0 = time.perf_counter()
            try:
                self._ws.send_binary(pack(msg))
                while True:
                    reply = unpack(self._ws.recv(), self.max_bytes)
                    if reply.get("id") in (rid, None):
                        break                  # an older request's late reply is skipped
            except (OSError, websocket.WebSocketException, ProtocolError) as e:
                self.close()
                raise LinkLost(f"{self.url}: {type(e).__name__}: {e}") from None
            rtt_ms = (time.perf_counter() - t0) * 1e3
        if reply["type"] == "error":
            raise ServerError(str(reply.get("code")), str(reply.get("message")))
        if reply["type"] != "chunk":
            raise ServerError("bad_reply", f"unexpected reply type {reply['type']!r}")
        info = {"round_trip_ms": rtt_ms, "server_timing": reply.get("server_timing", {}),
                "diagnostics": reply.get("diagnostics", {})}
        return np.asarray(reply["actions"], np.float32), info

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass


class RemoteChunkPolicy:
    """RTC `ChunkPolicy` over a PolicyClient. `obs` is a schema-conforming observation map (see
    deploy.bundle.ObservationSchema); the chunk comes back in joint space. Keeps the last `info`s."""

    def __init__(self, client: PolicyClient):
        self.client = client
        self.infos: list[dict[str, Any]] = []

    def __call__(self, obs: Any, prefix: np.ndarray, delay: int) -> np.ndarray:
        chunk, info = self.client.infer(obs, prefix if delay > 0 else None, delay)
        self.infos.append(info)
        return chunk


def wait_healthy(http_base: str, timeout_s: float = 120.0, token: str | None = None) -> bool:
    """Poll `GET /healthz` until 200 (True) or the timeout (False)."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(http_base.rstrip("/") + "/healthz", timeout=2.0) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def http_base(ws_url: str) -> str:
    """ws://host:port/ws -> http://host:port"""
    scheme, rest = ws_url.split("://", 1)
    host = rest.split("/", 1)[0]
    return ("https" if scheme == "wss" else "http") + "://" + host
