"""Threshold rules with a baseline: this window against the key's own recent normal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.detect.registry import build
from shopwatch.detect.state import KeyedState
from shopwatch.errors import ContentError

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DETECTORS = {d.id: d for d in load_detectors().detectors}


def rule(**over: Any) -> Any:
    return build(
        {
            "id": "test.baseline",
            "kind": "threshold",
            "category": "credential_stuffing",
            "where": {"event.outcome": "failure"},
            "group_by": ["global"],
            "count": {"at_least": 10, "within": "30m"},
            "baseline": {"over": "6d", "factor": 4, "bucket": "10m"},
            **over,
        }
    )


def failures(times: list[timedelta], **fields: Any) -> pl.DataFrame:
    n = len(times)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + t for t in times],
                "event.id": [f"e{i}" for i in range(n)],
                "event.dataset": ["shop.auth"] * n,
                "event.action": ["login"] * n,
                "event.outcome": ["failure"] * n,
                "event.reason": ["unknown_user"] * n,
                "source.ip": [f"198.51.{i // 200}.{i % 200 + 1}" for i in range(n)],
                "user.name": [f"u{i}@example.com" for i in range(n)],
                **{k: [v] * n for k, v in fields.items()},
            }
        )
    )


def run(detector: Any, *frames: pl.DataFrame) -> pl.DataFrame:
    state = KeyedState(detector.keys)
    found = [f for f in (detector.detect(b, state) for b in frames) if f.height]
    return pl.concat(found) if found else pl.DataFrame()


USUAL = [timedelta(days=1, minutes=5 * k) for k in range(12 * 24 * 4)]  # 6 per 30 min, 4 days
DAY5 = timedelta(days=5)


def test_a_quiet_shop_alerts_at_the_plain_count() -> None:
    alerts = run(rule(), failures([DAY5 + timedelta(minutes=k) for k in range(12)]))
    assert alerts.height == 1 and '"usual": 0.0' in alerts["details"][0]


def test_a_busy_shops_usual_raises_the_bar() -> None:
    burst = [DAY5 + timedelta(seconds=40 * k) for k in range(20)]  # 20 in 13 min, usual ~6
    assert run(rule(), failures(USUAL), failures(burst)).height == 0
    spike = [DAY5 + timedelta(seconds=20 * k) for k in range(40)]  # 40: over four times usual
    alerts = run(rule(), failures(USUAL), failures(spike))
    assert alerts.height == 1
    details = json.loads(alerts["details"][0])
    assert details["usual"] == 6.0 and details["count"] == 24  # fired at four times usual


def test_the_answer_does_not_depend_on_batches() -> None:
    spike = [DAY5 + timedelta(seconds=20 * k) for k in range(40)]
    whole = failures(USUAL + spike)
    one = run(rule(), whole)
    many = run(rule(), *[whole.slice(i, 97) for i in range(0, whole.height, 97)])
    assert one["@timestamp"].to_list() == many["@timestamp"].to_list()


def test_history_older_than_over_is_not_the_usual() -> None:
    old = [timedelta(minutes=5 * k) for k in range(12 * 24)]  # day 0 only
    spike = [timedelta(days=8, seconds=40 * k) for k in range(20)]
    assert run(rule(), failures(old), failures(spike)).height == 1


def test_bad_baselines_are_refused() -> None:
    with pytest.raises(ContentError, match="bucket"):
        rule(baseline={"over": "6d", "factor": 4, "bucket": "1h"})
    with pytest.raises(ContentError, match="factor"):
        rule(baseline={"over": "6d", "factor": 1})


def _spread(n: int, gap_s: float, at: timedelta = DAY5) -> list[timedelta]:
    return [at + timedelta(seconds=gap_s * k) for k in range(n)]


@pytest.mark.parametrize(
    ("n", "gap_s"), [(45, 8.0), (24, 70.0)], ids=["loud-proxy-burst", "one-a-minute"]
)
def test_stuffing_spread_fires_on_each_variant_alone(n: int, gap_s: float) -> None:
    detector = DETECTORS["auth.credential_stuffing_spread"]
    assert run(detector, failures(_spread(n, gap_s))).height == 1


def test_stuffing_spread_needs_many_addresses() -> None:
    detector = DETECTORS["auth.credential_stuffing_spread"]
    one_address = failures(_spread(45, 8.0)).with_columns(pl.lit("203.0.113.9").alias("source.ip"))
    assert run(detector, one_address).height == 0


def _declines(n: int, gap_s: float, code: str, *, per_session: int = 1) -> pl.DataFrame:
    times = _spread(n, gap_s)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + t for t in times],
                "event.id": [f"p{i}" for i in range(n)],
                "event.dataset": ["shop.payment"] * n,
                "event.action": ["authorize"] * n,
                "event.outcome": ["failure"] * n,
                "shop.payment.decline_code": [code] * n,
                "shop.payment.card.fingerprint": [f"card{i}" for i in range(n)],
                "shop.session.id": [f"s{i // per_session}" for i in range(n)],
                "source.ip": [f"198.51.100.{i + 1}" for i in range(n)],
            }
        )
    )


@pytest.mark.parametrize(
    ("n", "gap_s", "per_session"), [(14, 85.0, 2), (9, 360.0, 1)], ids=["loud", "one-per-session"]
)
def test_card_testing_spread_fires_on_each_variant_alone(
    n: int, gap_s: float, per_session: int
) -> None:
    detector = DETECTORS["payment.card_testing_spread"]
    frame = _declines(n, gap_s, "incorrect_cvc", per_session=per_session)
    assert run(detector, frame).height == 1


def test_card_testing_spread_is_quiet_on_customers_own_declines() -> None:
    detector = DETECTORS["payment.card_testing_spread"]
    assert run(detector, _declines(14, 85.0, "insufficient_funds", per_session=2)).height == 0
    one_session = _declines(14, 85.0, "incorrect_cvc", per_session=14)
    assert run(detector, one_session).height == 0


def test_a_distinct_counts_usual_is_distinct_values_not_events() -> None:
    """One card retried all week raises the usual by one card an hour, not by its retries."""
    detector = DETECTORS["payment.card_testing_spread"]
    retries = _declines(6 * 24 * 5, 600.0, "incorrect_cvc").with_columns(
        pl.lit("the-same-card").alias("shop.payment.card.fingerprint"),
        pl.lit("retrying-customer").alias("shop.session.id"),
        (pl.col("@timestamp") - timedelta(days=5)).alias("@timestamp"),
    )
    tested = _declines(14, 85.0, "incorrect_cvc", per_session=2)
    alerts = run(detector, retries, tested)
    assert alerts.height == 1 and json.loads(alerts["details"][0])["usual"] <= 1.0


def test_members_at_least_leaves_out_the_one_typo() -> None:
    """A whole-shop alert names the addresses that kept at it, not a customer's one slip."""
    times = _spread(40, 10.0)
    frame = failures(times).with_columns(
        pl.when(pl.int_range(pl.len()) == 7)
        .then(pl.lit("203.0.113.50"))  # a customer's one mistyped address
        .otherwise(pl.format("198.51.100.{}", pl.int_range(pl.len()) // 2 + 1))  # two tries each
        .alias("source.ip")
    )
    listed = rule(members=["source.ip"], members_at_least=2)
    everyone = rule(members=["source.ip"])
    named = json.loads(run(listed, frame)["details"][0])["members"]["source.ip"]
    assert "203.0.113.50" not in named and len(named) >= 3
    assert "203.0.113.50" in json.loads(run(everyone, frame)["details"][0])["members"]["source.ip"]


def test_an_attack_that_began_quietly_does_not_become_the_usual() -> None:
    """Four quiet days watched, then a slow run under the count, then its loud part.

    Judged on the key's own history alone, the slow hours would be the usual and the loud
    part (four times nothing but the slow run) would pass unseen."""
    watched = conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(minutes=5 * k) for k in range(12 * 24 * 4)],
                "event.id": [f"ok{k}" for k in range(12 * 24 * 4)],
                "event.outcome": ["success"] * (12 * 24 * 4),
            }
        )
    )
    slow = [timedelta(days=4, minutes=225 * k / 8) for k in range(8 * 10)]  # 8 per 30 min, 5 h
    loud = [timedelta(days=4, hours=5, seconds=20 * k) for k in range(30)]
    loud_part = failures(loud).with_columns(
        pl.format("loud{}", pl.col("event.id")).alias("event.id")
    )
    alerts = run(rule(), watched, failures(slow), loud_part)
    assert alerts.height == 1
    assert json.loads(alerts["details"][0])["usual"] < 1.0


def test_one_stray_old_event_does_not_dilute_the_usual() -> None:
    """The engine's clock marks when the rule began watching, not an event dated 2020."""
    from shopwatch.pipeline.engine import Engine

    day = [timedelta(days=5, minutes=5 * k) for k in range(12 * 24)]  # a day at 6 per 30 min
    stray = conform(
        pl.DataFrame(
            {
                "@timestamp": [datetime(2020, 1, 1, tzinfo=UTC)],
                "event.id": ["old"],
                "event.outcome": ["success"],
            }
        )
    )
    burst = [timedelta(days=6, seconds=40 * k) for k in range(20)]  # 20: not four times 6
    engine = Engine([rule()])
    first = pl.concat([stray, failures(day)], how="diagonal_relaxed")
    later = failures(burst).with_columns(pl.format("b{}", pl.col("event.id")).alias("event.id"))
    assert engine.process(first).height == 0
    assert engine.process(later).height == 0
