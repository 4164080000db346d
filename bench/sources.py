"""Throughput of the file tail and of HTTP ingest, end to end, against plain-Python floors.

    python -m bench.sources [--lines 500000] [--max-lines 1000]

Tail: ``--lines`` nginx lines written to a temporary file, followed by a TailSource on a
SourceRunner; the consumer acks every chunk (one atomic registry write each), as the live
pipeline does. Baseline: reading the same file with ``for line in open(...)`` into lists of
``--max-lines`` lines, in the same process. Run twice: one registry write per ack
(``commit_interval_s=0``, the default) and writes coalesced over 0.1 s.
HTTP: the same number of ECS events POSTed as NDJSON bodies of ~4 MB to a real uvicorn
server on 127.0.0.1 (validation of each line with orjson, queueing); baseline: the
per-line ``orjson.loads`` check alone over the same bodies. Prints lines/s, the ratio and
the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import structlog

from shopwatch.config import FileSource
from shopwatch.sources import ChunkQueue, HttpSource, SourceRunner, TailSource, ack


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(n: int, seconds: float) -> str:
    per = n / seconds if seconds > 0 else float("inf")
    return f"{per / 1e6:.2f}M/s" if per >= 1e6 else f"{per / 1e3:.1f}k/s"


def _nginx(i: int) -> str:
    return (
        f"203.0.113.{i % 250} - - [05/Mar/2024:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] "
        f'"GET /product/{i}?ref=home HTTP/1.1" 200 {512 + i % 9000} "https://shop.example/" '
        f'"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"'
    )


def _event(i: int) -> str:
    return json.dumps(
        {
            "@timestamp": f"2024-03-05T10:15:{i % 60:02d}Z",
            "event": {"dataset": "shop.auth", "action": "login", "outcome": "failure"},
            "source.ip": f"198.51.100.{i % 250}",
            "user": {"name": f"customer{i}@example.com"},
        }
    )


def _drain(queue: ChunkQueue, total: int, *, acking: bool) -> None:
    got = 0
    while got < total:
        chunk = queue.get(timeout=30)
        if chunk is None:
            raise SystemExit(f"stalled after {got} of {total} lines")
        got += len(chunk.lines)
        if acking:
            ack(chunk.token)


def bench_tail(folder: Path, lines: int, max_lines: int) -> None:
    path = folder / "access.log"
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, lines, 10_000):
            fh.write("".join(f"{_nginx(i)}\n" for i in range(start, min(start + 10_000, lines))))
    size_mb = path.stat().st_size / 1e6

    t0 = time.perf_counter()
    batch: list[str] = []
    count = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            batch.append(line.rstrip("\n"))
            if len(batch) == max_lines:
                count += len(batch)
                batch = []
    count += len(batch)
    base_s = time.perf_counter() - t0
    assert count == lines

    for interval in (0.0, 0.1):
        queue = ChunkQueue(max_chunks=64, max_lines=200_000)
        source = TailSource(
            [FileSource(path=str(path), format="nginx")],
            queue,
            folder / f"offsets-{interval}.json",
            max_lines=max_lines,
            commit_interval_s=interval,
        )
        runner = SourceRunner([source], queue)
        t0 = time.perf_counter()
        runner.start()
        _drain(queue, lines, acking=True)
        tail_s = time.perf_counter() - t0
        runner.stop()
        print(
            f"tail commit_interval_s={interval} lines={lines} size={size_mb:.0f}MB "
            f"tail={_rate(lines, tail_s)} floor={_rate(lines, base_s)} "
            f"ratio={base_s / tail_s:.2f} rss={_rss_mb():.0f}MB"
        )


def bench_http(lines: int) -> None:
    per_body = 20_000  # ~4 MB of events per request
    bodies = [
        ("\n".join(_event(i) for i in range(start, min(start + per_body, lines))) + "\n").encode()
        for start in range(0, lines, per_body)
    ]
    t0 = time.perf_counter()
    ok = 0
    for body in bodies:
        for raw in body.split(b"\n"):
            if raw.strip() and isinstance(orjson.loads(raw), dict):
                ok += 1
    base_s = time.perf_counter() - t0
    assert ok == lines

    queue = ChunkQueue(max_chunks=64, max_lines=1_000_000)
    source = HttpSource(queue, token="bench", port=0, max_body_bytes=16 * 1024 * 1024)
    runner = SourceRunner([source], queue)
    runner.start()
    consumer = threading.Thread(target=_drain, args=(queue, lines), kwargs={"acking": False})
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=60) as client:
        t0 = time.perf_counter()
        consumer.start()
        for body in bodies:
            while (
                resp := client.post("/ingest", content=body, headers=headers)
            ).status_code == 429:
                time.sleep(0.01)
            resp.raise_for_status()
        consumer.join()
        http_s = time.perf_counter() - t0
    runner.stop()
    print(
        f"http lines={lines} bodies={len(bodies)} ingest={_rate(lines, http_s)} "
        f"floor={_rate(lines, base_s)} ratio={base_s / http_s:.2f} rss={_rss_mb():.0f}MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--max-lines", type=int, default=1000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        bench_tail(Path(tmp), args.lines, args.max_lines)
    bench_http(args.lines)


if __name__ == "__main__":
    main()
