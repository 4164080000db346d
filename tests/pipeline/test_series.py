"""A probe series from one source is one alert that grows (pipeline.series)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from shopwatch.config import Settings
from shopwatch.contract import ALERT_SCHEMA, conform
from shopwatch.detect.content import load_detectors
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.engine import Engine
from shopwatch.pipeline.series import ProbeSeries, SeriesRules

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


def test_forty_minutes_of_probes_are_one_series_raising_only_news() -> None:
    plain = run(Engine(WEB), forty_minutes())
    engine = Engine(WEB, series=SeriesRules())
    grown = run(engine, forty_minutes())
    assert len(plain) >= 10  # each rule once per 10-minute window
    groups = series_of(grown)
    assert len(groups) == 1 and len(grown) == len(next(iter(groups.values())))
    first, *news = grown
    # raised on the first probe, as before; what is raised is the rules' own alerts
    assert first["@timestamp"] == T0 and first["details"]["series"]["update"] == 0
    assert {r["alert.id"] for r in grown} <= {r["alert.id"] for r in plain}
    assert 1 <= len(news) <= 4
    assert all(r["details"]["series"]["new_rules"] for r in news)  # within the hour
    last = news[-1]["details"]["series"]
    assert {
        "web.sqli_probe",
        "web.path_traversal",
        "web.xss_probe",
        "web.command_injection",
    } <= set(last["rules"])
    assert engine.series is not None  # every alert the rules raised is in the series
    assert len(grown) + engine.series.folded == len(plain)
    assert "probe series since 10:00:00" in news[-1]["message"]


def test_a_graver_attack_after_a_mild_first_alert_is_raised_at_once_as_itself() -> None:
    engine = Engine(WEB, series=SeriesRules())
    mild = probe("198.51.100.7", 0, "/p?x=%0d%0aSet-Cookie:%20a=b", 0)
    assert [r["rule.id"] for r in run(engine, [mild])] == ["web.crlf_injection"]
    grave = probe("198.51.100.7", 5, PROBES[0], 1)
    raised = [engine.process(grave)]
    rows = pl.concat(raised).to_dicts()
    assert rows and rows[0]["@timestamp"] == T0 + timedelta(seconds=5)
    assert rows[0]["rule.id"] != "web.crlf_injection"
    assert json.loads(rows[0]["details"])["series"]["update"] == 1


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


def test_a_long_series_still_raises_once_per_remind() -> None:
    # the same probe every 25 minutes for 5 hours: never quiet for 30, news once an hour
    slow = [probe("198.51.100.7", 1500.0 * k, PROBES[1], k) for k in range(12)]
    rows = run(Engine(WEB, series=SeriesRules(remind=timedelta(hours=1))), slow)
    assert len(series_of(rows)) == 1
    assert 4 <= len(rows) <= 6  # the first, then one per hour


def test_odd_alerts_are_raised_not_lost() -> None:
    series = ProbeSeries({"web.sqli_probe"})
    state = series.new_state(1000)
    row = {
        "alert.id": "a1",
        "@timestamp": T0,
        "rule.id": "web.sqli_probe",
        "rule.name": "SQL injection probe",
        "rule.category": "web_attack",
        "severity": "high",
        "risk_score": None,
        "entity": {"source.ip": "198.51.100.7"},
        "event.ids": ["e1"],
        "threat.technique.id": None,
        "message": "m",
        "details": "not json",
    }
    alerts = pl.DataFrame(
        [row, {**row, "alert.id": "a2", "details": "[1, 2]"}], schema=ALERT_SCHEMA
    )
    out = series.fold(alerts, state)
    assert out["alert.id"].to_list()[0] == "a1"
    assert json.loads(out["details"][0])["text"] == "not json"


def test_a_series_goes_on_after_a_restart() -> None:
    engine = Engine(WEB, series=SeriesRules())
    batches = forty_minutes()
    run_a = [engine.process(b) for b in batches[:1]]
    restored = Engine(WEB, series=SeriesRules())
    restored.restore(engine.snapshot())
    rows = run(restored, batches[1:])
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
