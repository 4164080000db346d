"""The configured enrichment chain in the engine: intel turns into alerts and raises risk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from shopwatch.config import Settings
from shopwatch.contract import conform
from shopwatch.pipeline.build import build_engine

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def settings(tmp_path: Path, datasets: Path) -> Settings:
    feed = datasets / "threat-intel" / "firehol" / "blocklist_de_bruteforce.ipset"
    return Settings(
        data_dir=tmp_path,
        intel={
            "feeds": [
                {
                    "name": "blocklist_de_bruteforce",
                    "path": str(feed),
                    "format": "ipset",
                    "confidence": 80,
                    "type": "attacker",
                    "ttl": None,
                }
            ]
        },
        # Each address's own alert, to compare their risk (not one campaign of both).
        detectors={"auth.brute_force_ip": {"params": {"campaign": None}}},
    )


def listed_ip(datasets: Path) -> str:
    feed = datasets / "threat-intel" / "firehol" / "blocklist_de_bruteforce.ipset"
    return next(
        line
        for line in feed.read_text().splitlines()
        if line and not line.startswith("#") and "/" not in line
    )


def logins(ip: str, n: int) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=10 * i) for i in range(n)],
                "event.id": [f"{ip}-{i}" for i in range(n)],
                "event.dataset": ["shop.auth"] * n,
                "event.action": ["login"] * n,
                "event.outcome": ["failure"] * n,
                "event.reason": ["bad_password"] * n,
                "source.ip": [ip] * n,
                "user.name": [f"user{i % 2}@example.org" for i in range(n)],
            }
        )
    )


def test_listed_address_gives_a_threat_intel_alert_and_a_higher_risk(
    tmp_path: Path, datasets: Path
) -> None:
    bad = listed_ip(datasets)
    engine = build_engine(settings(tmp_path, datasets))
    try:
        batch = pl.concat([logins(bad, 25), logins("198.51.100.77", 25)]).sort("@timestamp")
        alerts = engine.process(batch)
    finally:
        engine.close()
    by_rule = {(r["rule.id"], r["entity"]["source.ip"]): r for r in alerts.iter_rows(named=True)}
    intel = by_rule[("intel.known_bad_source", bad)]
    assert intel["rule.category"] == "threat_intel"
    assert "blocklist_de_bruteforce" in intel["message"] + intel["details"]
    assert ("intel.known_bad_source", "198.51.100.77") not in by_rule
    listed = by_rule[("auth.brute_force_ip", bad)]
    clean = by_rule[("auth.brute_force_ip", "198.51.100.77")]
    assert listed["risk_score"] > clean["risk_score"]
    assert json.loads(listed["details"])["source_reputation"] == 80
    assert "source_reputation" not in json.loads(clean["details"])
