"""Simulator throughput: the vectorized access-log generator against the event-time engine.

    python -m bench.simulate [lines]

Prints lines per second of :func:`shopwatch.sim.fast.write_access_log` (default 1,000,000
lines), of :func:`shopwatch.sim.simulate` (the per-session engine that also writes ECS,
syslog and flow logs, over one hour), their ratio, and the peak RSS of the process.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from shopwatch.sim import simulate
from shopwatch.sim.fast import write_access_log


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Run both generators once and print the figures."""
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = simulate(Path(tmp) / "engine", 60, seed=1)
        engine_s = time.perf_counter() - started
        engine_lines = sum(result.lines.values())
        engine_rate = engine_lines / engine_s
        rss_engine = _rss_mb()

        started = time.perf_counter()
        truth = write_access_log(Path(tmp) / "access.log", lines, seed=1)
        fast_s = time.perf_counter() - started
        with (Path(tmp) / "access.log").open("rb") as fh:
            written = sum(1 for _ in fh)
        assert written == lines, (written, lines)
        fast_rate = lines / fast_s

    print(
        f"engine lines={engine_lines} (1 h, all formats) time={engine_s:.2f}s rate={engine_rate / 1e3:.1f}k/s "
        f"rss={rss_engine:.0f}MB"
    )
    print(
        f"fast lines={lines} campaigns={len(truth)} time={fast_s:.2f}s rate={fast_rate / 1e6:.2f}M/s "
        f"ratio={fast_rate / engine_rate:.1f} rss={_rss_mb():.0f}MB"
    )


if __name__ == "__main__":
    main()
