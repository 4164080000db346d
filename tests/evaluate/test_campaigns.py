"""Scoring alerts against simulated campaigns, by hand-made truth and through the CLI."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest

from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.evaluate.backtest import Population, backtest
from shopwatch.evaluate.campaigns import Tally, _score, load_truth, score_campaigns, summarise

T0 = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)


def _iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def _alert(minutes: float, category: str, rule: str = "r", **entity: str) -> Alert:
    entity = {k.replace("_", "."): v for k, v in entity.items()}
    return Alert(
        f"a{minutes}{rule}",
        T0 + timedelta(minutes=minutes),
        rule,
        rule,
        category,
        "high",
        50,
        entity,
        ("e1",),
        "m",
    )


RAW_TRUTH = [
    {  # loud stuffing from two addresses, caught with the right category
        "id": "c1",
        "kind": "credential_stuffing",
        "variant": "loud",
        "benign": False,
        "start": _iso(0),
        "end": _iso(10),
        "rule.category": "credential_stuffing",
        "entities": {"source.ip": ["203.0.113.1", "203.0.113.2"], "user.name": ["v@x.example"]},
    },
    {  # slow brute force, caught only as something else
        "id": "c2",
        "kind": "brute_force",
        "variant": "low_slow",
        "benign": False,
        "start": _iso(5),
        "end": _iso(25),
        "rule.category": "brute_force",
        "entities": {"source.ip": ["198.51.100.7"]},
    },
    {  # missed
        "id": "c3",
        "kind": "scraping",
        "variant": "low_slow",
        "benign": False,
        "start": _iso(0),
        "end": _iso(30),
        "rule.category": "scraping",
        "entities": {"source.ip": ["192.0.2.50"]},
    },
    {  # an office NAT that one alert wrongly names
        "id": "b1",
        "kind": "corporate_nat",
        "variant": None,
        "benign": True,
        "start": _iso(0),
        "end": _iso(30),
        "rule.category": "credential_stuffing",
        "entities": {"source.ip": ["192.0.2.99"]},
    },
]


@pytest.fixture()
def truth(tmp_path: Path) -> list[dict]:
    path = tmp_path / "ground_truth.json"
    path.write_text(json.dumps(RAW_TRUTH))
    return load_truth(path)


def test_scores_each_campaign_and_the_totals(truth: list[dict]) -> None:
    alerts = [
        _alert(2.5, "credential_stuffing", source_ip="203.0.113.2"),
        _alert(3.0, "brute_force", user_name="v@x.example"),  # the stuffing's victim
        _alert(9.0, "scanner", source_ip="198.51.100.7"),  # brute forcer, wrong category
        _alert(12.0, "credential_stuffing", source_ip="192.0.2.99"),  # the office: false
        _alert(20.0, "web_attack", source_ip="192.0.2.200"),  # stray: nobody's
        _alert(40.0, "scanner", source_ip="203.0.113.1"),  # after the stuffing's end + grace
    ]
    population = Population(customers={"v@x.example", "c1@x.example", "c2@x.example"})
    f = score_campaigns(truth, alerts, population, grace_s=300)
    by_id = {c["id"]: c for c in f["campaigns"]}
    assert (by_id["c1"]["detected"], by_id["c1"]["category_matched"]) == (True, True)
    assert by_id["c1"]["ttd_s"] == 150.0
    assert by_id["c1"]["alerts"] == 2
    assert (by_id["c2"]["detected"], by_id["c2"]["category_matched"]) == (True, False)
    assert by_id["c2"]["ttd_s"] == 240.0
    assert by_id["c3"]["detected"] is False and by_id["c3"]["ttd_s"] is None
    assert by_id["b1"]["false_alerts"] == 1
    assert f["attacks"] == 3 and f["detected"] == 2
    assert f["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert f["category_recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert f["median_ttd_s"] == 195.0
    assert f["alerts"] == 6
    assert f["fp_alerts"] == 3  # the office, the stray, the late one
    assert f["benign_false_alerts"] == 1
    # v@x.example is a victim (an attack entity), so not a benign customer.
    assert f["benign_customers"] == 2 and f["benign_alerted_share"] == 0.0
    assert f["per_category"]["credential_stuffing"] == {
        "alerts": 2,
        "true_alerts": 1,
        "precision": 0.5,
        "campaigns": 1,
        "found": 1,
        "recall": 1.0,
    }
    assert f["per_category"]["scraping"]["recall"] == 0.0
    assert f["per_variant"] == {
        "loud": {"campaigns": 1, "detected": 1, "recall": 1.0, "median_ttd_s": ANY},
        "low_slow": {"campaigns": 2, "detected": 1, "recall": 0.5, "median_ttd_s": ANY},
    }
    ttds = {
        v: [r["ttd_s"] for r in f["campaigns"] if r["variant"] == v and r["detected"]]
        for v in ("loud", "low_slow")
    }
    assert [f["per_variant"][v]["median_ttd_s"] for v in ttds] == [
        round(statistics.median(t), 3) for t in ttds.values()
    ]


def test_a_benign_customer_named_in_an_alert_counts(truth: list[dict]) -> None:
    alerts = [_alert(1.0, "account_takeover", user_name="c1@x.example")]
    population = Population(customers={"c1@x.example", "c2@x.example"})
    f = score_campaigns(truth, alerts, population)
    assert f["benign_customers_alerted"] == 1
    assert f["benign_alerted_share"] == 0.5
    assert f["fp_alerts"] == 1


def test_no_alerts_scores_zero_recall(truth: list[dict]) -> None:
    f = score_campaigns(truth, [])
    assert f["recall"] == 0.0 and f["median_ttd_s"] is None and f["alert_precision"] is None


def test_shared_infrastructure_ties_no_alert_to_an_attack(tmp_path: Path) -> None:
    raw = [
        {
            "id": "a",
            "kind": "ssh_brute_force",
            "benign": False,
            "start": _iso(0),
            "end": _iso(10),
            "rule.category": "brute_force",
            "entities": {"source.ip": ["203.0.113.1"], "host.name": ["web01"]},
        },
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(raw))
    other = _alert(1, "brute_force", source_ip="192.0.2.9", host_name="web01", user_name="root")
    f = score_campaigns(load_truth(path), [other])
    assert f["detected"] == 0 and f["fp_alerts"] == 1
    assert f["per_category"]["brute_force"]["precision"] == 0.0


def test_grace_ends_exactly_and_ttd_takes_the_earliest_alert(truth: list[dict]) -> None:
    end = 10.0 + 300 / 60  # c1 ends at minute 10; grace 300 s
    late = [_alert(end + 1 / 60, "scanner", source_ip="203.0.113.1")]
    assert score_campaigns(truth, late)["campaigns"][0]["detected"] is False
    at_end = [_alert(end, "scanner", source_ip="203.0.113.1")]
    assert score_campaigns(truth, at_end)["campaigns"][0]["detected"] is True
    unsorted = [
        _alert(9, "scanner", source_ip="203.0.113.1"),
        _alert(2, "scanner", source_ip="203.0.113.2"),
    ]
    assert score_campaigns(truth, unsorted)["campaigns"][0]["ttd_s"] == 120.0


def test_truth_from_another_generator(tmp_path: Path) -> None:
    raw = [
        {
            "id": 1,
            "kind": "stuffing",
            "start": 1748937600,
            "end": "2025-06-03T08:30:00",
            "entities": {"source.ip": "203.0.113.5"},
        },  # no category, naive end, scalar entity
        {
            "id": 2,
            "kind": "probe",
            "benign": False,
            "start": _iso(0),
            "end": _iso(5),
            "rule": {"category": "web_attack"},
            "entities": None,
        },  # names nothing: no alert can cover it, so it is counted apart
        {
            "id": 3,
            "kind": "probe",
            "start": _iso(0),
            "end": _iso(5),
            "rule": {"category": "web_attack"},
            "entities": {"source.ip": ["198.51.100.3"]},
        },
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(raw))
    truth = load_truth(path)
    assert truth[0]["entities"] == {"source.ip": ["203.0.113.5"]}
    assert truth[0]["start"] == T0 and truth[0]["end"] == T0 + timedelta(minutes=30)
    assert truth[1]["rule.category"] == "web_attack" and truth[1]["entities"] == {}
    f = score_campaigns(truth, [_alert(1, "credential_stuffing", source_ip="203.0.113.5")])
    by_id = {c["id"]: c for c in f["campaigns"]}
    assert by_id["1"]["detected"] is True and by_id["1"]["category_matched"] is None
    assert f["recall"] == 0.5 and f["unobserved"] == 1
    assert f["category_recall"] == 0.0  # only campaign 3 has a category, and it was missed


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"a": 1}', "JSON list"),
        (
            '[{"id": "x", "kind": "k", "start": "yesterday", "end": "2025-01-01"}]',
            "not an RFC 3339 time",
        ),
        ('[{"id": "x", "kind": "k"}]', "lacks start, end"),
        (
            '[{"id": "x", "kind": "k", "start": 0, "end": 1}, {"id": "x", "kind": "k", "start": 0,'
            ' "end": 1}]',
            "used twice",
        ),
        ('[{"id": "x", "kind": "k", "start": 0, "end": 1, "entities": [1]}]', "object of field"),
        ('[{"id": "x", "kind": "k", "start": 5, "end": 1}]', "end is before start"),
        ("not json", "cannot read ground truth"),
    ],
)
def test_bad_ground_truth_is_a_clear_error(tmp_path: Path, raw: str, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(raw)
    with pytest.raises(ConfigError, match=message):
        load_truth(path)


def test_pooled_runs_add_up(truth: list[dict]) -> None:
    one = [_alert(2.5, "credential_stuffing", source_ip="203.0.113.2")]
    two = [
        _alert(12.0, "credential_stuffing", source_ip="192.0.2.99"),
        _alert(6.0, "scraping", source_ip="192.0.2.50"),
    ]
    records, tally = [], Tally()
    for seed, alerts in ((1, one), (2, two)):
        rs, t = _score(truth, alerts, Population(customers={"c@x.example"}), 300)
        records += [{**r, "seed": seed} for r in rs]
        tally.add(t)
    f = summarise(records, tally)
    assert f["attacks"] == 6 and f["detected"] == 2
    assert f["alerts"] == 3 and f["fp_alerts"] == 1
    assert f["per_category"]["credential_stuffing"]["precision"] == 0.5
    assert f["per_category"]["scraping"] == {
        "alerts": 1,
        "true_alerts": 1,
        "precision": 1.0,
        "campaigns": 2,
        "found": 1,
        "recall": 0.5,
    }
    assert f["benign_customers"] == 2 and f["per_type"]["corporate_nat"]["false_alerts"] == 1
    low = {k: v for k, v in f["per_variant"]["low_slow"].items() if k != "median_ttd_s"}
    assert low == {"campaigns": 4, "detected": 1, "recall": 0.25}


def test_backtest_shows_each_parsed_batch(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(
        '192.0.2.1 - - [03/Jun/2025:08:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n'
        '192.0.2.2 - - [03/Jun/2025:08:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n'
    )
    seen = Population()
    run = backtest([log], on_batch=seen.observe)
    assert seen.addresses == {"192.0.2.1", "192.0.2.2"}
    assert run.report.events == 2 and not list(tmp_path.glob("data*"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", "evaluate", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_evaluate_campaigns_on_a_simulated_run(tmp_path: Path) -> None:
    from shopwatch.sim import simulate

    out = tmp_path / "run"
    simulate(out, minutes=15, seed=7, customers=600)
    (out / "alerts.jsonl").write_text("not an input\n")  # a replay's output beside it is skipped
    report = tmp_path / "figures.json"
    run = _cli("campaigns", str(out), "--json", str(report))
    assert run.returncode == 0, run.stderr
    assert "per category" in run.stdout and "summary" in run.stdout
    figures = json.loads(report.read_text())
    for key in (
        "campaigns",
        "recall",
        "category_recall",
        "median_ttd_s",
        "fp_alerts",
        "benign_alerted_share",
    ):
        assert key in figures
    truth = json.loads((out / "ground_truth.json").read_text())
    assert [c["id"] for c in figures["campaigns"]] == [c["id"] for c in truth]
    for c in figures["campaigns"]:
        assert {"id", "type", "benign"} <= c.keys()
        if not c["benign"]:
            assert {"detected", "category_matched", "ttd_s"} <= c.keys()
    assert figures["rejected"] == 0 and "alerts.jsonl" not in figures["files"]
    # Same files, same figures.
    again = tmp_path / "again.json"
    assert _cli("campaigns", str(out), "--json", str(again)).returncode == 0
    assert again.read_text() == report.read_text()
    # Floors: an impossible one fails with exit 3 and says which.
    floor = _cli("campaigns", str(out), "--require", "recall>=1.01", "--require", "fp_alerts<=1e9")
    assert floor.returncode == 3
    assert "recall" in floor.stderr and "below the floor 1.01" in floor.stderr


def test_evaluate_campaigns_usage_errors(tmp_path: Path) -> None:
    missing = _cli("campaigns", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    (tmp_path / "access.log").write_text("")
    no_truth = _cli("campaigns", str(tmp_path))
    assert no_truth.returncode == 2 and "ground_truth.json" in no_truth.stderr
    (tmp_path / "ground_truth.json").write_text('{"not": "a list"}')
    bad = _cli("campaigns", str(tmp_path))
    assert bad.returncode == 2 and "JSON list" in bad.stderr
    seeds = _cli("sim", "--seeds", "one,two")
    assert seeds.returncode == 2 and "--seeds" in seeds.stderr
    floor = _cli("sim", "--seeds", "1", "--minutes", "1", "--require", "recall")
    assert floor.returncode == 2 and "KEY>=NUMBER" in floor.stderr


def test_a_campaign_that_wrote_nothing_is_counted_apart(tmp_path: Path) -> None:
    """A slow campaign whose first step falls after the run names no entity: not a miss."""
    raw = [
        *RAW_TRUTH,
        {
            "id": "c4",
            "kind": "promo_abuse",
            "variant": "low_slow",
            "benign": False,
            "start": _iso(1),
            "end": _iso(30),
            "rule.category": "promo_abuse",
            "entities": {},
        },
    ]
    path = tmp_path / "ground_truth.json"
    path.write_text(json.dumps(raw))
    f = score_campaigns(
        load_truth(path), [_alert(2.5, "credential_stuffing", source_ip="203.0.113.2")]
    )
    assert f["attacks"] == 3 and f["unobserved"] == 1
    assert f["per_variant"]["low_slow"]["campaigns"] == 2
    assert "promo_abuse" not in f["per_type"] and "promo_abuse" not in f["per_category"]


def test_the_accounts_a_campaign_broke_into_are_counted_when_named(tmp_path: Path) -> None:
    raw = [dict(RAW_TRUTH[0], params={"compromised_accounts": ["v@x.example", "w@x.example"]})]
    path = tmp_path / "ground_truth.json"
    path.write_text(json.dumps(raw))
    told = Alert(
        "s1",
        T0 + timedelta(minutes=4),
        "auth.spread",
        "spread",
        "credential_stuffing",
        "high",
        60,
        {},
        ("e1",),
        "m",
        details={
            "members": {"source.ip": ["203.0.113.1"]},
            "compromised": {"user.name": ["v@x.example", "z@x.example"]},
        },
    )
    f = score_campaigns(load_truth(path), [told])
    assert (f["compromised"], f["compromised_named"]) == (2, 1)
    # an account named as compromised counts as named: a customer wrongly listed is caught
    only = Alert(
        "s2",
        T0,
        "r",
        "r",
        "credential_stuffing",
        "high",
        60,
        {},
        ("e",),
        "m",
        details={"compromised": {"user.name": ["c1@x.example"]}},
    )
    population = Population(customers={"c1@x.example", "c2@x.example"})
    g = score_campaigns(load_truth(path), [only], population)
    assert g["benign_customers_alerted"] == 1


def _metric_alert(minutes: float, metric: str) -> Alert:
    return Alert(
        f"m{minutes}{metric}",
        T0 + timedelta(minutes=minutes),
        "apm.metric_anomaly",
        "metric",
        "anomaly",
        "medium",
        50,
        {"service.name": "payments", "host.name": "app-1"},
        ("e1",),
        "m",
        details={"members": {"shop.metric.name": [metric]}},
    )


def test_a_metric_alert_an_attack_explains_is_a_symptom_not_a_false_alert(
    tmp_path: Path,
) -> None:
    raw = [
        {
            "id": "card",
            "kind": "card_testing",
            "variant": "loud",
            "benign": False,
            "start": _iso(0),
            "end": _iso(10),
            "rule.category": "card_testing",
            "entities": {"source.ip": ["203.0.113.1"]},
            "symptoms": ["payments.decline_rate"],
        },
        {
            "id": "slow",
            "kind": "checkout_latency_shift",
            "variant": "loud",
            "benign": False,
            "start": _iso(20),
            "end": _iso(30),
            "rule.category": "anomaly",
            "entities": {"shop.metric.name": ["gateway.latency.p95_ms"]},
        },
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(raw))
    alerts = [
        _metric_alert(3, "payments.decline_rate"),  # the card testing's symptom
        _metric_alert(3, "http.error_rate"),  # no attack running moves it: false
        _metric_alert(40, "payments.decline_rate"),  # after the card testing: false
        _metric_alert(21, "gateway.latency.p95_ms"),  # the slowdown itself: detected
    ]
    f = score_campaigns(load_truth(path), alerts)
    assert f["symptom_alerts"] == 1 and f["fp_alerts"] == 2
    by_id = {c["id"]: c for c in f["campaigns"]}
    assert not by_id["card"]["detected"]  # a symptom names no attacker
    assert by_id["slow"]["detected"] and by_id["slow"]["ttd_s"] == 60.0
    assert f["alert_precision"] == round(1 / 3, 4)
