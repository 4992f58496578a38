"""The policy-serving wire format: websocket binary frames of msgpack, numpy arrays inline.

Why websocket + msgpack (openpi's choice) and not gRPC (LeRobot async inference): the payload is one
observation in, one action chunk out, strictly request/response; a websocket keeps one TCP connection
open (no per-call handshake), an HTTP route on the same port answers `GET /healthz`, the client is a few
lines in any language, and msgpack carries numpy arrays without pickle (LeRobot pickles its payloads,
which a server must never unpickle from an untrusted peer). gRPC's streaming and schema generation buy
nothing for a single request/response pair and add a code-generation step.

Arrays travel as `{"__ndarray__": True, "data": bytes, "dtype": "<f4", "shape": [...]}` (openpi's
layout, so an openpi client can decode our replies); only numeric/bool dtypes are accepted: an
object array would be a way to smuggle pickles.

Messages (all maps):
- server -> client, once after connect: `{"type": "metadata", ...}` (the checkpoint's observation schema).
- client -> server: `{"type": "infer", "id": n, "obs": {...}, "prefix": (d, A) float32, "delay": d}`.
- server -> client: `{"type": "chunk", "id": n, "actions": (H, A) float32, "server_timing": {...}}`
  or `{"type": "error", "id": n, "code": "...", "message": "..."}` (the connection stays open).
"""
from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
DEFAULT_PORT = 8765
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest accepted frame: a few 224x224 RGB images plus state fit in well under 1 MB."""
AUTH_HEADER = "Authorization"
AUTH_SCHEME = "Bearer"
_ALLOWED_KINDS = frozenset("biuf")          # bool, signed, unsigned, float


class ProtocolError(ValueError):
    """A frame that is not a well-formed message of this protocol."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"arrays of dtype {obj.dtype} cannot be sent (numeric and bool only)")
        return {"__ndarray__": True, "data": np.ascontiguousarray(obj).tobytes(), "dtype": obj.dtype.str,
                "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _decode(obj: dict) -> Any:
    if obj.get("__ndarray__") is True:
        dtype = np.dtype(obj["dtype"])
        if dtype.kind not in _ALLOWED_KINDS:
            raise ProtocolError(f"array dtype {dtype} not allowed")
        shape = tuple(int(s) for s in obj["shape"])
        data = obj["data"]
        if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ProtocolError(f"array of shape {shape} {dtype} has {len(data)} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    return obj


def pack(message: dict[str, Any]) -> bytes:
    """One message -> one binary frame."""
    return msgpack.packb(message, default=_encode, use_bin_type=True)


def unpack(frame: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """One binary frame -> one message (a map with a string `type`); ProtocolError otherwise."""
    if len(frame) > max_bytes:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds the {max_bytes}-byte limit")
    try:
        msg = msgpack.unpackb(frame, object_hook=_decode, raw=False, strict_map_key=True)
    except ProtocolError:
        raise
    except Exception as e:  # noqa: BLE001 - msgpack raises several unrelated types for bad input
        raise ProtocolError(f"not a msgpack frame: {type(e).__name__}: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("a message is a map with a string 'type'")
    return msg
