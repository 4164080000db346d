"""Run-time health of detectors: ok, or failing with the last error and how often.

The engine tells :class:`DetectorHealth` how each detector call ended; the record is what
``shopwatch detectors --url`` and ``/api/stats`` show. A failure is logged once per
detector and error class while the detector keeps failing (not once per batch), and a
gauge ``shopwatch_detect_failing{detector}`` is 1 while a detector's last call raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

__all__ = ["FAILING", "DetectorHealth", "Health"]

FAILING = Gauge(
    "shopwatch_detect_failing", "1 while a detector's last call raised, by detector.", ["detector"]
)

_MAX_ERROR = 500


@dataclass(slots=True)
class Health:
    """One detector's record since the engine started."""

    status: str = "ok"  # "ok" or "failing"
    errors: int = 0
    last_error: str | None = None
    last_error_class: str | None = None
    failing_batches: int = 0  # consecutive calls that raised, up to now
    reported: frozenset[str] = frozenset()  # error classes logged in this failing streak

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return {
            "status": self.status,
            "errors": self.errors,
            "last_error": self.last_error,
            "failing_batches": self.failing_batches,
        }


class DetectorHealth:
    """Health records of a set of detectors, by id. Not thread-safe: one engine owns it."""

    def __init__(self, ids: list[str]) -> None:
        self.records: dict[str, Health] = {i: Health() for i in ids}
        for detector_id in ids:
            FAILING.labels(detector_id).set(0)

    def failed(self, detector_id: str, err: BaseException) -> bool:
        """Record a raised call; True when this error class is new in the failing streak.

        The caller logs when True, so a detector that fails on every batch is logged once
        per kind of failure, not once per batch.
        """
        record = self.records.setdefault(detector_id, Health())
        cls = type(err).__name__
        message = " ".join(str(err).split())
        record.status = "failing"
        record.errors += 1
        record.failing_batches += 1
        record.last_error = f"{cls}: {message}"[:_MAX_ERROR]
        record.last_error_class = cls
        FAILING.labels(detector_id).set(1)
        if cls in record.reported:
            return False
        record.reported = record.reported | {cls}
        return True

    def succeeded(self, detector_id: str) -> int:
        """Record a call that returned; the length of the failing streak it ends (0: none)."""
        record = self.records.setdefault(detector_id, Health())
        if record.status == "ok":
            return 0
        streak = record.failing_batches
        record.status = "ok"
        record.failing_batches = 0
        record.reported = frozenset()
        FAILING.labels(detector_id).set(0)
        return streak

    def failing(self) -> list[str]:
        """Ids of the detectors whose last call raised."""
        return sorted(i for i, r in self.records.items() if r.status == "failing")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Every detector's record by id (JSON-ready, for ``/api/stats``)."""
        return {i: self.records[i].as_dict() for i in sorted(self.records)}
