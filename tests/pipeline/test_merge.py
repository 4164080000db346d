"""One request, one alert: signature alerts that share a request are folded into one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.pipeline.engine import Engine
from shopwatch.pipeline.merge import expand_matches, one_alert_per_request

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WEB = [d for d in load_detectors().detectors if d.id.startswith(("web.", "sigma."))]
SIGNATURES = {d.id for d in WEB if getattr(d, "single_event", False)}


def batch(*rows: dict[str, Any]) -> pl.DataFrame:
    base = {
        "event.dataset": "http.access",
        "http.request.method": "GET",
        "http.response.status_code": 404,
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Firefox/115.0",
    }
    out = [
        {**base, "@timestamp": T0 + timedelta(seconds=i), "event.id": f"e{i}", **row}
        for i, row in enumerate(rows)
    ]
    return conform(pl.from_dicts(out, infer_schema_length=None))


WORM = "/scripts/..%c0%af../winnt/system32/cmd.exe?/c+dir"


def test_a_request_that_matches_several_signatures_raises_one_alert() -> None:
    alerts = Engine(WEB).process(batch({"source.ip": "198.51.100.7", "url.original": WORM}))
    mine = alerts.filter(pl.col("rule.id").is_in(list(SIGNATURES)))
    assert mine.height == 1, mine["rule.id"].to_list()
    details = json.loads(mine["details"][0])
    rules = {m["rule.id"] for m in details["matches"]}
    assert {"web.command_injection", "web.path_traversal"} <= rules
    assert "also matched" in mine["message"][0]
    assert all(m["event.ids"] == ["e0"] for m in details["matches"])
    # counted for every rule that matched
    assert set(expand_matches(mine)["rule.id"]) == rules


def test_different_addresses_and_different_requests_stay_apart() -> None:
    rows = [
        {"source.ip": "198.51.100.7", "url.original": "/a?f=../../etc/passwd"},
        {"source.ip": "198.51.100.7", "url.original": "/b?c=;cat%20/etc/hosts"},
        {"source.ip": "203.0.113.9", "url.original": WORM},
    ]
    alerts = Engine(WEB).process(batch(*rows))
    mine = alerts.filter(pl.col("rule.id").is_in(list(SIGNATURES)))
    by_ip = mine.group_by(pl.col("entity").struct.field("source.ip")).len()
    assert dict(by_ip.iter_rows()) == {"198.51.100.7": 2, "203.0.113.9": 1}


def _alert(rule: str, ids: list[str], severity: str, risk: int, at: int, **extra: Any) -> dict:
    return {
        "alert.id": f"{rule}-{at}",
        "@timestamp": T0 + timedelta(seconds=at),
        "rule.id": rule,
        "rule.name": rule.upper(),
        "rule.category": extra.get("category", "web_attack"),
        "severity": severity,
        "risk_score": risk,
        "entity": {"source.ip": extra.get("ip", "198.51.100.7")},
        "event.ids": ids,
        "threat.technique.id": "T1190",
        "message": f"{rule} fired",
        "details": json.dumps({"n": at}),
    }


def frame(*alerts: dict) -> pl.DataFrame:
    from shopwatch.contract import ALERT_SCHEMA

    return pl.DataFrame(list(alerts), schema=ALERT_SCHEMA)


def test_folding_is_transitive_and_keeps_the_most_severe_member() -> None:
    alerts = frame(
        _alert("a", ["e1"], "medium", 50, 3),
        _alert("b", ["e1", "e2"], "high", 75, 5),
        _alert("c", ["e2"], "low", 25, 1),
        _alert("d", ["e9"], "high", 75, 2),  # no shared request
        _alert("e", ["e1"], "high", 90, 0, category="threat_intel"),  # not a web signature
        _alert("f", ["e1"], "critical", 90, 0),  # not a signature rule
    )
    out = one_alert_per_request(alerts, {"a", "b", "c", "d", "e"})
    assert sorted(out["rule.id"]) == ["b", "d", "e", "f"]
    folded = out.filter(pl.col("rule.id") == "b").to_dicts()[0]
    assert folded["alert.id"] == "b-5" and folded["risk_score"] == 75
    assert folded["@timestamp"] == T0 + timedelta(seconds=1)  # the earliest member
    assert folded["event.ids"] == ["e1", "e2"]
    details = json.loads(folded["details"])
    assert details["n"] == 5 and [m["rule.id"] for m in details["matches"]] == ["b", "a", "c"]


def test_nothing_to_fold_returns_the_alerts_unchanged() -> None:
    alerts = frame(_alert("a", ["e1"], "medium", 50, 0), _alert("b", ["e2"], "high", 75, 1))
    assert one_alert_per_request(alerts, {"a", "b"}).equals(alerts)
    assert one_alert_per_request(alerts.head(0), {"a"}).height == 0
