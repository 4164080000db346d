"""Properties every registered detector must have, checked over the whole registry."""

from __future__ import annotations

import polars as pl
import pytest

from shopwatch.contract import ALERT_SCHEMA, EVENT_SCHEMA, empty_events
from shopwatch.detect.content import load_detectors
from shopwatch.detect.state import KeyedState

from .helpers import CASES, ours, read_events, run

#: Our rules. The shipped SigmaHQ rules are threshold rules like ours, built by the same
#: code; tests/detect/test_sigma_content.py runs them (their matches, gated and not).
DETECTORS = {d.id: d for d in ours(load_detectors().detectors)}


@pytest.fixture(scope="module")
def stream() -> pl.DataFrame:
    """All case files (attacks and look-alikes) as one event-time ordered stream."""
    frames = [
        read_events(p)
        for p in sorted(CASES.glob("*/*"))
        if p.name.split(".", 1)[0] in ("fires", "benign") and p.suffix != ".py"
    ]
    return pl.concat(frames).sort("@timestamp", maintain_order=True)


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_empty_batch_gives_empty_alerts(rule_id: str) -> None:
    detector = DETECTORS[rule_id]
    out = detector.detect(empty_events(), KeyedState(detector.keys))
    assert out.height == 0 and out.schema == pl.Schema(ALERT_SCHEMA)


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_needs_only_contract_columns(rule_id: str) -> None:
    assert DETECTORS[rule_id].needs <= EVENT_SCHEMA.keys()


def _learns(rule_id: str) -> bool:
    """A learned model judges a request by what the requests before it taught; a batch
    is judged as if its requests came one at a time, which is close to, not exactly,
    what smaller batches give (tests/detect/test_request_model.py holds the flagged
    requests of its cases equal across cuts)."""
    return bool(getattr(DETECTORS[rule_id], "learns", False))


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_batch_boundaries_do_not_change_alerts(rule_id: str, stream: pl.DataFrame) -> None:
    detector = DETECTORS[rule_id]
    whole = run(detector, [stream])
    assert whole.height > 0, "the case stream must make every detector fire"
    again = run(detector, [stream])
    assert again.equals(whole), "same input twice gives the same alerts"
    size = -(-stream.height // 7)
    sliced = run(detector, stream.iter_slices(size))
    if _learns(rule_id):
        assert sliced.height > 0
        assert run(detector, stream.iter_slices(size)).equals(sliced), "same cuts, same alerts"
    else:
        assert sliced.equals(whole)


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_snapshot_restore_mid_stream(rule_id: str, stream: pl.DataFrame) -> None:
    detector = DETECTORS[rule_id]
    half = stream.height // 2
    first_state = KeyedState(detector.keys)
    first = run(detector, [stream.head(half)], first_state)
    restored = KeyedState(detector.keys)
    restored.restore(first_state.snapshot())
    second = run(detector, [stream.slice(half)], restored)
    # A rule whose flush scores the windows still open (with their events so far) gives a
    # run flushed midway other alerts than one that was not; restored or not must not.
    if _learns(rule_id) or getattr(detector, "partial_at_flush", False):
        # Restored from the snapshot or carried on in memory: the same second half.
        assert second.equals(run(detector, [stream.slice(half)], first_state))
        assert second.height > 0
    else:
        assert pl.concat([first, second]).equals(run(detector, [stream]))


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_missing_optional_columns_do_not_crash(rule_id: str, stream: pl.DataFrame) -> None:
    detector = DETECTORS[rule_id]
    slim = stream.select(sorted(detector.needs & set(stream.columns)))
    assert run(detector, [slim]).equals(run(detector, [stream])), (
        "needs names every column it reads"
    )
    bare = stream.select("@timestamp")
    assert run(detector, [bare]).height == 0
