"""The shop's past weeks written before a run: the customers' own logins and orders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from shopwatch.detect.profiles import Profiler, ProfileSettings
from shopwatch.parse import parse_file
from shopwatch.sim import simulate
from shopwatch.sim.world import build_shop

START = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("history")
    simulate(out, 20, seed=4, start=START, customers=1500, campaigns=[], history_days=30)
    return out


def _events(path: Path) -> pl.DataFrame:
    return pl.concat([p.batch for p in parse_file(path, "auto")]).sort("@timestamp")


def test_the_past_comes_first_and_stays_before_the_run(run: Path) -> None:
    events = _events(run / "events.ndjson")
    past = events.filter(pl.col("@timestamp") < START)
    assert past.height > 200
    assert past["@timestamp"].min() >= START - timedelta(days=30)
    assert past["@timestamp"].max() < START
    record = json.loads((run / "run.json").read_text())
    assert record["history_days"] == 30 and record["start"] == START.isoformat()


def test_the_past_is_the_customers_own_logins_and_orders(run: Path) -> None:
    shop = build_shop(4, 1500)
    past = _events(run / "events.ndjson").filter(pl.col("@timestamp") < START)
    assert set(past["event.dataset"].unique()) >= {"shop.auth", "shop.order", "shop.payment"}
    logins = past.filter(pl.col("event.action") == "login")
    failed = logins.filter(pl.col("event.outcome") == "failure").height
    assert 0 < failed < 0.2 * logins.height  # typos, as in live traffic, but few
    devices = {d.id for c in shop.customers for d in c.devices}
    cards = {card.fingerprint for c in shop.customers for card in c.cards}
    assert set(logins["shop.device.id"].unique()) <= devices
    paid = past.filter(pl.col("event.dataset") == "shop.payment")
    assert paid.height and set(paid["shop.payment.card.fingerprint"].unique()) <= cards
    # Some customers come back often, some not at all.
    per = logins.group_by("user.name").len()["len"]
    assert per.max() >= 4 and per.len() < len(shop.customers)


def test_the_past_has_the_back_office_on_office_days(run: Path) -> None:
    shop = build_shop(4, 1500)
    past = _events(run / "events.ndjson").filter(
        (pl.col("@timestamp") < START) & (pl.col("event.dataset") == "shop.data_access")
    )
    assert set(past["user.name"].unique()) <= {s.email for s in shop.staff}
    local = past["@timestamp"].dt.offset_by("1h")  # the office keeps Central European time
    assert local.dt.weekday().max() <= 5 and local.dt.hour().is_between(8, 17).all()
    per_day = past.height / (30 * 5 / 7)
    assert 200 < per_day < 400  # 0.5 a minute over ten office hours
    exports = past.filter(pl.col("event.action") == "export")
    assert 0 < exports.height < 0.05 * past.height


def test_no_history_writes_none(tmp_path: Path) -> None:
    simulate(
        tmp_path, 2, seed=4, start=START, customers=60, campaigns=[], history_days=0, warmup_hours=0
    )
    events = _events(tmp_path / "events.ndjson")
    assert events.filter(pl.col("@timestamp") < START).height == 0


def test_profiles_know_a_returning_customer_from_the_past(run: Path) -> None:
    """The run's events of customers seen in the past mostly come from known devices."""
    events = _events(run / "events.ndjson")
    profiler = Profiler(ProfileSettings())
    annotated = profiler.annotate(events, profiler.new_state())
    now = annotated.filter(pl.col("@timestamp") >= START)
    judged = now["shop.profile.new_device"].drop_nulls()
    assert judged.len() > 0
    assert judged.sum() < judged.len()  # most returning customers use a known device


def test_warmup_writes_the_last_day_of_metrics_and_vendor_calls(run: Path) -> None:
    """The day before the run: the shop's metric samples and vendor calls, nothing else."""
    events = _events(run / "events.ndjson")
    day = events.filter(
        (pl.col("@timestamp") >= START - timedelta(hours=1)) & (pl.col("@timestamp") < START)
    )
    # the customers' past ends an hour before the run (but for late captures of its
    # orders); that hour holds the warm-up and no visit
    assert {"apm.metric", "vendor.api"} <= set(day["event.dataset"].unique())
    assert day.filter(pl.col("event.dataset").is_in(["shop.auth", "shop.order"])).height == 0
    warm = events.filter(
        (pl.col("@timestamp") < START) & pl.col("event.dataset").is_in(["apm.metric"])
    )
    assert warm["@timestamp"].min() >= START - timedelta(hours=24)
    requests = warm.filter(pl.col("shop.metric.name") == "http.requests")
    assert requests.height == 24 * 60  # one sample a minute
    assert requests["@timestamp"].is_sorted()
    # a rate carries the observations it is over; a count does not
    rates = warm.filter(pl.col("shop.metric.name") == "http.error_rate")
    assert rates["shop.metric.count"].is_not_null().all() and rates["shop.metric.count"].max() > 0
    assert requests["shop.metric.count"].is_null().all()
    # the warm-up's events are named apart from the run's own
    assert events["event.id"].n_unique() == events.height


def test_events_are_in_time_order(run: Path) -> None:
    stamps = [
        json.loads(line)["@timestamp"]
        for line in (run / "events.ndjson").read_text(encoding="utf-8").splitlines()
    ]
    cut = next(i for i, s in enumerate(stamps) if s >= START.isoformat().replace("+00:00", ""))
    assert stamps[:cut] == sorted(stamps[:cut])  # the past, merged in time order
