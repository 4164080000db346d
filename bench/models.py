"""Cost per 1,000 events and memory per 100,000 entities of the learned baselines.

    python -m bench.models [--entities 100000] [--events-per-entity 12] [--batch 1000] [--repeat 7]

1. Cost: the entity baseline (``data.staff_export_anomaly``) warmed with 2,000 accounts
   of two weeks' exports, then timed on batches of ``--batch`` new exports of those
   accounts; beside it, in the same process and on the same batches, a plain ``threshold``
   rule counting each account's exports per hour (the ratio is the baseline's cost over a
   windowed count's).
   The payment fraud score (``payment.fraud_score``) the same way: 2,000 accounts' orders
   (an authorization and the placed order each) warm it, then batches of ``--batch``
   events are timed beside a count of each account's orders per hour. The metric model
   (``apm.metric_anomaly``): 20 series warmed with a day of one-minute samples, then
   batches of ``--batch`` samples, beside a count per series. The vendor calls model
   (``vendor.calls_anomaly``): 20 vendors warmed with a day of calls, one a minute each,
   then batches of ``--batch`` calls, beside a count per vendor. The client windows
   model (``web.client_anomaly``): 3,000 addresses' requests, 60 a second, three hours to
   warm it, then ``--repeat`` hours more in batches of ``--batch``, beside a count per
   address over the same batches; then its bytes: the model's counts and the open
   windows' requests per address.
2. Memory: ``--entities`` accounts, each with ``--events-per-entity`` exports over two
   weeks (so every profile is warm and holds sizes, hours, networks and days), through the
   entity baseline; and the same number of accounts' logins (device, country, network)
   through the account profiles (``shop.profile.*``). Prints the state's bytes per entity
   (Polars' estimate of the tables) and what the state costs a process that loads it:
   the resident-memory growth of a fresh interpreter (Polars' reader already warm)
   restoring the saved state, per entity (the learning process's own growth mixes in the input and the allocator's
   retained pages, so it says nothing about the state). Then ``--entities`` accounts with
   three orders each through the payment score (its per-account rows, the shared
   population, addresses and cards), the metric model's bytes per series after a week and
   the vendor calls model's bytes per vendor after a week.
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


def orders(
    rng: np.random.Generator, accounts: int, n: int, start: datetime, days: float
) -> pl.DataFrame:
    """``n`` orders by ``accounts`` accounts over ``days``: an authorization, then the order."""
    from shopwatch.contract import conform

    who = rng.integers(0, accounts, n)
    secs = np.sort(rng.uniform(0, days * 86400, n))
    rows: dict[str, list] = {
        k: []
        for k in (
            "@timestamp",
            "event.id",
            "event.dataset",
            "event.action",
            "event.outcome",
            "user.name",
            "source.ip",
            "source.geo.country_iso_code",
            "source.as.type",
            "shop.order.id",
            "shop.order.amount",
            "shop.order.currency",
            "shop.shipping.country",
            "shop.shipping.method",
            "shop.shipping.address_hash",
            "shop.payment.card.fingerprint",
            "shop.payment.card.country",
        )
    }
    amounts = np.round(np.exp(rng.normal(np.log(55), 0.5, n)), 2)
    for i in range(n):
        w = int(who[i])
        for k, (dataset, action) in enumerate(
            (("shop.payment", "authorize"), ("shop.order", "order_placed"))
        ):
            rows["@timestamp"].append(start + timedelta(seconds=float(secs[i]) + k))
            rows["event.id"].append(f"o{start.timestamp():.0f}-{i}-{k}")
            rows["event.dataset"].append(dataset)
            rows["event.action"].append(action)
            rows["event.outcome"].append("success")
            rows["user.name"].append(f"customer{w}@mail.example")
            rows["source.ip"].append(f"84.{w // 65536 % 256}.{w // 256 % 256}.{w % 256}")
            rows["source.geo.country_iso_code"].append("DE")
            rows["source.as.type"].append("residential")
            rows["shop.order.id"].append(f"NH-{start.timestamp():.0f}-{i}")
            rows["shop.order.amount"].append(float(amounts[i]))
            rows["shop.order.currency"].append("EUR")
            rows["shop.shipping.country"].append("DE")
            rows["shop.shipping.method"].append("express" if i % 9 == 0 else "standard")
            rows["shop.shipping.address_hash"].append(f"a{w}")
            rows["shop.payment.card.fingerprint"].append(f"c{w}")
            rows["shop.payment.card.country"].append("DE")
    return conform(pl.DataFrame(rows))


def samples(
    rng: np.random.Generator, series: int, minutes: int, start: datetime, shares: bool = False
) -> pl.DataFrame:
    """One-minute ``apm.metric`` samples of ``series`` latency series with a daily rhythm
    (or, with ``shares``, error rates of about 1 % with the requests they are over)."""
    from shopwatch.contract import conform

    t = np.repeat(np.arange(minutes), series)
    s = np.tile(np.arange(series), minutes)
    hour = (start.hour + t / 60.0) % 24
    daily = 1 + 0.3 * np.sin(2 * np.pi * (hour - 13) / 24)
    extra: dict[str, object] = {}
    if shares:
        counts = rng.poisson(200 * daily)
        value = rng.binomial(counts, 0.01) / np.maximum(counts, 1)
        extra = {"shop.metric.count": counts}
    else:
        value = 200 * daily * rng.lognormal(0, 0.1, t.size)
    name = "http.error_rate" if shares else "http.latency.p95_ms"
    return conform(
        pl.DataFrame(
            {
                **extra,
                "@timestamp": [start + timedelta(minutes=int(m)) for m in t],
                "event.id": [f"m{start.timestamp():.0f}-{i}" for i in range(t.size)],
                "event.dataset": ["apm.metric"] * t.size,
                "event.action": ["sample"] * t.size,
                "service.name": [f"svc{k}" for k in s],
                "shop.metric.name": [name] * t.size,
                "shop.metric.value": np.round(value, 4),
            }
        )
    )


def calls(rng: np.random.Generator, vendors: int, n: int, start: datetime) -> pl.DataFrame:
    """``n`` outbound ``vendor.api`` calls to ``vendors`` vendors, one a minute each (about
    0.3 % failing with a 5xx, durations log-normal around 200 ms)."""
    from shopwatch.contract import conform

    i = np.arange(n)
    minute, vendor = i // vendors, i % vendors
    status = np.where(rng.random(n) < 0.003, 503, 200)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [
                    start + timedelta(minutes=int(m), seconds=float(s))
                    for m, s in zip(minute, rng.uniform(0, 60, n), strict=True)
                ],
                "event.id": [f"v{start.timestamp():.0f}-{k}" for k in i],
                "event.dataset": ["vendor.api"] * n,
                "event.outcome": np.where(status < 400, "success", "failure"),
                "event.duration": (200e6 * rng.lognormal(0, 0.35, n)).astype(np.int64),
                "http.response.status_code": status,
                "shop.vendor.name": [f"vendor{k}" for k in vendor],
            }
        )
    ).sort("@timestamp")


_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)


def requests(
    rng: np.random.Generator, clients: int, per_s: float, seconds: float, start: datetime
) -> pl.DataFrame:
    """Access-log requests of ``clients`` addresses at ``per_s`` a second for ``seconds``:
    pages, assets and API calls, a few 404s and POSTs (each address its own rate)."""
    from shopwatch.contract import conform

    n = int(per_s * seconds)
    weight = rng.lognormal(0.0, 1.0, clients)
    who = rng.choice(clients, n, p=weight / weight.sum())
    secs = np.sort(rng.uniform(0, seconds, n))
    kind = rng.random(n)
    path = np.where(
        kind < 0.3,
        "/products/" + rng.integers(1000, 9000, n).astype(str),
        np.where(
            kind < 0.9, "/static/" + rng.integers(1, 400, n).astype(str) + ".webp", "/api/v2/cart"
        ),
    )
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [start + timedelta(seconds=float(s)) for s in secs],
                "event.id": [f"r{start.timestamp():.0f}-{i}" for i in range(n)],
                "event.dataset": ["http.access"] * n,
                "source.ip": [f"10.{k // 65536}.{k // 256 % 256}.{k % 256}" for k in who],
                "http.request.method": np.where(kind > 0.97, "POST", "GET").tolist(),
                "url.path": path.tolist(),
                "url.query": np.where(kind > 0.9, "page=1", None).tolist(),
                "http.response.status_code": np.where(kind < 0.01, 404, 200).tolist(),
                "http.response.bytes": rng.lognormal(np.log(40_000), 1.0, n).astype(int).tolist(),
                "user_agent.original": [_AGENTS[k % len(_AGENTS)] for k in who],
            }
        )
    )


def client_windows(batch: int, repeat: int, clients: int = 3000, per_s: float = 60.0) -> None:
    """The multivariate model's cost per 1,000 requests over a stream, and its bytes."""
    from shopwatch.detect.registry import build
    from shopwatch.detect.state import KeyedState

    rng = np.random.default_rng(3)
    model = _rule("web.client_anomaly")
    count = build(
        {
            "id": "bench.requests_per_ip",
            "kind": "threshold",
            "category": "dos",
            "where": {"event.dataset": "http.access"},
            "group_by": ["source.ip"],
            "count": {"at_least": 100_000, "within": "10m"},
        }
    )
    states = {d.id: KeyedState(d.keys, max_age=timedelta(hours=3)) for d in (model, count)}
    hours = 3 + repeat
    stream = requests(rng, clients, per_s, hours * 3600, T0)
    warm = stream.filter(pl.col("@timestamp") < T0 + timedelta(hours=3))
    for i in range(0, warm.height, 20_000):
        part = warm.slice(i, 20_000)
        states[model.id].clock = part.get_column("@timestamp").max()
        model.detect(part, states[model.id])
    timed = stream.filter(pl.col("@timestamp") >= T0 + timedelta(hours=3))
    spent = {model.id: 0.0, count.id: 0.0}
    for i in range(0, timed.height, batch):
        part = timed.slice(i, batch)
        for det in (count, model):
            states[det.id].clock = part.get_column("@timestamp").max()
            began = time.perf_counter()
            det.detect(part, states[det.id])
            spent[det.id] += time.perf_counter() - began
    base = spent[count.id] / timed.height * 1000
    ours = spent[model.id] / timed.height * 1000
    print(
        f"  (web.client_anomaly: {clients:,} addresses at {per_s:.0f} requests a second, three "
        f"hours warm, then {timed.height:,} requests in {batch}-request batches)"
    )
    print(f"  threshold count (baseline)  {base * 1000:8.1f} ms")
    print(f"  client windows model        {ours * 1000:8.1f} ms   ratio {ours / base:5.2f}")
    summary = model.model_summary(states[model.id])
    state = states[model.id]
    model_bytes = int(state.table("model", {}).estimated_size())
    print(
        f"memory, client windows model: {model_bytes / 1e3:,.0f} KB of counts and histograms "
        f"(whatever the traffic), {state.nbytes / 1e6:,.1f} MB in all with the open windows' "
        f"requests of {summary['entities']:,} addresses: "
        f"{(state.nbytes - model_bytes) / max(summary['entities'], 1):,.0f} bytes per address"
    )


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
    from shopwatch.detect.registry import build
    from shopwatch.detect.state import KeyedState

    rng = np.random.default_rng(1)
    model = _rule("data.staff_export_anomaly")
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
    _cost_of(
        "payment.fraud_score",
        {"event.dataset": "shop.order", "event.action": "order_placed"},
        ["user.name"],
        lambda day, n: orders(rng, 2000, n, T0 + timedelta(days=day), 1),
        batch,
        repeat,
        "payment fraud score",
    )
    _cost_of(
        "apm.metric_anomaly",
        {"event.dataset": "apm.metric"},
        ["service.name", "shop.metric.name"],
        lambda day, n: samples(rng, 20, max(n // 20, 1), T0 + timedelta(days=day)),
        batch,
        repeat,
        "metric model",
        warm_days=1,
    )
    _cost_of(
        "apm.metric_anomaly",
        {"event.dataset": "apm.metric"},
        ["service.name", "shop.metric.name"],
        lambda day, n: samples(rng, 20, max(n // 20, 1), T0 + timedelta(days=day), shares=True),
        batch,
        repeat,
        "metric model, shares with counts",
        warm_days=1,
    )
    _cost_of(
        "vendor.calls_anomaly",
        {"event.dataset": "vendor.api"},
        ["shop.vendor.name"],
        lambda day, n: calls(rng, 20, n, T0 + timedelta(days=day)),
        batch,
        repeat,
        "vendor calls model",
        warm_days=1,
    )
    client_windows(batch, repeat)


def _cost_of(
    rule: str,
    where: dict,
    keys: list[str],
    make,
    batch: int,
    repeat: int,
    label: str,
    warm_days: int = 14,
) -> None:
    """One learned rule's cost per 1,000 events beside a count over the same batches."""
    from shopwatch.detect.registry import build
    from shopwatch.detect.state import KeyedState

    model = _rule(rule)
    count = build(
        {
            "id": "bench.count",
            "kind": "threshold",
            "category": "anomaly",
            "where": where,
            "group_by": keys,
            "count": {"at_least": 1000, "within": "1h"},
        }
    )
    states = {d.id: KeyedState(d.keys, max_age=timedelta(days=90)) for d in (model, count)}
    warm = make(0, 2000 * 12) if warm_days > 1 else make(0, 20 * 1440)
    for i in range(0, warm.height, 5000):
        model.detect(warm.slice(i, 5000), states[model.id])
    times: dict[str, list[float]] = {model.id: [], count.id: []}
    for r in range(repeat):
        frame = make(warm_days + r, batch)
        for det in (count, model):
            began = time.perf_counter()
            det.detect(frame, states[det.id])
            times[det.id].append(time.perf_counter() - began)
    base = statistics.median(times[count.id]) / batch * 1000
    ours = statistics.median(times[model.id]) / batch * 1000
    print(f"  threshold count (baseline)  {base * 1000:8.1f} ms")
    print(f"  {label:<27} {ours * 1000:8.1f} ms   ratio {ours / base:5.2f}")


def _rule(rule_id: str):
    """The shipped detector ``rule_id``."""
    from shopwatch.detect.content import load_detectors

    return {d.id: d for d in load_detectors(sigma_rules=False).detectors}[rule_id]


def _learn(detector, frame: pl.DataFrame, state, step: int = 20_000) -> float:
    """Feed ``frame`` to ``detector`` in slices of ``step``; returns the seconds taken."""
    began = time.perf_counter()
    for i in range(0, frame.height, step):
        detector.detect(frame.slice(i, step), state)
    return time.perf_counter() - began


def _per_entity(title: str, state, n: int) -> None:
    """The state's bytes and a fresh process's growth restoring it, per entity."""
    grew = loaded_bytes(state.snapshot())
    print(title)
    print(f"  state {state.nbytes / 1e6:8.1f} MB   {state.nbytes / n:6.0f} bytes per entity")
    print(f"  loaded     {grew / 1e6:8.1f} MB   {grew / n:6.0f} bytes per entity")


def memory(entities: int, per: int) -> None:
    from shopwatch.detect.profiles import Profiler
    from shopwatch.detect.state import KeyedState

    rng = np.random.default_rng(2)
    model = _rule("data.staff_export_anomaly")
    state = KeyedState(model.keys, max_keys=entities * 2, max_age=timedelta(days=90))
    took = _learn(model, exports(rng, entities, entities * per, T0, 14), state)
    gc.collect()
    n = state.table("profiles", model._schema).height - 1  # the population profile
    _per_entity(
        f"memory, entity baseline: {n:,} accounts of {per} exports ({took:.0f} s to learn):",
        state,
        n,
    )
    del state
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
    _per_entity(
        f"memory, account profiles: {keys:,} accounts of about 4 logins ({took:.0f} s):",
        pstate,
        keys,
    )
    del pstate
    gc.collect()

    pay = _rule("payment.fraud_score")
    state = KeyedState(pay.keys, max_keys=entities * 2, max_age=timedelta(days=90))
    took = _learn(pay, orders(rng, entities, entities * 3, T0, 14), state)
    gc.collect()
    accounts = state.table("accounts", pay._tables["accounts"]).height
    _per_entity(
        f"memory, payment fraud score: {accounts:,} accounts of about 3 orders ({took:.0f} s):",
        state,
        accounts,
    )
    del state
    gc.collect()

    metric = _rule("apm.metric_anomaly")
    mstate = KeyedState(metric.keys, max_age=timedelta(days=90))
    _learn(metric, samples(rng, 5, 7 * 1440, T0), mstate)
    summary = metric.model_summary(mstate)
    print(
        f"memory, metric model: {summary['entities']} series of a week's one-minute samples: "
        f"{summary['model_bytes'] / summary['entities'] / 1e3:,.0f} KB per series held, "
        f"{mstate.nbytes / summary['entities'] / 1e3:,.0f} KB per series in its table"
    )
    vendor = _rule("vendor.calls_anomaly")
    vstate = KeyedState(vendor.keys, max_age=timedelta(days=90))
    _learn(vendor, calls(rng, 5, 5 * 7 * 1440, T0), vstate)
    summary = vendor.model_summary(vstate)
    print(
        f"memory, vendor calls model: {summary['entities']} vendors of a week's calls (one a "
        f"minute): {summary['model_bytes'] / summary['entities'] / 1e3:,.0f} KB per vendor "
        f"held, {vstate.nbytes / summary['entities'] / 1e3:,.0f} KB per vendor in its tables"
    )


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
