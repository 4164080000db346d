"""Web server access logs: the "combined" and "common" formats (nginx, Apache).

``%h %l %u %t "%r" %>s %b`` (common), then ``"%{Referer}i" "%{User-Agent}i"``
(combined), then any extra quoted or bare fields. Among the extras, the first bare number
is the request time in seconds (nginx ``$request_time``, ``0.123``; an integer reads as
whole seconds, as Apache's ``%T``) and the first field that is a list of IP addresses
(``"1.2.3.4, 10.0.0.1"``) is X-Forwarded-For, whose first address becomes ``client.ip``.
Other extras (upstream times, ...) are read past.

Two paths, both vectorized: a fast one that splits well-formed lines (no backslash, a
:data:`FAST_PREFIX`, plain common or combined shape) on ``"`` and reads the pieces with a
few cheap passes and one ``strptime``, and a regular expression for the rest (escaped ``\\"`` inside fields, an extra
unescaped ``"`` inside the request, a status of ``-``...). A line neither path reads is a
``no_match`` reject (a truncated line, for instance); a timestamp that does not parse, or
falls outside the years 1 to 9999 once read as UTC, is a ``bad_timestamp`` reject; a
response size beyond 64-bit integers or a request time too long to count in nanoseconds
(``1e11`` s) is ``bad_number``; a blank line is ``empty``.

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
    int_overflowed,
    make_rejects,
    seconds_to_ns,
    valid_time,
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
#: The start of a line the fast path may cut, up to the request's opening quote: no quote
#: or space in host, ident and user, and a strict timestamp.
FAST_PREFIX = (
    r'^[^\s"]+ [^\s"]+ [^\s"\[]+ '
    r"\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} "
    r'[+-](?:[01][0-9]|2[0-3])[0-5][0-9]\] "'
)
#: Between the request and the referrer (or the end): status, bytes, bare extras.
_MID = r'^ [0-9]{3} (?:[0-9]+|-)(?: +[^\s"]+)* *$'
#: After the user agent: extras, quoted (no escapes) or bare.
_EXTRAS = r'^(?: +(?:"[^"]*"|[^\s"]+))* *$'
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
#: Extras that are at most one bare number: the request time and nothing else.
_ONE_NUMBER = r"^ *(?:[0-9]+(?:\.[0-9]+)? *)?$"
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
    """Cut every line at its ``"`` and spaces; ``_ok`` says whether the cut is trustworthy.

    ``_ok`` holds for lines with no backslash, a :data:`FAST_PREFIX`, and after the request
    either the common format's status, bytes and bare extras, or the combined format's
    status, bytes, referrer, user agent and extras (quoted or bare): the lines the regular
    expression would read the same way. Each step materialises what the next one reuses
    (an eager ``select`` computes a repeated expression once per use).
    """
    line = pl.col("line")
    frame = lines.select(
        "line",
        "line_no",
        (line.str.contains(FAST_PREFIX) & ~line.str.contains("\\", literal=True)).alias("_shape"),
        line.str.split('"').alias("_parts"),
    )
    parts = pl.col("_parts")
    frame = frame.with_columns(
        parts.list.len().alias("_n"),
        parts.list.get(0, null_on_oob=True).alias("_pre"),
        parts.list.get(1, null_on_oob=True).alias("_request"),
        parts.list.get(2, null_on_oob=True).alias("_mid"),
        parts.list.get(3, null_on_oob=True).alias("_referrer"),
        parts.list.get(4, null_on_oob=True).alias("_gap"),
        parts.list.get(5, null_on_oob=True).alias("_agent"),
        parts.list.get(6, null_on_oob=True).alias("_extras"),
    )
    if frame.select(pl.col("_n").max() > 7).item():  # quoted extras: join them back
        frame = frame.with_columns(parts.list.slice(6).list.join('"').alias("_extras"))
    pre, mid = pl.col("_pre"), pl.col("_mid")
    frame = frame.with_columns(
        pre.str.splitn(" ", 4).alias("_words"),  # host, ident, user, "[timestamp] "
        mid.str.slice(1, 3).alias("_status"),
        mid.str.slice(5).alias("_after"),  # bytes and, in the common format, bare extras
        mid.str.contains(_MID).fill_null(False).alias("_mid_ok"),
    )
    words, after = pl.col("_words"), pl.col("_after")
    frame = frame.with_columns(
        words.struct.field("field_0").alias("_host"),
        words.struct.field("field_1").alias("_ident"),
        words.struct.field("field_2").alias("_user"),
        words.struct.field("field_3").str.slice(1, 26).alias("_ts"),
        _pos(after, " ").alias("_sp"),
    )
    sp, n = pl.col("_sp"), pl.col("_n")
    frame = frame.with_columns(
        pl.when(sp.is_null()).then(after).otherwise(after.str.slice(0, sp)).alias("_bytes"),
        pl.when(sp.is_null()).then(pl.lit("")).otherwise(after.str.slice(sp)).alias("_tail"),
    )
    combined = (
        pl.col("_tail").eq(" ")
        & (n >= 7)
        & pl.col("_gap").eq(" ")
        & pl.col("_extras").str.contains(_EXTRAS).fill_null(False)
    )
    frame = frame.with_columns(combined.alias("_combined"))
    c = pl.col("_combined")
    return frame.with_columns(
        (pl.col("_shape") & pl.col("_mid_ok") & (c | n.eq(3))).alias("_ok"),
        pl.when(c).then(pl.col("_referrer")).otherwise(None).alias("_referrer"),
        pl.when(c).then(pl.col("_agent")).otherwise(None).alias("_agent"),
        pl.when(c).then(pl.col("_extras")).otherwise(pl.col("_tail")).alias("_extras"),
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
    """Method, URL, version, path and query from the request line.

    When every request is ``METHOD URL HTTP/x[.y]`` (two spaces), the three words are read
    from one split; otherwise by byte offsets, which also handle spaces in the URL.
    """
    req = pl.col("_request")
    frame = frame.with_columns(
        pl.when(req.eq("-") | req.eq("")).then(None).otherwise(req).alias("_req")
    )
    frame = frame.with_columns(pl.col("_req").str.split(" ").alias("_words"))
    words = pl.col("_words")
    frame = frame.with_columns(
        words.list.len().alias("_n"),
        words.list.get(0, null_on_oob=True).alias("_method"),
        words.list.get(1, null_on_oob=True).alias("_url"),
        words.list.get(2, null_on_oob=True).alias("_proto"),
    )
    proto = pl.col("_proto")
    plain = (
        pl.col("_n").eq(3) & proto.str.starts_with("HTTP/") & proto.str.len_bytes().is_in([6, 8])
    )
    if not frame.select((pl.col("_req").is_null() | plain).all()).item():
        return _request_general(frame)
    frame = frame.with_columns(
        pl.col("_method").str.contains(_METHOD).fill_null(False).alias("_valid"),
        pl.col("_url").str.splitn("?", 2).alias("_pq"),
    )
    valid, pq = pl.col("_valid"), pl.col("_pq")
    return frame.with_columns(
        pl.when(valid).then(pl.col("_method")).otherwise(None).alias("http.request.method"),
        pl.when(valid).then(proto.str.slice(5)).otherwise(None).alias("http.version"),
        pl.when(valid).then(pl.col("_url")).otherwise(pl.col("_req")).alias("url.original"),
        pl.when(valid).then(pq.struct.field("field_0")).otherwise(None).alias("url.path"),
        pl.when(valid).then(pq.struct.field("field_1")).otherwise(None).alias("url.query"),
    )


def _request_general(frame: pl.DataFrame) -> pl.DataFrame:
    """Method, URL, version, path and query from any request line (``_req``)."""
    req = pl.col("_req")
    frame = frame.with_columns(
        _pos(req, " ").alias("_sp"),
        req.str.tail(9).alias("_tail9"),
        req.str.len_bytes().cast(pl.Int64).alias("_len"),
    )
    tail9 = pl.col("_tail9")
    tail7 = tail9.str.tail(7)
    version = (
        pl.when(tail9.str.starts_with(" HTTP/"))
        .then(tail9.str.tail(3))
        .when(tail7.str.starts_with(" HTTP/"))
        .then(tail7.str.tail(1))
        .otherwise(None)
    )
    frame = frame.with_columns(
        _cut(req.cast(pl.Binary), 0, pl.col("_sp")).alias("_method"),
        version.alias("_version"),
    )
    tail_len = (pl.col("_version").str.len_bytes().cast(pl.Int64) + 6).fill_null(0)
    frame = frame.with_columns(
        pl.col("_method").str.contains(_METHOD).fill_null(False).alias("_valid"),
        # "GET HTTP/1.1": the version's space is the method's, so there is no version
        pl.when(pl.col("_len") - pl.col("_sp") - 1 - tail_len < 0)
        .then(None)
        .otherwise(pl.col("_version"))
        .alias("_version"),
    )
    valid = pl.col("_valid")
    url_len = pl.col("_len") - pl.col("_sp") - 1 - tail_len
    url = _cut(req.cast(pl.Binary), pl.col("_sp") + 1, url_len)
    frame = frame.with_columns(
        pl.when(valid).then(pl.col("_method")).otherwise(None).alias("http.request.method"),
        pl.when(valid).then(pl.col("_version")).otherwise(None).alias("http.version"),
        pl.when(valid).then(url).otherwise(req).alias("url.original"),
    )
    url = pl.col("url.original")
    frame = frame.with_columns(_pos(url, "?").alias("_qm"))
    qm = pl.col("_qm")
    return frame.with_columns(
        pl.when(~valid)
        .then(None)
        .when(qm.is_null())
        .then(url)
        .otherwise(_cut(url.cast(pl.Binary), 0, qm))
        .alias("url.path"),
        pl.when(valid & qm.is_not_null())
        .then(_cut(url.cast(pl.Binary), qm + 1))
        .otherwise(None)
        .alias("url.query"),
    )


def _extras(frame: pl.DataFrame) -> pl.DataFrame:
    """Request time and X-Forwarded-For from the extra fields.

    When every row's extras are at most one bare number (nginx ``$request_time``), that
    number is the duration and there is no X-Forwarded-For, without tokenising.
    """
    extras = pl.col("_extras")
    has, plain = frame.select(
        (extras.str.len_bytes() > 0).any().alias("has"),
        extras.str.contains(_ONE_NUMBER).all().alias("plain"),
    ).row(0)
    if not has:
        return frame.with_columns(
            pl.lit(None, pl.Float64).alias("_seconds"),
            pl.lit(None, pl.Int64).alias("event.duration"),
            pl.lit(None, pl.String).alias("client.ip"),
        )
    if plain:
        seconds = extras.str.strip_chars(" ").cast(pl.Float64, strict=False)
        return frame.with_columns(
            seconds.alias("_seconds"),
            seconds_to_ns(seconds).alias("event.duration"),
            pl.lit(None, pl.String).alias("client.ip"),
        )
    tokens = extras.str.extract_all(_EXTRA)
    bare = pl.element().str.contains(_NUMBER)
    unquoted = pl.element().str.strip_prefix('"').str.strip_suffix('"')
    seconds = (
        tokens.list.eval(pl.element().filter(bare)).list.first().cast(pl.Float64, strict=False)
    )
    xff = tokens.list.eval(unquoted.filter(unquoted.str.contains(_ADDRESS_LIST))).list.first()
    return frame.with_columns(
        seconds.alias("_seconds"),
        seconds_to_ns(seconds).alias("event.duration"),
        xff.str.extract(r"^([^,\s]+)").alias("client.ip"),
    )


def _fast_timestamp(ts: pl.Expr) -> pl.Expr:
    """A timestamp :data:`FAST_PREFIX` vouched for (``10/Oct/2000:13:55:36 -0700``) as UTC."""
    return ts.str.strptime(pl.Datetime("us", "UTC"), "%d/%b/%Y:%H:%M:%S %z", strict=False)


def parse_access(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Parse access-log lines (columns ``line``, ``line_no``) into ``http.access`` events."""
    fast = _fast(lines)
    keep = ["line", "line_no", *_RAW]
    all_ok = fast.select(pl.col("_ok").all()).item()
    good = fast.select(keep) if all_ok else fast.select(*keep, "_ok").filter("_ok").drop("_ok")
    good = good.with_columns(_fast_timestamp(pl.col("_ts")).alias("@timestamp"))
    rejects = []
    if not all_ok:
        rest = fast.select("line", "line_no", "_ok").filter(~pl.col("_ok")).drop("_ok")
        empty = pl.col("line").str.strip_chars().eq("")
        blank = rest.filter(empty)
        if blank.height:
            rejects.append(make_rejects(blank, RejectReason.EMPTY, FORMAT, ctx.source))
            rest = rest.filter(~empty)
        slow = _slow(rest)
        matched = pl.col("_host").is_not_null()
        rejects.append(
            make_rejects(slow.filter(~matched), RejectReason.NO_MATCH, FORMAT, ctx.source)
        )
        rescued = _unescape(slow.filter(matched).select(keep), "_request", "_referrer", "_agent")
        if rescued.height:
            rescued = rescued.with_columns(_timestamp(pl.col("_ts")).alias("@timestamp"))
            good = pl.concat([good, rescued]).sort("line_no")
    frame = good
    bad_ts = ~valid_time(pl.col("@timestamp"))
    if frame.select(bad_ts.any()).item():
        rejects.append(
            make_rejects(frame.filter(bad_ts), RejectReason.BAD_TIMESTAMP, FORMAT, ctx.source)
        )
        frame = frame.filter(~bad_ts)
    frame = _extras(_request(frame))
    frame = frame.with_columns(pl.col("_bytes").cast(pl.Int64, strict=False).alias("_bytes_n"))
    bad_number = (pl.col("_seconds").is_not_null() & pl.col("event.duration").is_null()) | (
        int_overflowed(pl.col("_bytes"), pl.col("_bytes_n"))
    )
    if frame.select(bad_number.any()).item():
        rejects.append(
            make_rejects(frame.filter(bad_number), RejectReason.BAD_NUMBER, FORMAT, ctx.source)
        )
        frame = frame.filter(~bad_number)
    host = pl.col("_host")
    frame = frame.with_columns(host.str.contains(r"^[0-9.]+$|:").alias("_is_ip"))
    is_ip = pl.col("_is_ip")
    batch = frame.with_columns(
        pl.when(is_ip).then(host).otherwise(None).alias("source.ip"),
        pl.when(is_ip).then(None).otherwise(host).alias("source.domain"),
        _null_dash(pl.col("_user")).alias("user.name"),
        pl.col("_status").cast(pl.Int64, strict=False).alias("http.response.status_code"),
        pl.col("_bytes_n").alias("http.response.bytes"),
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
