"""Cost per 1,000 events and memory per 100,000 entities of the learned baselines.

    python -m bench.models [--entities 100000] [--events-per-entity 12] [--batch 1000] [--repeat 7]

1. Cost: the entity baseline (``data.staff_export_anomaly``) warmed with 2,000 accounts
   of two weeks' exports, then timed on batches of ``--batch`` new exports of those
   accounts; beside it, in the same process and on the same batches, a plain ``threshold``
   rule counting each account's exports per hour (the ratio is the baseline's cost over a
   windowed count's).
2. Memory: ``--entities`` accounts, each with ``--events-per-entity`` exports over two
   weeks (so every profile is warm and holds sizes, hours, networks and days), through the
   entity baseline; and the same number of accounts' logins (device, country, network)
   through the account profiles (``shop.profile.*``). Prints the state's bytes per entity
   (Polars' estimate of the tables) and what the state costs a process that loads it:
   the resident-memory growth of a fresh interpreter (Polars' reader already warm)
   restoring the saved state, per entity (the learning process's own growth mixes in the input and the allocator's
   retained pages, so it says nothing about the state).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

T0 = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)


def exports(
    rng: np.random.Generator, accounts: int, n: int, start: datetime, days: float
) -> pl.DataFrame:
    """``n`` office-hours exports by ``accounts`` accounts over ``days`` from ``start``."""
    from shopwatch.contract import conform

    who = rng.integers(0, accounts, n)
    day = rng.integers(0, max(int(days), 1), n)
    secs = day * 86400 + rng.uniform(8 * 3600, 18 * 3600, n)
    order = np.argsort(secs, kind="stable")
    who, secs = who[order], secs[order]
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [start + timedelta(seconds=float(s)) for s in secs],
                "event.id": [f"x{start.timestamp():.0f}-{i}" for i in range(n)],
                "event.dataset": ["shop.data_access"] * n,
                "event.action": ["export"] * n,
                "user.name": [f"staff{w}@shop.example" for w in who],
                "source.ip": [f"10.{w // 65536 % 256}.{w // 256 % 256}.{w % 256}" for w in who],
                "source.geo.country_iso_code": ["DE"] * n,
                "source.as.type": ["business"] * n,
                "shop.data.object": ["customers"] * n,
                "shop.data.records": rng.integers(100, 2500, n),
            }
        )
    )


def logins(rng: np.random.Generator, accounts: int, n: int, start: datetime) -> pl.DataFrame:
    """``n`` successful logins by ``accounts`` accounts over two weeks, each on its own device."""
    from shopwatch.contract import conform

    who = np.sort(rng.integers(0, accounts, n))
    secs = np.sort(rng.uniform(0, 14 * 86400, n))
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [start + timedelta(seconds=float(s)) for s in secs],
                "event.id": [f"l{i}" for i in range(n)],
                "event.dataset": ["shop.auth"] * n,
                "event.action": ["login"] * n,
                "event.outcome": ["success"] * n,
                "user.name": [f"customer{w}@example.org" for w in who],
                "shop.device.id": [
                    f"d{w}-{int(r)}" for w, r in zip(who, rng.integers(0, 2, n), strict=True)
                ],
                "source.geo.country_iso_code": ["DE"] * n,
                "source.as.number": rng.integers(3000, 3010, n),
            }
        )
    )


_LOADER = """
import gc, pickle, sys, psutil
from shopwatch.detect.state import KeyedState
import io, polars as pl
warm = io.BytesIO()
pl.DataFrame({"a": [1], "b": [["x"]]}).write_ipc(warm)
pl.read_ipc(io.BytesIO(warm.getvalue()))  # Polars' reader and thread pool, before measuring
gc.collect()
before = psutil.Process().memory_info().rss
blobs = pickle.load(open(sys.argv[1], "rb"))
state = KeyedState(())
state.restore(blobs)
del blobs
gc.collect()
print(psutil.Process().memory_info().rss - before)
"""


def loaded_bytes(blobs: dict[str, bytes]) -> int:
    """Resident-memory growth of a fresh interpreter that restores ``blobs``."""
    import pickle
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pickle") as handle:
        pickle.dump(blobs, handle)
        handle.flush()
        # warm the imports first so that only the restored tables are measured
        done = subprocess.run(
            [sys.executable, "-c", "import polars, shopwatch.detect.state;" + _LOADER, handle.name],
            capture_output=True,
            text=True,
            check=True,
        )
    return int(done.stdout.strip().splitlines()[-1])


def cost(batch: int, repeat: int) -> None:
    from shopwatch.detect.content import load_detectors
    from shopwatch.detect.registry import build
    from shopwatch.detect.state import KeyedState

    rng = np.random.default_rng(1)
    model = {d.id: d for d in load_detectors(sigma_rules=False).detectors}[
        "data.staff_export_anomaly"
    ]
    count = build(
        {
            "id": "bench.exports_per_hour",
            "kind": "threshold",
            "category": "data_exfiltration",
            "where": {"event.dataset": "shop.data_access", "event.action": "export"},
            "group_by": ["user.name"],
            "count": {"at_least": 50, "within": "1h"},
        }
    )
    states = {d.id: KeyedState(d.keys, max_age=timedelta(days=90)) for d in (model, count)}
    warm = exports(rng, 2000, 2000 * 12, T0, 14)
    for i in range(0, warm.height, 5000):
        model.detect(warm.slice(i, 5000), states[model.id])
    times: dict[str, list[float]] = {model.id: [], count.id: []}
    for r in range(repeat):
        frame = exports(rng, 2000, batch, T0 + timedelta(days=14 + r), 1)
        for det in (count, model):
            began = time.perf_counter()
            det.detect(frame, states[det.id])
            times[det.id].append(time.perf_counter() - began)
    base = statistics.median(times[count.id]) / batch * 1000
    ours = statistics.median(times[model.id]) / batch * 1000
    print(
        f"cost per 1,000 events ({batch}-event batches, median of {repeat}, 2,000 warm accounts):"
    )
    print(f"  threshold count (baseline)  {base * 1000:8.1f} ms")
    print(f"  entity baseline             {ours * 1000:8.1f} ms   ratio {ours / base:5.2f}")


def memory(entities: int, per: int) -> None:
    from shopwatch.detect.content import load_detectors
    from shopwatch.detect.profiles import Profiler
    from shopwatch.detect.state import KeyedState

    rng = np.random.default_rng(2)
    model = {d.id: d for d in load_detectors(sigma_rules=False).detectors}[
        "data.staff_export_anomaly"
    ]
    state = KeyedState(model.keys, max_keys=entities * 2, max_age=timedelta(days=90))
    frame = exports(rng, entities, entities * per, T0, 14)
    began = time.perf_counter()
    step = 20_000
    for i in range(0, frame.height, step):
        model.detect(frame.slice(i, step), state)
    del frame
    gc.collect()
    took = time.perf_counter() - began
    held = state.table("profiles", model._schema)
    n = held.height - 1  # the population profile
    grew = loaded_bytes(state.snapshot())
    print(f"memory, entity baseline: {n:,} accounts of {per} exports ({took:.0f} s to learn):")
    print(f"  state {state.nbytes / 1e6:8.1f} MB   {state.nbytes / n:6.0f} bytes per entity")
    print(f"  loaded     {grew / 1e6:8.1f} MB   {grew / n:6.0f} bytes per entity")
    del held, state
    gc.collect()

    profiler = Profiler()
    pstate = profiler.new_state()
    frame = logins(rng, entities, entities * 4, T0)
    began = time.perf_counter()
    for i in range(0, frame.height, 50_000):
        profiler.annotate(frame.slice(i, 50_000), pstate)
    del frame
    gc.collect()
    took = time.perf_counter() - began
    keys = pstate.key_summary().height
    grew = loaded_bytes(pstate.snapshot())
    print(f"memory, account profiles: {keys:,} accounts of about 4 logins ({took:.0f} s):")
    print(f"  state {pstate.nbytes / 1e6:8.1f} MB   {pstate.nbytes / keys:6.0f} bytes per entity")
    print(f"  loaded     {grew / 1e6:8.1f} MB   {grew / keys:6.0f} bytes per entity")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--events-per-entity", type=int, default=12)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    cost(args.batch, args.repeat)
    memory(args.entities, args.events_per_entity)


if __name__ == "__main__":
    main()
