"""Helpers for the live-source tests: run sources on their real loop, collect chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from shopwatch.sources.base import ChunkQueue, RawChunk, Source, SourceRunner

WAIT_S = 5.0  # upper bound of every wait; tests normally finish far sooner


@contextmanager
def running(sources: Sequence[Source], queue: ChunkQueue) -> Iterator[SourceRunner]:
    """Start ``sources`` on a SourceRunner and stop them afterwards."""
    runner = SourceRunner(sources, queue)
    runner.start(timeout=WAIT_S)
    try:
        yield runner
    finally:
        runner.stop(timeout=WAIT_S)


def take(queue: ChunkQueue, n_lines: int, timeout: float = WAIT_S) -> list[RawChunk]:
    """Chunks from ``queue`` until they hold ``n_lines`` lines; fails past ``timeout``."""
    deadline = time.monotonic() + timeout
    chunks: list[RawChunk] = []
    got = 0
    while got < n_lines:
        remaining = deadline - time.monotonic()
        chunk = queue.get(timeout=max(remaining, 0.0)) if remaining > 0 else None
        if chunk is None:
            raise AssertionError(f"got {got} of {n_lines} lines within {timeout}s: {chunks!r}")
        chunks.append(chunk)
        got += len(chunk.lines)
    assert got == n_lines, f"expected {n_lines} lines, got {got}"
    return chunks


def lines_of(chunks: Sequence[RawChunk]) -> list[str]:
    """All lines of ``chunks`` in order."""
    return [line for c in chunks for line in c.lines]


def numbered(chunks: Sequence[RawChunk]) -> list[tuple[int, str]]:
    """(line number, line) of every line of ``chunks``."""
    return [(c.first_line_no + i, line) for c in chunks for i, line in enumerate(c.lines)]


def assert_quiet(queue: ChunkQueue, wait_s: float = 0.3) -> None:
    """Nothing more arrives within ``wait_s`` (a few poll intervals)."""
    chunk = queue.get(timeout=wait_s)
    assert chunk is None, f"unexpected chunk {chunk!r}"
