"""Running detectors over case files (shared by the case and conformance tests)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl

from shopwatch.contract import ALERT_SCHEMA
from shopwatch.detect.registry import Detector
from shopwatch.detect.state import KeyedState
from shopwatch.parse import parse_file

CASES = Path(__file__).resolve().parent / "cases"
CASE_YEAR = 2026


def read_events(path: Path) -> pl.DataFrame:
    """Every event of a case file (format sniffed), in event-time order; no rejects allowed."""
    parts = list(parse_file(path, "auto", year=CASE_YEAR))
    rejects = pl.concat([p.rejects for p in parts])
    assert rejects.height == 0, f"{path} has lines the parser rejects: {rejects.head(3)}"
    return pl.concat([p.batch for p in parts]).sort("@timestamp", maintain_order=True)


def case_file(case: str, stem: str) -> Path:
    """``fires`` or ``benign`` file of a case, whatever its extension."""
    found = sorted((CASES / case).glob(f"{stem}.*"))
    assert found, f"case {case} has no {stem}.* file"
    return found[0]


def run(
    detector: Detector, batches: Iterable[pl.DataFrame], state: KeyedState | None = None
) -> pl.DataFrame:
    """Alerts of one detector over consecutive batches, with one state."""
    state = state or KeyedState(detector.keys)
    out = [detector.detect(b, state) for b in batches]
    out = [o for o in out if o.height]
    return pl.concat(out) if out else pl.DataFrame(schema=ALERT_SCHEMA)
