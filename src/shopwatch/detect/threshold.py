"""Kind ``threshold``: at least N matching events (or N distinct values) per key in a window.

Every matching event closes a sliding window (t - within, t] of its key, in event time;
counts come from rolling sums, so the cost is linear in the events. The first event at
which a key's window reaches the threshold fires the alert, so the alert's time, id and
evidence depend only on the events, never on how they were cut into batches. A distinct
count counts *fresh* values: values the key had not shown in the window before (exact
for values that do not recur within a window, a lower bound otherwise). After an alert a
key stays quiet for ``suppress`` (default: the window) of event time; an attack that goes
on fires again after that (checked once per ``hop``), as a new alert.

Keys may be fields, modified fields (``source.ip|net``: the address's /24 or /48, so one
network counts as one group) or ``global`` (the whole shop is one group). With ``share``,
a window also needs at least ``share.at_least`` of its events to match ``share.where``
(say, failures among a network's logins: a mobile carrier's customers mostly succeed).
With ``spread``, the window also needs events from at least ``spread.at_least`` distinct
values of another field (a network's rule wants several addresses, not one).
With ``members`` (fields such as ``source.ip``), the alert lists the distinct values of
each in its window (``details.members``, at most :data:`MAX_MEMBERS`; with a share, of the
events the share counts; with ``members_at_least``, only values with that many of them):
one alert for a network names every address that took part.

State: ``tail`` (the matching events of the last window per key, capped per key) and
``fired`` (per key, the last alert and the last hop bucket judged); with a baseline,
``buckets`` (per key and bucket, its count) and ``watched`` (since when the rule has seen
events at all).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, empty_alerts, stable_id
from shopwatch.detect.conditions import Where, derived_column, derived_name
from shopwatch.detect.gate import literal_gate
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    human_duration,
    kind,
    parse_duration,
    render_message,
)
from shopwatch.detect.state import KeyedState, shift_time, split_by_keys

__all__ = ["CountSpec", "ThresholdDetector", "ThresholdSpec"]

MAX_EVENT_IDS = 1000
#: Most distinct values of each ``members`` field an alert lists.
MAX_MEMBERS = 500
#: The group key that makes the whole shop one group.
GLOBAL = "global"
TAIL_ROWS_PER_KEY = 5000
#: Since when a rule with a baseline has watched the shop (one row; ``_ts`` its last event).
_WATCHED: dict[str, pl.DataType] = {"_since": TIMESTAMP, "_ts": TIMESTAMP}


class CountSpec(BaseModel):
    """How much is too much: ``at_least`` events (or distinct values) ``within`` a window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_least: int = Field(ge=1)
    within: Duration
    distinct: str | None = None
    events_at_least: int | None = Field(default=None, ge=1)


class SpreadSpec(BaseModel):
    """A second distinct count: the window's events come from ``at_least`` values of ``distinct``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    distinct: str
    at_least: int = Field(ge=2)


class ShareSpec(BaseModel):
    """A share condition: at least ``at_least`` of the window's events also match ``where``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    where: WhereClause
    at_least: float = Field(gt=0, le=1)


class BaselineSpec(BaseModel):
    """This window against the key's own recent normal: ``factor`` times its usual count.

    The usual count is the key's mean per window over the ``over`` before the window (or
    over the part of it since the rule began watching the shop: the days it watched count
    even when the key was absent from them), from counts kept per ``bucket`` (so a busy
    key's baseline costs a row per bucket, not a row per event). A rule that has watched
    for less than a window has a usual count of zero: it is then a plain threshold until
    its history fills.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    over: Duration
    factor: float = Field(gt=1)
    bucket: Duration = "5m"


class ThresholdSpec(RuleSpec):
    """A ``threshold`` rule."""

    where: WhereClause = Field(default_factory=dict)
    group_by: tuple[str, ...] = Field(min_length=1)
    count: CountSpec
    share: ShareSpec | None = None
    spread: SpreadSpec | None = None
    members: tuple[str, ...] = ()
    #: A member is listed only with at least this many of the window's counted events: a
    #: whole-shop rule then names the addresses that kept at it, not a customer's one typo.
    members_at_least: int = Field(default=1, ge=1)
    baseline: BaselineSpec | None = None
    suppress: Duration | None = None
    hop: Duration | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _baseline_fits(self) -> ThresholdSpec:
        if self.baseline is not None:
            bucket, window = parse_duration(self.baseline.bucket), parse_duration(self.count.within)
            if bucket > window:
                raise ValueError(
                    f"baseline.bucket ({self.baseline.bucket}) is longer than the window "
                    f"({self.count.within})"
                )
            if parse_duration(self.baseline.over) < window:
                raise ValueError("baseline.over must be at least the window")
            if (window / bucket) % 1:
                raise ValueError(
                    f"the window ({self.count.within}) must be a whole number of "
                    f"baseline.bucket ({self.baseline.bucket}), or the window would count "
                    "in its own baseline"
                )
        return self


@kind("threshold")
class ThresholdDetector:
    """Counts matching events per key in hopping event-time windows."""

    Spec = ThresholdSpec

    def __init__(self, spec: ThresholdSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = tuple(spec.group_by)
        self.window = parse_duration(spec.count.within)
        self.suppress = parse_duration(spec.suppress) if spec.suppress else self.window
        hop = parse_duration(spec.hop) if spec.hop else max(self.window / 10, timedelta(seconds=1))
        self.hop = min(hop, self.window)
        self.baseline = spec.baseline
        self.bucket = parse_duration(spec.baseline.bucket) if spec.baseline else self.window
        self.over = parse_duration(spec.baseline.over) if spec.baseline else timedelta(0)
        #: Event-time history this rule reads: its window and the hop of the last alert
        #: (and, with a baseline, the weeks or hours of bucket counts before the window).
        self.horizon = self.window + max(self.hop, self.suppress)
        if spec.baseline is not None:
            self.horizon += self.over + self.bucket
        self.single_event = spec.count.at_least == 1
        self.where = Where(spec.where)
        self.share = Where(spec.share.where) if spec.share is not None else None
        #: Literals one of which a matching event must contain (see detect.gate): the
        #: engine may then give this rule only the rows of one multi-pattern pass. A rule
        #: that reads non-matching events too (a share, a baseline) is never gated.
        self.gate = (
            literal_gate(spec.where) if spec.share is None and spec.baseline is None else None
        )
        key_fields = {k.split("|", 1)[0] for k in self.keys if k != GLOBAL}
        self._key_fields = frozenset(key_fields)
        # Modified group keys (``source.ip|net``) are derived here, on the rows the where
        # clause kept, not by the engine on every row of every batch.
        self.derived = self.where.derived | (
            self.share.derived if self.share is not None else frozenset()
        )
        needs = set(self.where.fields) | key_fields | {"@timestamp", "event.id"}
        if self.share is not None:
            needs |= self.share.fields
        if spec.count.distinct:
            needs.add(spec.count.distinct)
        needs |= set(spec.members)
        if spec.spread is not None:
            needs.add(spec.spread.distinct)
        self.needs = frozenset(needs)
        self._members = {f"_member:{f}": f for f in spec.members}
        self._tail_schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            "@timestamp": TIMESTAMP,
            "event.id": pl.String(),
            "_v": pl.String(),
            "_fresh": pl.Boolean(),
            "_w": pl.String(),
            "_fresh_w": pl.Boolean(),
            "_m": pl.Boolean(),
            **{column: pl.String() for column in self._members},
            "_ts": TIMESTAMP,
        }
        self._bucket_schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            "_b": TIMESTAMP,  # bucket start
            "_v": pl.String(),  # a distinct count's value (one row each); null otherwise
            "_c": pl.Int64(),  # matching events in the bucket (1 per value when distinct)
            "_ts": TIMESTAMP,  # the bucket's end (its age for eviction)
        }
        self._fired_schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            "_ts": TIMESTAMP,  # time of the key's last alert
            "_cb": TIMESTAMP,  # last hop bucket judged for the key
        }

    # -- the hot path -----------------------------------------------------------------

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Alerts for windows that crossed the threshold at an event of this batch."""
        spec = self.spec
        missing = self.needs - set(batch.columns)
        if self.baseline is not None and batch.height and "@timestamp" in batch.columns:
            self._observe(batch, state)
        if batch.height == 0 or missing & ({"@timestamp"} | self._key_fields):
            return empty_alerts()
        distinct = spec.count.distinct
        value = (
            pl.col(distinct).cast(pl.String)
            if distinct and distinct in batch.columns
            else pl.lit(None, pl.String)
        )
        event_id = pl.col("event.id") if "event.id" in batch.columns else pl.lit(None, pl.String)
        where = self.where.for_batch(batch.columns)
        if where is None:
            return empty_alerts()
        shared = self.share.for_batch(batch.columns) if self.share is not None else None
        key_exprs = [self._key(k, batch.columns).cast(pl.String).alias(k) for k in self.keys]
        new = (
            batch.lazy()
            .filter(where)
            .select(
                *key_exprs,
                pl.col("@timestamp"),
                event_id.alias("event.id"),
                value.alias("_v"),
                (
                    pl.col(spec.spread.distinct).cast(pl.String)
                    if spec.spread is not None and spec.spread.distinct in batch.columns
                    else pl.lit(None, pl.String)
                ).alias("_w"),
                (shared if shared is not None else pl.lit(False)).alias("_m"),
                *[
                    (
                        pl.col(f).cast(pl.String) if f in batch.columns else pl.lit(None, pl.String)
                    ).alias(column)
                    for column, f in self._members.items()
                ],
            )
            .filter(pl.all_horizontal([pl.col(k).is_not_null() for k in self.keys]))
            .with_columns(pl.col("@timestamp").alias("_ts"))
            .collect()
        )
        if new.height == 0:
            return empty_alerts()
        if self.baseline is not None:
            self._count_buckets(new, state)
        # Only the keys this batch touches are re-run: a batch costs in proportion to its
        # own keys' windows, not to every key the state holds.
        keys = list(self.keys)
        stored = state.table("tail", self._tail_schema)
        touched = new.select(keys).unique()
        tail, rest = split_by_keys(stored, touched, keys)
        # A key with fewer events in its tail and batch than the rule needs cannot fire:
        # its new rows are only kept, marked later (fresh marks are computed when the key
        # first has enough rows, in order, exactly as they would have been on arrival).
        need = max(spec.count.at_least, spec.count.events_at_least or 0)
        if need > 1:
            sizes = pl.concat([tail.select(keys), new.select(keys)]).group_by(keys).len()
            hot = sizes.filter(pl.col("len") >= need).select(keys)
            waiting = new.join(hot, on=keys, how="anti", nulls_equal=True).with_columns(
                pl.lit(None, pl.Boolean).alias("_fresh"), pl.lit(None, pl.Boolean).alias("_fresh_w")
            )
            rest = pl.concat(
                [
                    rest,
                    tail.join(hot, on=keys, how="anti", nulls_equal=True),
                    waiting.select(list(self._tail_schema)),
                ],
                how="vertical_relaxed",
            )
            tail = tail.join(hot, on=keys, how="semi", nulls_equal=True)
            new = new.join(hot, on=keys, how="semi", nulls_equal=True)
            if new.height == 0:
                state.put("tail", rest.select(list(self._tail_schema)))
                return empty_alerts()
        events = pl.concat(
            [
                tail.with_columns(pl.lit(False).alias("_new")),
                new.with_columns(
                    pl.lit(None, pl.Boolean).alias("_fresh"),
                    pl.lit(None, pl.Boolean).alias("_fresh_w"),
                    pl.lit(True).alias("_new"),
                ),
            ],
            how="diagonal",
        ).sort([*self.keys, "@timestamp"], maintain_order=True)

        # A value is fresh when the key has not seen it in the window before it: distinct
        # counts are sums of fresh marks. Rows keep the mark they got once marked.
        def fresh(value: str) -> pl.Expr:
            previous = pl.col("@timestamp").shift(1).over([*self.keys, value])
            return pl.col(value).is_not_null() & (
                previous.is_null() | ((pl.col("@timestamp") - previous) >= self.window)
            )

        events = events.with_columns(
            pl.when(pl.col("_fresh").is_null())
            .then(fresh("_v"))
            .otherwise(pl.col("_fresh"))
            .alias("_fresh"),
            pl.when(pl.col("_fresh_w").is_null())
            .then(fresh("_w"))
            .otherwise(pl.col("_fresh_w"))
            .alias("_fresh_w"),
        ).with_row_index("_i")
        events = events.with_columns(pl.col("_i").cast(pl.Int64))
        if self.baseline is not None:
            events = self._expected(events, state)
        alerts, fired = self._fire(events, state.table("fired", self._fired_schema))
        # Trim against the engine's clock, not the newest event alone: one event dated
        # 9999 must not drop the window of every other key (it only stays in its own).
        now = state.now(events.select(pl.col("@timestamp").max()).item())
        horizon = shift_time(now, -(self.window + self.hop))
        kept = events.filter(pl.col("@timestamp") > horizon)
        kept = kept.group_by(self.keys, maintain_order=True).tail(TAIL_ROWS_PER_KEY)
        # Untouched keys' rows past the horizon count in no window; dropped about once a hop.
        if rest.height and rest["@timestamp"].min() <= shift_time(horizon, -self.hop):  # type: ignore[operator]
            rest = rest.filter(pl.col("@timestamp") > horizon)
        state.put("tail", pl.concat([rest, kept.select(list(self._tail_schema))], how="vertical"))
        state.put("fired", fired)
        return alerts

    # -- the baseline -------------------------------------------------------------------

    def _count_buckets(self, new: pl.DataFrame, state: KeyedState) -> None:
        """Add this batch's matching events to their keys' bucket counts.

        A distinct count keeps one row per distinct value and bucket (``_v``), so that its
        usual is distinct values too: a card retried all day counts once a bucket.
        """
        keys = list(self.keys)
        distinct = self.spec.count.distinct is not None
        by = [*keys, "_b", "_v"] if distinct else [*keys, "_b"]
        bucketed = new.with_columns(
            pl.col("@timestamp").dt.truncate(self.bucket).alias("_b"),
            (pl.col("_v") if distinct else pl.lit(None, pl.String)).alias("_v"),
        )
        if distinct:
            bucketed = bucketed.filter(pl.col("_v").is_not_null())
        counted = (
            bucketed.group_by(by)
            .agg(pl.len().cast(pl.Int64).alias("_c"))
            .with_columns(
                (pl.col("_b") + self.bucket).alias("_ts"),
                *([] if distinct else [pl.lit(None, pl.String).alias("_v")]),
            )
        )
        held = state.table("buckets", self._bucket_schema)
        touched = counted.select(keys).unique()
        mine, rest = split_by_keys(held, touched, keys)
        merged = (
            pl.concat([mine, counted.select(list(self._bucket_schema))], how="vertical")
            .group_by(by)
            .agg(
                pl.col("_c").sum(),
                pl.col("_ts").max(),
                *([] if distinct else [pl.col("_v").first()]),
            )
            .with_columns(pl.lit(1, pl.Int64).alias("_c") if distinct else pl.col("_c"))
        )
        state.put("buckets", pl.concat([rest, merged.select(list(self._bucket_schema))]))

    @staticmethod
    def _observe(batch: pl.DataFrame, state: KeyedState) -> None:
        """Remember since when the rule has watched the shop (any event, matching or not).

        The engine's clock, not the batch's oldest event, marks the start: one stray event
        dated years back must not make every key's usual look diluted over all of ``over``.
        """
        times = batch["@timestamp"]
        first, last = times.min(), times.max()
        if state.clock is not None and isinstance(first, datetime):
            first = max(first, state.clock)
        if not isinstance(first, datetime) or not isinstance(last, datetime):
            return
        held = state.table("watched", _WATCHED)
        if held.height:
            first = min(first, held["_since"][0])
            last = max(last, held["_ts"][0])
        state.put("watched", pl.DataFrame({"_since": [first], "_ts": [last]}, schema=_WATCHED))

    def _expected(self, events: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """``events`` with ``_exp``: the key's usual count per window before each event's.

        For an event in bucket ``b`` the baseline is the buckets that start in
        ``[b - window - over, b - window)``, scaled from ``over`` to one window.
        """
        keys = list(self.keys)
        own = events.select(*keys, pl.col("@timestamp").dt.truncate(self.bucket).alias("_at"))
        pairs = own.unique()
        held = state.table("buckets", self._bucket_schema).join(
            pairs.select(keys).unique(), on=keys, how="semi", nulls_equal=True
        )
        # A rule that has watched the shop for less than ``over`` is judged on the history
        # it has (at least a window of it): a new deployment's baseline is not diluted by
        # days it never saw. The days it watched count, with or without the key in them,
        # so an attack that began before its loud part cannot become the key's normal.
        since = held.group_by(keys).agg(pl.col("_b").min().alias("_first"))
        watched = state.table("watched", _WATCHED)
        if watched.height:
            start = watched["_since"][0]
            since = since.with_columns(pl.min_horizontal(pl.col("_first"), pl.lit(start)))
        window_us = self.window / timedelta(microseconds=1)
        usual = (
            pairs.join(held, on=keys, how="inner", nulls_equal=True)
            .filter(
                (pl.col("_b") < pl.col("_at") - self.window)
                & (pl.col("_b") >= pl.col("_at") - self.window - self.over)
            )
            .group_by(*keys, "_at")
            .agg(pl.col("_c").sum().alias("_sum"))
            .join(since, on=keys, how="left", nulls_equal=True)
            .with_columns(
                (
                    (pl.col("_at") - self.window - pl.col("_first")).dt.total_microseconds()
                    / window_us
                )
                .clip(0.0, self.over / self.window)
                .alias("_span")
            )
            .with_columns(
                pl.when(pl.col("_span") >= 1.0)
                .then(pl.col("_sum") / pl.col("_span"))
                .otherwise(0.0)
                .alias("_exp")
            )
            .select(*keys, "_at", "_exp")
        )
        return (
            events.with_columns(pl.col("@timestamp").dt.truncate(self.bucket).alias("_at"))
            .join(usual, on=[*keys, "_at"], how="left", nulls_equal=True)
            .with_columns(pl.col("_exp").fill_null(0.0))
            .drop("_at")
            .sort("_i")
        )

    @staticmethod
    def _key(name: str, columns: list[str]) -> pl.Expr:
        """A group key: a field, a modified field (``source.ip|net``) or the whole shop."""
        if name == GLOBAL:
            return pl.lit("shop")
        if "|" in name:
            return (
                pl.col(derived_name(name))
                if derived_name(name) in columns
                else (derived_column(name))
            )
        return pl.col(name)

    def _fire(self, events: pl.DataFrame, fired: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Alert rows for the new events at which a key's sliding window reached the threshold.

        ``events`` are the tail and the new rows, sorted by key then time. Per row, the
        window is (t - within, t]: its size comes from a rolling sum over time per key, its
        distinct values from a rolling sum of ``_fresh`` marks. Candidates are the first
        qualifying new row per key and ``hop`` bucket (buckets already judged are skipped),
        then suppression keeps a key quiet for ``suppress`` after each alert.
        """
        spec = self.spec
        keys = list(self.keys)
        distinct = spec.count.distinct is not None
        need_n = spec.count.events_at_least or (1 if distinct else spec.count.at_least)
        one = pl.col("@timestamp").is_not_null().cast(pl.Int64)
        scored = events.with_columns(
            one.rolling_sum_by("@timestamp", window_size=self.window).over(keys).alias("_n"),
            pl.col("_fresh")
            .cast(pl.Int64)
            .rolling_sum_by("@timestamp", window_size=self.window)
            .over(keys)
            .alias("_d"),
            pl.col("_i").max().over([*keys, "@timestamp"]).alias("_end"),
            pl.col("_m")
            .fill_null(False)
            .cast(pl.Int64)
            .rolling_sum_by("@timestamp", window_size=self.window)
            .over(keys)
            .alias("_s"),
            pl.col("_fresh_w")
            .fill_null(False)
            .cast(pl.Int64)
            .rolling_sum_by("@timestamp", window_size=self.window)
            .over(keys)
            .alias("_e"),
        )
        cond = pl.col("_new") & (pl.col("_n") >= need_n)
        if spec.share is not None:
            cond = cond & (pl.col("_s") >= spec.share.at_least * pl.col("_n"))
        if spec.spread is not None:
            cond = cond & (pl.col("_e") >= spec.spread.at_least)
        if distinct:
            cond = cond & (pl.col("_d") >= spec.count.at_least)
        if spec.baseline is not None:
            measured = pl.col("_d") if distinct else pl.col("_n")
            cond = cond & (measured >= spec.baseline.factor * pl.col("_exp"))
        cand = (
            scored.filter(cond)
            .with_columns(pl.col("@timestamp").dt.truncate(self.hop).alias("_bucket"))
            .group_by([*keys, "_bucket"], maintain_order=True)
            .first()
        )
        if cand.height == 0:
            return empty_alerts(), fired
        cand_keys = cand.select(keys).unique()
        mine, others = split_by_keys(fired, cand_keys, keys)
        cand = cand.join(mine, on=keys, how="left", nulls_equal=True).filter(
            pl.col("_cb").is_null() | (pl.col("_bucket") > pl.col("_cb"))
        )
        last_fired: dict[tuple[Any, ...], tuple[datetime | None, datetime]] = {
            tuple(row[:-2]): (row[-2], row[-1])
            for row in mine.select(*keys, "_ts", "_cb").iter_rows()
        }
        chosen: list[int] = []
        for row in (
            cand.sort([*keys, "@timestamp"])
            .select(*keys, "@timestamp", "_bucket", "_i")
            .iter_rows()
        ):
            key, at, bucket, index = tuple(row[: len(keys)]), row[-3], row[-2], row[-1]
            previous, _ = last_fired.get(key, (None, bucket))
            if previous is None or at >= shift_time(previous, self.suppress):
                chosen.append(index)
                previous = at
            last_fired[key] = (previous, bucket)
        fired_new = pl.concat(
            [
                others.select(list(self._fired_schema)),
                pl.DataFrame(
                    [(*key, at, bucket) for key, (at, bucket) in last_fired.items()],
                    schema=self._fired_schema,
                    orient="row",
                ),
            ],
            how="vertical",
        )
        if not chosen:
            return empty_alerts(), fired_new
        hits = scored.filter(pl.col("_i").is_in(chosen)).with_columns(
            (pl.col("_end") - pl.col("_n") + 1).alias("_start")
        )
        # With a share, the members are those of the events it counts (the failures).
        member = pl.col("_m").fill_null(False) if spec.share is not None else pl.lit(True)
        members = (
            hits.select(
                pl.col("_i").alias("_alert"),
                pl.int_ranges("_start", pl.col("_end") + 1).alias("_row"),
            )
            .explode("_row")
            .join(
                scored.select(
                    pl.col("_i").alias("_row"), "event.id", "_v", "_fresh", "_m", *self._members
                ),
                on="_row",
            )
            .sort("_alert", "_row")
            .with_columns(
                *[
                    pl.when(member)
                    .then(pl.col(column))
                    .count()
                    .over("_alert", column)
                    .alias(f"{column}#n")
                    for column in self._members
                ]
            )
            .group_by("_alert", maintain_order=True)
            .agg(
                pl.col("event.id").drop_nulls().head(MAX_EVENT_IDS).alias("event.ids"),
                pl.col("_v")
                .filter(pl.col("_fresh"))
                .drop_nulls()
                .unique(maintain_order=True)
                .head(20)
                .alias("_examples"),
                *[
                    pl.col(column)
                    .filter(member & (pl.col(f"{column}#n") >= spec.members_at_least))
                    .drop_nulls()
                    .unique(maintain_order=True)
                    .head(MAX_MEMBERS)
                    for column in self._members
                ],
            )
        )
        evidence = (
            hits.select(
                *keys,
                pl.col("@timestamp").alias("_c"),
                pl.col("_n").alias("count"),
                pl.col("_d").alias("distinct"),
                (pl.col("_s") / pl.col("_n")).alias("_share"),
                pl.col("_e").alias("_spread"),
                (pl.col("_exp") if spec.baseline is not None else pl.lit(None, pl.Float64)).alias(
                    "_exp"
                ),
                pl.col("_i").alias("_alert"),
            )
            .join(members, on="_alert")
            .sort(["_c", *keys])
        )
        return self._alert_rows(evidence), fired_new

    def _alert_rows(self, evidence: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        rows: list[dict[str, Any]] = []
        within = human_duration(self.window)
        for ev in evidence.iter_rows(named=True):
            key_values = {k: ev[k] for k in self.keys}
            count, n_distinct = int(ev["count"]), int(ev["distinct"])
            measured = n_distinct if spec.count.distinct else count
            excess = max(measured / spec.count.at_least, 1.0)
            risk = min(100, spec.base_risk + round(8 * math.log2(excess)))
            values = {**key_values, "count": count, "distinct": n_distinct, "within": within}
            template = spec.message or (
                f"{spec.title}: {{count}} matching events within {within} from "
                + ", ".join(f"{k} {{{k}}}" for k in self.keys)
            )
            details: dict[str, Any] = {
                "count": count,
                "window_start": shift_time(ev["_c"], -self.window).isoformat(),
                "window": within,
                "threshold": spec.count.at_least,
            }
            if self._members:
                details["members"] = {f: list(ev[c]) for c, f in self._members.items()}
            if spec.spread is not None:
                details["spread"] = {spec.spread.distinct: int(ev["_spread"])}
            if spec.share is not None:
                details["share"] = round(float(ev["_share"]), 4)
                details["share_at_least"] = spec.share.at_least
            if spec.baseline is not None:
                details["usual"] = round(float(ev["_exp"]), 3)
                details["baseline"] = {
                    "over": spec.baseline.over,
                    "factor": spec.baseline.factor,
                }
            if spec.count.distinct:
                details["distinct_field"] = spec.count.distinct
                details["distinct"] = n_distinct
                details["examples"] = list(ev["_examples"])
            extra_keys = {k: v for k, v in key_values.items() if k not in ENTITY_FIELDS}
            if extra_keys:
                details["keys"] = extra_keys
            rows.append(
                {
                    "alert.id": stable_id(spec.id, *key_values.values(), ev["_c"].isoformat()),
                    "@timestamp": ev["_c"],
                    "rule.id": spec.id,
                    "rule.name": spec.title,
                    "rule.category": spec.category,
                    "severity": spec.severity,
                    "risk_score": risk,
                    "entity": {f: key_values.get(f) for f in ENTITY_FIELDS},
                    "event.ids": list(ev["event.ids"]),
                    "threat.technique.id": spec.technique,
                    "message": render_message(template, values),
                    "details": json.dumps(details, sort_keys=True),
                }
            )
        return pl.DataFrame(rows, schema=ALERT_SCHEMA)
