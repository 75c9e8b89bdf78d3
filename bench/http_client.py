"""The load generator's HTTP/1.1 client: keep-alive connections on asyncio streams.

The load generator shares the cores with the service it measures, so its cost per request
counts. Here httpx spends about 1 ms of CPU on each request (httpcore retries a failed
``import sniffio`` on every request when sniffio is not installed, encode/httpcore#1103,
and its pool scans every connection): at 1,500 requests/s that would be most of a
2-core machine. This client spends about 40 µs: it writes the request line and headers,
reads the response head and ``Content-Length`` bytes of body, and keeps the connection.
Every request carries the bearer token its connection's :data:`Credentials` give at that
moment (a cached token, renewed before it expires: ``local_infra.tokens.RealmTokens``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

Credentials = Callable[[], str]
"""The caller's current access token."""
IDLE = 3.0
"""Seconds after which an idle connection is not reused: uvicorn closes keep-alive
connections idle for 5 s, and a request written as it does would get no answer."""


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int, credentials: Credentials | None = None) -> None:
        self.host, self.port = host, port
        self.credentials = credentials
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.used = time.monotonic()

    @classmethod
    def to(cls, url: str, credentials: Credentials | None = None) -> Connection:
        """A connection (opened at the first request) to the server of ``url``, its
        requests carrying the token ``credentials`` give (none without)."""
        address = urlsplit(url)
        return cls(address.hostname or "127.0.0.1", address.port or 80, credentials)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """The response's status and body. A ``GET`` on a kept connection the server closed
        before answering (its keep-alive timer fired as the request left) is sent again on
        a new connection, as HTTP clients do with idempotent requests."""
        reused = self._streams is not None
        try:
            return await self._exchange(method, path, body)
        except asyncio.IncompleteReadError as error:
            self.close()
            if not (reused and method == "GET" and not error.partial):
                raise
        return await self._exchange(method, path, body)

    async def _exchange(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if self.credentials is not None:
            head += f"Authorization: Bearer {self.credentials()}\r\n"
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        response = await reader.readuntil(b"\r\n\r\n")
        status, length, close = _parse(response)
        data = await reader.readexactly(length)
        if close:
            self.close()
        self.used = time.monotonic()
        return status, data

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def _parse(head: bytes) -> tuple[int, int, bool]:
    """Status, body length and whether the server closes the connection."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
    if "content-length" not in headers:
        raise ValueError(f"a response without Content-Length: {lines[0]}")
    close = headers.get("connection", "").strip() == "close"
    return status, int(headers["content-length"]), close


class Pool:
    """Idle connections to one server, opened as needed."""

    def __init__(self, url: str, credentials: Credentials | None = None) -> None:
        self.url = url
        self.credentials = credentials
        self._idle: list[Connection] = []

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """An idle connection (or a new one); back in the pool unless the request failed."""
        while self._idle and time.monotonic() - self._idle[0].used > IDLE:
            self._idle.pop(0).close()
        connection = self._idle.pop() if self._idle else Connection.to(self.url, self.credentials)
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        self._idle.append(connection)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        async with self.connection() as connection:
            return await connection.request(method, path, body)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
