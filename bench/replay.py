"""Replay throughput: a simulated 1,000,000-line nginx log through the full default pipeline.

    python -m bench.replay [--lines 1000000] [--threads 1] [--keep DIR]

Prints lines/s, wall time and peak RSS for: a baseline pass (read the file and split every
line in plain Python, in this process), parsing alone, and replay with the default
enrichers and detectors, once without the shipped SigmaHQ rules and once with them (the
default); ratios are against the baseline. ``--threads 1`` pins Polars to one core (set
before Polars is imported), as the bar "300,000 lines/s on one core" means.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="Polars threads (0: all cores)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the generated log here.")
    parser.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="RULE",
        help="Run without this rule (repeatable), to measure what it costs.",
    )
    return parser.parse_args()


def main() -> None:
    args = _args()
    if args.threads:
        os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import psutil

    from shopwatch.config import Settings
    from shopwatch.parse import parse_file
    from shopwatch.pipeline.build import build_engine
    from shopwatch.pipeline.replay import replay
    from shopwatch.sim import write_access_log

    proc = psutil.Process()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="shopwatch-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "access.log"
    if not log.exists() or sum(1 for _ in log.open("rb")) != args.lines:
        started = time.perf_counter()
        truth = write_access_log(log, args.lines, seed=args.seed)
        print(
            f"generated lines={args.lines} campaigns={len(truth)} time={time.perf_counter() - started:.1f}s "
            f"size={log.stat().st_size / 1e6:.0f}MB path={log}"
        )

    started = time.perf_counter()
    fields = 0
    with log.open("rb") as handle:
        for raw in handle:
            fields += len(raw.decode("utf-8", "replace").split(" "))
    base_s = time.perf_counter() - started
    base_rate = args.lines / base_s

    started = time.perf_counter()
    parsed = sum(p.batch.height + p.rejects.height for p in parse_file(log, "nginx"))
    parse_s = time.perf_counter() - started

    print(
        f"baseline(read+split) lines={args.lines} time={base_s:.2f}s rate={base_rate / 1e6:.2f}M/s"
    )
    print(
        f"parse lines={parsed} time={parse_s:.2f}s rate={parsed / parse_s / 1e6:.2f}M/s ratio={parsed / parse_s / base_rate:.2f}"
    )
    off = {rule: {"enabled": False} for rule in args.disable}
    times: dict[str, float] = {}
    for label, sigma in (("replay-without-sigma", False), ("replay", True)):
        settings = Settings(data_dir=folder, detectors=off, detect={"sigma_rules": sigma})
        engine = build_engine(settings)
        engine.warm_up()  # load lookup tables outside the timed run
        alerts: list[int] = []
        count = alerts.append
        rss_before = proc.memory_info().rss
        started = time.perf_counter()
        report = replay(
            [str(log)], engine, fmt="nginx", on_alerts=lambda a, count=count: count(a.height)
        )
        replay_s = times[label] = time.perf_counter() - started
        peak = proc.memory_info().rss
        if hasattr(proc, "memory_full_info"):
            import resource

            peak = max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        rate = report.lines / replay_s
        spent = engine.stats.detect_seconds
        sigma_ids = [d.id for d in engine.detectors if d.id.startswith("sigma.")]
        print(
            f"{label} lines={report.lines} events={report.events} malformed={report.rejected} "
            f"alerts={sum(alerts)} detectors={len(engine.detectors)} sigma_rules={len(sigma_ids)} "
            f"enrichers={len(engine.enrichers)} threads={args.threads or 'all'} "
            f"time={replay_s:.2f}s rate={rate / 1e3:.0f}k/s ratio={rate / base_rate:.2f} "
            f"sigma_detect={sum(spent.get(i, 0.0) for i in sigma_ids):.2f}s "
            f"rss_before={rss_before / 1e6:.0f}MB peak_rss={peak / 1e6:.0f}MB"
        )
        slowest = sorted(spent.items(), key=lambda kv: -kv[1])[:5]
        print("slowest detectors: " + ", ".join(f"{k}={v:.2f}s" for k, v in slowest))
    print(
        "sigma cost: replay time with the shipped SigmaHQ rules / without = "
        f"{times['replay'] / times['replay-without-sigma']:.2f}"
    )
    if fields == 0:
        sys.exit("empty log")


if __name__ == "__main__":
    main()
