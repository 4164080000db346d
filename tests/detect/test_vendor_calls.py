"""A vendor's calls failing or slowing beyond its own normal (``vendor.calls_anomaly``).

The calls are a day or two of one vendor as a shop makes them: a daily curve of calls a
minute, durations around a median, a usual share failing (0.3 %). Each variant of an
outage the rule claims must fire; the business look-alikes (a month-end run, card
declines, a brief hiccup) must not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect.state import KeyedState
from shopwatch.detect.vendor_calls import VendorCallsDetector, VendorCallsSpec

from .helpers import run, shipped

START = datetime(2026, 3, 2, tzinfo=UTC)
DAY = 1440
NOON = DAY + 660  # the second day at 11:00, near the busiest hour


@pytest.fixture(scope="module")
def detector() -> VendorCallsDetector:
    found = shipped("vendor.calls_anomaly")
    assert isinstance(found, VendorCallsDetector)
    return found


@dataclass
class Calls:
    """One vendor's calls, minute by minute; changes are applied to a span of minutes."""

    minutes: int
    peak_per_min: float = 6.0
    usual_failing: float = 0.003
    median_ms: float = 250.0
    seed: int = 5
    vendor: str = "dhl"
    rate: np.ndarray = field(init=False)
    failing: np.ndarray = field(init=False)
    statuses: list[tuple[int | None, ...]] = field(init=False)
    slow: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        t = np.arange(self.minutes)
        # a shop's day: a few calls a minute at night, ``peak_per_min`` in the evening
        self.rate = 0.5 + self.peak_per_min * 0.5 * (1 - np.cos(2 * np.pi * (t % DAY) / DAY))
        self.failing = np.full(self.minutes, self.usual_failing)
        self.statuses = [(500, 502, 503)] * self.minutes
        self.slow = np.ones(self.minutes)

    def fail(self, at: int, length: int, share: float, statuses: tuple[int | None, ...]) -> None:
        self.failing[at : at + length] = share
        self.statuses[at : at + length] = [statuses] * length

    def ramp(self, at: int, length: int, share: float) -> None:
        self.failing[at : at + length] = np.maximum(
            self.failing[at : at + length], np.linspace(0.0, share, length)
        )

    def frame(self, start_min: int = 0, end_min: int | None = None) -> pl.DataFrame:
        rng = np.random.default_rng(self.seed)
        rows: dict[str, list[object]] = {
            k: []
            for k in (
                "@timestamp",
                "event.id",
                "http.response.status_code",
                "event.duration",
                "event.outcome",
            )
        }
        for m in range(self.minutes):
            n = int(rng.poisson(self.rate[m]))
            offsets = np.sort(rng.uniform(0, 60, n))
            fails = rng.random(n) < self.failing[m]
            ms = self.median_ms * self.slow[m] * np.exp(rng.normal(0, 0.35, n))
            pick = rng.integers(0, len(self.statuses[m]), n)
            if not start_min <= m < (end_min if end_min is not None else self.minutes):
                continue
            for i in range(n):
                status = self.statuses[m][pick[i]] if fails[i] else 200
                rows["@timestamp"].append(START + timedelta(minutes=m, seconds=float(offsets[i])))
                rows["event.id"].append(f"{self.vendor}-{m}-{i}")
                rows["http.response.status_code"].append(status)
                rows["event.duration"].append(int(ms[i] * 1e6))
                rows["event.outcome"].append(
                    "failure" if status is None or status >= 400 else "success"
                )
        n = len(rows["@timestamp"])
        return conform(
            pl.DataFrame(
                {
                    **rows,
                    "event.dataset": ["vendor.api"] * n,
                    "shop.vendor.name": [self.vendor] * n,
                },
                schema_overrides={"http.response.status_code": pl.Int64},
            )
        )


def _batches(frame: pl.DataFrame, minutes: int = 60) -> list[pl.DataFrame]:
    """The frame cut into batches of ``minutes`` of event time."""
    key = ((pl.col("@timestamp") - pl.lit(START)).dt.total_seconds() // (60 * minutes)).alias("_b")
    return [b.drop("_b") for _, b in frame.with_columns(key).group_by("_b", maintain_order=True)]


def _tail(frame: pl.DataFrame) -> pl.DataFrame:
    """An event after the stream's end, so that its last minute ends."""
    last = frame.get_column("@timestamp").max()
    assert isinstance(last, datetime)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [last + timedelta(minutes=2)],
                "event.id": ["clock"],
                "event.dataset": ["apm.metric"],
            }
        )
    )


def _alerts(detector: VendorCallsDetector, calls: Calls, minutes: int = 60) -> pl.DataFrame:
    frame = calls.frame()
    return run(detector, [*_batches(frame, minutes), _tail(frame)])


def _after(alerts: pl.DataFrame, minute: int) -> pl.DataFrame:
    return alerts.filter(pl.col("@timestamp") >= START + timedelta(minutes=minute))


def _metric(alert: dict[str, object]) -> str:
    return str(json.loads(str(alert["details"]))["metric"])


def test_two_ordinary_days_raise_nothing(detector: VendorCallsDetector) -> None:
    assert _alerts(detector, Calls(2 * DAY)).height == 0


def test_a_revoked_key_fires_on_the_failing_share(detector: VendorCallsDetector) -> None:
    calls = Calls(NOON + 120)
    calls.fail(NOON + 30, 40, 0.6, (401, 403))
    alerts = _alerts(detector, calls)
    assert alerts.height == 1  # one outage, one alert (its failing minutes say it again)
    first = alerts.row(0, named=True)
    assert first["rule.category"] == "vendor_risk"
    assert first["entity"]["shop.vendor.name"] == "dhl"
    assert _metric(first) == "vendor.error_share"
    at = first["@timestamp"] - (START + timedelta(minutes=NOON + 30))
    assert timedelta(minutes=4) <= at <= timedelta(minutes=15)  # held five minutes, not more
    assert first["message"].startswith("Vendor dhl: ")
    assert "401" in first["message"] or "403" in first["message"]
    assert alerts.filter(pl.col("@timestamp") < START + timedelta(minutes=NOON + 30)).height == 0


def test_a_revoked_key_at_night_fires_later(detector: VendorCallsDetector) -> None:
    """At night a vendor gets a call every minute or two: the same outage takes longer to
    tell from chance, but is told."""
    calls = Calls(DAY + 120)
    calls.fail(DAY + 30, 60, 0.6, (401,))
    alerts = _alerts(detector, calls)
    assert alerts.height >= 1
    at = alerts.row(0, named=True)["@timestamp"] - (START + timedelta(minutes=DAY + 30))
    assert at <= timedelta(minutes=40)


def test_a_rate_limit_with_its_retries_fires(detector: VendorCallsDetector) -> None:
    calls = Calls(NOON + 120)
    calls.fail(NOON + 30, 30, 0.5, (429,))
    calls.rate[NOON + 30 : NOON + 60] *= 2.0  # the retries
    alerts = _alerts(detector, calls)
    assert alerts.height >= 1 and "429" in alerts.row(0, named=True)["message"]


def test_a_vendor_degrading_over_hours_fires(detector: VendorCallsDetector) -> None:
    """Low and slow: server errors growing to 4 % of calls over three hours, then staying.
    No ten minutes of calls tell it from chance; the minutes of an hour with a failure do."""
    calls = Calls(NOON + 360)
    calls.ramp(NOON - 120, 180, 0.04)
    calls.fail(NOON + 60, 300, 0.04, (500, 502, 503))
    alerts = _after(_alerts(detector, calls), NOON - 180)
    assert alerts.height >= 1
    first = alerts.row(0, named=True)
    assert _metric(first) == "vendor.failing_minutes"
    assert "minutes" in first["message"]


def test_calls_that_never_answered_count_as_failing(detector: VendorCallsDetector) -> None:
    calls = Calls(NOON + 120)
    calls.fail(NOON + 30, 40, 0.5, (None,))  # timeouts: no status, outcome failure
    alerts = _alerts(detector, calls)
    assert alerts.height >= 1
    assert "no answer" in alerts.row(0, named=True)["message"]


def test_card_declines_are_the_vendor_working(detector: VendorCallsDetector) -> None:
    calls = Calls(NOON + 120)
    calls.fail(NOON + 30, 60, 0.4, (402,))  # a card testing run, declined by the provider
    assert _alerts(detector, calls).height == 0


def test_a_month_end_run_is_more_of_the_same(detector: VendorCallsDetector) -> None:
    """Five times the calls for four hours at the usual share failing: no alert (raw counts
    of failures grow fivefold; the share does not)."""
    calls = Calls(NOON + 360)
    calls.rate[NOON : NOON + 240] *= 5.0
    assert _after(_alerts(detector, calls), NOON - 180).height == 0


def test_a_two_minute_hiccup_is_no_incident(detector: VendorCallsDetector) -> None:
    calls = Calls(NOON + 120, peak_per_min=12.0)
    calls.fail(NOON + 30, 2, 0.6, (503,))
    calls.slow[NOON + 60 : NOON + 62] = 3.0
    assert _alerts(detector, calls).height == 0


def test_a_lasting_slowdown_fires_on_latency(detector: VendorCallsDetector) -> None:
    calls = Calls(NOON + 120)
    calls.slow[NOON + 30 : NOON + 90] = 4.0
    alerts = _alerts(detector, calls)
    assert alerts.height >= 1
    first = alerts.row(0, named=True)
    assert _metric(first) == "vendor.latency.p95_ms"
    assert "p95 took" in first["message"]


def test_persistence_off_lets_the_hiccup_through(detector: VendorCallsDetector) -> None:
    """The hiccup's silence is the five-minute hold, not a blind spot."""
    eager = VendorCallsDetector(detector.spec.model_copy(update={"persist": "0s"}))
    calls = Calls(NOON + 120, peak_per_min=12.0)
    calls.fail(NOON + 30, 2, 0.6, (503,))
    assert _alerts(eager, calls).height >= 1


def test_batches_of_any_size_judge_the_same_minutes(detector: VendorCallsDetector) -> None:
    """Calls of one minute split over batches wait for it to end: one-minute batches, and
    batches cut mid-minute, alert as one batch of an hour does."""
    calls = Calls(NOON + 120)
    calls.fail(NOON + 30, 40, 0.6, (401,))
    frame = calls.frame()
    hourly = run(detector, [*_batches(frame, 60), _tail(frame)])
    odd = [frame.slice(i, 997) for i in range(0, frame.height, 997)]
    chopped = run(detector, [*odd, _tail(frame)])
    cols = ["@timestamp", "rule.id", "entity", "message"]
    assert hourly.height >= 1
    assert chopped.select(cols).equals(hourly.select(cols))
    whole = run(detector, [frame])
    assert whole.select(cols).equals(hourly.select(cols))


def test_state_saved_and_restored_mid_stream(detector: VendorCallsDetector) -> None:
    calls = Calls(NOON + 120)
    calls.fail(NOON + 30, 40, 0.6, (401,))
    batches = [*_batches(calls.frame(), 60)]
    batches.append(_tail(batches[-1]))
    whole = run(detector, batches)
    state = KeyedState(detector.keys)
    first = [detector.detect(b, state) for b in batches[:20]]
    saved = state.snapshot()
    restored = KeyedState(detector.keys)
    restored.restore(saved)
    fresh = VendorCallsDetector(detector.spec)
    rest = [fresh.detect(b, restored) for b in batches[20:]]
    both = pl.concat([a for a in first + rest if a.height])
    assert both.select("@timestamp", "message").equals(whole.select("@timestamp", "message"))


def test_a_late_call_counts_in_its_vendors_next_minute(detector: VendorCallsDetector) -> None:
    calls = Calls(200)
    frame = calls.frame()
    state = KeyedState(detector.keys)
    detector.detect(frame, state)
    judged = state.table("judged", {}).row(0, named=True)["_minute"]
    late = frame.head(1).with_columns(pl.lit("late").alias("event.id"))
    detector.detect(late, state)
    pending = state.table("pending", {})
    assert "late" in pending.get_column("event.id").to_list()
    after = state.table("judged", {}).row(0, named=True)["_minute"]
    assert after == judged  # nothing judged twice; it waits for the next minute
    later = frame.tail(1).with_columns(
        pl.col("@timestamp") + timedelta(minutes=3), pl.lit("later").alias("event.id")
    )
    detector.detect(later, state)
    assert state.table("judged", {}).row(0, named=True)["_minute"] == judged + timedelta(minutes=1)
    assert "late" not in state.table("pending", {}).get_column("event.id").to_list()


def test_bad_fields_neither_crash_nor_count() -> None:
    spec = VendorCallsSpec(id="vendor.test", kind="vendor_calls", category="vendor_risk")
    d = VendorCallsDetector(spec)
    frame = pl.DataFrame(
        {
            "@timestamp": [START, START + timedelta(seconds=5), START + timedelta(minutes=3)],
            "event.id": ["a", "b", "c"],
            "event.dataset": ["vendor.api"] * 3,
            "shop.vendor.name": ["dhl", None, "dhl"],
            "http.response.status_code": ["oops", "500", "200"],
            "event.duration": ["fast", None, "1000000"],
        }
    )
    state = KeyedState(d.keys)
    assert d.detect(frame, state).height == 0
    # the nameless call is left out, the unreadable status and duration are no failure;
    # the first minute is judged (one call, none failed), the last call waits for its own
    assert state.table("pending", {}).get_column("event.id").to_list() == ["c"]
    judged = state.table("judged", {}).row(0, named=True)
    assert (judged["shop.vendor.name"], judged["_minute"]) == ("dhl", START)
    hour = state.table("hour", {}).row(0, named=True)
    assert (hour["_calls"], hour["_any"]) == (1, False)
    with pytest.raises(ValueError, match="5xx"):
        VendorCallsDetector(spec.model_copy(update={"failing": ("server errors",)}))


def test_pending_calls_are_bounded() -> None:
    spec = VendorCallsSpec(
        id="vendor.test", kind="vendor_calls", category="vendor_risk", max_pending=1_000
    )
    d = VendorCallsDetector(spec)
    n = 5_000
    frame = conform(
        pl.DataFrame(
            {
                "@timestamp": [START + timedelta(milliseconds=i) for i in range(n)],
                "event.id": [str(i) for i in range(n)],
                "event.dataset": ["vendor.api"] * n,
                "shop.vendor.name": ["dhl"] * n,
                "http.response.status_code": [200] * n,
            }
        )
    )
    state = KeyedState(d.keys)
    d.detect(frame, state)
    assert state.table("pending", {}).height <= 1_000
    assert state.table("series", {}).height >= 1  # the rest was judged, not dropped
    # a flood of five minutes in batches over the cap, then ordinary calls: the judged
    # minute follows the clock and is never ahead of it
    for minute in range(1, 6):
        flood = frame.head(1_200).with_columns(
            pl.col("@timestamp") + timedelta(minutes=minute), pl.lit(f"f{minute}").alias("event.id")
        )
        d.detect(flood, state)
        newest = flood.get_column("@timestamp").max()
        judged = state.table("judged", {}).row(0, named=True)["_minute"]
        assert judged <= newest
    calm = frame.head(3).with_columns(pl.col("@timestamp") + timedelta(minutes=20))
    d.detect(calm, state)
    assert state.table("judged", {}).row(0, named=True)["_minute"] <= START + timedelta(minutes=20)


def test_calls_dated_past_the_clock_are_set_aside(detector: VendorCallsDetector) -> None:
    """A forged date neither crashes the rule nor holds a minute open: with the engine's
    clock, calls dated past it are counted and left out."""
    calls = Calls(NOON + 120)
    calls.fail(NOON + 30, 40, 0.6, (401,))
    frame = calls.frame()
    forged = frame.head(2_000).with_columns(
        pl.lit(datetime(9999, 12, 31, 23, 59, tzinfo=UTC)).alias("@timestamp")
    )
    d = VendorCallsDetector(detector.spec)
    state = KeyedState(d.keys)
    alerts = []
    for b in _batches(frame, 60):
        state.clock = b.get_column("@timestamp").max()
        alerts.append(d.detect(pl.concat([b, forged]), state))
    assert d.set_aside >= 2_000
    assert sum(a.height for a in alerts) >= 1  # the outage is still told
    assert state.table("pending", {}).get_column("_ts").max() < datetime(9999, 1, 1, tzinfo=UTC)
    # without a clock a batch dated at the end of time is judged without an error
    lone = VendorCallsDetector(detector.spec)
    lone.detect(forged, KeyedState(lone.keys))


def test_a_four_minute_hiccup_is_held_not_remembered(detector: VendorCallsDetector) -> None:
    """The hour's failing minutes remember a hiccup for an hour; only minutes that fail
    themselves count towards the five-minute hold, so four minutes raise nothing."""
    calls = Calls(NOON + 120, peak_per_min=12.0)
    calls.fail(NOON + 30, 4, 0.25, (503,))
    assert _alerts(detector, calls).height == 0


def test_persistence_off_still_judges_the_failing_minutes(detector: VendorCallsDetector) -> None:
    eager = VendorCallsDetector(detector.spec.model_copy(update={"persist": "0s"}))
    calls = Calls(NOON + 360)
    calls.ramp(NOON - 120, 180, 0.04)
    calls.fail(NOON + 60, 300, 0.04, (500, 502, 503))
    found = _after(_alerts(eager, calls), NOON - 180)
    assert "vendor.failing_minutes" in {_metric(a) for a in found.iter_rows(named=True)}


def test_a_vendor_that_settles_at_a_higher_share_becomes_usual(
    detector: VendorCallsDetector,
) -> None:
    """One degradation, one alert per rest; a vendor that stays at 3 % for days is its
    new normal by the third day."""
    calls = Calls(4 * DAY)
    calls.fail(DAY, 3 * DAY, 0.03, (500, 502, 503))
    alerts = _alerts(detector, calls, minutes=240)
    assert 1 <= _after(alerts, DAY).height <= 4
    assert _after(alerts, 3 * DAY).height == 0
