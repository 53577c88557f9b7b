"""A small HTTP/1.1 client for benchmark load: keep-alive connections over asyncio streams.

The benchmarks share a two-core machine with what they measure. httpx spends about as
much CPU per request as the webhook intake spends answering it, so the sender took the
CPU the measured server needed. This client does only what the benchmarks send (a POST
with a body; responses framed by Content-Length) and costs a fraction of that.

``Pool(size)`` bounds the requests in flight: a request waits for a free connection,
and that wait counts towards its timeout, as it does for any sender.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """The request got no response: refused, reset, timed out, or no free connection."""


@dataclass(frozen=True)
class Response:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[Response, bool]:
        """The response, and whether the server keeps the connection open."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("connection closed before the response")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        keep_alive = True
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
            elif name == b"transfer-encoding":
                raise HttpError("chunked responses are not supported")
        body = await self.reader.readexactly(length) if length else b""
        return Response(status, body), keep_alive

    def close(self) -> None:
        self.writer.close()


class Pool:
    """At most ``size`` connections to one server, reused while the server keeps them."""

    def __init__(self, base_url: str, *, size: int, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"plain http://host:port only, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Connection] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1") + body
        try:
            async with asyncio.timeout(self.timeout):
                async with self._slots:
                    return await self._send(request)
        except TimeoutError as err:
            raise HttpError("timed out") from err
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as err:
            raise HttpError(f"{type(err).__name__}: {err}") from err

    async def _send(self, request: bytes) -> Response:
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._exchange(conn, request)
            except (OSError, asyncio.IncompleteReadError):
                # The server closed an idle keep-alive connection before reading this
                # request: send it again on another connection.
                continue
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self._exchange(_Connection(reader, writer), request)

    async def _exchange(self, conn: _Connection, request: bytes) -> Response:
        try:
            response, keep_alive = await conn.exchange(request)
        except BaseException:
            conn.close()
            raise
        if keep_alive:
            self._idle.append(conn)
        else:
            conn.close()
        return response

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
