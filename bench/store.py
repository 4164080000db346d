"""Throughput of ``Store.save_alerts`` and ``Store.alerts`` against the raw driver.

    python -m bench.store [--alerts 20000] [--batch 2000] [--events 100] [--pg URL]

Saves ``--alerts`` realistic alerts (``--events`` event ids each, three entity keys) in
batches of ``--batch``, saves them all again (every id a conflict), and reads them back
1,000 at a time. Baseline: the same rows through the sqlite3 module's own ``executemany``
of ``INSERT OR IGNORE`` (JSON encoded with the standard library) into an identical table,
in the same process: the floor any SQLAlchemy layer pays on top of. With ``--pg`` the
Store figures are repeated on that PostgreSQL database (it must exist and be empty).
Prints alerts/s, the ratio to the baseline and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from shopwatch.contract import Alert
from shopwatch.store import Store

T0 = datetime(2024, 11, 29, 8, 0, tzinfo=UTC)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _alerts(n: int, events: int) -> list[Alert]:
    return [
        Alert(
            id=f"auth.credential_stuffing:{i:08d}",
            timestamp=T0 + timedelta(milliseconds=250 * i),
            rule_id="auth.credential_stuffing",
            rule_name="Credential stuffing from one source",
            category="credential_stuffing",
            severity="high",
            risk_score=40 + i % 60,
            entity={
                "source.ip": f"203.0.{i // 250 % 256}.{i % 250 + 1}",
                "user.name": f"user{i}@example.com",
                "shop.device.id": f"dev-{i % 9973:04x}",
            },
            event_ids=tuple(f"shop-auth.ndjson:{i * events + k + 1}" for k in range(events)),
            message=f"203.0.{i // 250 % 256}.{i % 250 + 1} failed to log in to 31 accounts",
            technique_id="T1110.004",
            details={"accounts": 31, "window": "10m", "failures": 44},
        )
        for i in range(n)
    ]


def _baseline(path: Path, alerts: list[Alert], batch: int) -> float:
    """Seconds for the raw sqlite3 executemany of the same rows (WAL, NORMAL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE alerts (id TEXT PRIMARY KEY, timestamp TEXT, rule_id TEXT, rule_name TEXT,"
        " category TEXT, severity TEXT, risk_score INTEGER, entity TEXT, entity_key TEXT,"
        " event_ids TEXT, technique_id TEXT, message TEXT, details TEXT, incident_id TEXT,"
        " stored_at TEXT)"
    )
    for index in ("timestamp", "rule_id", "category", "entity_key", "incident_id"):
        conn.execute(f"CREATE INDEX ix_{index} ON alerts ({index})")
    start = time.perf_counter()
    for first in range(0, len(alerts), batch):
        now = datetime.now(UTC).isoformat()
        rows = [
            (
                a.id,
                a.timestamp.isoformat(),
                a.rule_id,
                a.rule_name,
                a.category,
                a.severity,
                a.risk_score,
                json.dumps(a.entity),
                next(iter(a.entity.values())),
                json.dumps(list(a.event_ids)),
                a.technique_id,
                a.message,
                json.dumps(a.details),
                None,
                now,
            )
            for a in alerts[first : first + batch]
        ]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _measure(url: str, alerts: list[Alert], batch: int) -> tuple[float, float, float]:
    """Seconds to save all, to save all again, and to read all back."""
    with Store.open(url) as store:
        start = time.perf_counter()
        new = sum(store.save_alerts(alerts[i : i + batch]) for i in range(0, len(alerts), batch))
        save = time.perf_counter() - start
        assert new == len(alerts), (new, len(alerts))
        start = time.perf_counter()
        again = sum(store.save_alerts(alerts[i : i + batch]) for i in range(0, len(alerts), batch))
        resave = time.perf_counter() - start
        assert again == 0
        start = time.perf_counter()
        read, until = 0, None
        while True:
            page = store.alerts(limit=1000, until=until)
            if not page:
                break
            read += len(page)
            until = page[-1].timestamp
        load = time.perf_counter() - start
        assert read == len(alerts), read
    return save, resave, load


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--pg", default=None, help="an empty PostgreSQL database URL")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    alerts = _alerts(args.alerts, args.events)
    n = len(alerts)
    with tempfile.TemporaryDirectory() as tmp:
        floor = _baseline(Path(tmp) / "raw.db", alerts, args.batch)
        print(f"alerts={n} batch={args.batch} events/alert={args.events}")
        print(f"baseline sqlite3 executemany: {n / floor:,.0f} alerts/s")
        targets = [("sqlite", f"sqlite:///{Path(tmp) / 'store.db'}")]
        if args.pg:
            targets.append(("postgresql", args.pg))
        for name, url in targets:
            save, resave, load = _measure(url, alerts, args.batch)
            print(
                f"{name}: save={n / save:,.0f}/s ratio={floor / save:.2f} "
                f"resave={n / resave:,.0f}/s read={n / load:,.0f}/s rss={_rss_mb():.0f}MB"
            )


if __name__ == "__main__":
    main()
