"""AWS VPC flow logs, version 2 default format, space separated, with or without the header.

``version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes
start end action log-status``. ``@timestamp`` is ``start`` (epoch seconds),
``event.duration`` is ``end - start`` in nanoseconds. A header line (it starts with
``version account-id``) is neither an event nor a reject: ``Parsed.skipped`` counts it,
so ``batch.height + rejects.height + skipped`` is the number of lines. ``NODATA`` and
``SKIPDATA`` records carry no flow and are rejects with reason ``no_data``; a line with
another field count or log status is ``no_match``. A ``start`` or ``end`` that is not an
epoch second of the years 1 to 9999 is ``bad_timestamp``; a port, protocol, packet or byte
count beyond 64-bit integers is ``bad_number``.
"""

from __future__ import annotations

import polars as pl

from shopwatch.contract import conform, empty_events
from shopwatch.parse.base import (
    MAX_EPOCH_S,
    MIN_EPOCH_S,
    ParseContext,
    Parsed,
    RejectReason,
    empty_rejects,
    event_id,
    int_overflowed,
    make_rejects,
)

__all__ = ["HEADER", "parse_vpcflow", "sniff_vpcflow"]

FORMAT = "vpcflow"
HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
_NAMES = [
    "_version",
    "_account",
    "_eni",
    "_src",
    "_dst",
    "_sport",
    "_dport",
    "_proto",
    "_packets",
    "_bytes",
    "_start",
    "_end",
    "_action",
    "_status",
]
LINE_PATTERN = (
    r"^\s*(\d+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\s*$"
)
#: The longest flow whose duration still fits Int64 nanoseconds.
_MAX_SPAN_S = (2**63 - 1) // 1_000_000_000
_TRANSPORT = {"6": "tcp", "17": "udp", "1": "icmp"}


def _dash(name: str) -> pl.Expr:
    return pl.when(pl.col(name).eq("-")).then(None).otherwise(pl.col(name))


def parse_vpcflow(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    """Parse flow-log lines (columns ``line``, ``line_no``) into ``network.flow`` events."""
    line = pl.col("line")
    header = line.str.strip_chars_start().str.starts_with("version account-id")
    skipped = int(lines.select(header.sum()).item())
    if skipped:
        lines = lines.filter(~header)
    empty = line.str.strip_chars().eq("")
    frame = lines.with_columns(
        line.str.extract_groups(LINE_PATTERN).struct.rename_fields(_NAMES).alias("_g")
    ).unnest("_g")
    status = pl.col("_status")
    start = pl.col("_start").cast(pl.Int64, strict=False)
    end = pl.col("_end").cast(pl.Int64, strict=False)
    in_range = start.is_between(MIN_EPOCH_S, MAX_EPOCH_S)
    end_ok = end.is_null() | end.is_between(MIN_EPOCH_S, MAX_EPOCH_S)
    numbers = ["_sport", "_dport", "_proto", "_packets", "_bytes"]
    overflow = pl.any_horizontal(
        *(int_overflowed(pl.col(n), pl.col(n).cast(pl.Int64, strict=False)) for n in numbers),
        # end - start in nanoseconds must fit 64 bits (about 292 years)
        (end - start).abs().gt(_MAX_SPAN_S).fill_null(False),
    )
    reason = (
        pl.when(empty)
        .then(pl.lit(RejectReason.EMPTY.value))
        .when(pl.col("_version").is_null() | ~status.is_in(["OK", "NODATA", "SKIPDATA"]))
        .then(pl.lit(RejectReason.NO_MATCH.value))
        .when(status.ne("OK"))
        .then(pl.lit(RejectReason.NO_DATA.value))
        .when(start.is_null() | ~in_range | (int_overflowed(pl.col("_end"), end) | ~end_ok))
        .then(pl.lit(RejectReason.BAD_TIMESTAMP.value))
        .when(overflow)
        .then(pl.lit(RejectReason.BAD_NUMBER.value))
        .otherwise(None)
    )
    frame = frame.with_columns(reason.alias("_reason"))
    bad = frame.filter(pl.col("_reason").is_not_null())
    good = frame.filter(pl.col("_reason").is_null())
    action = pl.col("_action").str.to_lowercase()
    proto = _dash("_proto")
    batch = good.with_columns(
        (start * 1_000_000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("@timestamp"),
        ((end - start) * 1_000_000_000).alias("event.duration"),
        _dash("_account").alias("cloud.account.id"),
        _dash("_eni").alias("observer.ingress.interface.name"),
        _dash("_src").alias("source.ip"),
        _dash("_dst").alias("destination.ip"),
        _dash("_sport").cast(pl.Int64, strict=False).alias("source.port"),
        _dash("_dport").cast(pl.Int64, strict=False).alias("destination.port"),
        proto.cast(pl.Int64, strict=False).alias("network.iana_number"),
        proto.replace_strict(_TRANSPORT, default=None, return_dtype=pl.String).alias(
            "network.transport"
        ),
        _dash("_packets").cast(pl.Int64, strict=False).alias("network.packets"),
        _dash("_bytes").cast(pl.Int64, strict=False).alias("network.bytes"),
        pl.lit("network.flow").alias("event.dataset"),
        pl.when(action.is_in(["accept", "reject"]))
        .then(action)
        .otherwise(None)
        .alias("event.action"),
        pl.when(action.eq("accept"))
        .then(pl.lit("success"))
        .when(action.eq("reject"))
        .then(pl.lit("failure"))
        .otherwise(None)
        .alias("event.outcome"),
        pl.lit("event").alias("event.kind"),
        pl.lit("network").alias("event.category"),
        event_id(ctx).alias("event.id"),
    )
    rejects = (
        make_rejects(bad, pl.col("_reason"), FORMAT, ctx.source) if bad.height else empty_rejects()
    )
    return Parsed(conform(batch) if batch.height else empty_events(), rejects, skipped)


def sniff_vpcflow(sample: list[str]) -> float:
    """Share of ``sample`` lines that are flow records (or the header) with a known status."""
    if not sample:
        return 0.0
    s = pl.Series(sample, dtype=pl.String)
    g = s.str.extract_groups(LINE_PATTERN).struct.rename_fields(_NAMES).struct.unnest()
    record = (
        g["_status"].is_in(["OK", "NODATA", "SKIPDATA"]).fill_null(False)
        & g["_version"].is_not_null()
    )
    header = s.str.strip_chars().eq(HEADER)
    return float((record | header).sum()) / len(sample)
