"""A lean HTTP/1.1 keep-alive client for the wallet load: JSON POSTs over a pool of connections.

The load client shares the machine's two cores with the API it measures: at a thousand calls a
second, httpx's own CPU (a few hundred µs a request) would be taken from the API. This client
writes a prebuilt request and reads the answer's status line, headers and body (Content-Length
or chunked), nothing more, in a few tens of µs.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KEEP_ALIVE_SECONDS = 4.0
"""Idle connections older than this are not reused (uvicorn closes them after 5 s)."""


class HttpError(Exception):
    """The connection failed or the answer was not HTTP/1.1 we understand."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    replayed: bool


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reusable = True
        self.idle_since = time.monotonic()

    async def exchange(self, request: bytes) -> Answer:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.1 status line: {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunks()
        else:
            raise HttpError("an answer with neither Content-Length nor chunked encoding")
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        replayed = headers.get("idempotent-replayed") == "true"
        return Answer(int(parts[1]), body, replayed)

    async def _chunks(self) -> bytes:
        body = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(body)
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class JsonPoster:
    """POSTs of JSON bodies to one server, at most `connections` at once (the rest wait)."""

    def __init__(self, base_url: str, api_key: str, *, connections: int) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"an http:// URL is needed, not {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self._head = (
            f"Host: {url.netloc}\r\nAuthorization: Bearer {api_key}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
        ).encode()
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self.opened = 0

    async def post(self, path: str, body: dict[str, Any]) -> Answer:
        """POST `body`; HttpError when the connection breaks (the call may have been taken).

        A reused connection that breaks is retried once on a new one: the server may have closed
        it just as we sent, and a game call sent twice is a replay (its transaction id is its
        key)."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        request = b"".join(
            (
                f"POST {path} HTTP/1.1\r\n".encode(),
                self._head,
                f"Content-Length: {len(payload)}\r\n\r\n".encode(),
                payload,
            )
        )
        async with self._slots:
            connection = self._reuse()
            if connection is not None:
                try:
                    return await self._exchange(connection, request)
                except HttpError:
                    pass  # the server closed it meanwhile: once more on a new one (a replay)
            return await self._exchange(await self._connect(), request)

    def _reuse(self) -> _Connection | None:
        """An idle connection the server has not closed yet by its keep-alive timeout."""
        while self._idle:
            connection = self._idle.pop()
            if time.monotonic() - connection.idle_since < KEEP_ALIVE_SECONDS:
                return connection
            connection.close()
        return None

    async def _exchange(self, connection: _Connection, request: bytes) -> Answer:
        try:
            answer = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            connection.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled mid-answer: the connection is in an unknown state
            connection.close()
            raise
        if connection.reusable:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise HttpError(f"cannot connect: {exc}") from exc
        self.opened += 1
        return _Connection(reader, writer)

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
