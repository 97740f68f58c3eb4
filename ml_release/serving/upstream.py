"""Kept-alive HTTP/1.1 connections from the local router to one backend server.

The router forwards a request's bytes as they came and reads the answer back without an HTTP
client library: a small LIFO pool of asyncio streams per backend, the answer's hop-by-hop
headers left out.
"""

import asyncio
from collections import deque
from typing import NamedTuple

# Hop-by-hop headers (RFC 9110 section 7.6.1) and those the router sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
_MAX_IDLE = 64


class Answer(NamedTuple):
    """A backend's HTTP answer: status, headers (hop-by-hop ones left out), body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class BadResponse(Exception):
    """The backend's bytes are not an HTTP/1.1 response."""


class Backend:
    """Keep-alive HTTP/1.1 connections to one server on 127.0.0.1 (a LIFO pool)."""

    def __init__(self, port: int):
        self.port = port
        self._host = f"127.0.0.1:{port}".encode()
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """Send one request on a kept-alive connection (a fresh one if it was closed)."""
        parts = [method, b" ", target, b" HTTP/1.1\r\nhost: ", self._host, b"\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
        data = b"".join(parts)
        while True:
            reused, (reader, writer) = await self._connection()
            try:
                writer.write(data)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    partial = getattr(exc, "partial", b"")
                    if reused and not partial:
                        # A kept-alive connection the server had closed: retry on a fresh one
                        # (inference is idempotent, and nothing was answered on this one).
                        writer.transport.abort()
                        continue
                    raise
                answer, keep = await self._read(reader, head, method)
            except BaseException:  # a timeout's cancellation too: the connection is unusable
                writer.transport.abort()
                raise
            if keep and len(self._idle) < _MAX_IDLE:
                self._idle.append((reader, writer))
            else:
                writer.transport.abort()
            return answer

    async def _connection(self) -> tuple[bool, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not (writer.is_closing() or reader.at_eof()):
                return True, (reader, writer)
            writer.transport.abort()
        return False, await asyncio.open_connection("127.0.0.1", self.port)

    async def _read(
        self, reader: asyncio.StreamReader, head: bytes, method: bytes
    ) -> tuple[Answer, bool]:
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
            raise BadResponse(f"status line {lines[0][:80]!r}")
        status = int(status_line[1])
        keep = status_line[0] == b"HTTP/1.1"
        length, chunked, headers = None, False, []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep = keep and b"close" not in value.lower()
            if name not in HOP_BY_HOP:
                headers.append((name, value))
        if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            body = await _read_chunked(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body, keep = await reader.read(), False
        return Answer(status, headers, body), keep

    def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            # Held in a name: popped and dropped in one expression, the writer would be
            # collected (and warn "unclosed") before its transport is aborted.
            _reader, writer = self._idle.pop()
            writer.transport.abort()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append((await reader.readexactly(size + 2))[:-2])
