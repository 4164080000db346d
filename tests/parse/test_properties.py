"""Properties of every parser over hostile input: nothing raises, nothing is lost.

For any lines (shaped like the format, or noise) and any bytes of a file: no exception,
``batch.height + rejects.height + skipped == lines in``, the batch has the contract's
schema and reads back as Python values (every timestamp in the years 1..9999), every
reject reason is one of :class:`RejectReason`, and no line needed the safety net
(``parser_error`` means a parser raised).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopwatch.contract import EVENT_SCHEMA
from shopwatch.parse import ParseContext, Parsed, RejectReason, parse_file, parse_frame
from shopwatch.parse.base import MAX_TIME, MIN_TIME
from shopwatch.parse.read import iter_chunks
from tests.parse.helpers import frame
from tests.parse.strategies import ecs_line, file_bytes, lines_of

FORMATS = ["nginx", "ecs", "syslog", "vpcflow", "auto"]
CTX = ParseContext(source="fuzz.log", timezone="UTC")
REASONS = {r.value for r in RejectReason} - {RejectReason.PARSER_ERROR.value}
PROFILE = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(parsed: Parsed, lines_in: int) -> None:
    """The invariants every parse must keep."""
    assert parsed.batch.height + parsed.rejects.height + parsed.skipped == lines_in
    assert parsed.batch.schema == pl.Schema(EVENT_SCHEMA)
    assert set(parsed.rejects["reason"].to_list()) <= REASONS
    assert parsed.batch["@timestamp"].null_count() == 0
    if parsed.batch.height:
        assert MIN_TIME <= parsed.batch["@timestamp"].min() <= MAX_TIME  # type: ignore[operator]
        assert parsed.batch["@timestamp"].max() <= MAX_TIME  # type: ignore[operator]
    parsed.batch.rows()  # every value converts to Python (out-of-range datetimes raised)
    parsed.rejects.rows()


@pytest.mark.parametrize("fmt", FORMATS)
@PROFILE
@given(data=st.data())
def test_any_lines_keep_the_invariants(fmt: str, data: st.DataObject) -> None:
    lines = data.draw(lines_of("auto" if fmt == "auto" else fmt), label="lines")
    check(parse_frame(frame(lines), fmt, CTX), len(lines))


@pytest.mark.parametrize("fmt", FORMATS)
@PROFILE
@given(data=st.data(), zone=st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12"]))
def test_lines_of_another_format_keep_the_invariants(
    fmt: str, data: st.DataObject, zone: str
) -> None:
    """Every parser also gets every other format's lines, in zones at the edges of the clock."""
    lines = data.draw(lines_of("auto"), label="lines")
    ctx = ParseContext(source="fuzz.log", timezone=zone)
    check(parse_frame(frame(lines), fmt, ctx), len(lines))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(PROFILE, max_examples=60)
@given(data=st.data())
def test_any_file_bytes_keep_the_invariants(fmt: str, data: st.DataObject) -> None:
    content = data.draw(file_bytes("auto" if fmt == "auto" else fmt), label="bytes")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.log"
        path.write_bytes(content)
        broke: list[int] = []
        chunks = iter_chunks(path, chunk_lines=7, on_unreadable=lambda n, _: broke.append(n))
        lines_in = sum(chunk.height for chunk in chunks) + len(broke)
        parts = list(parse_file(path, fmt, chunk_lines=7, year=2024))
    for part in parts:
        check(part, part.batch.height + part.rejects.height + part.skipped)
    assert sum(p.batch.height + p.rejects.height + p.skipped for p in parts) == lines_in
    unreadable = [p for p in parts if "unreadable" in p.rejects["reason"].to_list()]
    assert len(unreadable) == len(broke), "a broken stream is one counted reject"


@PROFILE
@given(st.lists(ecs_line(), min_size=1, max_size=8))
def test_hostile_ecs_objects_are_events_or_named_rejects(lines: list[str]) -> None:
    """Deep, huge, duplicated, mixed nested-and-dotted objects: each line an event or a reject."""
    lines = [s.replace("\n", " ") for s in lines]
    parsed = parse_frame(frame(lines), "ecs", CTX)
    check(parsed, len(lines))
    assert sorted(parsed.rejects["line_no"].to_list()) == parsed.rejects["line_no"].to_list()


@PROFILE
@given(
    lines=lines_of("syslog"),
    year=st.one_of(st.none(), st.integers(-10, 20_000)),
    reference=st.one_of(
        st.none(),
        st.datetimes(timezones=st.just(UTC)),
        st.datetimes(),
        st.datetimes(timezones=st.sampled_from([timezone(timedelta(hours=h)) for h in (-14, 14)])),
    ),
    zone=st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Europe/Berlin"]),
)
def test_any_year_reference_and_zone_keep_the_invariants(
    lines: list[str], year: int | None, reference: datetime | None, zone: str
) -> None:
    """RFC 3164 dates take their year from the context: any context, never a raise."""
    ctx = ParseContext(source="auth.log", year=year, timezone=zone, reference=reference)
    check(parse_frame(frame(lines), "syslog", ctx), len(lines))
