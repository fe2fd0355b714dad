"""Log lines are batched into whole-line writes of at most PIPE_BUF bytes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from workers.observability.logbatch import CHUNK_BYTES, BatchedLines, chunks


def test_lines_are_cut_only_after_newlines_and_never_over_pipe_buf() -> None:
    lines = b"".join(b"%04d %s\n" % (n, b"x" * (n % 300)) for n in range(200))
    pieces = chunks(lines)
    assert b"".join(pieces) == lines
    assert all(piece.endswith(b"\n") and len(piece) <= CHUNK_BYTES for piece in pieces)
    assert len(pieces) > 1


def test_a_line_longer_than_pipe_buf_is_written_whole_on_its_own() -> None:
    long_line = b"y" * (CHUNK_BYTES * 2) + b"\n"
    assert chunks(b"a\n" + long_line + b"b\n") == [b"a\n", long_line, b"b\n"]


def test_lines_reach_the_file_within_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w") as target:
        stream = BatchedLines(target, flush_seconds=0.05)
        print("first line", file=stream, flush=True)
        assert path.read_text() == ""  # waiting for the batch
        deadline = time.monotonic() + 5
        while path.read_text() == "" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.read_text() == "first line\n"


def test_a_partly_written_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w") as target:
        stream = BatchedLines(target, flush_seconds=60)
        stream.write("half a ")
        stream.drain()
        assert path.read_text() == ""
        stream.write("line\n")
        stream.drain()
        assert path.read_text() == "half a line\n"


def test_many_lines_are_written_in_few_system_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "log"
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes | memoryview) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    with path.open("w") as target:
        stream = BatchedLines(target, flush_seconds=60)
        for n in range(1000):
            print(f'{{"event": "delivered", "n": {n}}}', file=stream, flush=True)
        stream.drain()
    assert len(path.read_text().splitlines()) == 1000
    assert len(writes) < 1000 / 50
