"""The CSIC 2010 HTTP dataset: run the engine over its requests, score each request.

The files are raw HTTP/1.1 requests, concatenated (read by
:mod:`shopwatch.evaluate.http_requests`). The label is the file: normal training traffic,
normal test traffic, attacks. Every request of a test file has a prediction at its
position in the file; one that cannot be read is not fed to the engine and counts as not
flagged (score 0), so the denominators and the numbering are those of the file.

Scoring is per request. CSIC carries no client addresses, so each request is given its
own address from the benchmarking range ``198.18.0.0/15`` (RFC 2544, never routed) and its
own event id: per-address windows then neither merge an attack with normal requests nor
credit one request's alert to another, and a request counts as flagged exactly when an
alert's ``event.ids`` names it. Requests are one second apart in the order they are fed:
the training file first (its alerts are discarded, it only lets detectors that learn
normal traffic learn), then the normal and anomalous test files interleaved evenly and
deterministically (:func:`interleave`), so that no time-based state can tell the two test
files apart by when their requests arrive.
"""

from __future__ import annotations

import ipaddress
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from shopwatch.config import Settings, load_settings
from shopwatch.contract import conform, empty_alerts
from shopwatch.errors import ConfigError
from shopwatch.evaluate.http_requests import EPOCH, RequestFile, read_requests
from shopwatch.pipeline.merge import expand_matches

__all__ = [
    "FP_LEVELS",
    "CsicEvaluation",
    "RequestFile",
    "detection_at_fp",
    "evaluate_csic",
    "interleave",
    "read_requests",
]

#: False-positive rates at which :func:`detection_at_fp` reports the best detection rate.
FP_LEVELS: Final[tuple[float, ...]] = (0.001, 0.005, 0.01)

#: The first client address given to a request; request ``k`` gets ``CLIENT_BASE + k``.
CLIENT_BASE: Final = ipaddress.IPv4Address("198.18.0.0")
CLIENT_RANGE: Final = 2**17  # 198.18.0.0/15

#: Requests per engine batch (the engine gives the same alerts however they are cut).
BATCH_SIZE: Final = 10_000


def interleave(n_normal: int, n_anomalous: int) -> pl.DataFrame:
    """The feeding order of the test requests: columns ``file`` and ``index``.

    Request ``i`` of a file of ``n`` requests sits at ``(i + 1/2) / n`` of the run; the
    two files are merged by that position (normal first on a tie), so both are spread
    evenly over the same span of event time.

    >>> interleave(2, 1).rows()
    [('normal', 0), ('anomalous', 0), ('normal', 1)]
    """
    normal = pl.DataFrame(
        {"file": "normal", "index": pl.int_range(n_normal, eager=True), "_side": 0}
    ).with_columns(_key=(2 * pl.col("index") + 1) * n_anomalous)
    anomalous = pl.DataFrame(
        {"file": "anomalous", "index": pl.int_range(n_anomalous, eager=True), "_side": 1}
    ).with_columns(_key=(2 * pl.col("index") + 1) * n_normal)
    both = pl.concat([normal, anomalous]).cast({"index": pl.Int64, "_key": pl.Int64})
    return both.sort("_key", "_side").select("file", "index")


def detection_at_fp(
    normal: Sequence[float] | np.ndarray,
    anomalous: Sequence[float] | np.ndarray,
    levels: Sequence[float] = FP_LEVELS,
) -> dict[str, float]:
    """The best detection rate at each false-positive level, over score thresholds.

    A request is flagged when its score is at least the threshold. Thresholds are every
    score seen, and one above the highest (which flags nothing, so every level has an
    answer). Keys are the levels as text (``"0.001"``).

    >>> detection_at_fp([0, 0, 0, 5], [0, 5, 9, 9], levels=[0.0, 0.25])
    {'0.0': 0.5, '0.25': 0.75}
    """
    norm = np.asarray(normal, dtype=float)
    anom = np.asarray(anomalous, dtype=float)
    seen = np.concatenate([norm, anom])
    top = float(seen.max()) if seen.size else 0.0
    thresholds = np.append(np.unique(seen), top + 1.0)
    fpr = np.array([(norm >= t).mean() if norm.size else 0.0 for t in thresholds])
    tpr = np.array([(anom >= t).mean() if anom.size else 0.0 for t in thresholds])
    return {str(level): float(tpr[fpr <= level].max()) for level in levels}


@dataclass
class CsicEvaluation:
    """The figures of one run, and one prediction per test request."""

    figures: dict[str, Any]
    #: ``file`` (normal / anomalous), ``index`` (the request's position in that file, from
    #: 0, counting unreadable requests too), ``flagged``, ``score``, ``rejected`` (1 for a
    #: request that could not be read: never flagged, score 0); in file order, the normal
    #: file's requests, then the anomalous file's.
    predictions: pl.DataFrame


def _prepared(read: RequestFile, role: str, first_address: int) -> pl.DataFrame:
    """The events of ``read`` with ids ``<role>:<position>``, one client address per request.

    Request ``k`` of the file gets address ``first_address + k`` of the range.
    """
    if read.requests + first_address > CLIENT_RANGE:
        raise ConfigError(
            f"more than {CLIENT_RANGE:,} requests in all: too many to give each its own "
            "client address; evaluate smaller files"
        )
    positions = read.positions()
    base = int(CLIENT_BASE) + first_address
    addresses = [str(ipaddress.IPv4Address(base + k)) for k in positions]
    return read.batch.with_columns(
        pl.Series("event.id", [f"{role}:{k}" for k in positions], dtype=pl.String()),
        pl.Series("source.ip", addresses, dtype=pl.String()),
        pl.Series("_index", positions, dtype=pl.Int64()),
    )


def _timed(batch: pl.DataFrame, first_second: int) -> pl.DataFrame:
    seconds = pl.int_range(pl.len()).cast(pl.Int64) + first_second
    return batch.with_columns(
        (pl.lit(EPOCH) + pl.duration(seconds=seconds))
        .cast(pl.Datetime("us", "UTC"))
        .alias("@timestamp")
    )


def evaluate_csic(
    train: RequestFile,
    normal: RequestFile,
    anomalous: RequestFile,
    *,
    settings: Settings | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> CsicEvaluation:
    """Run the full default engine over the three files and score the test requests.

    The engine is the one ``replay`` builds from ``settings`` (defaults and environment
    when ``None``: every enabled detector and enricher, crawler DNS off), always with a
    temporary data folder in place of ``settings.data_dir``, so that nothing is read from
    or written to a data folder. Unreadable requests are not fed. ``on_progress`` is told
    how many requests each batch held.
    """
    from shopwatch.pipeline.build import build_engine

    train_events = _timed(_prepared(train, "train", 0).drop("_index"), 0)
    offset = train.requests
    normal_events = _prepared(normal, "normal", offset)
    anomalous_events = _prepared(anomalous, "anomalous", offset + normal.requests)
    tagged = pl.concat(
        [
            events.with_columns(pl.lit(role).alias("_file"))
            for role, events in (("normal", normal_events), ("anomalous", anomalous_events))
        ]
    )
    order = interleave(normal.requests, anomalous.requests)
    test_events = order.rename({"file": "_file", "index": "_index"}).join(
        tagged, on=["_file", "_index"], how="inner", maintain_order="left"
    )
    test_events = _timed(conform(test_events), offset)

    alerts: list[pl.DataFrame] = []
    discarded = 0
    base = settings if settings is not None else load_settings(None)
    with tempfile.TemporaryDirectory(prefix="shopwatch-csic-") as data_dir:
        engine = build_engine(base.model_copy(update={"data_dir": Path(data_dir)}))
        try:
            for events, keep in ((train_events, False), (test_events, True)):
                for batch in events.iter_slices(BATCH_SIZE):
                    found = engine.process(batch)
                    if keep:
                        alerts.append(found.select("rule.id", "risk_score", "event.ids", "details"))
                    else:
                        discarded += found.height
                    if on_progress is not None:
                        on_progress(batch.height)
        finally:
            engine.close()
    return _score(train, normal, anomalous, alerts, discarded)


def _requests(read: RequestFile, role: str) -> pl.DataFrame:
    """One row per request of ``read``: ``file``, ``index`` (position) and ``rejected``."""
    index = pl.int_range(read.requests, eager=True, dtype=pl.Int64)
    return pl.DataFrame({"file": role, "index": index}).with_columns(
        pl.col("index").is_in(list(read.rejected_positions)).cast(pl.Int8).alias("rejected")
    )


def _hits(alerts: pl.DataFrame) -> pl.DataFrame:
    """One row per (alert, test request it names): ``rule.id``, ``risk_score``, file, index."""
    return (
        alerts.explode("event.ids")
        .rename({"event.ids": "event.id"})
        .filter(pl.col("event.id").str.contains("^(normal|anomalous):"))
        .with_columns(
            pl.col("event.id").str.extract("^([a-z]+):", 1).alias("file"),
            pl.col("event.id").str.extract(":([0-9]+)$", 1).cast(pl.Int64).alias("index"),
        )
    )


def _score(
    train: RequestFile,
    normal: RequestFile,
    anomalous: RequestFile,
    alerts: list[pl.DataFrame],
    discarded: int,
) -> CsicEvaluation:
    columns = ("rule.id", "risk_score", "event.ids", "details")
    found = pl.concat([empty_alerts().select(columns), *alerts])
    hits = _hits(found.drop("details"))
    # by rule: a folded alert (one request, several signatures) counts for each of them
    by_rule = _hits(expand_matches(found))
    requests = pl.concat([_requests(normal, "normal"), _requests(anomalous, "anomalous")])
    best = hits.group_by("file", "index").agg(pl.col("risk_score").max().alias("score"))
    predictions = requests.join(best, on=["file", "index"], how="left", maintain_order="left")
    predictions = predictions.select(
        "file",
        "index",
        pl.col("score").is_not_null().alias("flagged"),
        pl.col("score").fill_null(0).cast(pl.Int64),
        "rejected",
    )
    normal_pred = predictions.filter(pl.col("file") == "normal")
    anom_pred = predictions.filter(pl.col("file") == "anomalous")
    per_rule = (
        by_rule.unique(["rule.id", "file", "index"])
        .group_by("rule.id")
        .agg(
            (pl.col("file") == "anomalous").sum().alias("anomalous"),
            (pl.col("file") == "normal").sum().alias("normal"),
        )
        .sort(["anomalous", "normal", "rule.id"], descending=[True, True, False])
    )
    rule_rows = [(str(r), int(a), int(n)) for r, a, n in per_rule.iter_rows()]
    figures: dict[str, Any] = {
        "scoring": "per_request",
        "detection_rate": _rate(anom_pred),
        "false_positive_rate": _rate(normal_pred),
        "detection_at_fp": detection_at_fp(
            normal_pred["score"].to_numpy(), anom_pred["score"].to_numpy()
        ),
        "normal": normal_pred.height,
        "anomalous": anom_pred.height,
        "train": train.requests,
        "flagged": {
            "normal": int(normal_pred["flagged"].sum()),
            "anomalous": int(anom_pred["flagged"].sum()),
        },
        "train_alerts_discarded": discarded,
        "rejected": {
            "train": len(train.rejected_positions),
            "normal": len(normal.rejected_positions),
            "anomalous": len(anomalous.rejected_positions),
        },
        "rules": {r: {"anomalous": a, "normal": n} for r, a, n in rule_rows},
    }
    return CsicEvaluation(figures, predictions)


def _rate(predictions: pl.DataFrame) -> float:
    """Share of flagged rows (0.0 for no rows)."""
    return int(predictions["flagged"].sum()) / predictions.height if predictions.height else 0.0
