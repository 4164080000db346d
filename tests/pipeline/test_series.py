"""A probe series from one source is one alert that grows (pipeline.series)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from shopwatch.config import Settings
from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.engine import Engine
from shopwatch.pipeline.series import SeriesRules

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WEB = [d for d in load_detectors().detectors if d.id.startswith(("web.", "sigma."))]
# sqli, traversal, XSS, command injection: four kinds of probe, then the first again
PROBES = [
    "/a?id=1%27+or+1%3D1--",
    "/b?f=../../etc/passwd",
    "/c?q=%3Cscript%3Ealert(1)%3C/script%3E",
    "/d?c=;cat%20/etc/hosts",
    "/a?id=1%20union%20select%201,2--",
]


def probe(ip: str, at_s: float, target: str, n: int) -> pl.DataFrame:
    row: dict[str, Any] = {
        "event.dataset": "http.access",
        "http.request.method": "GET",
        "http.response.status_code": 404,
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Firefox/115.0",
        "source.ip": ip,
        "@timestamp": T0 + timedelta(seconds=at_s),
        "event.id": f"{ip}-{n}",
        "url.original": f"{target}&n={n}",
    }
    return conform(pl.from_dicts([row], infer_schema_length=None))


def run(engine: Engine, batches: list[pl.DataFrame]) -> list[dict[str, Any]]:
    out = [engine.process(b) for b in batches] + [engine.flush()]
    rows = pl.concat([o for o in out if o.height]).to_dicts() if any(o.height for o in out) else []
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else {}
    return rows


def series_of(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        series = row["details"].get("series")
        if series:
            out.setdefault(series["id"], []).append(row)
    return out


def forty_minutes(ip: str = "198.51.100.7", every_s: float = 60.0) -> list[pl.DataFrame]:
    return [probe(ip, every_s * k, PROBES[k % len(PROBES)], k) for k in range(40)]


def test_forty_minutes_of_probes_are_one_alert_and_the_updates_that_bring_new_rules() -> None:
    plain = run(Engine(WEB), forty_minutes())
    engine = Engine(WEB, series=SeriesRules())
    grown = run(engine, forty_minutes())
    assert len(plain) >= 10  # each rule once per 10-minute window
    groups = series_of(grown)
    assert len(groups) == 1 and len(grown) == len(next(iter(groups.values())))
    first, *updates = grown
    # raised on the first probe, as before
    assert first["@timestamp"] == T0 and first["details"]["series"]["update"] == 0
    assert plain[0]["alert.id"] == first["alert.id"]
    assert 1 <= len(updates) <= 3
    last = updates[-1]["details"]["series"]
    assert {
        "web.sqli_probe",
        "web.path_traversal",
        "web.xss_probe",
        "web.command_injection",
    } <= set(last["rules"])
    assert engine.series is not None  # every alert the rules raised is in the series
    assert 1 + engine.series.folded == len(plain)
    assert "matches" not in updates[-1]["details"]
    assert "one probe series since 10:00:00" in updates[-1]["message"]
    assert len(updates[-1]["event.ids"]) > len(first["event.ids"])


def test_more_of_the_same_is_counted_not_raised() -> None:
    same = [probe("198.51.100.7", 60.0 * k, PROBES[1], k) for k in range(40)]
    engine = Engine(WEB, series=SeriesRules())
    rows = run(engine, same)
    assert len(rows) == 1  # traversal every minute: one alert, no update
    assert engine.series is not None and engine.series.folded >= 3


def test_addresses_and_categories_are_series_of_their_own() -> None:
    batches = forty_minutes("198.51.100.7") + forty_minutes("203.0.113.9")
    batches.sort(key=lambda b: b["@timestamp"][0])
    rows = run(Engine(WEB, series=SeriesRules()), batches)
    by_ip = {r["entity"]["source.ip"] for r in rows if r["details"]["series"]["update"] == 0}
    assert by_ip == {"198.51.100.7", "203.0.113.9"}
    # an open-proxy probe is a scanner series, beside the web-attack one
    scan = probe("198.51.100.7", 2400, "", 99).with_columns(
        pl.lit("http://www.example.com/").alias("url.original")
    )
    engine = Engine(WEB, series=SeriesRules())
    rows = run(engine, [*forty_minutes(), scan])
    categories = {r["rule.category"] for r in rows if r["details"]["series"]["update"] == 0}
    assert categories == {"web_attack", "scanner"}


def test_a_quiet_gap_or_a_long_series_starts_another() -> None:
    rules = SeriesRules(within=timedelta(minutes=30), at_most=timedelta(hours=2))
    gap = forty_minutes()[:5] + [
        probe("198.51.100.7", 4 * 3600 + 60 * k, PROBES[k], 100 + k) for k in range(5)
    ]
    assert len(series_of(run(Engine(WEB, series=rules), gap))) == 2
    # one probe every 20 minutes for 5 hours: never quiet for 30, but at most 2 h a series
    slow = [probe("198.51.100.7", 1200.0 * k, PROBES[k % 5], k) for k in range(15)]
    assert len(series_of(run(Engine(WEB, series=rules), slow))) == 3


def test_the_update_waiting_at_the_end_of_a_replay_is_raised() -> None:
    engine = Engine(WEB, series=SeriesRules(hold=timedelta(hours=1)))
    rows = run(engine, forty_minutes()[:5])
    assert [r["details"]["series"]["update"] for r in rows] == [0, 1]


def test_a_series_goes_on_after_a_restart() -> None:
    engine = Engine(WEB, series=SeriesRules())
    batches = forty_minutes()
    run_a = [engine.process(b) for b in batches[:3]]
    restored = Engine(WEB, series=SeriesRules())
    restored.restore(engine.snapshot())
    rows = run(restored, batches[3:])
    assert rows and all(r["details"]["series"]["update"] > 0 for r in rows)
    assert sum(o.height for o in run_a) == 1


def test_other_alerts_pass_untouched_and_it_can_be_switched_off() -> None:
    settings = Settings.model_validate({"detect": {"probe_series": {"enabled": False}}})
    assert build_engine(settings).series is None
    assert build_engine(Settings()).series is not None
    engine = build_engine(Settings())
    logins = [
        {
            "@timestamp": T0 + timedelta(seconds=i),
            "event.id": f"l{i}",
            "event.dataset": "shop.auth",
            "event.action": "login",
            "event.outcome": "failure",
            "source.ip": "198.51.100.7",
            "user.name": "anna@example.com",
        }
        for i in range(60)
    ]
    rows = run(engine, [conform(pl.from_dicts(logins, infer_schema_length=None))])
    assert rows and all("series" not in r["details"] for r in rows)
