"""Event time an attacker controls: bounds against arrival, per-source clocks, no poisoning.

One forged event dated 9999-12-31 (or 0001-01-01) must not blind a detector, fail a
batch, or evict the state of other keys or sources: not through the engine API (replay,
no arrival clock) and not through a real UDP syslog message to a running service.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from prometheus_client import REGISTRY

from shopwatch.config import RuntimeSettings, Settings
from shopwatch.contract import conform
from shopwatch.detect import build
from shopwatch.pipeline import Engine
from shopwatch.pipeline.engine import SOURCE
from shopwatch.pipeline.service import Service
from shopwatch.sources.syslog import SyslogSource

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
RULE = {
    "id": "test.failures",
    "kind": "threshold",
    "category": "brute_force",
    "where": {"event.outcome": "failure"},
    "group_by": ["source.ip"],
    "count": {"at_least": 3, "within": "5m"},
}
ATTACKER = "198.51.100.7"


def events(
    times: Sequence[datetime], *, ip: str = ATTACKER, outcome: str = "failure", tag: str = "e"
) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "@timestamp": list(times),
                "event.id": [f"{tag}{i}" for i in range(len(times))],
                "event.outcome": [outcome] * len(times),
                "source.ip": [ip] * len(times),
            }
        )
    )


def at(*seconds: int) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in seconds]


def benign_traffic(engine: Engine, start: int = 0) -> None:
    """Enough ordinary events for the source's clock to be warm (past its outliers)."""
    engine.process(events(at(*range(start, start + 20)), ip="192.0.2.10", outcome="success"))


def attack_one_event_per_batch(engine: Engine, start: int, ip: str = ATTACKER) -> int:
    return sum(
        engine.process(events(at(start + 10 * i), ip=ip, tag=f"{ip}-{i}")).height for i in range(3)
    )


# -- replay: no arrival clock ---------------------------------------------------------


@pytest.mark.parametrize("poison", [FAR_FUTURE, FAR_PAST], ids=["9999", "0001"])
def test_one_forged_event_does_not_blind_a_detector(poison: datetime) -> None:
    engine = Engine([build(RULE)])
    benign_traffic(engine)
    engine.process(events([poison], ip="203.0.113.66", tag="forged"))
    assert attack_one_event_per_batch(engine, start=30) == 1
    assert not engine.stats.detector_errors
    assert engine.clock is not None and engine.clock < T0 + timedelta(minutes=1)


@pytest.mark.parametrize("poison", [FAR_FUTURE, FAR_PAST], ids=["9999", "0001"])
def test_a_forged_first_event_fails_no_later_batch(poison: datetime) -> None:
    engine = Engine([build(RULE)])
    engine.process(events([poison], ip="203.0.113.66", tag="forged"))
    assert attack_one_event_per_batch(engine, start=0) == 1
    benign_traffic(engine, start=40)
    assert attack_one_event_per_batch(engine, start=100, ip="198.51.100.8") == 1
    assert not engine.stats.detector_errors
    assert engine.watermark is not None


def test_the_forged_key_itself_is_not_blinded_either() -> None:
    engine = Engine([build(RULE)])
    benign_traffic(engine)
    engine.process(events([FAR_FUTURE], tag="forged"))  # dated 9999, from the attacker's address
    assert attack_one_event_per_batch(engine, start=30) == 1


def test_a_few_forged_events_cannot_move_the_clock() -> None:
    runtime = RuntimeSettings(watermark_outliers=8)
    engine = Engine([build(RULE)], runtime=runtime)
    benign_traffic(engine)
    before = engine.clock
    forged = [FAR_FUTURE - timedelta(seconds=i) for i in range(8)]
    engine.process(events(forged, ip="203.0.113.66", outcome="success", tag="forged"))
    assert before is not None and engine.clock == T0 + timedelta(seconds=19)  # newest genuine
    assert attack_one_event_per_batch(engine, start=30) == 1


def test_batching_does_not_change_alerts_with_a_forged_event_in_the_stream() -> None:
    stream = pl.concat(
        [
            events(at(*range(20)), ip="192.0.2.10", outcome="success", tag="b"),
            events([FAR_FUTURE], ip="203.0.113.66", tag="forged"),
            events(at(30, 40, 50, 400, 410, 420), tag="a"),
        ]
    )
    whole = Engine([build(RULE)]).process(stream)
    engine = Engine([build(RULE)])
    sliced = pl.concat([engine.process(part) for part in stream.iter_slices(4)])
    assert whole.height == 2
    assert sliced.sort("alert.id").equals(whole.sort("alert.id"))


def test_a_source_ahead_does_not_evict_the_window_of_a_source_behind() -> None:
    engine = Engine([build(RULE)])
    ahead = T0 + timedelta(hours=2)  # a host whose clock (or backlog) differs by two hours
    alerts = 0
    for i in range(3):
        others = [ahead + timedelta(seconds=20 * i + s) for s in range(20)]
        engine.process(events(others, ip="192.0.2.20", outcome="success"), source="b")
        alerts += engine.process(events(at(10 * i), tag=f"a{i}"), source="a").height
    assert alerts == 1
    marks = engine.source_watermarks()
    assert marks["b"] is not None and marks["b"] > ahead
    assert engine.clock is not None and engine.clock < ahead  # the lowest warm source's


def test_rows_name_their_source_in_the_helper_column() -> None:
    engine = Engine([build(RULE)])
    batch = pl.concat(
        [
            events(at(*range(20)), outcome="success").with_columns(pl.lit("x").alias(SOURCE)),
            events([FAR_FUTURE], outcome="success").with_columns(pl.lit("y").alias(SOURCE)),
        ]
    )
    engine.process(batch)
    assert set(engine.sources) == {"x", "y"}
    assert engine.sources["y"].max_event_time == FAR_FUTURE
    assert engine.clock == T0 + timedelta(seconds=11)  # the 9th newest of x; y is warming up


# -- live: bounded against the arrival clock ------------------------------------------


def out_of_bounds(source: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "shopwatch_pipeline_events_out_of_bounds_total", {"source": source, "reason": reason}
    )
    return value or 0.0


def test_live_events_too_far_from_arrival_are_rejected_and_counted() -> None:
    runtime = RuntimeSettings(max_future_skew_s=300, max_past_age_s=86400)
    engine = Engine([build(RULE)], runtime=runtime)
    before = (
        out_of_bounds("syslog-udp", "future_timestamp"),
        out_of_bounds("syslog-udp", "past_timestamp"),
    )
    now = T0 + timedelta(minutes=1)
    times = [T0, T0 + timedelta(minutes=5), FAR_FUTURE, T0 + timedelta(minutes=7), FAR_PAST]
    batch = events(times).with_columns(pl.lit("syslog-udp").alias(SOURCE))
    engine.process(batch, now=now)
    assert engine.stats.events == 2  # now and within the 5-minute skew
    assert engine.stats.out_of_bounds == {
        "syslog-udp": {"future_timestamp": 2, "past_timestamp": 1}
    }
    assert engine.stats.rejected["future_timestamp"] == 2
    assert engine.stats.max_event_time == T0 + timedelta(minutes=5)
    after = (
        out_of_bounds("syslog-udp", "future_timestamp"),
        out_of_bounds("syslog-udp", "past_timestamp"),
    )
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)


def test_live_metric_labels_name_the_source_kind() -> None:
    engine = Engine([build(RULE)])
    before = out_of_bounds("http", "future_timestamp")
    engine.process(events([FAR_FUTURE]), source="http", now=T0)
    assert out_of_bounds("http", "future_timestamp") - before == 1
    assert engine.stats.out_of_bounds == {"http": {"future_timestamp": 1}}


def test_tailed_files_are_held_by_their_own_clock_not_by_arrival() -> None:
    """A backfill of last year's logs, or a server logging in local time, is not rejected."""
    engine = Engine([build(RULE)])
    old = [T0 - timedelta(days=700), T0 - timedelta(days=700, seconds=-1)]
    engine.process(events(old), source="/var/log/nginx/access.log", now=T0)
    engine.process(events([T0 + timedelta(hours=2)]), source="/var/log/auth.log", now=T0)
    assert engine.stats.events == 3 and engine.stats.out_of_bounds == {}


def test_live_bounds_can_be_switched_off() -> None:
    runtime = RuntimeSettings(max_future_skew_s=None, max_past_age_s=None)
    engine = Engine([build(RULE)], runtime=runtime)
    engine.process(events([FAR_PAST, T0 + timedelta(days=30)]), source="simulator-ecs", now=T0)
    assert engine.stats.events == 2 and not engine.stats.out_of_bounds


def test_live_an_idle_source_stops_holding_the_clock_back() -> None:
    runtime = RuntimeSettings(source_idle_s=60, max_past_age_s=None)
    engine = Engine([build(RULE)], runtime=runtime)
    engine.process(events(at(*range(20)), outcome="success"), source="old", now=T0)
    later = T0 + timedelta(minutes=30)
    fresh = [later + timedelta(seconds=s) for s in range(20)]
    engine.process(events(fresh, ip="192.0.2.30", outcome="success"), source="new", now=later)
    assert engine.clock == fresh[11]


def test_snapshot_carries_the_source_clocks() -> None:
    engine = Engine([build(RULE)])
    benign_traffic(engine)
    engine.process(events([FAR_FUTURE], ip="203.0.113.66"), source="syslog-udp")
    engine.process(events(at(30, 40)), source="file")
    restored = Engine([build(RULE)])
    restored.restore(engine.snapshot())
    assert restored.source_watermarks() == engine.source_watermarks()
    assert restored.clock == engine.clock
    assert {n: c.as_dict() for n, c in restored.sources.items()} == {
        n: c.as_dict() for n, c in engine.sources.items()
    }
    assert restored.process(events(at(50)), source="file").height == 1


# -- a real UDP syslog message to a running service -----------------------------------


def rfc5424(when: datetime, ip: str, n: int) -> bytes:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return (
        f"<38>1 {stamp} web1 sshd {2000 + n} - - "
        f"Failed password for root from {ip} port {40000 + n} ssh2\n"
    ).encode()


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def udp_port(service: Service) -> int:
    assert service._sources is not None
    (listener,) = [s for s in service._sources.sources if isinstance(s, SyslogSource)]
    assert listener.udp_port
    return listener.udp_port


def send_one_by_one(service: Service, datagrams: Sequence[bytes]) -> None:
    """Each datagram processed before the next is sent: every event is a batch of its own."""
    port = udp_port(service)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            seen = service.runner.stats.lines
            sock.sendto(datagram, ("127.0.0.1", port))
            wait_for(lambda seen=seen: service.runner.stats.lines > seen)  # type: ignore[misc]


def attack(ip: str, start: datetime) -> list[bytes]:
    return [rfc5424(start + timedelta(seconds=3 * i), ip, i) for i in range(12)]


def syslog_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        sources={"syslog": {"port": 0, "protocols": ["udp"]}},
        web={"enabled": False},
        enrich={"geo": {"enabled": False}, "intel": {"enabled": False}},
        # Each address's own alert is what is counted, not one campaign of them all.
        detectors={"ssh.brute_force": {"params": {"campaign": None}}},
    )


def brute_force_alerts(service: Service) -> set[str]:
    return {
        str(a.entity["source.ip"]) for a in service.store.alerts() if a.rule_id == "ssh.brute_force"
    }


@pytest.mark.parametrize(
    ("poison", "reason"),
    [(FAR_FUTURE, "future_timestamp"), (FAR_PAST, "past_timestamp")],
    ids=["9999", "0001"],
)
def test_udp_syslog_message_from_the_far_future_or_past_blinds_nothing(
    tmp_path: Path, poison: datetime, reason: str
) -> None:
    before = out_of_bounds("syslog-udp", reason)
    first = Service(syslog_settings(tmp_path), with_web=False)
    first.start()
    try:
        send_one_by_one(first, [rfc5424(poison, "203.0.113.66", 99)])
        start = datetime.now(UTC) - timedelta(minutes=3)
        send_one_by_one(first, attack("203.0.113.7", start) + attack("203.0.113.8", start))
        wait_for(lambda: len(brute_force_alerts(first)) == 2)
        assert brute_force_alerts(first) == {"203.0.113.7", "203.0.113.8"}
        assert out_of_bounds("syslog-udp", reason) - before == 1
        assert first.runner.engine.stats.out_of_bounds == {"syslog-udp": {reason: 1}}
        assert not first.runner.engine.stats.detector_errors
        clocks = first.runner.engine.source_watermarks()
    finally:
        first.stop()

    second = Service(syslog_settings(tmp_path), with_web=False)  # restored from its checkpoint
    second.start()
    try:
        assert second.runner.engine.source_watermarks() == clocks
        send_one_by_one(second, [rfc5424(poison, "203.0.113.66", 98)])
        send_one_by_one(second, attack("203.0.113.9", datetime.now(UTC) - timedelta(minutes=1)))
        wait_for(lambda: len(brute_force_alerts(second)) == 3)
        assert second.runner.engine.stats.out_of_bounds == {"syslog-udp": {reason: 2}}
    finally:
        second.stop()


def test_replay_gives_each_file_its_own_clock(tmp_path: Path) -> None:
    """A file's clock is its own: another file running far ahead cannot set the engine's."""
    from shopwatch.config import Settings
    from shopwatch.pipeline.build import build_engine
    from shopwatch.pipeline.replay import replay

    ahead = tmp_path / "ahead.log"
    behind = tmp_path / "behind.log"
    line = '192.0.2.{n} - - [{day:02d}/Jun/{year}:08:00:{s:02d} +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"'
    ahead.write_text("\n".join(line.format(n=1, day=3, year=2031, s=s) for s in range(30)) + "\n")
    behind.write_text("\n".join(line.format(n=2, day=3, year=2025, s=s) for s in range(30)) + "\n")
    engine = build_engine(Settings(data_dir=tmp_path / "data"))
    try:
        replay([str(ahead), str(behind)], engine)
        assert set(engine.sources) == {"0:ahead.log", "1:behind.log"}
        assert engine.clock is not None and engine.clock.year == 2025
    finally:
        engine.close()


def test_ingest_answers_the_events_the_bounds_will_reject() -> None:
    """HTTP ingest tells the sender which events are out of bounds, not only the parser's."""
    from shopwatch.pipeline.service import ingest_rejects

    now = datetime.now(UTC)
    line = '{{"@timestamp": "{}", "event.dataset": "shop.auth", "event.action": "login"}}'
    lines = [
        line.format((now - timedelta(days=800)).isoformat()),
        '{"event.dataset": "shop.auth"}',
        line.format((now + timedelta(days=2)).isoformat()),
        line.format(now.isoformat()),
    ]
    assert ingest_rejects(lines) == [(1, "missing_field")]
    assert ingest_rejects(lines, RuntimeSettings()) == [
        (0, "past_timestamp"),
        (1, "missing_field"),
        (2, "future_timestamp"),
    ]
    unbounded = RuntimeSettings(max_future_skew_s=None, max_past_age_s=None)
    assert ingest_rejects(lines, unbounded) == [(1, "missing_field")]


def test_a_sender_hours_ahead_is_told_about_the_time_zone() -> None:
    from shopwatch.pipeline.engine import zone_hint

    now = T0
    assert "set timezone" in (zone_hint(now + timedelta(hours=2, seconds=-30), now) or "")
    assert "about 14 h" in (zone_hint(now + timedelta(hours=14, seconds=50), now) or "")
    assert zone_hint(now + timedelta(hours=2, minutes=30), now) is None
    assert zone_hint(now + timedelta(days=3000), now) is None
