"""Frames between the worker and the child: cut at any chunk boundary, caps checked on the
header before an oversized frame is kept, malformed meta refused."""

from __future__ import annotations

import os

import pytest

from agent_resources.sandbox import frames


def test_frames_survive_any_chunking() -> None:
    data = frames.encode({"t": "http", "id": 1}, b"\x00body") + frames.encode({"t": "answer"})
    for size in (1, 3, 7, len(data)):
        reader = frames.FrameReader(100, 100)
        got = []
        for start in range(0, len(data), size):
            got += reader.feed(data[start : start + size])
        assert got == [({"t": "http", "id": 1}, b"\x00body"), ({"t": "answer"}, b"")]
        assert reader.pending == 0


def test_an_oversized_frame_is_refused_from_its_header() -> None:
    reader = frames.FrameReader(max_meta=10, max_body=10)
    with pytest.raises(frames.FrameTooLarge):
        reader.feed(frames.encode({"t": "x"}, b"y" * 11)[: frames.HEADER_SIZE])
    with pytest.raises(ValueError, match="JSON object"):
        frames.FrameReader(100, 100).feed(frames.encode([1, 2]))  # type: ignore[arg-type]


def test_the_child_reads_exactly_one_frame_from_a_pipe() -> None:
    read, write = os.pipe()
    try:
        frames.write_all(write, frames.encode({"a": 1}, b"xyz") + b"next")
        assert frames.read_frame(read) == ({"a": 1}, b"xyz")
        assert os.read(read, 4) == b"next"  # nothing of the next frame was taken
        os.close(write)
        write = -1
        with pytest.raises(EOFError):
            frames.read_frame(read)
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
