"""Live latency: event arrival → alert stored, at a fixed ingest rate, through the full pipeline.

    python -m bench.live [--rate 20000] [--seconds 30] [--chunk 200]

A feeder thread submits simulated access-log lines (with their attack campaigns) to the
live runner at ``--rate`` events/s in chunks of ``--chunk`` lines; the runner micro-batches
them (size and latency bounds from the default settings), parses, enriches, runs every
default detector and stores the alerts in SQLite before it acks the chunk. Latency is
measured per chunk from its arrival to the end of the batch that stored its alerts; the
figures are p50/p99 and the achieved rate against the offered one (ratio 1.00 = kept up).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    import psutil

    from shopwatch.config import Settings
    from shopwatch.contract import Alert
    from shopwatch.pipeline.build import build_engine
    from shopwatch.pipeline.live import LiveRunner
    from shopwatch.sim import write_access_log
    from shopwatch.store import Store

    folder = Path(tempfile.mkdtemp(prefix="shopwatch-live-"))
    total = int(args.rate * args.seconds)
    log = folder / "access.log"
    write_access_log(log, total, seed=args.seed, minutes=max(args.seconds / 60 * 20, 10))
    lines = log.read_text(encoding="utf-8").splitlines()
    store = Store.open(f"sqlite:///{folder / 'bench.db'}")
    settings = Settings(data_dir=folder)
    engine = build_engine(settings, live=False)  # no crawler DNS: nothing leaves the machine
    runner = LiveRunner(engine, runtime=settings.runtime, save_alerts=store.save_alerts)
    engine.warm_up()
    stored: list[int] = []
    runner.save_alerts = lambda alerts: stored.append(store.save_alerts(alerts)) or stored[-1]  # type: ignore[assignment]
    runner.start()
    interval = args.chunk / args.rate
    started = time.perf_counter()

    def feed() -> None:
        for n, i in enumerate(range(0, len(lines), args.chunk)):
            due = started + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            runner.submit("access.log", "nginx", lines[i : i + args.chunk], i + 1, timeout=30)

    feeder = threading.Thread(target=feed)
    feeder.start()
    feeder.join()
    offered_s = time.perf_counter() - started
    while runner.queued:
        time.sleep(0.01)
    runner.stop()
    elapsed = time.perf_counter() - started
    p50, p99 = runner.stats.latency_ms(0.5), runner.stats.latency_ms(0.99)
    achieved = runner.stats.events / elapsed
    rss = psutil.Process().memory_info().rss
    print(
        f"live rate_offered={args.rate}/s seconds={args.seconds:.0f} events={runner.stats.events} "
        f"batches={runner.stats.batches} alerts_stored={sum(stored)} "
        f"latency_p50={p50:.0f}ms latency_p99={p99:.0f}ms max={max(runner.stats.latencies) * 1000:.0f}ms "
        f"achieved={achieved:.0f}/s ratio={achieved / args.rate:.2f} feed_time={offered_s:.1f}s rss={rss / 1e6:.0f}MB"
    )
    store.close()
    del Alert


if __name__ == "__main__":
    main()
