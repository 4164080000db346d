"""The hand-off queue: bounded in chunks, lines and characters, each refusal counted."""

from __future__ import annotations

import asyncio

import pytest

from shopwatch.errors import ConfigError
from shopwatch.sources.base import ChunkQueue, RawChunk, SourceMetrics


def _chunk(lines: int, width: int = 10) -> RawChunk:
    return RawChunk("syslog-udp", "syslog", ["x" * width] * lines, 1)


def _refusals(metrics: SourceMetrics, bound: str) -> float:
    return (
        metrics.registry.get_sample_value("shopwatch_sources_queue_full_total", {"bound": bound})
        or 0.0
    )


def test_large_messages_are_bounded_by_characters_not_only_by_count() -> None:
    metrics = SourceMetrics()
    queue = ChunkQueue(max_chunks=100, max_lines=1_000, max_bytes=64 * 1024, metrics=metrics)
    big = _chunk(4, width=8 * 1024)  # four 8 KiB messages: 32 KiB
    assert queue.offer(big) and queue.offer(big)
    assert not queue.offer(big)  # 96 KiB would pass the 64 KiB bound, with 8 lines of 1,000
    assert queue.bytes == 64 * 1024 and queue.lines == 8
    assert _refusals(metrics, "bytes") == 1
    assert metrics.registry.get_sample_value("shopwatch_sources_queued_bytes") == 64 * 1024
    queue.get(timeout=0)
    assert queue.bytes == 32 * 1024 and queue.offer(big)


def test_an_empty_queue_takes_one_chunk_larger_than_its_bounds() -> None:
    queue = ChunkQueue(max_chunks=1, max_lines=1, max_bytes=1)
    assert queue.offer(_chunk(5))
    assert not queue.offer(_chunk(1))
    assert queue.get(timeout=0) is not None and queue.bytes == 0 and queue.lines == 0


def test_each_bound_is_named_when_it_refuses() -> None:
    metrics = SourceMetrics()
    queue = ChunkQueue(max_chunks=2, max_lines=15, max_bytes=10_000, metrics=metrics)
    assert queue.offer(_chunk(10))
    assert not queue.offer(_chunk(10))
    assert queue.offer(_chunk(1))
    assert not queue.offer(_chunk(1))
    assert (_refusals(metrics, "lines"), _refusals(metrics, "chunks")) == (1, 1)


def test_a_waiting_producer_is_counted_once() -> None:
    metrics = SourceMetrics()
    queue = ChunkQueue(max_chunks=1, max_lines=10, metrics=metrics)
    queue.offer(_chunk(1))
    stopping = asyncio.Event()

    async def produce() -> bool:
        task = asyncio.ensure_future(queue.put(_chunk(1), stopping))
        await asyncio.sleep(0.2)  # several polls while full
        queue.get(timeout=0)
        return await task

    assert asyncio.run(produce()) is True
    assert _refusals(metrics, "chunks") == 1


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="1 byte"):
        ChunkQueue(max_bytes=0)
