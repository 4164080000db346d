"""Assigned event ids (``<file name>:<line number>``) never repeat across rotation or truncation."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from shopwatch.config import FileSource
from shopwatch.parse import ParseContext, parse_frame
from shopwatch.sources.base import ChunkQueue, RawChunk
from shopwatch.sources.tail import TailSource
from tests.sources.conftest import running, take

LINE = (
    '203.0.113.{i} - - [05/Mar/2024:10:00:{i:02d} +0000] "GET /cart/{i} HTTP/1.1" 200 {n} '
    '"https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"'
)


def lines(start: int, stop: int) -> str:
    return "".join(LINE.format(i=i, n=500 + i) + "\n" for i in range(start, stop))


def event_ids(chunks: list[RawChunk]) -> list[str]:
    ids: list[str] = []
    for chunk in chunks:
        frame = pl.DataFrame(
            {
                "line": chunk.lines,
                "line_no": list(range(chunk.first_line_no, chunk.first_line_no + len(chunk.lines))),
            },
            schema={"line": pl.String, "line_no": pl.Int64},
        )
        batch = parse_frame(frame, "nginx", ParseContext(source=chunk.source)).batch
        ids.extend(batch["event.id"].to_list())
    return ids


def tail(tmp_path: Path, queue: ChunkQueue, log: Path) -> TailSource:
    spec = FileSource(path=str(log), format="nginx")
    return TailSource([spec], queue, tmp_path / "data" / "offsets.json", poll_interval_s=0.02)


def test_ids_are_unique_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(1, 4))
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, log)], queue):
        first = take(queue, 3)
        os.rename(log, tmp_path / "access.log.1")
        log.write_text(lines(4, 7))  # a new file under the old name: lines 1..3 again
        second = take(queue, 3)
    ids = event_ids(first + second)
    assert ids[:3] == ["access.log:1", "access.log:2", "access.log:3"]  # the contract's form
    assert len(set(ids)) == 6, ids
    assert all(i.startswith("access.log") for i in ids)


def test_ids_are_unique_across_truncation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(lines(1, 4))
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, log)], queue):
        first = take(queue, 3)
        with open(log, "r+b") as fh:  # copytruncate
            fh.truncate(0)
        log.write_text(lines(4, 6))
        second = take(queue, 2)
    ids = event_ids(first + second)
    assert len(set(ids)) == 5, ids
