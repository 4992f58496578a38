"""Streamed reading of big JSON objects (a catalog.json of a million inputs) without building them whole.

`json.load` of a 1 M-input catalog holds ~1 GB of Python dicts at its peak. `iter_members` walks the
top-level object instead: small members come back parsed, while the members named in `stream` (a
catalog's `inputs` object and `shards` list) are yielded one entry at a time from a fixed-size read
buffer, so memory is bounded by the largest single entry plus what the caller keeps.
"""
from __future__ import annotations

import codecs
import json
import re
from typing import Any, BinaryIO, Iterator

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
CHUNK = 4 << 20


class _Scanner:
    """A window over a UTF-8 byte stream that parses one JSON value at a time."""

    def __init__(self, fh: BinaryIO, chunk: int = CHUNK):
        self.fh, self.chunk = fh, chunk
        self.text = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.eof = "", 0, False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.fh.read(self.chunk)
        self.eof = not data
        self.buf = self.buf[self.pos:] + self.text.decode(data, final=self.eof)
        self.pos = 0
        return not self.eof or bool(self.buf)

    def peek(self) -> str:
        """The next non-blank character ('' at the end)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill() or self.eof and self.pos >= len(self.buf):
                return ""

    def expect(self, char: str) -> None:
        got = self.peek()
        if got != char:
            raise ValueError(f"malformed JSON: expected {char!r}, got {got!r}")
        self.pos += 1

    def value(self) -> Any:
        """One complete JSON value (refilling the window until it parses and is not cut at its end)."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if not self._fill():
                    raise
                continue
            if end == len(self.buf) and not self.eof:       # a number or literal may go on in the next block
                self._fill()
                continue
            self.pos = end
            return value

    def separator(self, close: str) -> bool:
        """After an element: True when another follows (',' consumed), False at `close` (consumed)."""
        char = self.peek()
        self.pos += 1
        if char == ",":
            return True
        if char == close:
            return False
        raise ValueError(f"malformed JSON: expected ',' or {close!r}, got {char!r}")


def iter_members(fh: BinaryIO, stream: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(key, value) for each member of the top-level object in `fh`. For a key in `stream` whose value is
    an object, (key, (member name, member value)) is yielded per member; for a list, (key, element) per
    element."""
    scan = _Scanner(fh)
    scan.expect("{")
    if scan.peek() == "}":
        return
    while True:
        key = scan.value()
        scan.expect(":")
        if key in stream and scan.peek() in "{[":
            close = "}" if scan.peek() == "{" else "]"
            scan.pos += 1
            if scan.peek() == close:
                scan.pos += 1
            else:
                while True:
                    if close == "}":
                        name = scan.value()
                        scan.expect(":")
                        yield key, (name, scan.value())
                    else:
                        yield key, scan.value()
                    if not scan.separator(close):
                        break
        else:
            yield key, scan.value()
        if not scan.separator("}"):
            return
