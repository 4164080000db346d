"""Kind ``form_submit`` beyond its cases: batch cuts, state across batches, suppression, age."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect import build
from shopwatch.detect.state import KeyedState

from .helpers import run

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
RULE = {
    "id": "test.signup_bot",
    "kind": "form_submit",
    "category": "promo_abuse",
    "form": "/register$",
    "where": {"event.dataset": "http.access"},
    "max_fill_s": 5,
    "within": "30m",
}


def requests(*rows: tuple[int, str, str, str]) -> pl.DataFrame:
    """(seconds after T0, ip, method, path) as access-log events."""
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=s) for s, *_ in rows],
                "event.id": [f"e{i}" for i in range(len(rows))],
                "event.dataset": ["http.access"] * len(rows),
                "source.ip": [ip for _, ip, _, _ in rows],
                "http.request.method": [m for _, _, m, _ in rows],
                "url.path": [p for *_, p in rows],
            }
        )
    )


BOT = "203.0.113.5"
TRAFFIC = requests(
    (0, BOT, "GET", "/register"),
    (1, "198.51.100.9", "GET", "/"),
    (2, BOT, "POST", "/register"),  # 2 s after the fetch: fires
    (3, "198.51.100.9", "GET", "/static/site.css"),
    (40, "198.51.100.9", "GET", "/register"),
    (41, BOT, "POST", "/register"),  # within suppress: quiet
    (70, "198.51.100.9", "POST", "/register"),  # a person: 30 s, assets loaded
)


def test_fires_with_the_fetch_as_evidence() -> None:
    alerts = run(build(RULE), [TRAFFIC])
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert row["entity"]["source.ip"] == BOT
    assert row["event.ids"] == ["e0", "e2"]
    details = json.loads(row["details"])
    assert (details["fill_seconds"], details["fetched_first"]) == (2.0, True)
    assert "2 s after fetching it" in row["message"]


@pytest.mark.parametrize("size", [1, 2, 3])
def test_alerts_do_not_depend_on_how_the_events_are_cut(size: int) -> None:
    whole = run(build(RULE), [TRAFFIC])
    cut = run(build(RULE), [TRAFFIC.slice(i, size) for i in range(0, TRAFFIC.height, size)])
    assert cut.select("alert.id", "event.ids").equals(whole.select("alert.id", "event.ids"))


def test_a_second_sign_up_after_the_quiet_period_fires_again() -> None:
    events = requests(
        (0, BOT, "GET", "/register"),
        (1, BOT, "POST", "/register"),
        (600, BOT, "POST", "/register"),  # 10 min later: still quiet
        (2700, BOT, "GET", "/register"),
        (2701, BOT, "POST", "/register"),  # 45 min later: a new alert
    )
    alerts = run(build(RULE), [events])
    assert alerts["@timestamp"].to_list() == [
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2701),
    ]


def test_an_asset_older_than_the_window_does_not_vouch_for_the_client() -> None:
    stale = requests((0, BOT, "GET", "/static/app.js"), (1900, BOT, "POST", "/register"))
    fresh = requests((0, BOT, "GET", "/static/app.js"), (1700, BOT, "POST", "/register"))
    assert run(build(RULE), [stale]).height == 1
    assert run(build(RULE), [fresh]).height == 0


def test_a_slow_fill_is_quiet_and_a_fetch_older_than_the_window_is_a_direct_post() -> None:
    slow = requests((0, BOT, "GET", "/register"), (6, BOT, "POST", "/register"))
    old_fetch = requests((0, BOT, "GET", "/register"), (1900, BOT, "POST", "/register"))
    assert run(build(RULE), [slow]).height == 0
    assert run(build(RULE), [old_fetch]).height == 1
    no_direct = build({**RULE, "direct_posts": False})
    assert run(no_direct, [old_fetch]).height == 0


def test_the_state_carries_the_fetch_across_a_snapshot() -> None:
    detector = build(RULE)
    state = KeyedState(detector.keys)
    assert run(detector, [requests((0, BOT, "GET", "/register"))], state).height == 0
    restored = KeyedState(detector.keys)
    restored.restore(state.snapshot())
    alerts = run(build(RULE), [requests((3, BOT, "POST", "/register"))], restored)
    assert alerts.height == 1
    assert json.loads(alerts["details"][0])["fill_seconds"] == 3.0
    # One row per client: the bot, with its last fetch and alert.
    seen = restored._tables["seen"]
    assert seen.height == 1
    assert seen["_fired"][0] == T0 + timedelta(seconds=3)


def test_rows_outside_the_where_clause_are_not_seen() -> None:
    other = requests((0, BOT, "GET", "/register"), (1, BOT, "POST", "/register")).with_columns(
        pl.lit("nginx.error").alias("event.dataset")
    )
    assert run(build(RULE), [other]).height == 0


HELD = {**RULE, "hold": "10m"}
PERSON = "198.51.100.77"


def held_run(batches: list[pl.DataFrame]) -> pl.DataFrame:
    """Alerts over the batches, then those the end of the input releases."""
    detector = build(HELD)
    state = KeyedState(detector.keys)
    out = [detector.detect(b, state) for b in batches]
    out.append(detector.flush(state))
    return (
        pl.concat([o for o in out if o.height], how="vertical")
        if any(o.height for o in out)
        else pl.DataFrame()
    )


@pytest.mark.parametrize("size", [1, 3, 100], ids=["event-per-batch", "small", "one-batch"])
def test_a_held_post_is_dropped_when_the_client_goes_on_to_a_page(size: int) -> None:
    """An autofilled form from a tab left open: fast and without assets, then the account."""
    events = requests(
        (0, PERSON, "GET", "/register"),
        (2, PERSON, "POST", "/register"),  # fast, no assets: held
        (3, PERSON, "GET", "/account"),  # the redirect: bots follow it too
        (40, PERSON, "GET", "/password/forgot"),  # a page, later: a person
        (0, BOT, "GET", "/register"),
        (1, BOT, "POST", "/register"),
        (5, BOT, "GET", "/static/site.css"),  # an asset is no page
        (700, "192.0.2.1", "GET", "/"),  # someone else, later: the clock passes the hold
    ).sort("@timestamp")
    alerts = held_run([events.slice(i, size) for i in range(0, events.height, size)])
    assert alerts["entity"].struct.field("source.ip").to_list() == [BOT]
    row = alerts.row(0, named=True)
    assert row["@timestamp"] == T0 + timedelta(seconds=1) + timedelta(minutes=10)
    assert "opened no page in the 10m after" in row["message"]
    assert json.loads(row["details"])["hold"] == "10m"


def test_a_page_after_the_hold_does_not_excuse_the_post() -> None:
    events = requests(
        (0, BOT, "GET", "/register"),
        (1, BOT, "POST", "/register"),
        (660, BOT, "GET", "/account"),  # eleven minutes later
    )
    assert held_run([events])["entity"].struct.field("source.ip").to_list() == [BOT]


def test_a_held_alert_waits_for_the_clock_or_the_end_of_the_input() -> None:
    detector = build(HELD)
    state = KeyedState(detector.keys)
    first = detector.detect(
        requests((0, BOT, "GET", "/register"), (1, BOT, "POST", "/register")), state
    )
    assert first.height == 0  # held
    assert detector.flush(state).height == 1  # the input ended: released
    assert detector.flush(state).height == 0  # once


def test_the_engine_releases_held_alerts_whose_hold_the_input_outlasted() -> None:
    from shopwatch.pipeline.engine import Engine

    engine = Engine([build(HELD)])
    posts = requests((0, BOT, "GET", "/register"), (1, BOT, "POST", "/register"))
    assert engine.process(posts).height == 0  # held
    # other visitors for twelve minutes: enough events for the engine's clock to trust
    later = requests(*[(4 * k, f"192.0.2.{k % 50 + 1}", "GET", "/") for k in range(1, 181)])
    raised = pl.concat([engine.process(later), engine.flush()])
    assert raised["entity"].struct.field("source.ip").to_list() == [BOT]


def test_a_post_too_close_to_the_end_of_the_input_is_not_judged() -> None:
    """What the client did next is not in the input: no alert on a cut-off customer."""
    from shopwatch.pipeline.engine import Engine

    detector = build(HELD)
    engine = Engine([detector])
    engine.process(requests((0, BOT, "GET", "/register"), (1, BOT, "POST", "/register")))
    assert engine.flush().height == 0
    assert detector.undecided == 1


def test_a_bot_that_follows_its_login_redirect_is_not_excused() -> None:
    events = requests(
        (0, BOT, "GET", "/register"),
        (1, BOT, "POST", "/register"),
        (2, BOT, "GET", "/account"),  # the redirect, followed at once
        (3, BOT, "GET", "/account/payment-methods"),
    )
    assert held_run([events])["entity"].struct.field("source.ip").to_list() == [BOT]


def test_a_dropped_alert_does_not_keep_the_client_quiet() -> None:
    """A person excused at 10:00 who is then used by a bot at 10:15 is still caught."""
    events = requests(
        (0, PERSON, "GET", "/register"),
        (2, PERSON, "POST", "/register"),
        (30, PERSON, "GET", "/account"),  # a person: dropped
        (900, PERSON, "GET", "/register"),
        (901, PERSON, "POST", "/register"),  # fifteen minutes later, inside suppress
    )
    cut = [events.slice(0, 3), events.slice(3, 2)]
    alerts = held_run(cut)
    assert alerts.height == 1
    assert alerts.row(0, named=True)["@timestamp"] == T0 + timedelta(seconds=901, minutes=10)
