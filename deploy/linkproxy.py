"""A TCP proxy on loopback that delays every byte it forwards: a slow, jittery link between robot and
server, for tests and `benchmarks/eval_link.py`.

Each chunk read from one side is released to the other after `delay_s + U(-jitter_s, jitter_s)`, never
before an earlier chunk of the same direction (TCP keeps order), so a websocket through it sees exactly
a link with that one-way latency. It listens on 127.0.0.1 only and forwards only to a 127.0.0.1 port;
`stop()` (or leaving the `with` block) ends it, and `max_connections` / `lifetime_s` bound it anyway.
`drop()` cuts every open connection and refuses new ones: a server that vanished.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time


class DelayProxy:
    def __init__(self, upstream_port: int, delay_s: float = 0.05, jitter_s: float = 0.0, seed: int = 0,
                 max_connections: int = 16, lifetime_s: float = 300.0):
        if delay_s < 0 or jitter_s < 0 or jitter_s > delay_s:
            raise ValueError("need 0 <= jitter_s <= delay_s")
        self.upstream_port, self.delay_s, self.jitter_s = upstream_port, delay_s, jitter_s
        self.max_connections, self.lifetime_s = max_connections, lifetime_s
        self.rng = random.Random(seed)
        self.port: int | None = None
        self.connections = 0
        self.forwarded_bytes = 0
        self._dropped = False
        self._writers: list[asyncio.StreamWriter] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def url(self, path: str = "/ws") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "DelayProxy":
        self._thread = threading.Thread(target=self._main, name="psi0-delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("delay proxy did not start")
        return self

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.call_later(self.lifetime_s, loop.stop)
        loop.run_forever()
        server.close()
        for w in self._writers:
            w.close()
        pending = asyncio.all_tasks(loop)                   # connections still forwarding: end them cleanly
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def drop(self) -> None:
        """Cut every connection now and refuse new ones (the server is gone)."""
        def cut() -> None:
            self._dropped = True
            for w in self._writers:
                w.transport.abort()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(cut)

    def __enter__(self) -> "DelayProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ forwarding
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dropped or self.connections >= self.max_connections:
            writer.transport.abort()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        except asyncio.CancelledError:       # proxy shutting down: end normally (3.11's start_server callback
            pass                             # calls task.exception() and would raise on a cancelled task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def release() -> None:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                self.forwarded_bytes += len(data)
            writer.close()

        sender = asyncio.ensure_future(release())
        last_due = 0.0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                due = time.monotonic() + self.delay_s + self.rng.uniform(-self.jitter_s, self.jitter_s)
                last_due = max(last_due, due)                   # in order, as TCP delivers
                queue.put_nowait((last_due, data))
        finally:
            queue.put_nowait((0.0, None))
            await asyncio.gather(sender, return_exceptions=True)
