"""State lives as long as the rule's window needs; a window the state cannot hold is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import yaml

from shopwatch.config import RuntimeSettings
from shopwatch.contract import conform
from shopwatch.detect import build
from shopwatch.detect.content import load_detectors
from shopwatch.pipeline import Engine

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SLOW = {
    "id": "test.slow_failures",
    "kind": "threshold",
    "category": "brute_force",
    "where": {"event.outcome": "failure"},
    "group_by": ["source.ip"],
    "count": {"at_least": 3, "within": "2h"},
}


def failure(minutes: float, ip: str = "198.51.100.7") -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(minutes=minutes)],
                "event.id": [f"e{minutes}"],
                "event.outcome": ["failure"],
                "source.ip": [ip],
            }
        )
    )


def test_a_two_hour_window_fires_one_event_per_batch_as_in_one_batch() -> None:
    minutes = [0, 50, 100]  # each batch's watermark is far past the previous event
    whole = Engine([build(SLOW)]).process(pl.concat([failure(m) for m in minutes]))
    engine = Engine([build(SLOW)])
    # Another address keeps the clock moving between the attacker's attempts.
    alerts = [
        engine.process(pl.concat([failure(m), failure(m + 1, f"203.0.113.{m}")])) for m in minutes
    ]
    assert whole.height == 1
    assert sum(a.height for a in alerts) == 1
    assert engine.states["test.slow_failures"].max_age >= timedelta(hours=2)


def test_a_short_window_keeps_the_configured_floor() -> None:
    short = {**SLOW, "id": "test.fast", "count": {"at_least": 3, "within": "5m"}}
    engine = Engine([build(short)], runtime=RuntimeSettings(state_max_age_s=3600))
    assert engine.states["test.fast"].max_age == timedelta(hours=1)


def test_a_window_longer_than_the_state_can_hold_is_refused_at_load(tmp_path: Path) -> None:
    month = {**SLOW, "id": "test.month", "count": {"at_least": 3, "within": "30d"}}
    (tmp_path / "month.yaml").write_text(yaml.safe_dump(month))
    loaded = load_detectors([tmp_path], max_window=timedelta(days=7))
    assert "test.month" not in {d.id for d in loaded.detectors}
    (problem,) = [e for e in loaded.errors if "test.month" in str(e)]
    assert "runtime.state_max_window_s" in str(problem)
    assert "month.yaml" in str(problem)
    # 30 days of window, then 30 more during which its last alert is remembered
    wider = load_detectors([tmp_path], max_window=timedelta(days=60))
    assert "test.month" in {d.id for d in wider.detectors}


def test_every_shipped_rule_fits_the_default_state() -> None:
    """A shipped rule that reads more event time than the default state holds is skipped at
    load with only a warning; none may be."""
    loaded = load_detectors(
        max_window=timedelta(seconds=RuntimeSettings().state_max_window_s),
    )
    assert [str(e) for e in loaded.errors] == []
