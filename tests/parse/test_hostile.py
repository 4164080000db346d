"""Lines that once crashed a parser: each is a reject with its reason; the rest parse."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from shopwatch.contract import EVENT_SCHEMA
from shopwatch.parse import (
    ParseContext,
    RejectReason,
    parse_file,
    parse_frame,
    register_format,
    resolve_year,
)
from shopwatch.parse.base import FORMATS, MAX_TIME, MIN_TIME, Parsed
from shopwatch.parse.ecs import MAX_DEPTH
from shopwatch.parse.nginx import parse_access, sniff_access
from tests.parse.helpers import frame
from tests.parse.hostile import HOSTILE, good_lines, with_bad_lines

CTX = ParseContext(source="hostile.log")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_line_is_a_reject_and_its_neighbours_parse(name: str) -> None:
    case = HOSTILE[name]
    lines = [*good_lines(case.fmt, 3), case.line, *good_lines(case.fmt, 3)]
    parsed = parse_frame(frame(lines), case.fmt, CTX)
    assert parsed.rejects.select("line_no", "reason").rows() == [(4, case.reason)]
    assert parsed.batch.height == 6
    assert parsed.batch.schema == pl.Schema(EVENT_SCHEMA)
    # every value reads back as Python objects (an out-of-range datetime raised here)
    assert len(parsed.batch.rows()) == 6
    assert parsed.rejects["raw"][0] == case.line[:512]


@pytest.mark.parametrize("fmt", ["nginx", "ecs", "syslog", "vpcflow", "auto"])
def test_all_hostile_lines_of_a_format_in_one_chunk(fmt: str) -> None:
    sample = "nginx" if fmt == "auto" else fmt
    lines, expected = with_bad_lines(sample, 200)
    parsed = parse_frame(frame(lines), fmt, CTX)
    assert dict(parsed.rejects.select("line_no", "reason").rows()) == expected
    assert parsed.batch.height == 200
    assert set(RejectReason) >= {RejectReason(r) for r in expected.values()}


def test_the_edges_of_representable_time_are_kept() -> None:
    lines = [
        '203.0.113.9 - - [01/Jan/0001:00:00:00 +0000] "GET / HTTP/1.1" 200 5',
        '203.0.113.9 - - [31/Dec/9999:23:59:59 +0000] "GET / HTTP/1.1" 200 5',
        '203.0.113.9 - - [01/Jan/0001:00:00:00 +0001] "GET / HTTP/1.1" 200 5',
    ]
    parsed = parse_frame(frame(lines), "nginx", CTX)
    assert parsed.batch["@timestamp"].to_list() == [
        MIN_TIME,
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]
    assert parsed.rejects.select("line_no", "reason").rows() == [(3, "bad_timestamp")]
    assert MAX_TIME.year == 9999


def test_ecs_depth_limit_is_exact() -> None:
    def nested(depth: int) -> str:
        inner = '{"ip": "192.0.2.1"}'
        for _ in range(depth - 2):
            inner = '{"x": ' + inner + "}"
        return (
            '{"@timestamp": "2024-10-10T13:00:00Z", "event.dataset": "shop.auth", "s": '
            + inner
            + "}"
        )

    parsed = parse_frame(frame([nested(MAX_DEPTH), nested(MAX_DEPTH + 1)]), "ecs", CTX)
    assert parsed.batch.height == 1
    assert parsed.rejects.select("line_no", "reason").rows() == [(2, "too_deep")]


def test_ecs_keeps_document_order_for_mixed_spellings() -> None:
    lines = [
        '{"@timestamp":"2024-10-10T13:00:00Z","event.dataset":"x","source":{"ip":"1.1.1.1"},'
        '"source.ip":"2.2.2.2"}',
        '{"@timestamp":"2024-10-10T13:00:00Z","event.dataset":"x","source.ip":"2.2.2.2",'
        '"source":{"ip":"1.1.1.1"}}',
        '{"@timestamp":"2024-10-10T13:00:00Z","event.dataset":"x","source.ip":"2.2.2.2",'
        '"source.ip":"3.3.3.3"}',
    ]
    parsed = parse_frame(frame(lines), "ecs", CTX)
    assert parsed.batch["source.ip"].to_list() == ["2.2.2.2", "1.1.1.1", "3.3.3.3"]


def test_ecs_huge_numbers_read_as_null_and_the_event_stays() -> None:
    line = (
        '{"@timestamp":"2024-10-10T13:00:00Z","event.dataset":"shop.cart",'
        '"source.port":99999999999999999999999,"event.duration":1e300,'
        '"shop.cart.quantity":18446744073709551615,"http.response.bytes":"1e400"}'
    )
    parsed = parse_frame(frame([line]), "ecs", CTX)
    assert parsed.rejects.height == 0
    got = parsed.batch.row(0, named=True)
    assert [got[k] for k in ("source.port", "event.duration", "shop.cart.quantity")] == [None] * 3
    assert got["http.response.bytes"] is None


def _fragile(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """The nginx parser, with a bug: it raises on any chunk holding ``BOOM``."""
    if lines["line"].str.contains("BOOM", literal=True).any():
        raise ValueError("a parser bug")
    return parse_access(lines, ctx)


def test_a_parser_bug_costs_only_the_lines_it_fails_on() -> None:
    name = "fragile_test_format"
    register_format(name, _fragile, sniff_access)
    try:
        lines = good_lines("nginx", 40)
        lines[7] += " BOOM"
        lines[30] += " BOOM"
        parsed = parse_frame(frame(lines), name, CTX)
    finally:
        del FORMATS[name]
    assert parsed.rejects.select("line_no", "reason").rows() == [
        (8, "parser_error"),
        (31, "parser_error"),
    ]
    assert parsed.batch.height == 38
    assert parsed.batch["event.id"].to_list() == [
        f"hostile.log:{n}" for n in range(1, 41) if n not in (8, 31)
    ]


def test_a_truncated_gzip_file_keeps_its_lines_and_counts_the_break(tmp_path: Path) -> None:
    data = ("\n".join(good_lines("nginx", 20_000)) + "\n").encode()
    packed = gzip.compress(data)
    path = tmp_path / "access.log.gz"
    path.write_bytes(packed[: len(packed) // 2])
    parts = list(parse_file(path, "nginx", chunk_lines=4096))
    events = sum(p.batch.height for p in parts)
    rejects = pl.concat([p.rejects for p in parts])
    assert 5_000 < events < 20_000
    last = rejects.row(-1, named=True)
    assert last["reason"] == "unreadable" and "EOFError" in last["raw"]
    assert last["line_no"] == events + rejects.height  # right after the last line read
    assert set(rejects["reason"].to_list()) <= {"no_match", "unreadable"}  # the cut line


def test_a_file_with_gzip_magic_but_no_gzip_is_one_reject(tmp_path: Path) -> None:
    path = tmp_path / "odd.log"
    path.write_bytes(b"\x1f\x8bnot gzip at all\n")
    (parsed,) = parse_file(path, "nginx")
    assert parsed.batch.height == 0
    assert parsed.rejects.select("line_no", "reason").rows() == [(1, "unreadable")]


def test_a_request_of_a_method_and_a_version_only() -> None:
    """``"G HTTP/1.1"``: the version's space is the method's; a negative URL length raised."""
    lines = [
        '192.0.2.1 - - [10/Oct/2024:13:00:01 +0000] "G HTTP/1.1" 200 5 "" ""',
        *good_lines("nginx", 2),
    ]
    parsed = parse_frame(frame(lines), "nginx", CTX)
    assert parsed.rejects.height == 0
    got = parsed.batch.row(0, named=True)
    assert (got["http.request.method"], got["url.original"], got["http.version"]) == (
        "G",
        "HTTP/1.1",
        None,
    )


@pytest.mark.parametrize("year", [1, 9999])
def test_rfc3164_dates_of_a_file_dated_at_the_edge_of_time(year: int) -> None:
    """A file modified in 9999 (``touch -d``) overflowed ``reference + slack``."""
    edge = datetime(year, 12, 31, tzinfo=UTC) if year == 9999 else datetime(1, 1, 2, tzinfo=UTC)
    lines = ["Jan  1 00:00:00 h sshd[1]: hi", "Dec 31 23:59:59 h sshd[1]: hi"]
    parsed = parse_frame(frame(lines), "syslog", ParseContext(source="auth.log", reference=edge))
    assert parsed.batch.height + parsed.rejects.height == 2
    assert "parser_error" not in parsed.rejects["reason"].to_list()
    assert set(parsed.rejects["reason"].to_list()) <= {"bad_timestamp"}
    assert resolve_year(12, 31, edge) in (year, year - 1)


@pytest.mark.parametrize(
    "reference",
    [
        datetime(1, 1, 1),  # naive: read as UTC (local time conversion raised)
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # year 0 in UTC
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14))),  # year 10000
    ],
)
def test_rfc3164_reference_that_utc_cannot_hold(reference: datetime) -> None:
    line = (
        "Jan  1 00:00:00 shop-web-1 sshd[7]: Failed password for root from 192.0.2.1 port 22 ssh2"
    )
    parsed = parse_frame(frame([line]), "syslog", ParseContext(reference=reference))
    assert parsed.batch.height + parsed.rejects.height == 1
    assert "parser_error" not in parsed.rejects["reason"].to_list()
