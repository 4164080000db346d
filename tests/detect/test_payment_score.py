"""Kind ``payment_score``: batches, what teaches, score_all, the alert's words."""

from __future__ import annotations

import json

import polars as pl
import pytest

from shopwatch.detect.content import load_detectors
from shopwatch.detect.payments import PaymentScoreDetector
from shopwatch.detect.state import KeyedState

from .helpers import CASES, read_events, run

CASE = CASES / "payment.fraud_score"
PLACED = pl.col("event.action") == "order_placed"


@pytest.fixture(scope="module")
def detector() -> PaymentScoreDetector:
    found = next(
        d for d in load_detectors(sigma_rules=False).detectors if d.id == "payment.fraud_score"
    )
    assert isinstance(found, PaymentScoreDetector)
    return found


@pytest.fixture(scope="module")
def fires() -> pl.DataFrame:
    return read_events(CASE / "fires.jsonl")


def test_alerts_do_not_depend_on_batches(
    detector: PaymentScoreDetector, fires: pl.DataFrame
) -> None:
    whole = run(detector, [fires])
    cut = run(detector, [fires.slice(i, 97) for i in range(0, fires.height, 97)])
    assert whole.height == 5
    assert cut.select("alert.id", "message").equals(whole.select("alert.id", "message"))


def test_score_all_reports_every_order_and_alerting_follows_the_threshold(
    detector: PaymentScoreDetector, fires: pl.DataFrame
) -> None:
    every = PaymentScoreDetector(detector.spec.model_copy(update={"score_all": True}))
    reports = run(every, [fires])
    assert reports.height == fires.filter(PLACED).height
    details = [json.loads(d) for d in reports["details"].to_list()]
    alerting = {d["order"] for d in details if d["alerting"]}
    assert all(d["alerting"] == (d["bits"] >= detector.spec.threshold) for d in details)
    alerted = {json.loads(d)["order"] for d in run(detector, [fires])["details"].to_list()}
    assert alerting == alerted


def test_orders_that_alert_or_come_near_do_not_teach(
    detector: PaymentScoreDetector, fires: pl.DataFrame
) -> None:
    from shopwatch.detect.payments import TEACH_BELOW

    every = PaymentScoreDetector(detector.spec.model_copy(update={"score_all": True}))
    state = KeyedState(every.keys)
    reports = run(every, [fires], state)
    bits = [json.loads(d)["bits"] for d in reports["details"].to_list()]
    near = [b for b in bits if b >= detector.spec.threshold * TEACH_BELOW]
    assert any(b < detector.spec.threshold for b in near)  # the 28-bit first fraud order
    summary = every.model_summary(state)
    assert summary["events"] == len(bits) - len(near)
    assert set(summary["segments"]) == {"new", "established"}


def test_the_same_order_placed_twice_is_scored_once(
    detector: PaymentScoreDetector, fires: pl.DataFrame
) -> None:
    every = PaymentScoreDetector(detector.spec.model_copy(update={"score_all": True}))
    twice = pl.concat([fires, fires.filter(PLACED).tail(3)]).sort("@timestamp")
    assert run(every, [twice]).height == fires.filter(PLACED).height


def test_the_alert_says_why_in_words_and_parts(
    detector: PaymentScoreDetector, fires: pl.DataFrame
) -> None:
    alerts = run(detector, [fires]).sort("@timestamp")
    takeover = alerts.filter(
        pl.col("entity").struct.field("user.name") == "customer005@mail.example"
    )
    row = takeover.row(0, named=True)
    details = json.loads(row["details"])
    assert details["segment"] == "established" and not details["trusted"]
    assert {"hosting_ip", "new_device", "new_card", "new_address", "ip_abroad"} <= {
        k for k, on in details["signals"].items() if on
    }
    assert "bought from a hosting network" in row["message"] and "bits" in row["message"]
    assert row["entity"]["shop.payment.card.fingerprint"]
    assert row["rule.category"] == "payment_fraud"


def test_a_payment_older_than_an_hour_is_not_joined_to_a_later_order(
    detector: PaymentScoreDetector, tmp_path
) -> None:
    lines = [json.loads(x) for x in (CASE / "fires.jsonl").read_text().splitlines()[-3:]]
    _, pay, placed = lines
    late = {**placed, "@timestamp": "2026-03-15T09:00:00.000Z"}
    every = PaymentScoreDetector(detector.spec.model_copy(update={"score_all": True}))

    def card_named(rows: list[dict]) -> str | None:
        path = tmp_path / "e.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        got = run(every, [read_events(path)])
        return got.row(0, named=True)["entity"]["shop.payment.card.fingerprint"]

    assert card_named([pay, placed]) == pay["shop.payment.card.fingerprint"]
    assert card_named([pay, late]) is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, None])
def test_a_bad_amount_scores_as_none_and_does_not_corrupt_the_amounts(
    detector: PaymentScoreDetector, fires: pl.DataFrame, bad: float | None
) -> None:
    from shopwatch.learn.payments import Population

    head = fires.head(90)
    target = head.filter(PLACED)["shop.order.id"][1]
    spoiled = head.with_columns(
        pl.when(PLACED & (pl.col("shop.order.id") == target))
        .then(pl.lit(bad, pl.Float64))
        .otherwise(pl.col("shop.order.amount"))
        .alias("shop.order.amount")
    )
    state = KeyedState(detector.keys)
    run(detector, [spoiled], state)
    rows = state.table("population", detector._tables["population"]).to_dicts()
    pop = Population.from_dict(json.loads(rows[0]["_v"]))
    amounts = [a for seg in pop.segments.values() for a in seg.amounts]
    assert len(amounts) == head.filter(PLACED).height
    for seg in pop.segments.values():
        assert seg.amounts == sorted(seg.amounts)
    assert all(0 <= a < float("inf") for a in amounts)


def test_at_the_same_instant_the_payment_is_joined_whatever_the_ids(
    detector: PaymentScoreDetector, tmp_path
) -> None:
    lines = [json.loads(x) for x in (CASE / "fires.jsonl").read_text().splitlines()[-3:]]
    _, pay, placed = lines
    same = "2026-03-14T13:00:31.000Z"
    # The order's id sorts before the payment's.
    rows = [
        {**placed, "@timestamp": same, "event.id": "a-1"},
        {**pay, "@timestamp": same, "event.id": "z-9"},
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    every = PaymentScoreDetector(detector.spec.model_copy(update={"score_all": True}))
    got = run(every, [read_events(path)])
    assert (
        got.row(0, named=True)["entity"]["shop.payment.card.fingerprint"]
        == pay["shop.payment.card.fingerprint"]
    )
