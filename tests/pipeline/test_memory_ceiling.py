"""The process memory ceiling (``runtime.memory_max_bytes``): admission control on RSS.

The governor reads the RSS through a function; these tests give it a settable reading so
each mark can be crossed on purpose. Everything around it is real: the queue, the HTTP
source on a loopback uvicorn, the live runner and the engine with the default rules.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from shopwatch.config import RuntimeSettings, Settings
from shopwatch.pipeline import live as live_mod
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.live import LiveRunner
from shopwatch.pipeline.memory import MemoryGovernor, current_rss
from shopwatch.sources.base import ChunkQueue, RawChunk, SourceMetrics
from shopwatch.sources.http import HttpSource
from tests.sources.conftest import WAIT_S, running

MB = 2**20
TOKEN = "ingest-memory-5d1c9e"
NDJSON = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}


class Reading:
    """A settable RSS reading (bytes)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


def governor(reading: Reading, ceiling: int = 1000 * MB) -> MemoryGovernor:
    return MemoryGovernor(ceiling, read_rss=reading, sample_s=0.0)


def login(i: int) -> str:
    return json.dumps(
        {
            "@timestamp": f"2026-05-04T12:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "event": {"dataset": "shop.auth", "action": "login", "outcome": "failure"},
            "source": {"ip": f"203.0.113.{i % 250}"},
            "user": {"name": f"u{i}@example.org"},
        }
    )


def test_the_real_rss_reading_is_this_process() -> None:
    rss = current_rss()
    assert 10 * MB < rss < 64 * 1024 * MB


def test_pressed_above_high_until_under_low() -> None:
    reading = Reading(500 * MB)
    g = governor(reading)  # high 850 MB, low 700 MB
    assert not g.pressed
    reading.value = 860 * MB
    assert g.pressed and g.pressed_total == 1
    reading.value = 750 * MB  # between the marks: still pressed (hysteresis)
    assert g.pressed
    reading.value = 690 * MB
    assert not g.pressed
    reading.value = 800 * MB  # under high again: not pressed
    assert not g.pressed
    assert g.peak == 860 * MB


def test_take_peak_reports_the_highest_reading_of_each_window() -> None:
    reading = Reading(300 * MB)
    g = governor(reading)
    for value in (400, 900, 350):
        reading.value = value * MB
        g.refresh()
    assert g.take_peak() == 900 * MB
    assert g.take_peak() == 350 * MB  # a new window starts at the current reading


def test_the_sampler_thread_follows_the_reading() -> None:
    reading = Reading(100 * MB)
    g = MemoryGovernor(1000 * MB, read_rss=reading, sample_s=0.005)
    g.start()
    try:
        reading.value = 900 * MB
        deadline = time.monotonic() + WAIT_S
        while not g.pressed and time.monotonic() < deadline:
            time.sleep(0.005)
        assert g.pressed
        assert g.rss() == 900 * MB
    finally:
        g.stop()


def test_pressed_queue_holds_an_eighth_of_its_bytes_and_always_one_chunk() -> None:
    reading = Reading(100 * MB)
    metrics = SourceMetrics()
    queue = ChunkQueue(
        max_chunks=100, max_lines=10_000, max_bytes=8000, metrics=metrics, memory=governor(reading)
    )
    line = "x" * 400
    assert queue.offer(RawChunk("t", "auto", [line] * 3, 1))  # 1200 bytes, not pressed
    assert queue.offer(RawChunk("t", "auto", [line] * 3, 4))
    reading.value = 900 * MB  # pressed: at most 1000 bytes while it holds a chunk
    assert not queue.offer(RawChunk("t", "auto", [line], 7))
    assert queue.refusal() == "memory"
    assert metrics.queue_full.labels("memory")._value.get() == 1
    while queue.get(timeout=0) is not None:
        pass
    assert queue.refusal() is None
    assert queue.offer(RawChunk("t", "auto", [line] * 3, 7))  # empty: one chunk always
    assert not queue.offer(RawChunk("t", "auto", [line], 10))
    reading.value = 600 * MB  # under the low mark: full size again
    assert queue.offer(RawChunk("t", "auto", [line] * 3, 10))


def test_ingest_answers_429_before_reading_while_pressed() -> None:
    reading = Reading(100 * MB)
    queue = ChunkQueue(max_chunks=100, max_lines=10_000, max_bytes=80_000, memory=governor(reading))
    metrics = SourceMetrics()
    source = HttpSource(queue, token=TOKEN, port=0, metrics=metrics)
    with (
        running([source], queue),
        httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=WAIT_S) as client,
    ):
        body = "\n".join(login(i) for i in range(40))  # ~5 KB a request
        assert client.post("/ingest", content=body, headers=NDJSON).status_code == 200
        assert client.post("/ingest", content=body, headers=NDJSON).status_code == 200
        reading.value = 900 * MB
        answer = client.post("/ingest", content=body, headers=NDJSON)
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "1"
        assert "memory" in answer.json()["error"]
        assert metrics.busy.labels("memory")._value.get() == 1
        assert len(queue) == 2
        reading.value = 100 * MB
        assert client.post("/ingest", content=body, headers=NDJSON).status_code == 200


def test_ingest_bounds_the_bodies_it_reads_at_once() -> None:
    queue = ChunkQueue(max_chunks=100, max_lines=10_000)
    metrics = SourceMetrics()
    body = ("\n".join(login(i) for i in range(20)) + "\n").encode()
    source = HttpSource(
        queue, token=TOKEN, port=0, metrics=metrics, max_inflight_bytes=len(body) + 10
    )

    async def drive() -> tuple[int, int]:
        release = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield body[:100]
            await release.wait()  # the first body stays in flight until told
            yield body[100:]

        base = f"http://127.0.0.1:{source.port}"
        headers = {**NDJSON, "Content-Length": str(len(body))}
        async with httpx.AsyncClient(base_url=base, timeout=WAIT_S) as client:
            first = asyncio.create_task(client.post("/ingest", content=slow(), headers=headers))
            for _ in range(200):  # until the server has reserved the first body
                if source._inflight:
                    break
                await asyncio.sleep(0.01)
            second = await client.post("/ingest", content=body, headers=headers)
            release.set()
            return (await first).status_code, second.status_code

    with running([source], queue):
        first, second = asyncio.run(drive())
    assert (first, second) == (200, 429)
    assert metrics.busy.labels("inflight")._value.get() == 1
    assert source._inflight == 0  # released once answered


def test_bounds_must_fit_the_ceiling() -> None:
    with pytest.raises(ValidationError, match=r"60% of runtime\.memory_max_bytes"):
        RuntimeSettings(
            memory_max_bytes=512 * MB, state_max_bytes=256 * MB, queue_max_bytes=256 * MB
        )
    RuntimeSettings(memory_max_bytes=None, state_max_bytes=4096 * MB)  # no ceiling: any bounds
    assert RuntimeSettings().memory_max_bytes == 2048 * MB
    with pytest.raises(ValidationError):
        RuntimeSettings(memory_max_bytes=64 * MB)


def runner_with(reading: Reading, tmp_path: object, **runtime: object) -> LiveRunner:
    settings = Settings(
        data_dir=str(tmp_path),
        runtime=runtime,
        enrich={
            "geo": {"enabled": False},
            "intel": {"enabled": False},
            "crawler_dns": {"enabled": False},
        },
    )
    engine = build_engine(settings, live=True)
    return LiveRunner(engine, runtime=settings.runtime, memory=governor(reading))


def feed(runner: LiveRunner, start: int, n: int, per_chunk: int = 100) -> int:
    for k in range(start, start + n, per_chunk):
        lines = [login(i) for i in range(k, min(k + per_chunk, start + n))]
        assert runner.inbox.offer(RawChunk("http", "ecs", lines, k + 1))
    return runner.step(wait_s=0.1)


def test_a_batch_over_the_high_mark_halves_the_next_and_a_calm_one_regrows(
    tmp_path: object,
) -> None:
    reading = Reading(100 * MB)
    runner = runner_with(
        reading, tmp_path, batch_max_events=1000, max_past_age_s=None, max_future_skew_s=None
    )
    assert feed(runner, 0, 1000) == 1000
    assert runner.batch_limit == 1000
    reading.value = 900 * MB  # this batch peaks over the high mark
    runner.memory.refresh()
    assert feed(runner, 1000, 1000) == 1000
    assert runner.batch_limit == 500
    assert feed(runner, 2000, 1000) == 500  # the next batch stops at the new limit
    assert runner.batch_limit == live_mod.MIN_BATCH_EVENTS  # halving stops at the floor
    reading.value = 100 * MB
    runner.memory.refresh()
    runner.memory.take_peak()
    while runner.inbox.get(timeout=0) is not None:
        pass
    feed(runner, 3000, 1000)
    assert runner.batch_limit == 625  # regrows by a quarter under the low mark


@pytest.fixture()
def eager_relief(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relief without its waits: shed as soon as idle and pressed, whatever the state size."""
    monkeypatch.setattr(live_mod, "SHED_AFTER_IDLE_S", 0.0)
    monkeypatch.setattr(live_mod, "_RELIEF_EVERY_S", 0.0)
    monkeypatch.setattr(live_mod, "_SHED_FLOOR_BYTES", 0)


@pytest.mark.usefixtures("eager_relief")
def test_idle_and_over_the_mark_sheds_half_the_state(tmp_path: object) -> None:
    reading = Reading(100 * MB)
    runner = runner_with(reading, tmp_path, max_past_age_s=None, max_future_skew_s=None)
    feed(runner, 0, 3000)
    held = runner.engine.state_bytes
    assert held > 0
    reading.value = 900 * MB  # over the high mark, under critical: input held back only
    for _ in range(3):
        runner.step(wait_s=0.0)
    assert runner.engine.state_bytes == held
    assert runner.memory.relief.labels("none_left")._value.get() == 1  # told, once
    reading.value = 960 * MB  # near the ceiling itself
    runner.step(wait_s=0.0)  # idle: starts the idle-and-pressed clock
    runner.step(wait_s=0.0)  # still idle and pressed: sheds
    assert 0 < runner.engine.state_bytes <= held // 2
    shed = sum(runner.engine.stats.shed_rows.values())
    assert shed > 0
    assert runner.memory.relief.labels("shed_state_idle")._value.get() >= 1
    reading.value = 100 * MB  # released: no more shedding
    runner.step(wait_s=0.0)
    runner.step(wait_s=0.0)
    assert sum(runner.engine.stats.shed_rows.values()) == shed


@pytest.mark.usefixtures("eager_relief")
def test_busy_over_the_mark_sheds_only_once_batches_are_at_their_floor(tmp_path: object) -> None:
    reading = Reading(960 * MB)
    runner = runner_with(
        reading, tmp_path, batch_max_events=2000, max_past_age_s=None, max_future_skew_s=None
    )
    feed(runner, 0, 2000)  # 2000 -> 1000: batches can still shrink, nothing shed
    feed(runner, 2000, 1000)  # 1000 -> 500
    assert runner.batch_limit == live_mod.MIN_BATCH_EVENTS
    assert sum(runner.engine.stats.shed_rows.values()) == 0
    reading.value = 900 * MB  # at the floor, over the high mark but not near the ceiling
    feed(runner, 3000, 500)
    assert sum(runner.engine.stats.shed_rows.values()) == 0
    held = runner.engine.state_bytes
    reading.value = 960 * MB
    feed(runner, 3500, 500)  # at the floor and near the ceiling: the state goes
    assert sum(runner.engine.stats.shed_rows.values()) > 0
    assert runner.engine.state_bytes < held
    assert runner.memory.relief.labels("shed_state_batch_at_floor")._value.get() == 1


def test_batches_are_capped_at_what_fits_under_the_mark(tmp_path: object) -> None:
    reading = Reading(100 * MB)
    runner = runner_with(reading, tmp_path, max_past_age_s=None, max_future_skew_s=None)
    process = runner.engine.process

    def heavy(*args: object, **kwargs: object) -> object:
        reading.value = 600 * MB  # the batch's working memory: 500 MB for 2000 lines
        runner.memory.refresh()
        out = process(*args, **kwargs)
        reading.value = 100 * MB
        runner.memory.refresh()
        return out

    runner.engine.process = heavy  # type: ignore[method-assign]
    assert feed(runner, 0, 2000) == 2000
    # 250 KiB a line, 750 MiB under the high mark: 3000 lines, though 600 MB < low mark.
    assert runner.batch_limit == 3000
