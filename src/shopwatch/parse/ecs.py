"""NDJSON events in Elastic Common Schema names, nested (``{"source": {"ip": ..}}``) or dotted
(``{"source.ip": ..}``), mixed freely, even within one object.

Each line is decoded with orjson and flattened to dotted keys; columns are then built per
key and cast to the contract's dtypes in one vectorized step (``contract.conform``).
Polars' own ``str.json_decode`` is about twice as fast when it is handed the narrow schema
of one uniform stream (``bench.parse``), but it needs that schema up front, fails the whole
column on one invalid line or type clash, and is several times slower with the contract's
wide schema of every nested/dotted spelling; per-line decoding is the robust choice here. Keys that are not contract fields are dropped without counting. A value
that cannot be cast (a port ``"abc"``) becomes null; the event stays. An array value
becomes its items joined with ``,`` (``user.roles``).

Rejects: ``invalid_json``; ``not_an_object`` (valid JSON that is not an object);
``missing_field`` (no ``@timestamp`` or no ``event.dataset``); ``bad_timestamp`` (an
``@timestamp`` that is neither RFC 3339 nor epoch milliseconds, or is outside the years 1
to 9999 in UTC; RFC 3339 without an offset reads as UTC); ``too_deep`` (objects or arrays
nested more than :data:`MAX_DEPTH` levels); ``empty``. A number too big for its integer
field reads as null, like any other value that cannot be cast.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import orjson
import polars as pl

from shopwatch.contract import EVENT_SCHEMA, TIMESTAMP, conform, empty_events
from shopwatch.parse.base import (
    MAX_EPOCH_S,
    MIN_EPOCH_S,
    ParseContext,
    Parsed,
    RejectReason,
    empty_rejects,
    event_id,
    make_rejects,
    valid_time,
)

__all__ = ["MAX_DEPTH", "parse_ecs", "parse_timestamps", "sniff_ecs"]

FORMAT = "ecs"
_FIELDS = frozenset(EVENT_SCHEMA)
_RFC3339 = "%Y-%m-%dT%H:%M:%S%.f%z"
#: Objects nested deeper than this are ``too_deep`` rejects: no contract field is more than
#: a handful of levels down, and the depth costs nothing to check while flattening.
MAX_DEPTH = 32
_MIN_MS = MIN_EPOCH_S * 1000
_MAX_MS = MAX_EPOCH_S * 1000 + 999


class _TooDeep(Exception):
    """An object or array nested deeper than :data:`MAX_DEPTH`."""


def _flatten(obj: dict[str, Any]) -> dict[str, Any]:
    """Contract fields of ``obj`` under dotted keys, arrays as scalars (see :func:`_scalar`).

    Depth first in document order without recursion, so depth costs no Python stack;
    raises :class:`_TooDeep` past :data:`MAX_DEPTH`. When a nested and a dotted spelling
    name the same field, the one written last wins.
    """
    out: dict[str, Any] = {}
    stack: list[tuple[str, Iterator[tuple[str, Any]]]] = [("", iter(obj.items()))]
    while stack:
        prefix, items = stack[-1]
        for key, value in items:
            name = prefix + key
            if type(value) is dict:
                if len(stack) >= MAX_DEPTH:
                    raise _TooDeep
                stack.append((name + ".", iter(value.items())))
                break
            if name in _FIELDS:
                out[name] = _scalar(value, len(stack))
        else:
            stack.pop()
    return out


def _scalar(value: Any, depth: int) -> Any:
    """Arrays become their items joined with ``,`` (nested structures as JSON)."""
    if type(value) is list:  # the only non-scalar left after flattening
        if all(type(v) in (str, int, float, bool) for v in value):
            return ",".join(str(v) for v in value)
        if depth + _nesting(value) > MAX_DEPTH:
            raise _TooDeep
        return orjson.dumps(value).decode()
    return value


def _nesting(value: Any) -> int:
    """How many levels of arrays and objects ``value`` holds (iteratively)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return depth
        deepest = max(deepest, depth)
        children = node.values() if type(node) is dict else node
        stack.extend((v, depth + 1) for v in children if type(v) in (dict, list))
    return deepest


def parse_timestamps(values: pl.Series) -> pl.Series:
    """RFC 3339 strings (``Z`` or an offset; none reads as UTC) or epoch milliseconds, as UTC.

    Anything else, or a time outside the years 1 to 9999 in UTC, becomes null.
    """
    if values.dtype == TIMESTAMP:
        return _in_range(values)
    if values.dtype.is_numeric() and values.dtype != pl.Boolean:
        return _in_range(_from_ms(values.cast(pl.Int64, strict=False)))
    text = values.cast(pl.String, strict=False).str.strip_chars()
    frame = pl.DataFrame({"t": text})
    t = pl.col("t")
    iso = t.str.replace(r"[Zz]$", "+00:00").str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T")
    digits = t.str.contains(r"^-?\d{1,15}$")
    out = frame.select(
        pl.when(digits)
        .then(_ms_expr(t.cast(pl.Int64, strict=False)))
        .otherwise(
            pl.coalesce(
                iso.str.to_datetime(_RFC3339, time_unit="us", time_zone="UTC", strict=False),
                iso.str.to_datetime(
                    "%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False
                ).dt.replace_time_zone("UTC"),
            )
        )
        .alias("t")
    )
    return _in_range(out["t"])


def _ms_expr(ms: pl.Expr) -> pl.Expr:
    """Epoch milliseconds as UTC microseconds; null outside the years 1 to 9999 (checked
    before scaling, so a huge value cannot wrap around into range)."""
    fits = ms.is_between(_MIN_MS, _MAX_MS)
    scaled = pl.when(fits).then(ms).otherwise(None) * 1000
    return scaled.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _from_ms(ms: pl.Series) -> pl.Series:
    return pl.DataFrame({"ms": ms}).select(_ms_expr(pl.col("ms")))["ms"]


def _in_range(ts: pl.Series) -> pl.Series:
    """``ts`` with times outside the years 1 to 9999 (UTC) nulled."""
    frame = pl.DataFrame({"t": ts})
    t = pl.col("t")
    return frame.select(pl.when(valid_time(t)).then(t).otherwise(None))["t"].alias(ts.name)


def _column(name: str, values: list[Any]) -> pl.Series:
    """One contract column from Python values of any JSON type."""
    target = EVENT_SCHEMA[name]
    series = pl.Series(name, values, strict=False)
    if target == TIMESTAMP:
        return parse_timestamps(series).alias(name)
    if target == pl.Boolean and series.dtype != pl.Boolean:
        text = series.cast(pl.String, strict=False).str.to_lowercase()
        return text.replace_strict(
            {"true": True, "false": False, "1": True, "0": False},
            default=None,
            return_dtype=pl.Boolean,
        ).alias(name)
    if target == pl.String and series.dtype == pl.Boolean:
        return series.cast(pl.String).str.to_lowercase()
    if target.is_integer() and series.dtype == pl.String:
        # "443" and "443.0" both read as 443
        return (
            series.str.strip_chars()
            .cast(pl.Float64, strict=False)
            .cast(pl.Int64, strict=False)
            .alias(name)
        )
    if target.is_integer() and series.dtype.is_float():
        return series.cast(pl.Int64, strict=False)
    return series


def parse_ecs(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Parse NDJSON lines (columns ``line``, ``line_no``) into events of any contract dataset."""
    reasons: list[str | None] = []
    flats: list[dict[str, Any]] = []
    keys: set[str] = set()
    was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived dicts: the cyclic collector would only slow this down
    try:
        for text in lines["line"]:
            if text is None or not text.strip():
                reasons.append(RejectReason.EMPTY)
                continue
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError as err:  # orjson stops at 1,024 levels itself
                deep = str(err).startswith("depth limit")
                reasons.append(RejectReason.TOO_DEEP if deep else RejectReason.INVALID_JSON)
                continue
            if type(obj) is not dict:
                reasons.append(RejectReason.NOT_AN_OBJECT)
                continue
            try:
                flat = _flatten(obj)
            except _TooDeep:
                reasons.append(RejectReason.TOO_DEEP)
                continue
            if flat.get("@timestamp") is None or flat.get("event.dataset") is None:
                reasons.append(RejectReason.MISSING_FIELD)
                continue
            keys.update(flat)
            flats.append(flat)
            reasons.append(None)
        columns = {k: [f.get(k) for f in flats] for k in EVENT_SCHEMA if k in keys}
    finally:
        if was_enabled:
            gc.enable()
    status = pl.Series("_reason", reasons, dtype=pl.String)
    kept = lines.filter(status.is_null())
    frame = pl.DataFrame([_column(k, v) for k, v in columns.items()]) if columns else pl.DataFrame()
    frame = (
        frame.with_columns(kept["line_no"].alias("line_no"))
        if frame.width
        else kept.select("line_no")
    )
    bad_ts = (
        frame["@timestamp"].is_null()
        if "@timestamp" in frame.columns
        else pl.Series([], dtype=pl.Boolean)
    )
    rejects = lines.with_columns(status).filter(pl.col("_reason").is_not_null())
    if bad_ts.any():
        bad = kept.filter(bad_ts).with_columns(
            pl.lit(RejectReason.BAD_TIMESTAMP.value).alias("_reason")
        )
        rejects = pl.concat([rejects, bad]).sort("line_no")
        frame = frame.filter(~bad_ts)
    if "event.id" in frame.columns:
        frame = frame.with_columns(pl.coalesce(pl.col("event.id"), event_id(ctx)).alias("event.id"))
    elif frame.height:
        frame = frame.with_columns(event_id(ctx).alias("event.id"))
    batch = conform(frame) if frame.height else empty_events()
    out = (
        make_rejects(rejects, pl.col("_reason"), FORMAT, ctx.source)
        if rejects.height
        else empty_rejects()
    )
    return Parsed(batch, out)


def sniff_ecs(sample: list[str]) -> float:
    """Share of ``sample`` lines that are JSON objects with an ``@timestamp``."""
    if not sample:
        return 0.0
    hits = 0
    for text in sample:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "@timestamp" in obj:
            hits += 1
    return hits / len(sample)
