"""Windows of a client unlike the shop's windows (kind ``multivariate``).

The traffic is a small shop's clients, ten-minute windows each: browsers (pages and their
assets, a search, now and then a POST or a missing favicon) and app sessions (JSON calls
with query strings), requests per window log-normal around 22 and 30. A rule with a short
period learns them; each part of what it claims (warm-up, what teaches, the caps, one
alert per quiet, batches, snapshots, late events, bounded memory) has a test that fails
when that part is cut.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from shopwatch.contract import conform
from shopwatch.detect.multivariate import MultivariateDetector, MultivariateSpec
from shopwatch.detect.registry import build
from shopwatch.detect.state import KeyedState

from .helpers import run

START = datetime(2026, 3, 14, 6, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)
FEATURES = [
    {"name": "requests", "count": True, "scale": 5000},
    {"name": "pages", "distinct": "url.path", "scale": 2000},
    {"name": "path_variety", "distinct": "url.path", "per_event": True},
    {
        "name": "client_errors",
        "noun": "share of 4xx answers",
        "share": {"http.response.status_code": {"gte": 400, "lt": 500}},
    },
    {"name": "posts", "share": {"http.request.method": "POST"}},
    {"name": "assets", "share": {"url.path|asset": "asset"}},
    {"name": "queries", "share": {"url.query": {"exists": True}}},
    {"name": "bytes", "mean": "http.response.bytes", "scale": 5_000_000},
]


def rule(**changes: Any) -> MultivariateDetector:
    raw: dict[str, Any] = {
        "id": "test.client_anomaly",
        "kind": "multivariate",
        "category": "anomaly",
        "where": {"event.dataset": "http.access"},
        "min_events": 10,
        "features": FEATURES,
        "period": 120,
        "warmup": 120,
        "slot_share": 1.0,
        "noun": "requests",
        **changes,
    }
    detector = build(raw)
    assert isinstance(detector, MultivariateDetector)
    return detector


class Traffic:
    """Access-log events of clients, one ten-minute window at a time."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        self.rows: list[dict[str, Any]] = []

    def _at(self, start: datetime, n: int) -> list[datetime]:
        offsets = np.sort(self.rng.uniform(0, 599, n))
        return [start + timedelta(seconds=float(o)) for o in offsets]

    def add(
        self,
        ip: str,
        t: datetime,
        method: str,
        path: str,
        status: int,
        size: int,
        query: str | None = None,
    ) -> None:
        self.rows.append(
            {
                "@timestamp": t,
                "event.id": f"e{len(self.rows)}",
                "event.dataset": "http.access",
                "source.ip": ip,
                "http.request.method": method,
                "url.path": path,
                "url.query": query,
                "http.response.status_code": status,
                "http.response.bytes": size,
            }
        )

    def browser(self, ip: str, start: datetime, scale: float = 1.0) -> None:
        n = max(int(self.rng.lognormal(np.log(22 * scale), 0.5)), 4)
        for t in self._at(start, n):
            r = self.rng.random()
            if r < 0.3:
                page = f"/products/{int(self.rng.integers(1000, 9000))}"
                self.add(ip, t, "GET", page, 200, int(self.rng.lognormal(np.log(48_000), 0.3)))
            elif r < 0.36:
                self.add(ip, t, "GET", "/search", 200, 36_000, query="q=boots")
            elif r < 0.4:
                self.add(ip, t, "POST", "/cart/add", 302, 0)
            elif r < 0.41:
                self.add(ip, t, "GET", "/favicon.ico", 404, 162)
            else:
                asset = f"/static/{int(self.rng.integers(1, 400))}.webp"
                self.add(ip, t, "GET", asset, 200, int(self.rng.lognormal(np.log(40_000), 1.0)))

    def app(self, ip: str, start: datetime) -> None:
        n = max(int(self.rng.lognormal(np.log(30), 0.5)), 4)
        for t in self._at(start, n):
            cat = int(self.rng.integers(1, 12))
            self.add(ip, t, "GET", "/api/v2/products", 200, 9_000, query=f"category={cat}")

    def scanner(self, ip: str, start: datetime, n: int = 45) -> None:
        """A slow scanner: most requests for files that are not there."""
        for i, t in enumerate(self._at(start, n)):
            if i % 6:
                self.add(ip, t, "GET", f"/.probe-{i}", 404, 162)
            else:
                self.add(ip, t, "GET", "/", 200, 48_000)

    def shop(self, slots: int, first: int = 0, clients: tuple[int, int] = (25, 35)) -> None:
        """``slots`` windows of ordinary clients from a pool of addresses."""
        for slot in range(first, first + slots):
            start = START + slot * SLOT
            n = int(self.rng.integers(*clients))
            for i in self.rng.choice(400, n, replace=False):
                ip = f"81.2.{int(i) // 200}.{int(i) % 200 + 1}"
                if self.rng.random() < 0.75:
                    self.browser(ip, start)
                else:
                    self.app(ip, start)

    def frame(self) -> pl.DataFrame:
        return conform(pl.DataFrame(self.rows)).sort("@timestamp", maintain_order=True)


def taught(state: KeyedState) -> int:
    return int(state.table("model", {}).item(0, "taught"))


def scored(state: KeyedState) -> int:
    return int(state.table("model", {}).item(0, "scored"))


@pytest.fixture(scope="module")
def learned() -> Traffic:
    """Eighteen windows (three hours) of ordinary clients."""
    traffic = Traffic()
    traffic.shop(18)
    return traffic


def test_a_scanner_unlike_every_window_alerts_and_a_heavy_shopper_does_not(
    learned: Traffic,
) -> None:
    traffic = Traffic(2)
    traffic.rows = list(learned.rows)
    at = START + 18 * SLOT
    traffic.scanner("45.148.10.7", at)
    traffic.browser("92.170.4.8", at, scale=2.5)  # a long session: more of the same
    traffic.shop(1, first=18)
    alerts = run(rule(), [traffic.frame()])
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert row["entity"]["source.ip"] == "45.148.10.7"
    assert row["rule.id"] == "test.client_anomaly" and row["rule.category"] == "anomaly"
    details = json.loads(row["details"])
    assert details["top_features"][0] == "client_errors"
    assert details["rarity"] <= 0.001 and details["events"] == 45
    assert "share of 4xx answers 0.82 (usual 0.00-0.10)" in row["message"]
    assert len(row["event.ids"]) == 20
    assert row["@timestamp"] <= at + SLOT


def test_nothing_alerts_before_the_warmup(learned: Traffic) -> None:
    frame = _with_scanner(learned)
    state = KeyedState(("_entity",))
    assert run(rule(warmup=600), [frame], state).height == 0
    assert scored(state) > 0  # it scored, it was not yet warm
    assert run(rule(), [frame]).height == 1  # a warm-up it has passed: the scanner alerts
    # the first roll alone is no warm-up: the learned likeness comes with the second
    early = Traffic(2)
    early.rows = [r for r in learned.rows if r["@timestamp"] < START + 5 * SLOT]
    early.scanner("45.148.10.7", START + 5 * SLOT)
    early.shop(1, first=5)
    state = KeyedState(("_entity",))
    assert run(rule(warmup=1), [early.frame()], state).height == 0
    assert state.table("model", {}).item(0, "rolls") == 1


def _with_scanner(learned: Traffic) -> pl.DataFrame:
    traffic = Traffic(2)
    traffic.rows = list(learned.rows)
    traffic.scanner("45.148.10.7", START + 18 * SLOT)
    traffic.shop(1, first=18)
    return traffic.frame()


def test_an_alerted_window_teaches_nothing(learned: Traffic) -> None:
    frame = _with_scanner(learned)
    quiet, loud = KeyedState(("_entity",)), KeyedState(("_entity",))
    assert run(rule(), [frame.filter(pl.col("source.ip") != "45.148.10.7")], quiet).height == 0
    assert run(rule(), [frame], loud).height == 1
    assert taught(loud) == taught(quiet)


def test_an_address_another_rule_alerted_on_teaches_nothing(learned: Traffic) -> None:
    detector = rule(rarity=1e-9, spread=100.0)  # never alerts itself
    frame = learned.frame()
    ip = frame.get_column("source.ip")[0]
    mine = frame.filter(pl.col("source.ip") == ip).select(pl.col("@timestamp").dt.truncate("10m"))
    windows = mine.n_unique()
    clean, tainted = KeyedState(("_entity",)), KeyedState(("_entity",))
    run(detector, [frame], clean)
    other = pl.DataFrame(
        {
            "@timestamp": [START],
            "entity": [{"source.ip": ip, "user.name": None}],
        }
    )
    detector.take_alerts(other, tainted)
    run(detector, [frame], tainted)
    # its windows in the hour after the alert (taint) taught nothing; the others did
    assert 0 < taught(clean) - taught(tainted) <= windows
    # an alert with no such field, or no rows, changes nothing
    before = tainted.table("alerted", {})
    detector.take_alerts(pl.DataFrame({"@timestamp": [START]}), tainted)
    detector.take_alerts(other.clear(), tainted)
    assert tainted.table("alerted", {}).equals(before)
    # a campaign's alert names its members in details.members: they are tainted too
    members = pl.DataFrame(
        {
            "@timestamp": [START],
            "entity": [{"source.ip": None, "user.name": None}],
            "details": [json.dumps({"members": {"source.ip": ["81.2.0.9", "81.2.0.10"]}})],
        }
    )
    detector.take_alerts(members, tainted)
    named = set(tainted.table("alerted", {}).get_column("_entity").to_list())
    assert {ip, "81.2.0.9", "81.2.0.10"} <= named
    # members that are not a list of values name nobody (not each character of a string)
    odd = [{"source.ip": "81.2.0.11"}, {"source.ip": 5}, {"source.ip": [True, None]}, [1]]
    detector.take_alerts(
        pl.DataFrame(
            {
                "@timestamp": [START] * (len(odd) + 1),
                "entity": [{"source.ip": None, "user.name": None}] * (len(odd) + 1),
                "details": [json.dumps({"members": m}) for m in odd] + ["{not json"],
            }
        ),
        tainted,
    )
    assert set(tainted.table("alerted", {}).get_column("_entity").to_list()) == named


def test_an_alert_after_a_window_ended_does_not_taint_it(learned: Traffic) -> None:
    detector = rule(rarity=1e-9, spread=100.0)
    frame = learned.frame()
    ip = frame.get_column("source.ip")[0]
    clean, late, early = (KeyedState(("_entity",)) for _ in range(3))
    run(detector, [frame], clean)
    end_of_all = frame.get_column("@timestamp").max() + timedelta(hours=2)
    for state, at in ((late, end_of_all), (early, START)):
        detector.take_alerts(
            pl.DataFrame({"@timestamp": [at], "entity": [{"source.ip": ip, "user.name": None}]}),
            state,
        )
        run(detector, [frame], state)
    assert taught(late) == taught(clean)  # dated after every window: taints none
    assert taught(early) < taught(clean)


def test_one_address_teaches_at_most_its_weight_per_period() -> None:
    traffic = Traffic(3)
    traffic.shop(12)
    for slot in range(12):  # one address in every window
        traffic.browser("92.170.4.8", START + slot * SLOT)
    state = KeyedState(("_entity",))
    detector = rule(entity_weight=1, period=400, warmup=400)
    run(detector, [traffic.frame()], state)
    counts = dict(state.table("taught", {}).select("who", "n").iter_rows())
    assert counts["92.170.4.8"] == 1
    assert max(counts.values()) == 1
    state2 = KeyedState(("_entity",))
    run(rule(entity_weight=3, period=400, warmup=400), [traffic.frame()], state2)
    assert dict(state2.table("taught", {}).select("who", "n").iter_rows())["92.170.4.8"] == 3


def test_one_slot_teaches_at_most_its_share_of_the_period() -> None:
    traffic = Traffic(4)
    traffic.shop(1, clients=(150, 151))  # a burst: 150 clients in one window
    state = KeyedState(("_entity",))
    run(rule(period=400, warmup=400, slot_share=0.1), [traffic.frame()], state)
    assert taught(state) == 40
    state2 = KeyedState(("_entity",))
    run(rule(period=400, warmup=400, slot_share=1.0), [traffic.frame()], state2)
    windows = int(state2.table("model", {}).item(0, "windows"))
    assert taught(state2) == windows > 100


def test_a_far_window_that_does_not_alert_teaches_nothing_once_warm(learned: Traffic) -> None:
    frame = _with_scanner(learned)
    silent = {"rarity": 1e-9, "spread": 100.0}
    without, floored = KeyedState(("_entity",)), KeyedState(("_entity",))
    run(rule(teach_floor=0.0, **silent), [frame], without)
    run(rule(teach_floor=0.01, **silent), [frame], floored)
    assert taught(without) - taught(floored) >= 1


def test_after_its_own_alert_an_address_teaches_nothing_for_a_while(learned: Traffic) -> None:
    traffic = Traffic(2)
    traffic.rows = list(learned.rows)
    traffic.scanner("45.148.10.7", START + 18 * SLOT)
    traffic.shop(1, first=18)
    traffic.shop(1, first=19)
    traffic.browser("45.148.10.7", START + 20 * SLOT, scale=2.0)  # then it looks ordinary
    traffic.shop(2, first=20)  # (and its window ends beside the scanner's, in one batch)
    held, free = KeyedState(("_entity",)), KeyedState(("_entity",))
    assert run(rule(), [traffic.frame()], held).height == 1
    assert run(rule(taint="1s"), [traffic.frame()], free).height == 1
    assert taught(free) - taught(held) == 1  # its ordinary window, twenty minutes on


def test_a_far_window_held_back_by_quiet_teaches_nothing(learned: Traffic) -> None:
    traffic = Traffic(2)
    traffic.rows = list(learned.rows)
    for slot in (18, 19):
        traffic.scanner("45.148.10.7", START + slot * SLOT)
        traffic.shop(1, first=slot)
    state = KeyedState(("_entity",))
    # no taint and no floor: only being far keeps the second window from teaching
    assert run(rule(teach_floor=0.0, taint="1s"), [traffic.frame()], state).height == 1
    assert "45.148.10.7" not in state.table("taught", {}).get_column("who").to_list()


def test_one_alert_per_address_per_quiet(learned: Traffic) -> None:
    traffic = Traffic(2)
    traffic.rows = list(learned.rows)
    for slot in (18, 19):
        traffic.scanner("45.148.10.7", START + slot * SLOT)
        traffic.shop(1, first=slot)
    assert run(rule(), [traffic.frame()]).height == 1
    assert run(rule(quiet="5m"), [traffic.frame()]).height == 2


def test_the_same_alerts_whatever_the_batches_and_across_a_snapshot(learned: Traffic) -> None:
    frame = _with_scanner(learned)
    whole = run(rule(), [frame])
    cuts = [frame.slice(i, 997) for i in range(0, frame.height, 997)]
    state = KeyedState(("_entity",))
    detector = rule()
    out = []
    for i, batch in enumerate(cuts):
        state.clock = batch.get_column("@timestamp").max()
        out.append(detector.detect(batch, state))
        if i == len(cuts) // 2:  # a restart: the state is all it keeps
            saved = state.snapshot()
            state = KeyedState(("_entity",))
            state.restore(saved)
            detector = rule()
    out.append(detector.flush(state))
    pieces = pl.concat([o for o in out if o.height])
    assert whole.height == 1
    assert pieces.select("alert.id", "@timestamp", "message").equals(
        whole.select("alert.id", "@timestamp", "message")
    )


def test_events_after_their_window_are_counted_not_scored(learned: Traffic) -> None:
    detector = rule()
    state = KeyedState(("_entity",))
    frame = learned.frame()
    detector.detect(frame, state)
    late = Traffic(5)
    late.scanner("45.148.10.7", START)  # dated in the first window, long ended
    assert detector.detect(late.frame(), state).height == 0
    assert detector.late == 45
    assert detector.flush(state).height == 0


def test_past_the_bound_the_newest_slot_keeps_its_largest_windows(learned: Traffic) -> None:
    """Many addresses of a request each fill the newest slot: they are dropped, counted,
    and the scanner among them is scored whole, once."""
    traffic = Traffic(2)
    traffic.rows = list(learned.rows)
    at = START + 18 * SLOT
    traffic.scanner("45.148.10.7", at)
    for k in range(1200):
        traffic.add(
            f"10.9.{k // 250}.{k % 250}", at + timedelta(seconds=k % 590), "GET", "/", 200, 9
        )
    traffic.shop(1, first=18)
    frame = traffic.frame()
    detector = rule(max_rows=1000)
    state = KeyedState(("_entity",))
    out = []
    for i in range(0, frame.height, 300):
        batch = frame.slice(i, 300)
        state.clock = batch.get_column("@timestamp").max()
        out.append(detector.detect(batch, state))
        assert state.table("rows", {}).height <= 1000
    out.append(detector.flush(state))
    alerts = pl.concat([o for o in out if o.height])
    assert detector.dropped_windows > 0 and detector.dropped_rows > 0
    assert state.table("rows", {}).height == 0
    (row,) = alerts.filter(pl.col("rule.id") == "test.client_anomaly").iter_rows(named=True)
    assert row["entity"]["source.ip"] == "45.148.10.7"
    assert json.loads(row["details"])["events"] == 45


def test_past_the_bound_windows_dated_ahead_go_first_and_one_huge_window_is_trimmed(
    learned: Traffic,
) -> None:
    frame = learned.frame()
    clock = frame.get_column("@timestamp").max()
    forged = Traffic(7)
    forged.scanner("45.148.10.7", datetime(9999, 12, 31, 23, 50, tzinfo=UTC), n=45)
    # under the bound they wait (a replay's other file may run ahead of the clock)
    detector, state = rule(), KeyedState(("_entity",))
    state.clock = clock
    detector.detect(pl.concat([frame, forged.frame()]), state)
    assert state.table("rows", {}).filter(pl.col("_win").dt.year() == 9999).height == 45
    # past it, they are dropped before any window of the clock's slot
    tight, tstate = rule(max_rows=1000), KeyedState(("_entity",))
    tstate.clock = clock
    flood = Traffic(8)
    for k in range(1200):
        flood.add(f"10.9.{k // 250}.{k % 250}", clock - timedelta(seconds=1), "GET", "/", 200, 9)
    tight.detect(pl.concat([frame, forged.frame(), flood.frame()]).sort("@timestamp"), tstate)
    rows = tstate.table("rows", {})
    assert rows.height <= 1000 and rows.filter(pl.col("_win").dt.year() == 9999).height == 0
    assert tight.dropped_rows >= 45
    current = clock.replace(minute=clock.minute // 10 * 10, second=0, microsecond=0)
    assert rows.filter(pl.col("_win") == current).height > 0  # the clock's slot kept its own
    # one address alone past the cap: its first half of the cap, nothing else lost
    big, bstate = rule(max_rows=1000), KeyedState(("_entity",))
    heavy = Traffic(9)
    for k in range(1100):
        heavy.add("10.8.0.1", START + timedelta(seconds=k * 0.5), "GET", f"/p{k}", 200, 9)
    heavy.scanner("45.148.10.7", START)
    big.detect(heavy.frame(), bstate)
    kept = bstate.table("rows", {})
    assert kept.height == 545 and "45.148.10.7" in kept.get_column("_entity").to_list()
    assert big.dropped_rows == 600 and big.dropped_windows == 0


def test_a_changed_rule_learns_afresh_instead_of_failing(learned: Traffic) -> None:
    frame = learned.frame()
    state = KeyedState(("_entity",))
    rule().detect(frame.head(frame.height - 500), state)  # no flush: windows stay open
    held = state.table("rows", {}).height
    assert held > 0 and state.table("model", {}).height == 1
    saved = state.snapshot()
    for changed in (
        {"features": [*FEATURES, {"name": "heads", "share": {"http.request.method": "HEAD"}}]},
        {"features": [*FEATURES, {"name": "largest", "max": "http.response.bytes"}]},
        {"trees": 16},
        {"seed": 3},
        {"window": "20m"},
        {"entity": "user_agent.original"},
        {"where": {"event.dataset": "http.access", "http.request.method": "GET"}},
    ):
        again = KeyedState(("_entity",))
        again.restore(saved)
        detector = rule(**changed)
        detector.detect(frame.tail(500), again)
        assert detector.reset_models == 1
        assert detector.reset_rows == held
        summary = detector.model_summary(again)  # never another rule's figures
        assert summary["rolls"] <= 1
        model = again.table("model", {})
        assert model.height == 0 or model.item(0, "signature") == detector.signature
    same = KeyedState(("_entity",))
    same.restore(saved)
    unchanged = rule()
    unchanged.detect(frame.tail(500), same)
    assert unchanged.reset_models == 0 and unchanged.reset_rows == 0


def test_rule_settings_that_cannot_work_are_refused() -> None:
    for bad, error in (
        ({"warmup": 5000, "period": 100}, "can never be reached"),
        ({"window": "1500ms"}, "whole minutes"),
        ({"window": "0s"}, "whole minutes"),
        ({"seed": -1}, "greater than or equal"),
    ):
        with pytest.raises(Exception, match=error):
            rule(**bad)


def test_the_salt_decides_which_windows_of_a_full_slot_teach() -> None:
    traffic = Traffic(4)
    traffic.shop(1, clients=(150, 151))
    taught_by = []
    for salt in ("", "our own secret"):
        state = KeyedState(("_entity",))
        run(rule(period=400, warmup=400, slot_share=0.1, salt=salt), [traffic.frame()], state)
        taught_by.append(set(state.table("taught", {}).get_column("who").to_list()))
    assert len(taught_by[0]) == len(taught_by[1]) == 40
    assert taught_by[0] != taught_by[1]


def test_open_windows_are_bounded(learned: Traffic) -> None:
    detector = rule(max_rows=1000, lateness="10h")  # nothing ends by the clock
    state = KeyedState(("_entity",))
    detector.detect(learned.frame(), state)
    assert state.table("rows", {}).height <= 1000
    assert detector.ended_early > 0
    assert scored(state) > 0


def test_windows_under_min_events_are_not_scored() -> None:
    traffic = Traffic(6)
    traffic.shop(3)
    few, many = KeyedState(("_entity",)), KeyedState(("_entity",))
    run(rule(min_events=1), [traffic.frame()], many)
    run(rule(min_events=40), [traffic.frame()], few)
    assert int(few.table("model", {}).item(0, "windows")) < int(
        many.table("model", {}).item(0, "windows")
    )


@pytest.mark.parametrize(
    ("feature", "error"),
    [
        ({"name": "x"}, "exactly one of"),
        ({"name": "x", "count": True, "mean": "http.response.bytes"}, "exactly one of"),
        ({"name": "x", "count": True, "per_event": True}, "per_event goes with distinct"),
        ({"name": "X Y", "count": True}, "pattern"),
    ],
)
def test_a_feature_says_what_it_is(feature: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        MultivariateSpec.model_validate(
            {
                "id": "t.x",
                "kind": "multivariate",
                "category": "anomaly",
                "where": {},
                "features": [feature, {"name": "y", "count": True}],
            }
        )


def test_feature_names_are_distinct_and_there_are_two() -> None:
    base = {"id": "t.x", "kind": "multivariate", "category": "anomaly", "where": {}}
    with pytest.raises(ValidationError, match="distinct"):
        MultivariateSpec.model_validate(
            {**base, "features": [{"name": "y", "count": True}, {"name": "y", "count": True}]}
        )
    with pytest.raises(ValidationError, match="at least 2"):
        MultivariateSpec.model_validate({**base, "features": [{"name": "y", "count": True}]})


def test_the_engine_runs_it_after_the_others_and_hands_it_their_alerts(learned: Traffic) -> None:
    from shopwatch.pipeline.engine import Engine

    counted = build(
        {
            "id": "test.many_requests",
            "kind": "threshold",
            "category": "dos",
            "where": {"event.dataset": "http.access"},
            "group_by": ["source.ip"],
            "count": {"at_least": 40, "within": "10m"},
        }
    )
    silent = {"rarity": 1e-9, "spread": 100.0, "teach_floor": 0.0}  # only taint holds it back
    mine = rule(**silent)
    engine = Engine([mine, counted])
    assert [d.id for d in engine._ordered] == ["test.many_requests", "test.client_anomaly"]
    frame = _with_scanner(learned)
    engine.process(frame)
    engine.flush()
    alerted = engine.states[mine.id].table("alerted", {})
    assert "45.148.10.7" in alerted.filter(~pl.col("own")).get_column("_entity").to_list()
    taught_with = engine.states[mine.id].table("taught", {}).get_column("who").to_list()
    alone = Engine([rule(**silent)])
    alone.process(frame)
    alone.flush()
    taught_alone = alone.states["test.client_anomaly"].table("taught", {})
    assert "45.148.10.7" in taught_alone.get_column("who").to_list()
    assert "45.148.10.7" not in taught_with


def test_shopwatch_models_lists_it(learned: Traffic) -> None:
    from shopwatch.pipeline.engine import Engine
    from shopwatch.pipeline.models import list_models

    engine = Engine([rule()])
    engine.process(learned.frame())
    (row,) = list_models(engine)
    assert row["model"] == "test.client_anomaly" and row["kind"] == "multivariate"
    assert row["windows_taught"] > 100 and row["rolls"] >= 1
    assert row["state_bytes"] > 0 and row["version"].startswith("multivariate/v1-")
