"""The Engine: detectors over batches, counters, snapshots, and the event-time merge."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl

from shopwatch.config import RuntimeSettings
from shopwatch.contract import conform, empty_alerts
from shopwatch.detect import KeyedState, build
from shopwatch.parse.base import Parsed, empty_rejects
from shopwatch.pipeline import Engine, merge_by_time
from shopwatch.pipeline.merge import expand_matches

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
RULE = {
    "id": "test.failures",
    "kind": "threshold",
    "category": "brute_force",
    "where": {"event.outcome": "failure"},
    "group_by": ["source.ip"],
    "count": {"at_least": 3, "within": "5m"},
}


def frame(seconds: list[int], ip: str = "198.51.100.7", tag: str = "e") -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=s) for s in seconds],
                "event.id": [f"{tag}{s}" for s in seconds],
                "event.outcome": ["failure"] * len(seconds),
                "source.ip": [ip] * len(seconds),
            }
        )
    )


class Broken:
    id = "test.broken"
    category = "anomaly"
    keys = ()
    needs = frozenset({"@timestamp"})
    spec = None

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        raise RuntimeError("bug")


def test_engine_counts_and_sends_alerts_to_sinks() -> None:
    seen: list[pl.DataFrame] = []
    engine = Engine([build(RULE)], sinks=[seen.append])
    alerts = engine.process(frame([0, 10, 20, 30]))
    assert alerts.height == 1 and len(seen) == 1
    assert engine.stats.events == 4 and engine.stats.alerts == 1
    assert engine.stats.alerts_by_category["brute_force"] == 1


def test_a_broken_detector_is_counted_and_the_others_still_run() -> None:
    engine = Engine([Broken(), build(RULE)])  # type: ignore[list-item]
    assert engine.process(frame([0, 1, 2])).height == 1
    assert engine.stats.detector_errors["test.broken"] == 1


def test_late_events_are_counted_and_still_processed() -> None:
    runtime = RuntimeSettings(allowed_lateness_s=60, watermark_outliers=2)
    engine = Engine([build(RULE)], runtime=runtime)
    engine.process(frame([600, 601, 602]))  # three events: past the two outliers tolerated
    engine.process(frame([0, 1, 2], tag="late"))
    assert engine.stats.late_events == 3
    assert engine.stats.events == 6


def test_a_source_warming_up_has_no_watermark_yet() -> None:
    engine = Engine([build(RULE)], runtime=RuntimeSettings(watermark_outliers=2))
    engine.process(frame([600, 601]))
    assert engine.source_watermarks() == {"-": None}
    engine.process(frame([0], tag="early"))
    assert engine.stats.late_events == 0


def test_snapshot_restore_continues_a_window() -> None:
    first = Engine([build(RULE)])
    assert first.process(frame([0, 10])).height == 0
    blob = first.snapshot()
    second = Engine([build(RULE)])
    second.restore(blob)
    assert second.stats.events == 2
    assert second.process(frame([20])).height == 1


def stream(*frames: pl.DataFrame) -> Iterator[Parsed]:
    for f in frames:
        yield Parsed(f, empty_rejects())


def test_merge_by_time_interleaves_files_in_event_time() -> None:
    a = stream(frame([0, 10, 20], tag="a"), frame([30, 40], tag="a"))
    b = stream(frame([5, 15], tag="b"), frame([25, 35, 45], tag="b"))
    batches = list(merge_by_time([a, b], lambda r: None))
    merged = pl.concat(batches)
    assert merged["event.id"].to_list() == [
        "a0",
        "b5",
        "a10",
        "b15",
        "a20",
        "b25",
        "a30",
        "b35",
        "a40",
        "b45",
    ]
    for batch in batches:
        assert batch["@timestamp"].is_sorted()


def test_a_far_future_line_does_not_hold_back_the_rest_of_its_file() -> None:
    far = 10**9  # some thirty years ahead: a forged or broken timestamp
    a = stream(frame([0, 10], tag="a"), frame([far], tag="a"), frame([20, 30], tag="a"))
    b = stream(frame([5, 15], tag="b"), frame([25, 35], tag="b"))
    order = pl.concat(list(merge_by_time([a, b], lambda r: None, outliers=1)))["event.id"]
    # a20 and a30 stay interleaved with b; the far line comes last.
    assert order.to_list() == ["a0", "b5", "a10", "b15", "a20", "b25", "a30", "b35", f"a{far}"]


def test_without_outlier_room_a_far_future_line_holds_its_file_back() -> None:
    far = 10**9
    a = stream(frame([0, 10], tag="a"), frame([far], tag="a"), frame([20, 30], tag="a"))
    b = stream(frame([5, 15], tag="b"), frame([25, 35], tag="b"))
    order = pl.concat(list(merge_by_time([a, b], lambda r: None, outliers=0)))["event.id"]
    assert order.to_list().index("a20") > order.to_list().index("b35")


def test_merge_by_time_reports_rejects_and_survives_empty_streams() -> None:
    seen = []
    rejects = pl.DataFrame(
        {
            "source": ["x"],
            "line_no": [3],
            "raw": ["junk"],
            "reason": ["no_match"],
            "format": ["nginx"],
        }
    )
    a = iter([Parsed(frame([]), rejects), Parsed(frame([1, 2]), empty_rejects())])
    out = list(merge_by_time([a, iter([])], seen.append))
    assert pl.concat(out).height == 2
    assert sum(r.height for r in seen) == 1


def test_empty_batch_is_a_no_op() -> None:
    engine = Engine([build(RULE)])
    assert engine.process(frame([])).equals(empty_alerts())
    assert engine.stats.batches == 0


def test_engine_precomputed_fields_give_the_detectors_own_answer() -> None:
    from shopwatch.detect.content import load_detectors

    web = [d for d in load_detectors().detectors if d.id.startswith("web.")]
    urls = [
        "/products?id=1%27%20OR%201%3D1--",
        "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/static/..%252f..%252fetc/passwd",
        "/search?q=men%27s+shoes",
    ]
    batch = conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=i) for i in range(len(urls))],
                "event.id": [f"w{i}" for i in range(len(urls))],
                "event.dataset": ["http.access"] * len(urls),
                "source.ip": ["192.0.2.44"] * len(urls),
                "url.original": urls,
                "url.path": [u.split("?")[0] for u in urls],
            }
        )
    )
    alone = pl.concat([d.detect(batch, KeyedState(d.keys)) for d in web]).sort(
        "@timestamp", "rule.id", "alert.id"
    )
    through_engine = Engine(web).process(batch)
    # the engine folds one request's signature alerts into one; opened up, the same answers
    columns = ["rule.id", "risk_score", "event.ids"]
    opened = expand_matches(through_engine).sort(columns)
    assert opened.equals(alone.select(columns).sort(columns))
    assert set(opened["rule.id"]) == {
        "web.injection_tokenizer",
        "web.sqli_probe",
        "web.xss_probe",
        "web.path_traversal",
    }
    assert through_engine.height < alone.height
