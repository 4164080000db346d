"""A detector that raises at run time is visible: status, one log event, metrics by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from shopwatch.contract import conform
from shopwatch.detect import KeyedState, build
from shopwatch.pipeline.engine import Engine

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

GOOD = {
    "id": "test.health_logins",
    "kind": "threshold",
    "category": "brute_force",
    "where": {"event.outcome": "failure"},
    "group_by": ["source.ip"],
    "count": {"at_least": 2, "within": "1m"},
}


class Flaky:
    """Raises ``errors[i]`` on call i (None: returns no alerts)."""

    category = "anomaly"
    keys = ()
    needs = frozenset({"@timestamp"})
    spec = None

    def __init__(self, detector_id: str, errors: list[Exception | None]) -> None:
        self.id = detector_id
        self.errors = list(errors)

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        err = self.errors.pop(0) if self.errors else None
        if err is not None:
            raise err
        from shopwatch.contract import empty_alerts

        return empty_alerts()


def batch(i: int) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=i)],
                "source.ip": ["203.0.113.7"],
                "event.outcome": ["failure"],
            }
        )
    )


def sample(name: str, detector: str) -> float:
    return REGISTRY.get_sample_value(name, {"detector": detector}) or 0.0


def test_a_failing_detector_is_reported_in_status_and_the_others_run() -> None:
    bug = pl.exceptions.ComputeError("regex error: look-around is not supported")
    engine = Engine([Flaky("test.health_a", [bug] * 5), build(GOOD)])  # type: ignore[list-item]
    alerts = [engine.process(batch(i)).height for i in range(5)]
    assert sum(alerts) == 1  # the good detector still fired
    status = engine.health.as_dict()
    assert status["test.health_a"]["status"] == "failing"
    assert status["test.health_a"]["errors"] == 5
    assert status["test.health_a"]["failing_batches"] == 5
    assert status["test.health_a"]["last_error"] == (
        "ComputeError: regex error: look-around is not supported"
    )
    assert status["test.health_logins"] == {
        "status": "ok",
        "errors": 0,
        "last_error": None,
        "failing_batches": 0,
    }
    assert engine.health.failing() == ["test.health_a"]


def test_failure_is_logged_once_per_detector_and_error_class_not_per_batch() -> None:
    errors: list[Exception | None] = [
        RuntimeError("one"),
        RuntimeError("two"),
        ValueError("three"),
        RuntimeError("four"),
        None,  # recovers
        RuntimeError("five"),  # a new failing streak is logged again
    ]
    engine = Engine([Flaky("test.health_b", errors)])  # type: ignore[list-item]
    with capture_logs() as logs:
        for i in range(6):
            engine.process(batch(i))
    failed = [e for e in logs if e["event"] == "detector_failed"]
    assert [(e["error_class"], e["log_level"]) for e in failed] == [
        ("RuntimeError", "error"),
        ("ValueError", "error"),
        ("RuntimeError", "error"),
    ]
    assert all(e["detector"] == "test.health_b" for e in failed)
    assert failed[0]["error"] == "RuntimeError: one"
    recovered = [e for e in logs if e["event"] == "detector_recovered"]
    assert len(recovered) == 1 and recovered[0]["failed_batches"] == 4
    assert engine.health.as_dict()["test.health_b"]["errors"] == 5


def test_metrics_carry_the_detector_id() -> None:
    before = sample("shopwatch_detect_errors_total", "test.health_c")
    engine = Engine([Flaky("test.health_c", [RuntimeError("x")] * 3)])  # type: ignore[list-item]
    for i in range(3):
        engine.process(batch(i))
    assert sample("shopwatch_detect_errors_total", "test.health_c") == before + 3
    assert sample("shopwatch_detect_failing", "test.health_c") == 1.0
    engine.process(batch(3))  # no error left: recovered
    assert sample("shopwatch_detect_failing", "test.health_c") == 0.0


def test_a_service_reports_every_detectors_health_in_its_figures(tmp_path: Path) -> None:
    from shopwatch.config import Settings
    from shopwatch.pipeline.service import Service

    service = Service(
        Settings(
            data_dir=tmp_path / "data", web={"enabled": False}, enrich={"geo": {"enabled": False}}
        ),
        with_sources=False,
        with_web=False,
    )
    try:
        status = service.figures()["detectors"]
        assert set(status) == {d.id for d in service.runner.engine.detectors}
        assert {s["status"] for s in status.values()} == {"ok"}
    finally:
        service.runner.engine.close()
        service.store.close()
