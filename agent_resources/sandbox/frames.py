"""The framing both ends of the sandbox speak over their pipes (standard library only).

A frame is an 8-byte header (the lengths of a JSON object and of raw bytes, big-endian), the
JSON object (``meta``) and the bytes (``body``, e.g. an HTTP body, so it need not be base64).
The parent reads frames incrementally with caps checked on the header, before any byte of an
oversized frame is kept; the child reads them blocking, exactly, so nothing is over-read.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

_HEADER = struct.Struct(">II")
HEADER_SIZE = _HEADER.size


class FrameTooLarge(Exception):
    """A frame's header announces more than the reader accepts."""


def encode(meta: dict[str, Any], body: bytes = b"") -> bytes:
    """One frame."""
    text = json.dumps(meta, default=str).encode()
    return _HEADER.pack(len(text), len(body)) + text + body


class FrameReader:
    """Cuts frames out of a byte stream fed in chunks (the parent's side)."""

    def __init__(self, max_meta: int, max_body: int) -> None:
        self._buffer = bytearray()
        self._max_meta = max_meta
        self._max_body = max_body

    def feed(self, chunk: bytes) -> list[tuple[dict[str, Any], bytes]]:
        """Frames completed by ``chunk``.

        Raises:
            FrameTooLarge: a header announces more than the caps.
            ValueError: a frame's JSON is malformed or not an object.
        """
        self._buffer.extend(chunk)
        frames = []
        while len(self._buffer) >= HEADER_SIZE:
            meta_len, body_len = _HEADER.unpack_from(self._buffer)
            if meta_len > self._max_meta or body_len > self._max_body:
                raise FrameTooLarge(f"frame of {meta_len} + {body_len} bytes")
            end = HEADER_SIZE + meta_len + body_len
            if len(self._buffer) < end:
                break
            meta = json.loads(bytes(self._buffer[HEADER_SIZE : HEADER_SIZE + meta_len]))
            if not isinstance(meta, dict):
                raise ValueError("a frame's meta must be a JSON object")
            frames.append((meta, bytes(self._buffer[HEADER_SIZE + meta_len : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame."""
        return len(self._buffer)


def read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd`` (blocking); EOFError if it closes first."""
    parts = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the pipe closed in the middle of a frame")
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def read_frame(fd: int) -> tuple[dict[str, Any], bytes]:
    """One whole frame from ``fd`` (the child's side; the parent is trusted to frame well)."""
    meta_len, body_len = _HEADER.unpack(read_exactly(fd, HEADER_SIZE))
    meta = json.loads(read_exactly(fd, meta_len))
    return meta, read_exactly(fd, body_len)


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` (blocking)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
