"""A fault-injecting TCP proxy for the chaos bench: the gateway as an outage shows it.

It runs on its own thread and event loop, in front of one upstream (localstripe). Its
``mode`` decides how each new connection is treated:

    pass      bytes forwarded both ways
    refuse    accepted, then closed at once (connection refused / reset)
    stall     accepted and held without an answer until the mode changes (a timeout)
    error500  the request read, then ``500 Internal Server Error`` with Stripe's error
              object and the connection closed (the gateway's own failure)

Changing the mode closes every open connection, so a client's pooled keep-alive
connection sees the fault too. ``faults`` counts the connections each fault answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from typing import Literal

Mode = Literal["pass", "refuse", "stall", "error500"]

_ERROR_BODY = json.dumps(
    {"error": {"type": "api_error", "message": "An unknown error occurred (injected)"}}
).encode()
_ERROR_RESPONSE = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_ERROR_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _ERROR_BODY
)


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self.mode: Mode = "pass"
        self.faults: Counter[str] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)

    def start(self) -> int:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self.port

    def set_mode(self, mode: Mode) -> None:
        def switch() -> None:
            self.mode = mode
            for writer in list(self._writers):
                writer.close()

        self._loop.call_soon_threadsafe(switch)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        self._writers.add(writer)
        try:
            if mode == "refuse":
                self.faults["refuse"] += 1
                return
            if mode == "stall":
                self.faults["stall"] += 1
                while self.mode == "stall" and not writer.is_closing():
                    await asyncio.sleep(0.05)
                return
            if mode == "error500":
                self.faults["error500"] += 1
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                    writer.write(_ERROR_RESPONSE)
                    await writer.drain()
                return
            await self._forward(reader, writer)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.close()
