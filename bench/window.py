"""Per-batch cost against the volume held in the detectors' windows.

    python -m bench.window [--keys 0,20000,100000,200000] [--batch 1000] [--repeat 5]

An engine with every default detector (no enrichment) is filled, for each ``--keys``
figure, with that many distinct failing-login addresses (each one failure, inside the
rules' windows); then batches of ``--batch`` new failed logins from other addresses are run
through it and timed. It prints the median per-batch time at each state size and its ratio
to the empty-state time measured in the same process: a ratio near 1 means a batch costs
in proportion to its own size, not to what the windows hold.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import polars as pl

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def failures(start: int, n: int, at: datetime, prefix: int) -> pl.DataFrame:
    """``n`` failed shop logins from distinct addresses, one second apart from ``at``."""
    from shopwatch.contract import conform

    ids = range(start, start + n)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [at + timedelta(milliseconds=i - start) for i in ids],
                "event.id": [f"w{prefix}-{i}" for i in ids],
                "event.dataset": ["shop.auth"] * n,
                "event.action": ["login"] * n,
                "event.outcome": ["failure"] * n,
                "event.reason": ["bad_password"] * n,
                "source.ip": [
                    f"{prefix}.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in ids
                ],
                "user.name": [f"user{i}@example.org" for i in ids],
            }
        )
    )


def per_batch_ms(keys: int, batch: int, repeat: int) -> tuple[float, int]:
    """Median ms of a ``batch``-event batch beside ``keys`` keys held; and the state bytes."""
    from shopwatch.detect.content import load_detectors
    from shopwatch.pipeline import Engine

    engine = Engine(load_detectors().detectors)
    step = 50_000
    for start in range(0, keys, step):
        engine.process(failures(start, min(step, keys - start), T0, 10))
    times = []
    for r in range(repeat):
        at = T0 + timedelta(seconds=60 + r)
        frame = failures(r * batch, batch, at, 20)
        t = time.perf_counter()
        engine.process(frame)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), engine.state_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", default="0,20000,100000,200000")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(k) for k in args.keys.split(",")]
    base = None
    for keys in sizes:
        ms, held = per_batch_ms(keys, args.batch, args.repeat)
        base = ms if base is None else base
        print(
            f"keys={keys:>7,} state={held / 2**20:6.1f}MB batch={args.batch} "
            f"per_batch={ms:7.1f}ms ratio={ms / base:5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
