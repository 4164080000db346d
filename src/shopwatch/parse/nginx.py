"""Web server access logs: the "combined" and "common" formats (nginx, Apache).

``%h %l %u %t "%r" %>s %b`` (common), then ``"%{Referer}i" "%{User-Agent}i"``
(combined), then any extra quoted or bare fields. Among the extras, the first bare number
is the request time in seconds (nginx ``$request_time``, ``0.123``; an integer reads as
whole seconds, as Apache's ``%T``) and the first field that is a list of IP addresses
(``"1.2.3.4, 10.0.0.1"``) is X-Forwarded-For, whose first address becomes ``client.ip``.
Other extras (upstream times, ...) are read past.

Two paths, both vectorized: a fast one that cuts well-formed lines at literal delimiters
(byte offsets from ``str.find``, cuts on the binary view so non-ASCII text cannot shift
them), and a regular expression for the rest (escaped ``\\"`` inside fields, an extra
unescaped ``"`` inside the request, a status of ``-``...). A line neither path reads is a
``no_match`` reject (a truncated line, for instance); a timestamp that does not parse is a
``bad_timestamp`` reject; a blank line is ``empty``.

Field values are kept as logged, except that ``\\"`` and ``\\\\`` are unescaped and ``-``
reads as null. A request that is not ``METHOD URL [HTTP/x]`` (binary junk, a bare ``-``
for a timed-out connection) keeps its text in ``url.original`` (null for ``-``) with the
method, version, path and query null. Methods keep their case (``get`` is a signal).
"""

from __future__ import annotations

import polars as pl

from shopwatch.contract import conform
from shopwatch.parse.base import (
    ParseContext,
    Parsed,
    RejectReason,
    empty_rejects,
    event_id,
    make_rejects,
)

__all__ = ["LINE_PATTERN", "parse_access", "sniff_access"]

FORMAT = "nginx"

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_EXTRA = r'(?:"(?:[^"\\]|\\.)*"|[^\s"]+)'
#: The whole-line pattern of the slow path (and of sniffing): groups host, ident, user,
#: time, request, status, bytes, referrer, user agent, extras.
LINE_PATTERN = (
    r"^(\S+) (\S+) (.*?) \[([^\]]*)\] "
    r'"(.*?)" (\d{3}|-) (\d+|-)'
    rf"(?: {_QUOTED} {_QUOTED})?"
    rf"((?: +{_EXTRA})*) *$"
)
_FIELDS = [
    "host",
    "ident",
    "user",
    "ts",
    "request",
    "status",
    "bytes",
    "referrer",
    "agent",
    "extras",
]
_RAW = {f"_{name}": pl.String for name in _FIELDS}

_NUMBER = r"^\d+(?:\.\d+)?$"
_ADDRESS = r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)"
_ADDRESS_LIST = rf"^{_ADDRESS}(?:\s*,\s*{_ADDRESS})*$"
_METHOD = r"^[A-Za-z][A-Za-z0-9_-]*$"
_MONTHS = {
    m: f"{i:02d}"
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def _cut(binary: pl.Expr, start: pl.Expr | int, length: pl.Expr | int | None = None) -> pl.Expr:
    """A byte range of a binary view as text (cuts fall on ASCII delimiters, so it is UTF-8)."""
    return binary.bin.slice(start, length).cast(pl.String)


def _pos(expr: pl.Expr, needle: str) -> pl.Expr:
    return expr.str.find(needle, literal=True).cast(pl.Int64)


def _fast(lines: pl.DataFrame) -> pl.DataFrame:
    """Cut every line at literal delimiters; ``_ok`` says whether the cut is trustworthy."""
    line = pl.col("line")
    b = pl.col("_bin")
    p1, p2, p3, p4 = (pl.col(n) for n in ("_p1", "_p2", "_p3", "_p4"))
    frame = lines.with_columns(
        line.cast(pl.Binary).alias("_bin"),
        _pos(line, " ").alias("_p1"),
        _pos(line, " [").alias("_p2"),
        _pos(line, '] "').alias("_p3"),
        line.str.find(r'" \d{3} ').cast(pl.Int64).alias("_p4"),
    )
    frame = frame.select(
        "line",
        "line_no",
        _cut(b, 0, p1).alias("_host"),
        _cut(b, p1 + 1, p2 - p1 - 1).alias("_ident_user"),
        _cut(b, p2 + 2, p3 - p2 - 2).alias("_ts"),
        _cut(b, p3 + 3, p4 - p3 - 3).alias("_request"),
        _cut(b, p4 + 2, 3).alias("_status"),
        _cut(b, p4 + 6).alias("_after"),
        ((p1 < p2) & (p2 < p3) & (p3 + 3 <= p4)).alias("_order"),
    )
    iu, after = pl.col("_ident_user"), pl.col("_after")
    sp_iu, sp = _pos(iu, " "), _pos(after, " ")
    frame = frame.with_columns(
        _cut(iu.cast(pl.Binary), 0, sp_iu).alias("_ident"),
        _cut(iu.cast(pl.Binary), sp_iu + 1).alias("_user"),
        pl.when(sp.is_null())
        .then(after)
        .otherwise(_cut(after.cast(pl.Binary), 0, sp))
        .alias("_bytes"),
        pl.when(sp.is_null())
        .then(pl.lit(""))
        .otherwise(_cut(after.cast(pl.Binary), sp + 1))
        .alias("_tail"),
    )
    tail = pl.col("_tail")
    q = _pos(tail, '" "')
    frame = frame.with_columns(
        _cut(tail.cast(pl.Binary), 1, q - 1).alias("_referrer"),
        _cut(tail.cast(pl.Binary), q + 3).alias("_rest"),
        q.alias("_q"),
    )
    rest = pl.col("_rest")
    q2 = _pos(rest, '"')
    frame = frame.with_columns(
        _cut(rest.cast(pl.Binary), 0, q2).alias("_agent"),
        _cut(rest.cast(pl.Binary), q2 + 1).alias("_extras"),
        q2.alias("_q2"),
    )
    common = tail.eq("")
    combined = (
        tail.str.starts_with('"')
        & pl.col("_q").is_not_null()
        & pl.col("_q2").is_not_null()
        & ~pl.col("_referrer").str.ends_with("\\")
        & ~pl.col("_agent").str.ends_with("\\")
        & (pl.col("_extras").eq("") | pl.col("_extras").str.starts_with(" "))
    )
    ok = (
        pl.col("_order").fill_null(False)
        & pl.col("_user").is_not_null()
        & pl.col("_bytes").str.contains(r"^(?:\d+|-)$").fill_null(False)
        & (common | combined.fill_null(False))
    )
    return frame.with_columns(
        ok.alias("_ok"),
        pl.when(common).then(None).otherwise(pl.col("_referrer")).alias("_referrer"),
        pl.when(common).then(None).otherwise(pl.col("_agent")).alias("_agent"),
        pl.when(common).then(pl.lit("")).otherwise(pl.col("_extras")).alias("_extras"),
    )


def _slow(lines: pl.DataFrame) -> pl.DataFrame:
    """The regular-expression path for lines the fast cut could not vouch for."""
    groups = pl.col("line").str.extract_groups(LINE_PATTERN).struct.rename_fields(list(_RAW))
    return lines.select("line", "line_no", groups.alias("_g")).unnest("_g")


def _unescape(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """Undo ``\\"`` and ``\\\\`` in the named columns (skipped when no value has a backslash)."""
    todo = [
        n for n in names if frame.select(pl.col(n).str.contains("\\", literal=True).any()).item()
    ]
    if not todo:
        return frame
    return frame.with_columns(pl.col(n).str.replace_all(r'\\(["\\])', "$1") for n in todo)


def _null_dash(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.eq("-")).then(None).otherwise(expr)


def _timestamp(ts: pl.Expr) -> pl.Expr:
    """``10/Oct/2000:13:55:36 -0700`` as UTC (no offset reads as UTC)."""
    naive = ts.str.slice(0, 20).str.strptime(pl.Datetime("us"), "%d/%b/%Y:%H:%M:%S", strict=False)
    offset = ts.str.slice(21, 5).cast(pl.Int64, strict=False)
    minutes = offset.sign() * ((offset.abs() // 100) * 60 + offset.abs() % 100)
    minutes = pl.when(ts.str.len_bytes().eq(20)).then(0).otherwise(minutes)
    valid = ts.str.len_bytes().is_in([20, 26])
    utc = (naive - pl.duration(minutes=minutes)).dt.replace_time_zone("UTC")
    return pl.when(valid).then(utc).otherwise(None)


def _request(frame: pl.DataFrame) -> pl.DataFrame:
    """Method, URL, version, path and query from the request line."""
    req = pl.col("_request")
    frame = frame.with_columns(
        pl.when(req.eq("-") | req.eq("")).then(None).otherwise(req).alias("_req")
    )
    req = pl.col("_req")
    sp = _pos(req, " ")
    tail9, tail7 = req.str.tail(9), req.str.tail(7)
    version = (
        pl.when(tail9.str.starts_with(" HTTP/"))
        .then(tail9.str.tail(3))
        .when(tail7.str.starts_with(" HTTP/"))
        .then(tail7.str.tail(1))
        .otherwise(None)
    )
    frame = frame.with_columns(
        _cut(req.cast(pl.Binary), 0, sp).alias("_method"),
        version.alias("_version"),
        sp.alias("_sp"),
        req.str.len_bytes().cast(pl.Int64).alias("_len"),
    )
    method = pl.col("_method")
    valid = method.str.contains(_METHOD).fill_null(False)
    url_len = (
        pl.col("_len")
        - pl.col("_sp")
        - 1
        - (pl.col("_version").str.len_bytes().cast(pl.Int64) + 6).fill_null(0)
    )
    url = _cut(req.cast(pl.Binary), pl.col("_sp") + 1, url_len)
    frame = frame.with_columns(
        pl.when(valid).then(method).otherwise(None).alias("http.request.method"),
        pl.when(valid).then(pl.col("_version")).otherwise(None).alias("http.version"),
        pl.when(valid).then(url).otherwise(req).alias("url.original"),
        valid.alias("_valid"),
    )
    url = pl.col("url.original")
    qm = _pos(url, "?")
    return frame.with_columns(
        pl.when(~pl.col("_valid"))
        .then(None)
        .when(qm.is_null())
        .then(url)
        .otherwise(_cut(url.cast(pl.Binary), 0, qm))
        .alias("url.path"),
        pl.when(pl.col("_valid") & qm.is_not_null())
        .then(_cut(url.cast(pl.Binary), qm + 1))
        .otherwise(None)
        .alias("url.query"),
    )


def _extras(frame: pl.DataFrame) -> pl.DataFrame:
    """Request time and X-Forwarded-For from the extra fields (only rows that have some)."""
    has = pl.col("_extras").str.len_bytes() > 0
    if not frame.select(has.any()).item():
        return frame.with_columns(
            pl.lit(None, pl.Int64).alias("event.duration"),
            pl.lit(None, pl.String).alias("client.ip"),
        )
    tokens = pl.col("_extras").str.extract_all(_EXTRA)
    bare = pl.element().str.contains(_NUMBER)
    unquoted = pl.element().str.strip_prefix('"').str.strip_suffix('"')
    seconds = (
        tokens.list.eval(pl.element().filter(bare)).list.first().cast(pl.Float64, strict=False)
    )
    xff = tokens.list.eval(unquoted.filter(unquoted.str.contains(_ADDRESS_LIST))).list.first()
    return frame.with_columns(
        (seconds * 1e9).round().cast(pl.Int64).alias("event.duration"),
        xff.str.extract(r"^([^,\s]+)").alias("client.ip"),
    )


def parse_access(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Parse access-log lines (columns ``line``, ``line_no``) into ``http.access`` events."""
    empty = pl.col("line").str.strip_chars().eq("")
    blank = lines.filter(empty)
    lines = lines.filter(~empty) if blank.height else lines
    fast = _fast(lines)
    keep = ["line", "line_no", *_RAW]
    all_ok = fast.select(pl.col("_ok").all()).item()
    good = fast.select(keep) if all_ok else fast.filter(pl.col("_ok")).select(keep)
    slow_in = fast.filter(~pl.col("_ok")).select("line", "line_no")
    rejects = [make_rejects(blank, RejectReason.EMPTY, FORMAT, ctx.source)] if blank.height else []
    if slow_in.height:
        slow = _slow(slow_in)
        matched = pl.col("_host").is_not_null()
        rejects.append(
            make_rejects(slow.filter(~matched), RejectReason.NO_MATCH, FORMAT, ctx.source)
        )
        rescued = slow.filter(matched).select(keep)
        if rescued.height:
            good = pl.concat([good, rescued]).sort("line_no")
    frame = _unescape(good, "_request", "_referrer", "_agent")
    frame = frame.with_columns(_timestamp(pl.col("_ts")).alias("@timestamp"))
    bad_ts = pl.col("@timestamp").is_null()
    if frame.select(bad_ts.any()).item():
        rejects.append(
            make_rejects(frame.filter(bad_ts), RejectReason.BAD_TIMESTAMP, FORMAT, ctx.source)
        )
        frame = frame.filter(~bad_ts)
    frame = _extras(_request(frame))
    host = pl.col("_host")
    is_ip = host.str.contains(r"^[0-9.]+$|:")
    batch = frame.with_columns(
        pl.when(is_ip).then(host).otherwise(None).alias("source.ip"),
        pl.when(is_ip).then(None).otherwise(host).alias("source.domain"),
        _null_dash(pl.col("_user")).alias("user.name"),
        pl.col("_status").cast(pl.Int64, strict=False).alias("http.response.status_code"),
        pl.col("_bytes").cast(pl.Int64, strict=False).alias("http.response.bytes"),
        _null_dash(pl.col("_referrer")).alias("http.request.referrer"),
        _null_dash(pl.col("_agent")).alias("user_agent.original"),
        pl.lit("http.access").alias("event.dataset"),
        pl.lit("request").alias("event.action"),
        pl.lit("event").alias("event.kind"),
        pl.lit("web").alias("event.category"),
        event_id(ctx).alias("event.id"),
    )
    rejected = pl.concat(rejects).sort("line_no") if rejects else empty_rejects()
    return Parsed(conform(batch), rejected)


def sniff_access(sample: list[str]) -> float:
    """Share of ``sample`` lines that read as access-log lines."""
    if not sample:
        return 0.0
    hits = pl.Series(sample, dtype=pl.String).str.contains(LINE_PATTERN).sum()
    return float(hits) / len(sample)
