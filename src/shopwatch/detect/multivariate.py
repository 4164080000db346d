"""Kind ``multivariate``: an entity's window of events unlike the windows the shop has seen.

Each entity (by default ``source.ip``) has its matching events cut into tumbling windows
of ``window`` (event time, whole minutes). When a window has ended (the engine's clock is
``lateness`` past its end) and holds at least ``min_events`` events, its ``features``
(counts, distinct values, shares of events matching a clause, means and maxima; see
:class:`FeatureSpec`) are scaled into [0, 1] with fixed scales from the rule (so what is
"large" is written down, not learned, and cannot be stretched by an attacker) and scored
by a :class:`~shopwatch.learn.hst.HalfSpaceForest` of every entity's past windows.

**Score.** ``likeness``: the mean over the trees of ``log2(1 + learned windows in the
window's leaf)``, high where many learned windows were, 0 where none was. Each window the
model learns adds its likeness (scored before it was learned) to a histogram, which
decays by a tenth at each roll of the forest's reference. A window is *far* when

- its ``rarity`` is at most ``rarity`` (0.001): at most that share of the learned windows
  scored as low as it, or less than :data:`SLACK` (half a bit) above it, and
- its likeness is ``spread`` (6) robust deviations (1.4826 MAD) or more below the learned
  windows' median.

A far window alerts, once per entity per ``quiet``, when the model is *warm*: it has rolled
twice and its histogram holds ``warmup`` windows. The histogram only counts windows
learnt after the first roll and only at a roll, so that takes ``2 * period`` taught
windows at least (the defaults: about 1,000), more for a ``warmup`` above ``period``.
The alert names the features furthest from the learned windows (each feature's own
histogram), with their usual range (5th to 95th percentile).

**What teaches.** Windows are taught in the order of their slot and, within a slot, of a
digest of the entity and the slot keyed by ``salt`` (set one of your own: with the
default, whoever reads this can pick addresses that come first), so the model is the same
however the events were cut into batches. A window does not teach when it is far (alerted
or held back by ``quiet``); when, once warm, its rarity is at most ``teach_floor``; when
any rule (this one too) alerted on its entity from ``taint`` before the window began to
its end (the engine hands every rule's alerts, campaign members included, to this one:
``sees_alerts``; alerts handed over after the window was scored cannot count); when its
entity has taught ``entity_weight`` windows this period, or its slot ``slot_share`` of a
period.

**Poisoning bound.** Before the model is warm, every window that no rule alerted on
teaches: what an attacker sends while the model learns its first ``2 * period`` or more
windows is learned as normal, up to the caps. Once warm, a kind of window the model has
not seen is far, alerts and teaches nothing; for it to stop being far, the reference must
hold a few tens of windows like it in most trees (about ``2^floor``: with the defaults the
floor is near 6 bits, some 60 windows), taught from at least half as many addresses
(``entity_weight`` 2) and over several slots (a slot teaches at most 50 windows of a
``period`` of 500), each of which must itself not have been far when it came. So the
model can be walked toward a new kind of window, in steps from what is already normal,
by many addresses over hours; it cannot be jumped. The bound slows poisoning; it does not
prevent it.

State: the model's counts (one row, about ``2 * trees * 2^(depth+1) * 8`` bytes, plus two
histograms), the events of open windows (about 80 bytes each: distinct values are held as
64-bit digests; bounded by ``max_rows``, past which, in this order: windows dated after
the clock's slot are dropped, the slots before it end early, counted in ``ended_early``,
and the clock's slot keeps at most half the cap of any one window's events and drops its
smallest windows, counted in ``dropped_windows`` and ``dropped_rows``), how many windows
each entity and slot taught this period (at most ``period`` rows each, kept whole until
the next roll), and when entities were alerted on. Events that arrive after their window
was scored are counted in ``late``. A state learnt by another version of the rule (its
features, trees, seed, window, entity, clause or ``min_events``), or saved before states
carried the rule's signature, is dropped and learnt afresh (``reset_models``,
``reset_rows``).
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_left, insort
from datetime import datetime
from typing import Any, Final, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopwatch.contract import TIMESTAMP, empty_alerts
from shopwatch.detect.campaign import MAX_MEMBERS
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    human_duration,
    kind,
    parse_duration,
)
from shopwatch.detect.state import LATEST, KeyedState, shift_time
from shopwatch.learn.hst import HalfSpaceForest

__all__ = ["FeatureSpec", "MultivariateDetector", "MultivariateSpec"]

#: Width of a likeness bin (in bits of log2(1 + windows)) and how many there are.
BIN: Final = 0.05
BINS: Final = 480
#: How much above a window's likeness the learned windows it is as rare as may score (bits).
SLACK: Final = 0.5
#: Bins of each feature's own histogram over [0, 1].
FEATURE_BINS: Final = 20
#: At a roll, the histograms keep this much of what they held (about ten periods).
HISTORY_KEEP: Final = 0.9
#: Periods of windows a warm-up may ask for: the histograms never reach ten.
HISTORY_CEILING: Final = 5
#: A feature named in an alert: at most this share of learned windows had its value.
NAMED_BELOW: Final = 0.05
#: Events of a window an alert cites.
EVIDENCE: Final = 20
ENTITY: Final = "_entity"

Aggregate = Literal["count", "distinct", "share", "mean", "max"]


class FeatureSpec(BaseModel):
    """One feature of a window: exactly one of ``count``, ``distinct``, ``share``, ``mean``,
    ``max``.

    - ``count: true``: events in the window; ``distinct: field``: distinct values of a field
      (``per_event: true`` divides by the events); ``mean: field`` / ``max: field``: of a
      numeric field. These are scaled as ``log(1 + v) / log(1 + scale)``, capped at 1.
    - ``share: {clause}``: the share of the window's events that match the clause (0..1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    noun: str = ""
    count: bool = False
    distinct: str | None = None
    per_event: bool = False
    share: WhereClause | None = None
    mean: str | None = None
    max: str | None = None
    scale: float = Field(default=1000.0, gt=0)

    @model_validator(mode="after")
    def _one(self) -> FeatureSpec:
        given = [
            a
            for a, on in (
                ("count", self.count),
                ("distinct", self.distinct is not None),
                ("share", self.share is not None),
                ("mean", self.mean is not None),
                ("max", self.max is not None),
            )
            if on
        ]
        if len(given) != 1:
            raise ValueError(
                f"feature {self.name!r} needs exactly one of count, distinct, share, mean, "
                f"max (it has {', '.join(given) or 'none'})"
            )
        if self.per_event and self.distinct is None:
            raise ValueError(f"feature {self.name!r}: per_event goes with distinct")
        return self

    @property
    def aggregate(self) -> Aggregate:
        """Which of the five it is."""
        if self.count:
            return "count"
        if self.distinct is not None:
            return "distinct"
        if self.share is not None:
            return "share"
        return "mean" if self.mean is not None else "max"

    @property
    def field(self) -> str | None:
        """The field it reads (None for count and share)."""
        return self.distinct or self.mean or self.max

    @property
    def scaled(self) -> bool:
        """Whether the raw value is log-scaled (a share and a per-event ratio are not)."""
        return self.aggregate != "share" and not self.per_event

    def to_unit(self, raw: np.ndarray) -> np.ndarray:
        """Raw values into [0, 1]."""
        v = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0)
        if not self.scaled:
            return np.clip(v, 0.0, 1.0)
        return np.clip(np.log1p(np.maximum(v, 0.0)) / math.log1p(self.scale), 0.0, 1.0)

    def from_unit(self, unit: float) -> float:
        """A value in [0, 1] back to the raw scale."""
        if not self.scaled:
            return unit
        return math.expm1(unit * math.log1p(self.scale))

    def shown(self, raw: float) -> str:
        """A raw value as an analyst reads it."""
        if not self.scaled:
            return f"{raw:.2f}"
        if self.aggregate in ("count", "distinct") or raw >= 10:
            return f"{raw:,.0f}"
        return f"{raw:.1f}"

    def label(self) -> str:
        """What the feature is, in words."""
        return self.noun or self.name.replace("_", " ")


class MultivariateSpec(RuleSpec):
    """A ``multivariate`` rule."""

    where: WhereClause
    entity: str = "source.ip"
    window: Duration = "10m"
    lateness: Duration = "1m"
    min_events: int = Field(default=20, ge=1)
    features: tuple[FeatureSpec, ...] = Field(min_length=2, max_length=24)
    trees: int = Field(default=32, ge=4, le=256)
    depth: int = Field(default=8, ge=2, le=12)
    seed: int = Field(default=0, ge=0)
    period: int = Field(default=500, ge=50)
    warmup: int = Field(default=500, ge=1)
    rarity: float = Field(default=0.001, gt=0, lt=0.5)
    spread: float = Field(default=6.0, ge=0)
    teach_floor: float = Field(default=0.005, ge=0, lt=0.5)
    entity_weight: int = Field(default=2, ge=1)
    slot_share: float = Field(default=0.1, gt=0, le=1)
    taint: Duration = "1h"
    quiet: Duration = "1h"
    max_rows: int = Field(default=500_000, ge=1000)
    noun: str = "events"
    #: The key of the digest that orders a slot's windows for its cap: set a secret of
    #: your own, so that nobody who reads this file can pick addresses that come first.
    salt: str = ""

    @model_validator(mode="after")
    def _checked(self) -> MultivariateSpec:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be distinct")
        window = parse_duration(self.window)
        seconds = window.total_seconds()
        if seconds < 60 or seconds != int(seconds) or int(seconds) % 60:
            raise ValueError(f"window {self.window!r} must be whole minutes, at least 1m")
        if self.warmup > HISTORY_CEILING * self.period:
            raise ValueError(
                f"warmup {self.warmup} can never be reached: the learned likeness holds at "
                f"most {HISTORY_CEILING} periods ({HISTORY_CEILING * self.period} windows)"
            )
        return self


_ROWS_BASE: Final[dict[str, pl.DataType]] = {
    ENTITY: pl.String(),
    "_win": TIMESTAMP,
    "_ts": TIMESTAMP,
    "event.id": pl.String(),
}
_MODEL: Final[dict[str, pl.DataType]] = {
    "reference": pl.List(pl.Float64()),
    "latest": pl.List(pl.Float64()),
    "rolls": pl.Int64(),
    "scores": pl.List(pl.Float64()),
    "scores_latest": pl.List(pl.Float64()),
    "values": pl.List(pl.Float64()),
    "values_latest": pl.List(pl.Float64()),
    "scored": pl.Int64(),
    "taught": pl.Int64(),
    "windows": pl.Int64(),
    "alerts": pl.Int64(),
    "signature": pl.String(),
}
_ENDED: Final[dict[str, pl.DataType]] = {"_upto": TIMESTAMP}
#: What each slot and entity taught this period: at most ``period`` rows each, kept whole
#: until the next roll (no key column and no ``_ts``: age eviction and shedding leave them).
_SLOTS: Final[dict[str, pl.DataType]] = {"slot": TIMESTAMP, "n": pl.Int64()}
_TAUGHT: Final[dict[str, pl.DataType]] = {"who": pl.String(), "n": pl.Int64()}
#: The rule the saved state was learnt by (see ``signature``).
_SIGNED: Final[dict[str, pl.DataType]] = {"signature": pl.String()}
_ALERTED: Final[dict[str, pl.DataType]] = {
    ENTITY: pl.String(),
    "_ts": TIMESTAMP,
    "own": pl.Boolean(),
}


def _alerted_within(times: list[datetime] | None, low: datetime, high: datetime) -> bool:
    """Whether any of the sorted ``times`` falls in ``[low, high]``."""
    if not times:
        return False
    at = bisect_left(times, low)
    return at < len(times) and times[at] <= high


@kind("multivariate")
class MultivariateDetector:
    """Scores each entity's ended windows against a half-space forest of past windows."""

    Spec = MultivariateSpec
    #: The engine runs this rule after the others and hands it their alerts first.
    sees_alerts = True
    #: ``flush`` scores the windows still open with their events so far.
    partial_at_flush = True

    def __init__(self, spec: MultivariateSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = (ENTITY,)
        self.single_event = False
        self.window = parse_duration(spec.window)
        self.lateness = parse_duration(spec.lateness)
        self.taint = parse_duration(spec.taint)
        self.quiet = parse_duration(spec.quiet)
        self.horizon = self.window + self.lateness
        self.memory = max(self.taint, self.quiet) + self.horizon
        self.where = Where(spec.where)
        self.shares = [Where(f.share) for f in spec.features if f.share is not None]
        self.derived = self.where.derived.union(*(w.derived for w in self.shares))
        self.needs = frozenset(
            self.where.fields.union(*(w.fields for w in self.shares))
            | {f.field for f in spec.features if f.field}
            | {spec.entity, "@timestamp", "event.id"}
        )
        self.forest = HalfSpaceForest(
            len(spec.features), trees=spec.trees, depth=spec.depth, seed=spec.seed
        )
        #: What the saved counts must have been learnt with to be read (else learnt afresh).
        self.signature = hashlib.sha256(
            json.dumps(
                [
                    [f.model_dump(mode="json") for f in spec.features],
                    spec.trees,
                    spec.depth,
                    spec.seed,
                    spec.window,
                    spec.entity,
                    spec.where,
                    spec.min_events,
                ],
                sort_keys=True,
            ).encode()
        ).hexdigest()[:16]
        self._salt = hashlib.sha256(f"{spec.id}\x00{spec.salt}".encode()).digest()[:16]
        self._rows = dict(_ROWS_BASE)
        #: The held column each feature reads (features of one field share one column).
        self._column: dict[int, str] = {}
        for i, f in enumerate(spec.features):
            if f.aggregate == "share":
                self._column[i] = f"_f{i}"
                self._rows[f"_f{i}"] = pl.Boolean()
            elif f.aggregate == "distinct":  # held as a 64-bit digest: 8 bytes, not the text
                self._column[i] = f"_s:{f.field}"
                self._rows[f"_s:{f.field}"] = pl.UInt64()
            elif f.aggregate in ("mean", "max"):
                self._column[i] = f"_n:{f.field}"
                self._rows[f"_n:{f.field}"] = pl.Float64()
        #: Events that came after their window had ended (not scored).
        self.late = 0
        #: Windows ended before their time because the open windows held ``max_rows``.
        self.ended_early = 0
        #: Windows (and their events) of the newest slot dropped past ``max_rows``.
        self.dropped_windows = 0
        self.dropped_rows = 0
        #: Held events and models of an earlier version of the rule, dropped on load.
        self.reset_rows = 0
        self.reset_models = 0

    # -- the engine's hand-over of every rule's alerts ---------------------------------

    def take_alerts(self, alerts: pl.DataFrame, state: KeyedState) -> None:
        """Remember the entities other rules alerted on (their windows teach nothing)."""
        if alerts.height == 0 or "@timestamp" not in alerts.columns:
            return
        field = self.spec.entity
        named: list[tuple[str, datetime]] = []
        if "entity" in alerts.columns and field in alerts.get_column("entity").struct.fields:
            for value, at in alerts.select(
                pl.col("entity").struct.field(field).cast(pl.String), "@timestamp"
            ).iter_rows():
                named.append((value, at))
        if "details" in alerts.columns:  # a campaign's alert names its members there
            for details, at in alerts.select("details", "@timestamp").iter_rows():
                if not details or "members" not in details:
                    continue
                try:
                    members = (json.loads(details).get("members") or {}).get(field)
                except (json.JSONDecodeError, AttributeError, TypeError):
                    continue
                if isinstance(members, list):
                    named.extend(
                        (str(m), at)
                        for m in members[:MAX_MEMBERS]
                        if isinstance(m, str | int) and not isinstance(m, bool)
                    )
        rows = [
            {ENTITY: v[:200], "_ts": at, "own": False}
            for v, at in named
            if v and isinstance(at, datetime)
        ]
        if rows:
            self._remember(state, pl.DataFrame(rows, schema=_ALERTED))

    def _remember(self, state: KeyedState, seen: pl.DataFrame) -> None:
        """Keep when each entity was alerted on, to the minute (the window's taint asks
        whether any alert fell around it, not only the last)."""
        alerted = state.table("alerted", _ALERTED)
        both = pl.concat([alerted, seen.select(list(_ALERTED))], how="vertical_relaxed")
        state.put(
            "alerted",
            both.group_by(ENTITY, "own", pl.col("_ts").dt.truncate("1m").alias("_minute"))
            .agg(pl.col("_ts").max())
            .sort(ENTITY, "_ts", "own")
            .select(list(_ALERTED)),
        )

    # -- detect ------------------------------------------------------------------------

    def _events(self, batch: pl.DataFrame) -> pl.DataFrame | None:
        where = self.where.for_batch(batch.columns)
        if where is None or self.spec.entity not in batch.columns:
            return None

        def col(name: str | None, dtype: pl.DataType) -> pl.Expr:
            if name and name in batch.columns:
                return pl.col(name).cast(dtype, strict=False)
            return pl.lit(None, dtype)

        columns = [
            col(self.spec.entity, pl.String()).str.slice(0, 200).alias(ENTITY),
            pl.col("@timestamp").dt.truncate(human_duration(self.window)).alias("_win"),
            pl.col("@timestamp").alias("_ts"),
            col("event.id", pl.String()).alias("event.id"),
        ]
        shares = iter(self.shares)
        named: set[str] = set()
        for i, f in enumerate(self.spec.features):
            name = self._column.get(i)
            if name is None or name in named:
                continue
            named.add(name)
            if f.aggregate == "share":
                expr = next(shares).for_batch(batch.columns)
                columns.append(
                    (expr if expr is not None else pl.lit(False)).fill_null(False).alias(name)
                )
            elif f.aggregate == "distinct":
                text = col(f.field, pl.String())
                columns.append(pl.when(text.is_not_null()).then(text.hash(seed=7)).alias(name))
            else:
                columns.append(col(f.field, pl.Float64()).alias(name))
        rows = (
            batch.lazy()
            .filter(where & pl.col("@timestamp").is_not_null())
            .select(columns)
            .filter(pl.col(ENTITY).is_not_null() & (pl.col(ENTITY) != ""))
            .collect()
        )
        return rows if rows.height else None

    def _current(self, state: KeyedState) -> bool:
        """Whether what ``state`` holds was learnt by this rule (or it holds nothing yet)."""
        signed = state.table("signed", _SIGNED)
        if signed.height:
            return bool(signed.item() == self.signature)
        # a state without the mark: empty, or saved before rules were signed
        return all(state.table(t, {}).height == 0 for t in ("model", "rows"))

    def _held(self, state: KeyedState) -> pl.DataFrame:
        """The open windows' events. A state learnt by another version of the rule (other
        features, trees, seed, window, entity or clause) is dropped, counted, and learnt
        afresh; so is one saved before states carried the rule's signature."""
        if not self._current(state):  # another rule's state (features, entity, window...)
            self.reset_models += 1
            self.reset_rows += state.table("rows", {}).height
            for name, schema in (
                ("model", _MODEL),
                ("taught", _TAUGHT),
                ("slots", _SLOTS),
                ("rows", self._rows),
                ("ended", _ENDED),
            ):
                state.put(name, pl.DataFrame(schema=schema))
        state.put("signed", pl.DataFrame({"signature": [self.signature]}, schema=_SIGNED))
        held = state.table("rows", self._rows)
        if held.schema != pl.Schema(self._rows):
            self.reset_rows += held.height
            held = pl.DataFrame(schema=self._rows)
            state.put("rows", held)
        return held

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Hold the batch's events in their windows; score the windows that have ended."""
        if batch.height == 0 or "@timestamp" not in batch.columns:
            return empty_alerts()
        newest = batch.get_column("@timestamp").max()
        if not isinstance(newest, datetime):
            return empty_alerts()
        clock = state.now(newest)
        events = self._events(batch)
        held = self._held(state)
        if events is not None:
            # an event whose window has already been scored comes too late
            upto = state.table("ended", _ENDED)
            if upto.height:
                late = pl.col("_win") + self.horizon <= pl.lit(upto.item())
                n_late = int(events.select(late.sum()).item())
                if n_late:
                    self.late += n_late
                    events = events.filter(~late)
            # a window keeps the ids of its first events only (its evidence)
            held = pl.concat([held, events], how="vertical_relaxed").with_columns(
                pl.when(pl.int_range(pl.len()).over(ENTITY, "_win") < EVIDENCE)
                .then(pl.col("event.id"))
                .alias("event.id")
            )
        if held.height == 0:
            return empty_alerts()
        return self._end(held, state, clock)

    def flush(self, state: KeyedState) -> pl.DataFrame:
        """The end of a replay: the open windows are scored with what they hold."""
        held = self._held(state)
        if held.height == 0:
            return empty_alerts()
        return self._end(held, state, LATEST)

    def _bound(
        self, held: pl.DataFrame, ended: pl.Expr, clock: datetime
    ) -> tuple[pl.DataFrame, pl.Expr, Any]:
        """Open windows past ``max_rows``, in this order until they fit: windows of slots
        after the clock's (dated ahead: they cannot be scored yet) are dropped; the slots
        before the clock's end early; in the clock's slot the smallest windows are dropped
        (many addresses of a request or two each are what fills it, and none of them could
        reach ``min_events``), after each window is cut to its first half of the cap's
        events. All of it is counted. Returns the rows kept, what ends, and
        the latest slot ended early."""
        cap = self.spec.max_rows
        if held.filter(~ended).height <= cap:
            return held, ended, None
        current = pl.lit(clock).dt.truncate(human_duration(self.window))
        ahead = ~ended & (pl.col("_win") > current)
        n_ahead = int(held.select(ahead.sum()).item())
        if n_ahead:
            self.dropped_windows += held.filter(ahead).select(ENTITY, "_win").n_unique()
            self.dropped_rows += n_ahead
            held = held.filter(~ahead)
        early = ~ended & (pl.col("_win") < current)
        latest_early = None
        if held.filter(~ended).height > cap and held.select(early.any()).item():
            self.ended_early += held.filter(early).select(ENTITY, "_win").n_unique()
            latest_early = held.filter(early).get_column("_win").max()
            ended = ended | early
        if held.filter(~ended).height > cap:  # the clock's slot alone is past the cap
            # no window keeps more than half the room: one heavy client cannot crowd out
            # the others (its first events are what it is scored on)
            over = ~ended & (pl.int_range(pl.len()).over(ENTITY, "_win") >= cap // 2)
            trimmed = int(held.select(over.sum()).item())
            if trimmed:
                self.dropped_rows += trimmed
                held = held.filter(~over)
            open_rows = held.filter(~ended)
            sizes = (
                open_rows.group_by(ENTITY, "_win")
                .len()
                .sort(["len", ENTITY])
                .with_columns((open_rows.height - pl.col("len").cum_sum()).alias("_after"))
            )
            # then the smallest go while what would be left is still past the cap
            dropped = sizes.filter((pl.col("_after") + pl.col("len")) > cap)
            self.dropped_windows += dropped.height
            self.dropped_rows += int(dropped.get_column("len").sum())
            held = held.join(dropped.select(ENTITY, "_win"), on=[ENTITY, "_win"], how="anti")
        return held, ended, latest_early

    def _end(self, held: pl.DataFrame, state: KeyedState, clock: datetime) -> pl.DataFrame:
        ended = pl.lit(True) if clock == LATEST else pl.col("_win") + self.horizon <= pl.lit(clock)
        held, ended, latest_early = (
            (held, ended, None) if clock == LATEST else self._bound(held, ended, clock)
        )
        done = held.filter(ended)
        state.put("rows", held.filter(~ended).select(list(self._rows)))
        # what has ended, by the clock or early, is scored once: later events for it are late
        upto = state.table("ended", _ENDED)
        marks = [upto.item()] if upto.height else []
        if clock != LATEST:
            marks.append(clock)
        if isinstance(latest_early, datetime):
            marks.append(shift_time(latest_early, self.horizon))
        if marks:
            state.put("ended", pl.DataFrame({"_upto": [max(marks)]}, schema=_ENDED))
        if done.height == 0:
            return empty_alerts()
        return self._score(self._windows(done), state, clock)

    def _windows(self, done: pl.DataFrame) -> pl.DataFrame:
        """One row per ended window: its events, raw feature values, evidence."""
        aggs: list[pl.Expr] = [
            pl.len().alias("_n"),
            pl.col("_ts").max().alias("_last"),
            pl.col("event.id").drop_nulls().head(EVIDENCE).alias("_ids"),
        ]
        for i, f in enumerate(self.spec.features):
            name = self._column.get(i, "")
            if f.aggregate == "count":
                aggs.append(pl.len().cast(pl.Float64).alias(f"_v{i}"))
            elif f.aggregate == "share":
                aggs.append(pl.col(name).cast(pl.Float64).mean().alias(f"_v{i}"))
            elif f.aggregate == "distinct":
                distinct = pl.col(name).drop_nulls().n_unique().cast(pl.Float64)
                aggs.append((distinct / pl.len() if f.per_event else distinct).alias(f"_v{i}"))
            elif f.aggregate == "mean":
                aggs.append(pl.col(name).mean().fill_null(0.0).alias(f"_v{i}"))
            else:
                aggs.append(pl.col(name).max().fill_null(0.0).alias(f"_v{i}"))
        windows = (
            done.group_by(ENTITY, "_win").agg(aggs).filter(pl.col("_n") >= self.spec.min_events)
        )
        # within a slot, windows come in an order no entity can choose (a keyed digest of
        # the entity and the slot), so which of them teach under the slot's cap is a fair draw
        order = [
            hashlib.blake2b(
                f"{e}\x00{w.isoformat()}".encode(), digest_size=8, key=self._salt
            ).hexdigest()
            for e, w in zip(
                windows.get_column(ENTITY).to_list(),
                windows.get_column("_win").to_list(),
                strict=True,
            )
        ]
        return (
            windows.with_columns(pl.Series("_order", order, dtype=pl.String))
            .sort("_win", "_order")
            .drop("_order")
        )

    # -- the model ---------------------------------------------------------------------

    def _load(self, state: KeyedState) -> dict[str, Any]:
        table = state.table("model", _MODEL)
        forest = self.forest
        shape = forest.trees * forest.nodes
        width = len(self.spec.features) * FEATURE_BINS
        if table.height == 0:
            forest.load(np.zeros(shape), np.zeros(shape), 0)
            return {
                "scores": np.zeros(BINS),
                "scores_latest": np.zeros(BINS),
                "values": np.zeros(width),
                "values_latest": np.zeros(width),
                "scored": 0,
                "taught": 0,
                "windows": 0,
                "alerts": 0,
            }
        row = table.row(0, named=True)
        forest.load(np.array(row["reference"]), np.array(row["latest"]), row["rolls"])
        return {
            "scores": np.array(row["scores"], dtype=np.float64),
            "scores_latest": np.array(row["scores_latest"], dtype=np.float64),
            "values": np.array(row["values"], dtype=np.float64),
            "values_latest": np.array(row["values_latest"], dtype=np.float64),
            "scored": row["scored"],
            "taught": row["taught"],
            "windows": row["windows"],
            "alerts": row["alerts"],
        }

    def _save(self, state: KeyedState, model: dict[str, Any]) -> None:
        forest = self.forest
        state.put(
            "model",
            pl.DataFrame(
                [
                    {
                        "reference": forest.reference.reshape(-1).tolist(),
                        "latest": forest.latest.reshape(-1).tolist(),
                        "rolls": forest.rolls,
                        **{
                            k: model[k].tolist()
                            for k in ("scores", "scores_latest", "values", "values_latest")
                        },
                        **{k: model[k] for k in ("scored", "taught", "windows", "alerts")},
                        "signature": self.signature,
                    }
                ],
                schema=_MODEL,
            ),
        )

    def _roll(self, model: dict[str, Any], state: KeyedState) -> None:
        self.forest.roll()
        for name in ("scores", "values"):
            model[name] = model[name] * HISTORY_KEEP + model[f"{name}_latest"]
            model[f"{name}_latest"] = np.zeros_like(model[name])
        state.put("taught", pl.DataFrame(schema=_TAUGHT))
        state.put("slots", pl.DataFrame(schema=_SLOTS))

    def likeness(self, units: np.ndarray) -> np.ndarray:
        """Mean over the trees of log2(1 + learned windows in each window's leaf)."""
        found: np.ndarray = np.log2(1.0 + self.forest.leaf_mass(units)).mean(axis=1)
        return found

    def _score(self, windows: pl.DataFrame, state: KeyedState, clock: datetime) -> pl.DataFrame:
        if windows.height == 0:
            return empty_alerts()
        spec = self.spec
        feats = spec.features
        raw = np.column_stack(
            [windows.get_column(f"_v{i}").to_numpy().astype(np.float64) for i in range(len(feats))]
        )
        units = np.column_stack([f.to_unit(raw[:, i]) for i, f in enumerate(feats)])
        entities = windows.get_column(ENTITY).to_list()
        starts = windows.get_column("_win").to_list()
        alerted = state.table("alerted", _ALERTED)
        seen_at: dict[str, list[datetime]] = {}  # every rule's alerts, this one's too
        last_own: dict[str, datetime] = {}
        for e, ts, own in alerted.sort("_ts").iter_rows():
            seen_at.setdefault(e, []).append(ts)
            if own:
                last_own[e] = ts
        taught = dict(state.table("taught", _TAUGHT).iter_rows())
        slots = dict(state.table("slots", _SLOTS).iter_rows())
        slot_cap = max(int(spec.slot_share * spec.period), 1)
        model = self._load(state)
        found: list[dict[str, Any]] = []
        own_rows: list[dict[str, Any]] = []
        i = 0
        while i < len(entities):
            room = max(int(spec.period - round(self.forest.learned)), 1)
            chunk = slice(i, min(i + room, len(entities)))
            x = units[chunk]
            n = x.shape[0]
            warm = self.forest.rolls > 0 and model["scores"].sum() >= spec.warmup
            like = self.likeness(x) if self.forest.rolls > 0 else np.full(n, np.nan)
            model["windows"] += n
            teach = np.ones(n, dtype=bool)
            floor = self._floor(model) if warm else -math.inf
            for j in range(n):
                k = i + j
                e, start = entities[k], starts[k]
                end = shift_time(start, self.window)
                rar = self._rarity(model, like[j]) if warm else 1.0
                far = warm and rar <= spec.rarity and like[j] <= floor
                told = last_own.get(e)
                if far:
                    teach[j] = False  # alerted or held back by quiet, it never teaches
                    if told is None or shift_time(told, self.quiet) <= end:
                        found.append(
                            self._alert(windows.row(k, named=True), x[j], like[j], rar, model)
                        )
                        own_rows.append({ENTITY: e, "_ts": end, "own": True})
                        last_own[e] = end
                        insort(seen_at.setdefault(e, []), end)
                        model["alerts"] += 1
                elif warm and spec.teach_floor > 0 and rar <= spec.teach_floor:
                    teach[j] = False  # far out, if not far enough to alert: it never teaches
                elif _alerted_within(seen_at.get(e), shift_time(start, -self.taint), end):
                    teach[j] = False  # a rule alerted on this entity around its window
                elif taught.get(e, 0) >= spec.entity_weight:
                    teach[j] = False  # this entity has taught its share of the period
                elif slots.get(start, 0) >= slot_cap:
                    teach[j] = False  # this slot has taught its share of the period
                else:
                    taught[e] = taught.get(e, 0) + 1
                    slots[start] = slots.get(start, 0) + 1
            if np.isfinite(like).any():
                model["scored"] += int(np.isfinite(like).sum())
            if teach.any():
                self.forest.learn(x[teach])
                model["taught"] += int(teach.sum())
                if self.forest.rolls > 0:
                    bins = np.clip((like[teach] / BIN).astype(np.int64), 0, BINS - 1)
                    model["scores_latest"] += np.bincount(bins, minlength=BINS)
                fb = np.clip((x[teach] * FEATURE_BINS).astype(np.int64), 0, FEATURE_BINS - 1)
                flat = (fb + np.arange(len(feats))[None, :] * FEATURE_BINS).reshape(-1)
                model["values_latest"] += np.bincount(flat, minlength=len(feats) * FEATURE_BINS)
            if self.forest.learned >= spec.period:
                self._roll(model, state)
                taught, slots = {}, {}
            i = chunk.stop
        self._save(state, model)
        state.put(
            "taught",
            pl.DataFrame([{"who": e, "n": n} for e, n in sorted(taught.items())], schema=_TAUGHT),
        )
        state.put(
            "slots",
            pl.DataFrame([{"slot": w, "n": n} for w, n in sorted(slots.items())], schema=_SLOTS),
        )
        if own_rows:
            self._remember(state, pl.DataFrame(own_rows, schema=_ALERTED))
        if not found:
            return empty_alerts()
        return pl.DataFrame(found, schema=empty_alerts().schema)

    def _floor(self, model: dict[str, Any]) -> float:
        """The likeness ``spread`` robust deviations (1.4826 MAD) below the learned median."""
        hist = model["scores"]
        total = hist.sum()
        if total <= 0:
            return -math.inf
        mids = (np.arange(BINS) + 0.5) * BIN
        cum = np.cumsum(hist) / total
        median = mids[min(int(np.searchsorted(cum, 0.5)), BINS - 1)]
        order = np.argsort(np.abs(mids - median), kind="stable")
        dev = np.abs(mids - median)[order]
        near = np.cumsum(hist[order]) / total
        mad = max(float(dev[min(int(np.searchsorted(near, 0.5)), BINS - 1)]), BIN)
        return float(median - self.spec.spread * 1.4826 * mad)

    @staticmethod
    def _rarity(model: dict[str, Any], like: float) -> float:
        """Share of learned windows that scored at most ``SLACK`` above ``like``: the
        reference moves a little at every roll, so a kind of window the model holds a few
        of may score a little lower than the same kind did; it is not rarer for that."""
        hist = model["scores"]
        total = hist.sum()
        if total <= 0:
            return 1.0
        b = min(max(int((like + SLACK) / BIN), 0), BINS - 1)
        return float(hist[: b + 1].sum() / total)

    def _usual(self, model: dict[str, Any], i: int) -> tuple[float, float, np.ndarray]:
        """The 5th and 95th percentiles of feature ``i`` over learned windows (unit scale)
        and its histogram's shares."""
        hist = model["values"][i * FEATURE_BINS : (i + 1) * FEATURE_BINS]
        total = hist.sum()
        shares = hist / total if total > 0 else np.full(FEATURE_BINS, 1.0 / FEATURE_BINS)
        cum = np.cumsum(shares)
        low = float(np.searchsorted(cum, 0.05)) / FEATURE_BINS
        high = min(int(np.searchsorted(cum, 0.95)) + 1, FEATURE_BINS) / FEATURE_BINS
        return low, high, shares

    def _alert(
        self,
        row: dict[str, Any],
        unit: np.ndarray,
        like: float,
        rar: float,
        model: dict[str, Any],
    ) -> dict[str, Any]:
        spec = self.spec
        named: list[tuple[float, str, dict[str, Any]]] = []
        for i, f in enumerate(spec.features):
            low, high, shares = self._usual(model, i)
            b = min(int(unit[i] * FEATURE_BINS), FEATURE_BINS - 1)
            share = float(shares[b])
            raw = float(row[f"_v{i}"])
            low_raw, high_raw = f.from_unit(low), f.from_unit(high)
            if f.aggregate in ("count", "distinct") and not f.per_event:
                low_raw, high_raw = float(math.floor(low_raw)), float(math.ceil(high_raw))
            named.append(
                (
                    share,
                    f"{f.label()} {f.shown(raw)} (usual {f.shown(low_raw)}-{f.shown(high_raw)})",
                    {
                        "feature": f.name,
                        "value": round(raw, 4),
                        "usual_low": round(low_raw, 4),
                        "usual_high": round(high_raw, 4),
                        "share_of_windows": round(share, 5),
                    },
                )
            )
        # the features outside their usual range, the rarest first; else the rarest one
        named.sort(key=lambda t: (t[0], t[1]))
        outside = [
            t
            for t in named
            if not t[2]["usual_low"] <= t[2]["value"] <= t[2]["usual_high"] and t[0] <= NAMED_BELOW
        ]
        top = outside[:3] or named[:1]
        entity = row[ENTITY]
        start: datetime = row["_win"]
        end = shift_time(start, self.window)
        seen = max(int(model["scores"].sum()), 1)
        words = "; ".join(t[1] for t in top)
        rare = (
            f"rarer than any of the last {seen:,} it learned"
            if rar * seen < 1
            else f"as rare as {rar * seen:,.0f} of the last {seen:,} it learned"
        )
        message = (
            f"{spec.entity} {entity}: {row['_n']} {spec.noun} in {human_duration(self.window)} "
            f"from {start:%H:%M} UTC, unlike the shop's usual windows ({rare}): {words}"
        )
        details = {
            "window_start": start.isoformat(),
            "window": human_duration(self.window),
            "events": row["_n"],
            "likeness": round(float(like), 3),
            "rarity": round(rar, 6),
            "windows_learned": seen,
            "features": [t[2] for t in named],
            "top_features": [t[2]["feature"] for t in top],
        }
        return alert_record(
            spec,
            at=min(row["_last"], end),
            key=(entity, start.isoformat()),
            entity={spec.entity: entity},
            event_ids=[x for x in row["_ids"] if x],
            message=message,
            details=details,
        )

    def model_summary(self, state: KeyedState) -> dict[str, Any]:
        """What this model holds (``shopwatch models``); nothing of another rule's state."""
        if not self._current(state):
            state = KeyedState(self.keys)
        model = self._load(state)
        rows = state.table("rows", self._rows)
        return {
            "learns_from": (
                f"{human_duration(self.window)} windows of {self.spec.entity}: "
                + ", ".join(f.name for f in self.spec.features)
            ),
            "entity": self.spec.entity,
            "entities": int(
                pl.concat(
                    [
                        rows.select(ENTITY),
                        state.table("taught", _TAUGHT).select(pl.col("who").alias(ENTITY)),
                        state.table("alerted", _ALERTED).select(ENTITY),
                    ]
                )
                .get_column(ENTITY)
                .n_unique()
            ),
            "events": None,  # it learns windows, not events: windows_taught
            "first": None,
            "last": rows.get_column("_ts").max() if rows.height else None,
            "windows_scored": int(model["scored"]),
            "windows_taught": int(model["taught"]),
            "alerts": int(model["alerts"]),
            "rolls": int(self.forest.rolls),
            "late_events": self.late,
            "ended_early": self.ended_early,
            "dropped_windows": self.dropped_windows,
            "reset_models": self.reset_models,
            "details": json.dumps({"trees": self.spec.trees, "depth": self.spec.depth}),
        }
