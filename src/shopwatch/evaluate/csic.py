"""The CSIC 2010 HTTP dataset: read its raw requests, run the engine, score each request.

The files are raw HTTP/1.1 requests, concatenated; a request starts at every line that
begins with ``GET``, ``POST`` or ``PUT`` followed by a space. Values are percent-encoded
Latin-1. The label is the file: normal training traffic, normal test traffic, attacks.

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

import gzip
import ipaddress
import re
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from shopwatch.config import load_settings
from shopwatch.contract import conform, empty_alerts, empty_events
from shopwatch.errors import ConfigError
from shopwatch.parse.base import REJECT_SCHEMA, RejectReason

__all__ = [
    "FP_LEVELS",
    "CsicEvaluation",
    "CsicFile",
    "HttpRequest",
    "detection_at_fp",
    "evaluate_csic",
    "interleave",
    "parse_request",
    "read_requests",
    "split_requests",
]

#: False-positive rates at which :func:`detection_at_fp` reports the best detection rate.
FP_LEVELS: Final[tuple[float, ...]] = (0.001, 0.005, 0.01)

#: Event time of the first request fed to the engine (the dataset was published in 2010).
EPOCH: Final = datetime(2010, 6, 1, tzinfo=UTC)

#: The first client address given to a request; request ``k`` gets ``CLIENT_BASE + k``.
CLIENT_BASE: Final = ipaddress.IPv4Address("198.18.0.0")
CLIENT_RANGE: Final = 2**17  # 198.18.0.0/15

#: Requests per engine batch (the engine gives the same alerts however they are cut).
BATCH_SIZE: Final = 10_000

_START = re.compile(r"^(?:GET|POST|PUT) ", re.M)
_REQUEST_LINE = re.compile(r"^([A-Z]+) (\S+) (HTTP/\d\.\d)$")
_HEADER = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$")
_ABSOLUTE = re.compile(r"^https?://([^/?#]*)(.*)$", re.I)
_PORT = re.compile(r":\d*$")
_SESSION = re.compile(r"(?:^|;)\s*JSESSIONID=([^;\s]+)", re.I)


class _Malformed(Exception):
    """A request that cannot be read (private: callers get a reject row instead)."""

    def __init__(self, reason: RejectReason) -> None:
        self.reason = reason
        super().__init__(reason.value)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One raw request: request line, headers (lower-case names) and body."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: str | None
    #: Size of request line, headers, blank line and body with CRLF line ends, in bytes
    #: (the same whatever line ends the file used).
    size: int

    def event(self) -> dict[str, Any]:
        """The request as contract fields (``http.access``), without time, id or address.

        An absolute target (``http://host:port/p?q``) is ``url.full``; ``url.original`` is
        its path and query, as an access log would show it.
        """
        absolute = _ABSOLUTE.match(self.target)
        authority, path_query = absolute.groups() if absolute else (None, self.target)
        host = self.headers.get("host") or authority
        full = self.target if absolute else (f"http://{host}{path_query}" if host else None)
        path_query = path_query or "/"
        domain = _PORT.sub("", host) if host else None
        path, _, query = path_query.partition("?")
        cookie = self.headers.get("cookie")
        session = _SESSION.search(cookie) if cookie else None
        return {
            "event.dataset": "http.access",
            "event.action": "request",
            "http.version": self.version.removeprefix("HTTP/"),
            "http.request.method": self.method,
            "http.request.referrer": self.headers.get("referer"),
            "http.request.bytes": self.size,
            "http.request.body.content": self.body,
            "url.original": path_query,
            "url.path": path,
            "url.query": query or None,
            "url.full": full,
            "url.domain": domain or None,
            "user_agent.original": self.headers.get("user-agent"),
            "shop.session.id": session.group(1) if session else None,
        }


def parse_request(chunk: str) -> HttpRequest:
    """Read one request (text between two request lines); raises ``_Malformed``.

    Line ends may be CRLF or LF. Header names are case-insensitive (kept lower-case);
    a repeated header is joined with ``", "`` (``"; "`` for Cookie). Trailing empty lines
    are framing, not body.
    """
    text = chunk.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    line = _REQUEST_LINE.match(lines[0])
    if line is None:
        raise _Malformed(RejectReason.NO_MATCH)
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        header = _HEADER.match(raw)
        if header is None:
            raise _Malformed(RejectReason.BAD_FIELD)
        name, value = header.group(1).lower(), header.group(2)
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    content = body.strip("\n") or None
    size = sum(len(x) + 2 for x in lines) + 2 + (len(content) if content else 0)
    return HttpRequest(line.group(1), line.group(2), line.group(3), headers, content, size)


def split_requests(text: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of every request, cut before each request line.

    Text before the first request line is returned as a chunk of its own (it is not a
    request; :func:`parse_request` rejects it) unless it is blank.

    >>> split_requests("GET /a HTTP/1.1\\r\\n\\r\\n\\r\\nPOST /b HTTP/1.1\\r\\n\\r\\nx=1\\r\\n")
    [(1, 'GET /a HTTP/1.1\\r\\n\\r\\n\\r\\n'), (4, 'POST /b HTTP/1.1\\r\\n\\r\\nx=1\\r\\n')]
    """
    starts = [m.start() for m in _START.finditer(text)]
    if text[: starts[0] if starts else len(text)].strip():
        starts.insert(0, 0)
    chunks: list[tuple[int, str]] = []
    line_no, last = 1, 0
    for a, b in zip(starts, [*starts[1:], len(text)], strict=False):
        line_no += text.count("\n", last, a)
        last = a
        chunks.append((line_no, text[a:b]))
    return chunks


@dataclass(frozen=True, slots=True)
class CsicFile:
    """The requests of one file as ``http.access`` events, and the ones that were malformed."""

    path: Path
    batch: pl.DataFrame
    rejects: pl.DataFrame  # REJECT_SCHEMA; line_no is the request's first line


def read_requests(path: Path, *, start: datetime = EPOCH) -> CsicFile:
    """Every request of a CSIC file (gzip or plain, told by its first bytes) as an event.

    Events are in file order, ``start`` plus one second each, with ``event.id``
    ``<file name>:<line number>`` and no client address (the files have none). Host becomes
    ``url.domain``, Referer ``http.request.referrer``, the JSESSIONID cookie
    ``shop.session.id``; the other headers (Content-Type, Accept, ...) have no contract
    field and are dropped. A request that cannot be read is a reject, never an exception.
    Raises ``OSError`` when the file cannot be read.
    """
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, zlib.error) as err:
            raise OSError(f"not a readable gzip file ({err})") from err
    text = data.decode("latin-1")  # every byte is a character: nothing can fail here
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for line_no, chunk in split_requests(text):
        try:
            request = parse_request(chunk)
        except _Malformed as err:
            reject = {"line_no": line_no, "raw": chunk[:512], "reason": err.reason.value}
            rejects.append({"source": path.name, **reject, "format": "csic"})
            continue
        event = request.event()
        event["@timestamp"] = start + timedelta(seconds=len(rows))
        event["event.id"] = f"{path.name}:{line_no}"
        rows.append(event)
    batch = conform(pl.DataFrame(rows, infer_schema_length=None)) if rows else empty_events()
    return CsicFile(path, batch, pl.DataFrame(rejects, schema=REJECT_SCHEMA))


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
    #: ``file`` (normal / anomalous), ``index`` (from 0 in that file), ``flagged``, ``score``,
    #: in file order: the normal file's requests, then the anomalous file's.
    predictions: pl.DataFrame


def _prepared(batch: pl.DataFrame, role: str, first_address: int) -> pl.DataFrame:
    """``batch`` with ids ``<role>:<index>`` and one client address per request."""
    if batch.height + first_address > CLIENT_RANGE:
        raise ConfigError(
            f"more than {CLIENT_RANGE:,} requests in all: too many to give each its own "
            "client address; evaluate smaller files"
        )
    base = int(CLIENT_BASE) + first_address
    addresses = [str(ipaddress.IPv4Address(base + k)) for k in range(batch.height)]
    return batch.with_columns(
        pl.format("{}:{}", pl.lit(role), pl.int_range(pl.len())).alias("event.id"),
        pl.Series("source.ip", addresses, dtype=pl.String()),
    )


def _timed(batch: pl.DataFrame, first_second: int) -> pl.DataFrame:
    seconds = pl.int_range(pl.len()).cast(pl.Int64) + first_second
    return batch.with_columns(
        (pl.lit(EPOCH) + pl.duration(seconds=seconds))
        .cast(pl.Datetime("us", "UTC"))
        .alias("@timestamp")
    )


def evaluate_csic(
    train: CsicFile,
    normal: CsicFile,
    anomalous: CsicFile,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> CsicEvaluation:
    """Run the full default engine over the three files and score the test requests.

    The engine is the one ``replay`` builds (every enabled detector and enricher, crawler
    DNS off), with a temporary data folder so that nothing is read from or written to the
    working directory. ``on_progress`` is told how many requests each batch held.
    """
    from shopwatch.pipeline.build import build_engine

    train_events = _timed(_prepared(train.batch, "train", 0), 0)
    offset = train.batch.height
    normal_events = _prepared(normal.batch, "normal", offset)
    anomalous_events = _prepared(anomalous.batch, "anomalous", offset + normal.batch.height)
    tagged = pl.concat(
        [
            events.with_columns(pl.lit(role).alias("_file"), pl.int_range(pl.len()).alias("_index"))
            for role, events in (("normal", normal_events), ("anomalous", anomalous_events))
        ]
    )
    order = interleave(normal.batch.height, anomalous.batch.height)
    test_events = order.rename({"file": "_file", "index": "_index"}).join(
        tagged, on=["_file", "_index"], how="left", maintain_order="left"
    )
    test_events = _timed(conform(test_events), offset)

    alerts: list[pl.DataFrame] = []
    discarded = 0
    with tempfile.TemporaryDirectory(prefix="shopwatch-csic-") as data_dir:
        engine = build_engine(load_settings(None, data_dir=Path(data_dir)))
        try:
            for events, keep in ((train_events, False), (test_events, True)):
                for batch in events.iter_slices(BATCH_SIZE):
                    found = engine.process(batch)
                    if keep:
                        alerts.append(found.select("rule.id", "risk_score", "event.ids"))
                    else:
                        discarded += found.height
                    if on_progress is not None:
                        on_progress(batch.height)
        finally:
            engine.close()
    return _score(train, normal, anomalous, alerts, discarded)


def _score(
    train: CsicFile,
    normal: CsicFile,
    anomalous: CsicFile,
    alerts: list[pl.DataFrame],
    discarded: int,
) -> CsicEvaluation:
    columns = ("rule.id", "risk_score", "event.ids")
    hits = (
        pl.concat([empty_alerts().select(columns), *alerts])
        .explode("event.ids")
        .rename({"event.ids": "event.id"})
        .filter(pl.col("event.id").str.contains("^(normal|anomalous):"))
        .with_columns(
            pl.col("event.id").str.extract("^([a-z]+):", 1).alias("file"),
            pl.col("event.id").str.extract(":([0-9]+)$", 1).cast(pl.Int64).alias("index"),
        )
    )
    requests = pl.concat(
        [
            pl.DataFrame(
                {"file": "normal", "index": pl.int_range(normal.batch.height, eager=True)}
            ),
            pl.DataFrame(
                {"file": "anomalous", "index": pl.int_range(anomalous.batch.height, eager=True)}
            ),
        ]
    ).cast({"index": pl.Int64})
    best = hits.group_by("file", "index").agg(pl.col("risk_score").max().alias("score"))
    predictions = requests.join(best, on=["file", "index"], how="left", maintain_order="left")
    predictions = predictions.select(
        "file",
        "index",
        pl.col("score").is_not_null().alias("flagged"),
        pl.col("score").fill_null(0).cast(pl.Int64),
    )
    normal_pred = predictions.filter(pl.col("file") == "normal")
    anom_pred = predictions.filter(pl.col("file") == "anomalous")
    per_rule = (
        hits.unique(["rule.id", "file", "index"])
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
        "train": train.batch.height,
        "flagged": {
            "normal": int(normal_pred["flagged"].sum()),
            "anomalous": int(anom_pred["flagged"].sum()),
        },
        "train_alerts_discarded": discarded,
        "rejected": {
            "train": train.rejects.height,
            "normal": normal.rejects.height,
            "anomalous": anomalous.rejects.height,
        },
        "rules": {r: {"anomalous": a, "normal": n} for r, a, n in rule_rows},
    }
    return CsicEvaluation(figures, predictions)


def _rate(predictions: pl.DataFrame) -> float:
    """Share of flagged rows (0.0 for no rows)."""
    return int(predictions["flagged"].sum()) / predictions.height if predictions.height else 0.0
