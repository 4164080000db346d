"""Access-log parser: fixtures, the three public access logs, malformed lines, properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shopwatch.parse.nginx as nginx
from shopwatch.contract import EVENT_SCHEMA
from shopwatch.parse import ParseContext, parse_frame
from shopwatch.parse.nginx import parse_access
from tests.parse.helpers import frame, parse_all, row

CTX = ParseContext(source="/var/log/nginx/access.log")


def test_extras_fixture(fixtures_dir: Path) -> None:
    parsed = parse_all(fixtures_dir / "nginx" / "access_extras.log", "nginx")
    assert parsed.rejects.height == 0
    assert parsed.batch.schema == pl.Schema(EVENT_SCHEMA)
    first = row(parsed, 1)
    assert first["@timestamp"] == datetime(2024, 3, 12, 8, 15, 2, tzinfo=UTC)
    assert first["event.id"] == "access_extras.log:1"
    assert first["source.ip"] == "203.0.113.7"
    assert first["client.ip"] == "198.51.100.23"
    assert first["event.duration"] == 45_000_000
    assert first["url.path"] == "/products/blue-mug"
    assert first["url.query"] == "ref=home"
    assert first["http.request.referrer"] == "https://shop.example/"
    assert (
        first["event.dataset"],
        first["event.action"],
        first["event.kind"],
        first["event.category"],
    ) == (
        "http.access",
        "request",
        "event",
        "web",
    )
    login = row(parsed, 2)
    assert login["http.request.method"] == "POST"
    assert login["http.response.status_code"] == 401
    assert login["event.duration"] == 120_000_000
    assert "client.ip" not in login  # X-Forwarded-For "-"
    admin = row(parsed, 3)
    assert admin["user.name"] == "alice"
    assert admin["http.version"] == "2.0"
    assert admin["client.ip"] == "2001:db8::1"
    assert admin["event.duration"] == 1_503_000_000
    assert "http.request.referrer" not in admin
    sqli = row(parsed, 4)
    assert sqli["url.query"] == "q=%27%20OR%201%3D1--"
    assert sqli["user_agent.original"].startswith("sqlmap/")
    common = row(parsed, 5)
    assert "http.response.bytes" not in common
    assert "user_agent.original" not in common
    assert common["http.response.status_code"] == 404


def test_elastic_log_counts_and_truncated_line(datasets: Path) -> None:
    parsed = parse_all(datasets / "access-logs" / "elastic_apache_logs.log", chunk_lines=3000)
    assert parsed.batch.height == 9_999
    assert parsed.rejects.select("line_no", "reason").rows() == [(8_899, "no_match")]
    assert parsed.rejects["raw"][0].startswith("46.118.127.106 - - [20/May/2015:12:05:17 +0000]")
    ts = parsed.batch["@timestamp"]
    assert ts[0] == datetime(2015, 5, 17, 10, 5, 3, tzinfo=UTC)
    assert ts.min() >= datetime(2015, 5, 17, tzinfo=UTC)  # type: ignore[operator]
    assert ts.max() is not None and ts.max() < datetime(2015, 5, 21, tzinfo=UTC)  # type: ignore[operator]
    assert parsed.batch["source.ip"].n_unique() == 1_753
    assert parsed.batch["http.request.method"].null_count() == 0
    assert parsed.batch["event.id"].n_unique() == 9_999


def test_hackers_log_offsets(datasets: Path) -> None:
    parsed = parse_all(datasets / "access-logs" / "hackers-access.log")
    assert (parsed.batch.height, parsed.rejects.height) == (3_456, 0)
    second = row(parsed, 2)
    # 25/Oct/2015:04:11:26 +0100
    assert second["@timestamp"] == datetime(
        2015, 10, 25, 4, 11, 26, tzinfo=timezone(timedelta(hours=1))
    )
    assert second["url.path"] == "/join_form"
    assert parsed.batch.filter(pl.col("url.path").eq("/join_form"))["source.ip"].n_unique() > 100


def test_honeynet_quirks(datasets: Path) -> None:
    parsed = parse_all(datasets / "access-logs" / "honeynet_redhat71_httpd_access.log.gz")
    batch = parsed.batch
    assert (batch.height, parsed.rejects.height) == (38_487, 0)
    timeouts = batch.filter(pl.col("http.response.status_code").eq(408))
    assert timeouts.height >= 229
    dash = batch.filter(pl.col("url.original").is_null())
    assert dash.height == 229
    assert dash["http.response.status_code"].unique().to_list() == [408]
    assert dash["http.request.method"].null_count() == 229
    assert batch.filter(pl.col("http.request.method").eq("get")).height == 31
    assert batch.filter(pl.col("http.request.method").eq("PROPFIND")).height == 15_244
    junk = batch.filter(pl.col("url.original").eq("\x05\x01"))
    assert junk.height == 36 and junk["http.request.method"].null_count() == 36
    # the 4 Nikto probes with an extra unescaped quote: the request is kept whole
    extra = batch.filter(pl.col("url.original").str.starts_with('GET" '))
    assert extra.height == 4 and extra["http.response.status_code"].is_in([404, 501]).all()
    # Latin-1 bytes survive as characters, never as a reject
    assert batch.filter(pl.col("url.original").str.contains("[\u0080-\u00ff]")).height > 100
    escaped = batch.filter(pl.col("url.original").str.contains('alert("Vulnerable")', literal=True))
    assert escaped.height >= 1  # \" unescaped
    assert batch["@timestamp"].min() == datetime(
        2004, 4, 21, 14, 56, 7, tzinfo=UTC
    )  # 10:56:07 -0400


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326 "-" "Mozilla/5.0 (trunc',
            "no_match",
        ),
        ('1.2.3.4 - - 10/Oct/2000:13:55:36 -0700 "GET / HTTP/1.0" 200 2326', "no_match"),
        ('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" OK 2326', "no_match"),
        ('1.2.3.4 - - [31/Foo/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326', "bad_timestamp"),
        ("   ", "empty"),
        ("\x00\x01\x02 binary", "no_match"),
        ('{"@timestamp": 1}', "no_match"),
    ],
)
def test_malformed_lines(line: str, reason: str) -> None:
    good = '5.6.7.8 - - [10/Oct/2000:13:55:36 -0700] "GET /ok HTTP/1.0" 200 1'
    parsed = parse_access(frame([good, line, good]), CTX)
    assert parsed.batch.height == 2
    assert parsed.rejects.select("line_no", "reason", "format", "source").rows() == [
        (2, reason, "nginx", CTX.source)
    ]


def test_escaped_quotes_status_dash_and_hostname() -> None:
    lines = [
        r'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a?x=\"y\" HTTP/1.1" 200 5 "-" "Agent \"quoted\" 1.0"',
        '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /b HTTP/1.1" - - "-" "-"',
        'crawl-66-249-66-1.googlebot.com - - [10/Oct/2000:13:55:36 +0000] "HEAD / HTTP/1.1" 200 0',
    ]
    parsed = parse_access(frame(lines), CTX)
    assert parsed.rejects.height == 0
    first = row(parsed, 1)
    assert first["url.original"] == '/a?x="y"'
    assert first["user_agent.original"] == 'Agent "quoted" 1.0'
    assert first["@timestamp"] == datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC)
    assert "http.response.status_code" not in row(parsed, 2)
    third = row(parsed, 3)
    assert third["source.domain"] == "crawl-66-249-66-1.googlebot.com"
    assert "source.ip" not in third


def test_fast_and_regex_paths_agree(datasets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = frame(
        (datasets / "access-logs" / "hackers-access.log").read_text().splitlines()
        + (datasets / "access-logs" / "elastic_apache_logs.log").read_text().splitlines()[:3000]
    )
    fast = parse_access(lines, CTX)
    real_fast = nginx._fast
    monkeypatch.setattr(
        nginx, "_fast", lambda f: real_fast(f).with_columns(pl.lit(False).alias("_ok"))
    )
    slow = parse_access(lines, CTX)
    assert fast.batch.equals(slow.batch)
    assert fast.rejects.equals(slow.rejects)


def test_apache_alias_and_empty_frame() -> None:
    line = '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326'
    assert parse_frame(frame([line]), "apache", CTX).batch.height == 1
    empty = parse_access(frame([]), CTX)
    assert (empty.batch.height, empty.rejects.height) == (0, 0)
    assert empty.batch.schema == pl.Schema(EVENT_SCHEMA)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(), max_size=12))
def test_any_text_keeps_the_invariant(lines: list[str]) -> None:
    lines = [s.replace("\n", " ").replace("\r", " ") for s in lines]
    parsed = parse_access(frame(lines), CTX)
    assert parsed.batch.height + parsed.rejects.height == len(lines)


_token = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x24F, exclude_characters='"\\'),
    min_size=1,
    max_size=20,
)
_path = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x24F, exclude_characters='"\\?'),
    min_size=1,
    max_size=20,
)
_free = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F, exclude_characters='"\\'),
    min_size=1,
    max_size=40,
)


@st.composite
def _records(draw: st.DrawFn) -> dict[str, object]:
    return {
        "ip": draw(st.ip_addresses()).exploded
        if draw(st.booleans())
        else str(draw(st.ip_addresses(v=4))),
        "user": draw(
            st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9._@-]{0,15}", fullmatch=True))
        ),
        "ts": draw(
            st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1))
        ).replace(microsecond=0),
        "offset": draw(st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15)),
        "method": draw(st.sampled_from(["GET", "POST", "HEAD", "PROPFIND", "get"])),
        "path": "/" + draw(_path),
        "query": draw(st.one_of(st.none(), _token)),
        "version": draw(st.sampled_from(["1.0", "1.1", "2.0"])),
        "status": draw(st.integers(100, 599)),
        "bytes": draw(st.one_of(st.none(), st.integers(0, 10**12))),
        # A bare "-" is the format's own "absent" marker, so it renders the same as None.
        "referrer": draw(st.one_of(st.none(), _free.filter(lambda s: s != "-"))),
        "agent": draw(st.one_of(st.none(), _free.filter(lambda s: s != "-"))),
        "combined": draw(st.booleans()),
        "rt": draw(st.one_of(st.none(), st.integers(0, 10**7))),
    }


def _render(r: dict[str, object]) -> str:
    offset = int(r["offset"])  # type: ignore[call-overload]
    sign = "+" if offset >= 0 else "-"
    ts = r["ts"].strftime("%d/%b/%Y:%H:%M:%S")  # type: ignore[attr-defined]
    url = f"{r['path']}?{r['query']}" if r["query"] is not None else str(r["path"])
    line = (
        f"{r['ip']} - {r['user'] or '-'} [{ts} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}] "
        f'"{r["method"]} {url} HTTP/{r["version"]}" {r["status"]} {r["bytes"] if r["bytes"] is not None else "-"}'
    )
    if r["combined"] or r["rt"] is not None:
        line += f' "{r["referrer"] or "-"}" "{r["agent"] or "-"}"'
    if r["rt"] is not None:
        line += f" {int(r['rt']) / 1000:.3f}"  # type: ignore[call-overload]
    return line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records(), min_size=1, max_size=8))
def test_rendered_records_parse_back(records: list[dict[str, object]]) -> None:
    parsed = parse_access(frame(_render(r) for r in records), CTX)
    assert parsed.rejects.height == 0, parsed.rejects["raw"].to_list()
    for got, r in zip(parsed.batch.iter_rows(named=True), records, strict=True):
        offset = timedelta(minutes=int(r["offset"]))  # type: ignore[call-overload]
        assert got["@timestamp"] == r["ts"].replace(tzinfo=UTC) - offset  # type: ignore[attr-defined]
        assert got["source.ip"] == r["ip"]
        assert got["user.name"] == r["user"]
        assert got["http.request.method"] == r["method"]
        assert got["url.path"] == r["path"]
        assert got["url.query"] == r["query"]
        assert got["http.version"] == r["version"]
        assert got["http.response.status_code"] == r["status"]
        assert got["http.response.bytes"] == r["bytes"]
        if r["combined"] or r["rt"] is not None:
            assert got["http.request.referrer"] == r["referrer"]
            assert got["user_agent.original"] == r["agent"]
        expected_ns = None if r["rt"] is None else int(r["rt"]) * 1_000_000  # type: ignore[call-overload]
        assert got["event.duration"] == expected_ns


_EDGE_LINES = [
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.0" 200 2326',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a?b=1 HTTP/1.0" 200 2326 0.5 ',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 1 0.5 "1.1.1.1, 2.2.2.2"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 2326 "a" "b" "c"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 2326 "a"  "b"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 1 "r" "ag" 0.2 "10.0.0.1, 1.2.3.4"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 1 "r" "ag" "10.0.0.1" 12 ',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.0" 200 - "r" "ag"x',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a"b HTTP/1.0" 200 1 "r" "ag" 0.041',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 +0530] "GET /\u00e9?q=\u00fc HTTP/1.1" 200 0 "r\u00e9" "\u00e4g" 0.1',
    '1.2.3.4 - j\u00f6rg [10/Oct/2000:13:55:36 +0530] "get /x HTTP/2" 200 0 "-" "-"',
    '1.2.3.4 - jo rg [10/Oct/2000:13:55:36 -1200] "GET /x y HTTP/1.1" 200 0 "-" "-"',
    'host.example.com - frank [10/Oct/2000:13:55:36] "GET /x HTTP/1.1" 200 0 "-" "-"',
    'host.example.com - frank [31/Feb/2000:13:55:36 +0000] "GET /x HTTP/1.1" 200 0 "-" "-"',
    'host.example.com - frank [10/Oct/2000:13:55:36 +0090] "-" 408 0 "-" "-"',
    '2001:db8::1 - - [10/Oct/2000:13:55:36 +0000] "M-SEARCH * HTTP/1.1" 200 0 "-" "-" - 0.2',
    '2001:db8::1 - - [10/Oct/2000:13:55:36 +0000] "GET /? HTTP/1.1" 200 0 "-" "-" 2001:db8::2',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 12x "-" "-"',
    "",
    "garbage",
]


def test_fast_cuts_agree_with_the_regex_on_edge_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = frame(_EDGE_LINES)
    fast = parse_access(lines, CTX)
    assert nginx._fast(lines)["_ok"].sum() >= 10  # the fast path reads most of them
    real_fast = nginx._fast
    monkeypatch.setattr(
        nginx, "_fast", lambda f: real_fast(f).with_columns(pl.lit(False).alias("_ok"))
    )
    slow = parse_access(lines, CTX)
    assert fast.batch.equals(slow.batch)
    assert fast.rejects.equals(slow.rejects)
    assert fast.batch.height + fast.rejects.height == len(_EDGE_LINES)
    xff = fast.batch.filter(pl.col("event.id").eq("access.log:6"))
    assert xff["client.ip"].to_list() == ["10.0.0.1"]
    assert xff["event.duration"].to_list() == [200_000_000]
