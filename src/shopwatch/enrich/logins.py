"""Logins in access logs: which requests are logins, and whether they succeeded, per platform.

A platform file (:mod:`shopwatch.enrich.platforms`) names a shop platform's login
endpoints and how each answers. :class:`LoginReader` applies them to ``http.access``
events: a request that matches an endpoint becomes ``event.action: login``,
``event.category: authentication``, ``shop.platform: <id>`` and ``event.outcome``
``success``, ``failure`` or ``unknown`` (a status the endpoint does not read; ``429`` reads
as a failure with ``event.reason: throttled``). Platforms are tried by their ``order``;
the first endpoint a request matches decides. Events that name an action of their own
(anything but ``request``) are left as they are.

Where the status says nothing (Magento redirects after good and bad passwords alike), the
outcome is read from the request the same client (``source.ip`` and user agent) makes
next: such a login is *held* until that request arrives, until ``within`` of event time
has passed the engine's clock without one, or until :meth:`LoginReader.flush` at the end
of a replay, and only then handed on, with its outcome, in time order with the batch it is
released in. The wait crosses batches, so the held rows are state: bounded by
``max_pending`` rows (past it the oldest are released as unanswered, counted) and by the
endpoint's ``within`` (at most a minute), and snapshotted with the engine. Held rows
reach the detectors up to ``within`` later than the events around them: windows count in
event time, so only an alert on the exact edge of a window can differ from reading the
log in one piece.

Cost: one pass of cheap tests (dataset, method) over the batch; the path patterns run on
the posts that pass them, and the follow-up join on the requests of clients with a login
waiting. No per-row Python.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl
from prometheus_client import Counter as Counter_
from prometheus_client import Gauge

from shopwatch.contract import EVENT_SCHEMA, TIMESTAMP
from shopwatch.enrich.platforms import Endpoint, FollowUp, Platform

__all__ = ["MAX_PENDING", "OUTPUTS", "LoginReader"]

READ = Counter_(
    "shopwatch_enrich_logins_total",
    "Access-log requests read as logins, by platform and outcome.",
    ["platform", "outcome"],
)
HELD = Gauge(
    "shopwatch_enrich_logins_held",
    "Logins held back until the client's next request tells their outcome.",
)
OVERFLOW = Counter_(
    "shopwatch_enrich_logins_overflow_total",
    "Held logins released as unanswered because more than max_pending were waiting.",
)

#: Columns the reader sets on the requests it reads as logins.
OUTPUTS = ("event.action", "event.category", "event.outcome", "event.reason", "shop.platform")
#: Columns it reads.
_NEEDS = ("@timestamp", "event.dataset", "http.request.method", "url.path")
#: Columns it reads when present (null when not).
_OPTIONAL = ("url.query", "http.response.status_code", "source.ip", "user_agent.original")
#: Logins held at most at once (all clients together).
MAX_PENDING = 10_000
_SEQ = "_login_seq"
_EP = "_login_ep"
_KEYS = ("_login_ip", "_login_ua")
_CLOCK = "_login_clock"


def _ci(pattern: str) -> str:
    return f"(?i){pattern}"


def _query_ok(endpoint: Endpoint) -> pl.Expr:
    query = pl.col("url.query").fill_null("")
    ok = pl.lit(True)
    if endpoint.query is not None:
        ok = ok & query.str.contains(_ci(endpoint.query))
    if endpoint.not_query is not None:
        ok = ok & ~query.str.contains(_ci(endpoint.not_query))
    return ok


class LoginReader:
    """Reads the outcome of logins from ``http.access`` events, by the platforms given.

    Stateful only through the logins it holds for a follow-up request (module docstring);
    :meth:`read` takes batches in event-time order and gives back the batch with its
    logins read, less the ones it holds, plus the earlier ones it releases.
    """

    name = "logins"
    provides = frozenset(OUTPUTS)

    def __init__(self, platforms: Sequence[Platform], *, max_pending: int = MAX_PENDING) -> None:
        self.platforms = tuple(platforms)
        self.max_pending = max_pending
        self._endpoints = [(p, e) for p in self.platforms for e in p.logins]
        self._methods = sorted({m for _, e in self._endpoints for m in e.method})
        self._exact: dict[str, str] = {}
        self._classes: dict[str, str] = {}
        for i, (platform, endpoint) in enumerate(self._endpoints):
            for key, reading in platform.readings(endpoint).items():
                table = self._classes if key.endswith("xx") else self._exact
                table[f"{i}:{key}"] = reading
        self._not_logins = [i for i, (_, e) in enumerate(self._endpoints) if not e.is_login]
        self._follow: dict[int, FollowUp] = {
            i: e.follow_up for i, (_, e) in enumerate(self._endpoints) if e.follow_up is not None
        }
        self._pending: pl.DataFrame | None = None
        self._seq = 0
        self.read_counts: Counter[tuple[str, str]] = Counter()
        self.overflowed = 0

    @property
    def held(self) -> int:
        """Logins held for their follow-up request right now."""
        return 0 if self._pending is None else self._pending.height

    # -- reading -----------------------------------------------------------------------

    def read(
        self,
        batch: pl.DataFrame,
        clock: datetime | None = None,
        *,
        clocks: Mapping[str, datetime] | None = None,
        source: str | None = None,
    ) -> pl.DataFrame:
        """``batch`` (in event-time order) with its logins read; held logins out, released in.

        A held login's wait is over once the event time up to which its own input is
        complete has passed it by ``within``: ``clocks[row[source]]`` (the engine's clock
        of the row's source, so one file that ends early or one that runs ahead moves no
        other file's logins), else ``clock``, else the batch's latest time.
        """
        if not self._endpoints or (batch.height == 0 and self._pending is None):
            return batch
        if any(c not in batch.columns for c in _NEEDS):
            return batch
        missing = [c for c in (*OUTPUTS, *_OPTIONAL) if c not in batch.columns]
        if missing:
            batch = batch.with_columns(pl.lit(None, EVENT_SCHEMA[c]).alias(c) for c in missing)
        first = self._seq
        self._seq += batch.height
        labels = self._label(batch)
        if labels.height:
            batch = self._apply(batch, labels)
        follow = labels.filter(pl.col("_reading") == "follow_up")
        if follow.height == 0 and self._pending is None:
            return batch
        if clock is None and batch.height:
            clock = batch["@timestamp"].max()  # type: ignore[assignment]
        numbered = batch.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + first).alias(_SEQ))
        held_now = follow["_row"].cast(pl.Int64) + first
        fresh = numbered.filter(pl.col(_SEQ).is_in(held_now.implode())).join(
            follow.select((pl.col("_row").cast(pl.Int64) + first).alias(_SEQ), pl.col(_EP)),
            on=_SEQ,
            how="left",
            maintain_order="left",
        )
        rest = numbered.filter(~pl.col(_SEQ).is_in(held_now.implode()))
        waiting = (
            fresh
            if self._pending is None
            else pl.concat([self._pending, fresh], how="diagonal_relaxed")
        )
        mark = pl.lit(clock, TIMESTAMP)
        if clocks and source is not None and source in waiting.columns:
            mark = pl.col(source).replace_strict(dict(clocks), default=mark, return_dtype=TIMESTAMP)
        released, still = self._resolve(waiting.with_columns(mark.alias(_CLOCK)), numbered)
        still = self._bound(still, released)
        self._pending = still if still.height else None
        HELD.set(self.held)
        if not released:
            return rest.drop(_SEQ)
        out = pl.concat([rest, *released], how="diagonal_relaxed").select(rest.columns)
        return out.sort("@timestamp", _SEQ, maintain_order=True).drop(_SEQ)

    def flush(self) -> pl.DataFrame:
        """Every held login, released as unanswered (the end of a replay); empty when none."""
        if self._pending is None:
            return pl.DataFrame()
        waiting, self._pending = self._pending, None
        HELD.set(0)
        out = pl.concat(self._unanswered(waiting), how="diagonal_relaxed")
        return out.sort("@timestamp", _SEQ, maintain_order=True).drop(_SEQ)

    def read_all(self, batch: pl.DataFrame) -> pl.DataFrame:
        """A whole finite stream at once: :meth:`read` then :meth:`flush`, in time order."""
        seen = self.read(batch)
        rest = self.flush()
        if rest.height == 0:
            return seen
        out = pl.concat([seen, rest.select(seen.columns)], how="vertical_relaxed")
        return out.sort("@timestamp", maintain_order=True)

    # -- status readings -----------------------------------------------------------------

    def _label(self, batch: pl.DataFrame) -> pl.DataFrame:
        """``_row``, ``_login_ep`` and ``_reading`` of every request that is a login."""
        method, path = pl.col("http.request.method"), pl.col("url.path")
        action = pl.col("event.action")
        maybe = (
            pl.col("event.dataset").eq("http.access")
            & method.is_in(self._methods)
            & path.is_not_null()
            & (action.is_null() | action.eq("request"))
        )
        which = pl.lit(None, pl.Int32)
        for i, (_, endpoint) in reversed(list(enumerate(self._endpoints))):
            hit = method.is_in(endpoint.method) & path.str.contains(_ci(endpoint.path))
            if endpoint.query is not None or endpoint.not_query is not None:
                hit = hit & _query_ok(endpoint)
            which = pl.when(hit).then(pl.lit(i, pl.Int32)).otherwise(which)
        status = pl.col("http.response.status_code").cast(pl.String)
        klass = (pl.col("http.response.status_code") // 100).cast(pl.String) + "xx"
        ep = pl.col(_EP).cast(pl.String)
        reading = pl.coalesce(
            (ep + ":" + status).replace_strict(self._exact, default=None, return_dtype=pl.String),
            (ep + ":" + klass).replace_strict(self._classes, default=None, return_dtype=pl.String),
            pl.lit("unknown"),
        )
        return (
            batch.lazy()
            .select(
                pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
                maybe.alias("_maybe"),
                "http.request.method",
                "url.path",
                "url.query",
                "http.response.status_code",
            )
            .filter("_maybe")
            .with_columns(which.alias(_EP))
            .filter(pl.col(_EP).is_not_null() & ~pl.col(_EP).is_in(self._not_logins))
            .select("_row", _EP, reading.alias("_reading"))
            .collect()
        )

    def _apply(self, batch: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
        """Set the login columns on the labelled rows (held ones get their outcome later)."""
        rows = labels["_row"]
        reading = labels["_reading"]
        platform = labels[_EP].replace_strict(
            {i: p.id for i, (p, _) in enumerate(self._endpoints)}, return_dtype=pl.String
        )
        outcome = (
            reading.to_frame()
            .select(
                pl.when(pl.col("_reading").eq("throttled"))
                .then(pl.lit("failure"))
                .when(pl.col("_reading").eq("follow_up"))
                .then(pl.lit(None, pl.String))
                .otherwise(pl.col("_reading"))
            )
            .to_series()
        )
        reason = batch["event.reason"].gather(rows)
        reason = (
            pl.DataFrame({"r": reason, "t": reading.eq("throttled")})
            .select(pl.when("t").then(pl.lit("throttled")).otherwise("r"))
            .to_series()
        )
        n = rows.len()
        values = {
            "event.action": pl.Series(["login"] * n, dtype=pl.String),
            "event.category": pl.Series(["authentication"] * n, dtype=pl.String),
            "event.outcome": outcome,
            "event.reason": reason,
            "shop.platform": platform,
        }
        columns = []
        for name, value in values.items():
            column = batch[name].cast(pl.String).clone()
            column.scatter(rows, value)
            columns.append(column)
        for pid, out, count in (
            pl.DataFrame({"p": platform, "o": outcome.fill_null("pending")})
            .group_by("p", "o")
            .len()
            .iter_rows()
        ):
            if out != "pending":
                self._count(str(pid), str(out), int(count))
        return batch.with_columns(columns)

    def _count(self, platform: str, outcome: str, n: int) -> None:
        self.read_counts[(platform, outcome)] += n
        READ.labels(platform, outcome).inc(n)

    # -- follow-up requests --------------------------------------------------------------

    def _resolve(
        self, waiting: pl.DataFrame, batch: pl.DataFrame
    ) -> tuple[list[pl.DataFrame], pl.DataFrame]:
        """Logins whose outcome ``batch`` (or their clock) tells, and the ones still waiting."""
        keyed = waiting.with_columns(
            pl.col("source.ip").alias(_KEYS[0]),
            pl.col("user_agent.original").fill_null("").alias(_KEYS[1]),
        )
        clients = keyed.select(*_KEYS).unique()
        nexts = (
            batch.with_columns(
                pl.col("source.ip").alias(_KEYS[0]),
                pl.col("user_agent.original").fill_null("").alias(_KEYS[1]),
            )
            .join(clients, on=list(_KEYS), how="semi")
            .select(
                *_KEYS,
                _SEQ,
                pl.col("@timestamp").alias("_next_t"),
                pl.col("http.request.method").alias("_next_method"),
                pl.col("url.path").fill_null("").alias("_next_path"),
                pl.col("http.response.status_code").alias("_next_status"),
            )
        )
        released: list[pl.DataFrame] = []
        still: list[pl.DataFrame] = []
        for ep, group in keyed.partition_by(_EP, as_dict=True).items():
            index = int(ep[0])
            follow = self._follow[index]
            candidates = nexts
            if follow.skip is not None:
                candidates = nexts.filter(~pl.col("_next_path").str.contains(_ci(follow.skip)))
            joined = group.sort(_SEQ).join_asof(
                candidates.sort(_SEQ).with_columns(pl.col(_SEQ).alias("_next_seq")),
                on=_SEQ,
                by=list(_KEYS),
                strategy="forward",
                allow_exact_matches=False,
                check_sortedness=False,
            )
            done, wait = self._judge(joined, follow, self._endpoints[index][0].id)
            released.append(done)
            if wait.height:
                still.append(wait)
        keep = [c for c in waiting.columns if c != _CLOCK]
        rest = pl.concat(still) if still else waiting.clear()
        return [r for r in released if r.height], rest.select(keep)

    def _judge(
        self, joined: pl.DataFrame, follow: FollowUp, platform: str
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Outcomes of one endpoint's waiting logins given their next requests (or none)."""
        wait = follow.wait
        found = pl.col("_next_seq").is_not_null()
        gap = pl.col("_next_t") - pl.col("@timestamp")
        followed = found & (gap <= wait) & pl.col("_next_method").is_in(follow.method)
        verdict = pl.lit(follow.otherwise)
        for rule in reversed(follow.rules):
            hit = pl.col("_next_path").str.contains(_ci(rule.path))
            if rule.status:
                hit = hit & pl.col("_next_status").is_in(rule.status)
            verdict = pl.when(hit).then(pl.lit(rule.outcome)).otherwise(verdict)
        expired = ((pl.col("@timestamp") + pl.lit(wait)) < pl.col(_CLOCK)).fill_null(True)
        outcome = (
            pl.when(followed)
            .then(verdict)
            .when(found | expired | pl.col(_KEYS[0]).is_null())
            .then(pl.lit(follow.unanswered))
            .otherwise(pl.lit(None, pl.String))
        )
        judged = joined.with_columns(outcome.alias("_outcome"))
        helpers = {*_KEYS, _CLOCK}
        columns = [c for c in joined.columns if not c.startswith("_next") and c not in helpers]
        done = judged.filter(pl.col("_outcome").is_not_null())
        done = done.with_columns(pl.col("_outcome").alias("event.outcome")).select(
            c for c in columns if c != _EP
        )
        for out, count in done.group_by("event.outcome").len().iter_rows():
            self._count(platform, str(out), int(count))
        return done, judged.filter(pl.col("_outcome").is_null()).select(columns)

    def _unanswered(self, waiting: pl.DataFrame) -> list[pl.DataFrame]:
        """Every waiting login, with its endpoint's ``unanswered`` outcome."""
        out = []
        for ep, group in waiting.partition_by(_EP, as_dict=True).items():
            index = int(ep[0])
            outcome = self._follow[index].unanswered
            self._count(self._endpoints[index][0].id, outcome, group.height)
            out.append(group.with_columns(pl.lit(outcome).alias("event.outcome")).drop(_EP))
        return out

    def _bound(self, still: pl.DataFrame, released: list[pl.DataFrame]) -> pl.DataFrame:
        """Hold at most ``max_pending`` logins: the oldest beyond it go as unanswered."""
        extra = still.height - self.max_pending
        if extra <= 0:
            return still
        still = still.sort(_SEQ)
        released.extend(self._unanswered(still.head(extra)))
        self.overflowed += extra
        OVERFLOW.inc(extra)
        return still.tail(self.max_pending)

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, bytes]:
        """The held logins (Arrow IPC) and the row counter, for the engine's snapshot."""
        out = {"seq": str(self._seq).encode()}
        if self._pending is not None:
            held = self._pending.with_columns(
                pl.col(_EP).replace_strict(
                    {i: f"{p.id}/{e.name}" for i, (p, e) in enumerate(self._endpoints)},
                    return_dtype=pl.String,
                )
            )
            buf = io.BytesIO()
            held.write_ipc(buf)
            out["pending.arrow"] = buf.getvalue()
        return out

    def restore(self, tables: dict[str, bytes]) -> None:
        """Load a :meth:`snapshot`; held logins of endpoints no longer read are dropped."""
        self._seq = int(tables.get("seq", b"0").decode() or 0)
        self._pending = None
        blob = tables.get("pending.arrow")
        if blob:
            index = {f"{p.id}/{e.name}": i for i, (p, e) in enumerate(self._endpoints)}
            held = pl.read_ipc(io.BytesIO(blob)).with_columns(
                pl.col(_EP).replace_strict(index, default=None, return_dtype=pl.Int32)
            )
            held = held.filter(pl.col(_EP).is_in(list(self._follow)))
            self._pending = held if held.height else None
        HELD.set(self.held)

    def describe(self) -> dict[str, Any]:
        """Figures for stats: logins read by platform and outcome, held, overflowed."""
        return {
            "read": {f"{p}/{o}": n for (p, o), n in sorted(self.read_counts.items())},
            "held": self.held,
            "overflowed": self.overflowed,
        }
