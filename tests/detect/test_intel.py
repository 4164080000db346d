"""The intel kind over batches enriched from a real feed: fires on a listed source, not its neighbour."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from shopwatch.contract import ALERT_SCHEMA, conform
from shopwatch.detect.content import load_detectors
from shopwatch.detect.registry import build
from shopwatch.detect.state import KeyedState
from shopwatch.enrich.feeds import parse_feed
from shopwatch.enrich.intel import FeedSnapshot, IndicatorIndex, IntelEnricher
from shopwatch.errors import ContentError

from .helpers import run

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36"
DETECTORS = {d.id: d for d in load_detectors().detectors}


@pytest.fixture(scope="module")
def enricher(datasets: Path) -> IntelEnricher:
    root = datasets / "threat-intel"
    drop = parse_feed("spamhaus", (root / "spamhaus_drop.txt").read_text()).indicators
    tor = parse_feed("ipset", (root / "firehol/tor_exits.ipset").read_text()).indicators
    feodo = parse_feed(
        "abusech_csv", (root / "feodotracker_ipblocklist.csv").read_text()
    ).indicators
    now = datetime(2026, 3, 14, tzinfo=UTC)
    return IntelEnricher(
        IndicatorIndex.build(
            [
                FeedSnapshot("spamhaus_drop", 85, drop, now),
                FeedSnapshot("tor_exits", 30, tor, now, type="anonymizer"),
                FeedSnapshot("feodo", 95, feodo, now),
            ],
            now=now,
        )
    )


def _traffic(ips_every: list[tuple[str, int]], minutes: int = 150) -> pl.DataFrame:
    """Shop requests: each (ip, period in seconds) browses for ``minutes``."""
    rows = []
    for ip, period in ips_every:
        for n, second in enumerate(range(0, minutes * 60, period)):
            rows.append(
                {
                    "@timestamp": T0 + timedelta(seconds=second),
                    "event.id": f"{ip}-{n}",
                    "event.dataset": "http.access",
                    "source.ip": ip,
                    "url.original": "/products/1042" if n % 2 else "/category/shoes",
                    "http.response.status_code": 200,
                    "user_agent.original": CHROME,
                }
            )
    return conform(pl.DataFrame(rows)).sort("@timestamp", maintain_order=True)


def test_fires_on_a_listed_source_and_not_on_its_neighbour(enricher: IntelEnricher) -> None:
    # 1.10.16.0/20 is on Spamhaus DROP; 1.10.32.7 is just past it; 185.220.101.7 is a Tor exit (confidence 30)
    batch = enricher.enrich(
        _traffic([("1.10.31.200", 45), ("1.10.32.7", 30), ("185.220.101.7", 60)])
    )
    alerts = run(DETECTORS["intel.known_bad_source"], [batch])
    assert alerts.schema == pl.Schema(ALERT_SCHEMA)
    assert {a["source.ip"] for a in alerts["entity"].to_list()} == {"1.10.31.200"}
    # 150 minutes of traffic, one alert per hour window: at 0, 60 and 120 minutes
    assert alerts["@timestamp"].to_list() == [
        T0,
        T0 + timedelta(minutes=60),
        T0 + timedelta(minutes=120),
    ]
    first = alerts.row(0, named=True)
    details = json.loads(first["details"])
    assert (
        details["feed"] == "spamhaus_drop"
        and details["indicator"] == "1.10.16.0/20"
        and details["confidence"] == 85
    )
    assert (
        first["message"]
        == "1.10.31.200 is listed as 1.10.16.0/20 on threat feed spamhaus_drop (confidence 85)"
    )
    assert first["rule.category"] == "threat_intel"
    assert first["event.ids"] == ["1.10.31.200-0"]
    assert first["severity"] == "high" and first["risk_score"] == round(75 * 85 / 100)


def test_split_batches_and_restore_give_the_same_alerts(enricher: IntelEnricher) -> None:
    detector = DETECTORS["intel.known_bad_source"]
    stream = enricher.enrich(
        _traffic([("1.10.31.200", 45), ("192.9.135.73", 400), ("1.10.32.7", 30)])
    )
    whole = run(detector, [stream])
    assert whole.height == 6
    assert run(detector, stream.iter_slices(97)).equals(whole)
    state = KeyedState(detector.keys)
    first = run(detector, [stream.head(300)], state)
    restored = KeyedState(detector.keys)
    restored.restore(state.snapshot())
    assert pl.concat([first, run(detector, [stream.slice(300)], restored)]).equals(whole)


def test_severity_and_risk_follow_confidence(enricher: IntelEnricher) -> None:
    detector = DETECTORS["intel.known_bad_source"]
    stream = enricher.enrich(_traffic([("192.9.135.73", 600), ("1.10.31.200", 600)], minutes=10))
    alerts = run(detector, [stream]).sort("risk_score")
    assert alerts.select("severity", "risk_score").rows() == [
        ("high", 64),
        ("high", 71),
    ]  # DROP 85, Feodo 95 (cap: high)


def test_thresholds_and_types_are_parameters() -> None:
    spec = {
        "id": "intel.anonymizer",
        "kind": "intel",
        "category": "threat_intel",
        "severity": "low",
        "min_confidence": 20,
        "window": "30m",
        "where": {"event.dataset": "shop.auth"},
    }
    detector = build(spec, "test")
    rows = conform(
        pl.DataFrame(
            {
                "@timestamp": [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=40)],
                "event.id": ["a", "b", "c"],
                "event.dataset": ["shop.auth", "shop.auth", "shop.auth"],
                "source.ip": ["185.220.101.7"] * 3,
                "threat.indicator.feed": ["tor_exits"] * 3,
                "threat.indicator.type": ["ipv4-addr"] * 3,
                "threat.indicator.matched": ["185.220.101.7/32"] * 3,
                "threat.indicator.confidence": [30, 30, 30],
            }
        )
    )
    alerts = run(detector, [rows])
    assert alerts["event.ids"].to_list() == [["a"], ["c"]]
    assert alerts["severity"].to_list() == ["low", "low"]
    with pytest.raises(ContentError, match="min_confidence"):
        build({**spec, "min_confidence": 101}, "test")
    with pytest.raises(ContentError, match="window"):
        build({**spec, "window": "30"}, "test")
    with pytest.raises(ContentError, match="min_confidense: Extra inputs"):
        build({**spec, "min_confidense": 20}, "test")
