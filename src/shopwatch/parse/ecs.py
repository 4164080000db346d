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
``@timestamp`` that is neither RFC 3339 nor epoch milliseconds; RFC 3339 without an
offset reads as UTC); ``empty``.
"""

from __future__ import annotations

import gc
from typing import Any

import orjson
import polars as pl

from shopwatch.contract import EVENT_SCHEMA, TIMESTAMP, conform, empty_events
from shopwatch.parse.base import (
    ParseContext,
    Parsed,
    RejectReason,
    empty_rejects,
    event_id,
    make_rejects,
)

__all__ = ["parse_ecs", "parse_timestamps", "sniff_ecs"]

FORMAT = "ecs"
_FIELDS = frozenset(EVENT_SCHEMA)
_RFC3339 = "%Y-%m-%dT%H:%M:%S%.f%z"


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in obj.items():
        if type(value) is dict:
            _flatten(value, f"{prefix}{key}.", out)
        else:
            out[prefix + key] = value


def _scalar(value: Any) -> Any:
    """Arrays become their items joined with ``,`` (nested structures as JSON)."""
    if type(value) is list:  # the only non-scalar left after flattening
        if all(type(v) in (str, int, float, bool) for v in value):
            return ",".join(str(v) for v in value)
        return orjson.dumps(value).decode()
    return value


def parse_timestamps(values: pl.Series) -> pl.Series:
    """RFC 3339 strings (``Z`` or an offset; none reads as UTC) or epoch milliseconds, as UTC.

    Anything else (or out of range) becomes null.
    """
    if values.dtype == TIMESTAMP:
        return values
    if values.dtype.is_numeric() and values.dtype != pl.Boolean:
        ms = values.cast(pl.Int64, strict=False)
        return ms.cast(pl.Datetime("ms")).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    text = values.cast(pl.String, strict=False).str.strip_chars()
    frame = pl.DataFrame({"t": text})
    t = pl.col("t")
    iso = t.str.replace(r"[Zz]$", "+00:00").str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T")
    digits = t.str.contains(r"^-?\d{1,15}$")
    out = frame.select(
        pl.when(digits)
        .then(
            t.cast(pl.Int64, strict=False)
            .cast(pl.Datetime("ms"))
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC")
        )
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
    return out["t"]


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
            except orjson.JSONDecodeError:
                reasons.append(RejectReason.INVALID_JSON)
                continue
            if type(obj) is not dict:
                reasons.append(RejectReason.NOT_AN_OBJECT)
                continue
            flat: dict[str, Any] = {}
            _flatten(obj, "", flat)
            if flat.get("@timestamp") is None or flat.get("event.dataset") is None:
                reasons.append(RejectReason.MISSING_FIELD)
                continue
            keys.update(flat)
            flats.append(flat)
            reasons.append(None)
        columns = {k: [_scalar(f.get(k)) for f in flats] for k in EVENT_SCHEMA if k in keys}
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
