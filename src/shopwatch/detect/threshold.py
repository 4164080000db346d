"""Kind ``threshold``: at least N matching events (or N distinct values) per key in a window.

Windows are hopping, epoch-aligned (``hop`` apart, ``within`` long), in event time. A
window that reaches the threshold fires at the event that made it reach it, so the alert's
time, id and evidence depend only on the events, never on how they were cut into batches.
After an alert a key stays quiet for ``suppress`` (default: the window) of event time; an
attack that goes on fires again after that, as a new alert.

State: ``tail`` (the matching events of the last window per key, capped per key) and
``fired`` (per key, the time of the last alert).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, empty_alerts, stable_id
from shopwatch.detect.conditions import compile_where, derived_name, derived_of, fields_of
from shopwatch.detect.registry import RuleSpec, kind, parse_duration
from shopwatch.detect.state import KeyedState

__all__ = ["CountSpec", "ThresholdDetector", "ThresholdSpec", "render_message"]

MAX_EVENT_IDS = 1000
TAIL_ROWS_PER_KEY = 5000


class CountSpec(BaseModel):
    """How much is too much: ``at_least`` events (or distinct values) ``within`` a window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at_least: int = Field(ge=1)
    within: str
    distinct: str | None = None
    events_at_least: int | None = Field(default=None, ge=1)

    @field_validator("within")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class ThresholdSpec(RuleSpec):
    """A ``threshold`` rule."""

    where: dict[str, Any] = {}
    group_by: tuple[str, ...] = Field(min_length=1)
    count: CountSpec
    suppress: str | None = None
    hop: str | None = None
    message: str | None = None

    @field_validator("where")
    @classmethod
    def _where_compiles(cls, value: dict[str, Any]) -> dict[str, Any]:
        compile_where(value)
        return value

    @field_validator("suppress", "hop")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def render_message(template: str, values: dict[str, Any]) -> str:
    """Fill ``{field.name}`` placeholders (dotted names allowed); unknown ones stay as is.

    >>> render_message("{count} failures from {source.ip}", {"count": 3, "source.ip": "1.2.3.4"})
    '3 failures from 1.2.3.4'
    """

    def sub(found: re.Match[str]) -> str:
        name = found.group(1)
        return str(values[name]) if name in values else found.group(0)

    return _PLACEHOLDER.sub(sub, template)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
        self._where = compile_where(spec.where)
        self._where_fast = compile_where(spec.where, precomputed=True)
        self.derived = frozenset(derived_of(spec.where))
        needs = fields_of(spec.where) | set(self.keys) | {"@timestamp", "event.id"}
        if spec.count.distinct:
            needs.add(spec.count.distinct)
        self.needs = frozenset(needs)
        self._tail_schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            "@timestamp": TIMESTAMP,
            "event.id": pl.String(),
            "_v": pl.String(),
            "_ts": TIMESTAMP,
        }
        self._fired_schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            "_ts": TIMESTAMP,
        }

    # -- the hot path -----------------------------------------------------------------

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Alerts for windows that crossed the threshold at an event of this batch."""
        spec = self.spec
        missing = self.needs - set(batch.columns)
        if batch.height == 0 or missing & ({"@timestamp"} | set(self.keys)):
            return empty_alerts()
        distinct = spec.count.distinct
        value = (
            pl.col(distinct).cast(pl.String) if distinct and distinct in batch.columns else pl.lit(None, pl.String)
        )
        event_id = pl.col("event.id") if "event.id" in batch.columns else pl.lit(None, pl.String)
        if fields_of(spec.where) - set(batch.columns):
            where = pl.lit(False)
        elif all(derived_name(f) in batch.columns for f in self.derived):
            where = self._where_fast
        else:
            where = self._where
        new = (
            batch.lazy()
            .filter(where & pl.all_horizontal([pl.col(k).is_not_null() for k in self.keys]))
            .select(
                *[pl.col(k).cast(pl.String) for k in self.keys],
                pl.col("@timestamp"),
                event_id.alias("event.id"),
                value.alias("_v"),
            )
            .with_columns(pl.col("@timestamp").alias("_ts"))
            .collect()
        )
        if new.height == 0:
            return empty_alerts()
        tail = state.table("tail", self._tail_schema)
        events = pl.concat(
            [tail.with_columns(pl.lit(False).alias("_new")), new.with_columns(pl.lit(True).alias("_new"))],
            how="vertical",
        ).sort([*self.keys, "@timestamp"], maintain_order=True)
        alerts, fired = self._fire(events, state.table("fired", self._fired_schema))
        latest = events.select(pl.col("@timestamp").max()).item()
        horizon = latest - self.window - self.hop
        kept = events.filter(pl.col("@timestamp") > horizon).drop("_new")
        kept = kept.group_by(self.keys, maintain_order=True).tail(TAIL_ROWS_PER_KEY)
        state.put("tail", kept.select(list(self._tail_schema)))
        state.put("fired", fired)
        return alerts

    def _fire(self, events: pl.DataFrame, fired: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        spec = self.spec
        keys = list(self.keys)
        at_least = spec.count.at_least
        distinct = spec.count.distinct is not None
        windows = (
            events.group_by_dynamic(
                "@timestamp",
                every=self.hop,
                period=self.window,
                group_by=keys,
                include_boundaries=True,
                closed="left",
                start_by="window",
            )
            .agg(
                pl.len().alias("_n"),
                pl.col("_v").n_unique().alias("_d"),
                pl.col("_new").any().alias("_has_new"),
            )
        )
        need_n = spec.count.events_at_least or (1 if distinct else at_least)
        cond = pl.col("_has_new") & (pl.col("_n") >= max(need_n, at_least if not distinct else 1))
        if distinct:
            cond = cond & (pl.col("_d") >= at_least)
        cand = windows.filter(cond).select(*keys, "_lower_boundary", "_upper_boundary")
        if cand.height == 0:
            return empty_alerts(), fired
        inside = cand.join(events, on=keys, how="inner", nulls_equal=True).filter(
            (pl.col("@timestamp") >= pl.col("_lower_boundary"))
            & (pl.col("@timestamp") < pl.col("_upper_boundary"))
        )
        win = [*keys, "_lower_boundary"]
        crossing_parts = []
        if not distinct or spec.count.events_at_least:
            k = need_n if distinct else at_least
            crossing_parts.append(
                inside.group_by(win).agg(pl.col("@timestamp").sort().get(k - 1).alias("_c"))
            )
        if distinct:
            crossing_parts.append(
                inside.filter(pl.col("_v").is_not_null())
                .group_by([*win, "_v"])
                .agg(pl.col("@timestamp").min())
                .group_by(win)
                .agg(pl.col("@timestamp").sort().get(at_least - 1).alias("_c"))
            )
        crossing = crossing_parts[0]
        for part in crossing_parts[1:]:
            crossing = crossing.join(part, on=win, nulls_equal=True).select(
                *win, pl.max_horizontal("_c", "_c_right").alias("_c")
            )
        # The crossing event must be new: windows that crossed in an earlier batch were judged then.
        last_old = (
            events.filter(~pl.col("_new")).group_by(keys).agg(pl.col("@timestamp").max().alias("_old"))
        )
        crossing = crossing.join(last_old, on=keys, how="left", nulls_equal=True).filter(
            pl.col("_old").is_null() | (pl.col("_c") > pl.col("_old"))
        )
        if crossing.height == 0:
            return empty_alerts(), fired
        crossing = crossing.sort([*keys, "_c", "_lower_boundary"])
        last_fired: dict[tuple[str, ...], datetime] = {
            tuple(row[:-1]): row[-1] for row in fired.select(*keys, "_ts").iter_rows()
        }
        chosen: list[tuple[Any, ...]] = []
        for row in crossing.select(*keys, "_lower_boundary", "_c").iter_rows():
            key = tuple(row[: len(keys)])
            at = row[-1]
            previous = last_fired.get(key)
            if previous is not None and at < previous + self.suppress:
                continue
            last_fired[key] = at
            chosen.append(row)
        if not chosen:
            return empty_alerts(), fired
        picked = pl.DataFrame(
            chosen,
            schema={**{k: pl.String() for k in keys}, "_lower_boundary": TIMESTAMP, "_c": TIMESTAMP},
            orient="row",
        )
        evidence = (
            picked.join(inside, on=win, how="inner", nulls_equal=True)
            .filter(pl.col("@timestamp") <= pl.col("_c"))
            .sort([*win, "@timestamp"], maintain_order=True)
            .group_by([*win, "_c"], maintain_order=True)
            .agg(
                pl.len().alias("count"),
                pl.col("_v").n_unique().alias("distinct"),
                pl.col("event.id").drop_nulls().head(MAX_EVENT_IDS).alias("event.ids"),
                pl.col("_v").drop_nulls().unique(maintain_order=True).head(20).alias("_examples"),
            )
            .sort(["_c", *keys])
        )
        fired_new = pl.DataFrame(
            [(*key, at) for key, at in last_fired.items()],
            schema=self._fired_schema,
            orient="row",
        )
        return self._alert_rows(evidence), fired_new

    def _alert_rows(self, evidence: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        rows: list[dict[str, Any]] = []
        within = _human(self.window)
        for ev in evidence.iter_rows(named=True):
            key_values = {k: ev[k] for k in self.keys}
            count, n_distinct = int(ev["count"]), int(ev["distinct"])
            measured = n_distinct if spec.count.distinct else count
            excess = max(measured / spec.count.at_least, 1.0)
            risk = min(100, spec.base_risk + int(round(8 * math.log2(excess))))
            values = {**key_values, "count": count, "distinct": n_distinct, "within": within}
            template = spec.message or (
                f"{spec.title}: {{count}} matching events within {within} from "
                + ", ".join(f"{k} {{{k}}}" for k in self.keys)
            )
            details: dict[str, Any] = {
                "count": count,
                "window_start": ev["_lower_boundary"].isoformat(),
                "window": within,
                "threshold": spec.count.at_least,
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
