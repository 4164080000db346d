"""Kind ``intel``: events whose source (or other matched value) is on a threat feed.

The intel enricher fills ``threat.indicator.*`` and ``source.reputation``; this kind turns
rows whose ``threat.indicator.confidence`` reaches ``min_confidence`` into alerts, one per
group (by default ``source.ip`` and ``threat.indicator.feed``) per ``window`` of event
time: a group fires at its first matching event, then stays quiet for ``window``; if the
traffic goes on it fires again after that, as a new alert. The alert's time, id and
evidence depend only on the events, never on how they were cut into batches.

Severity comes from the confidence (``severity_at`` bands), capped at the rule's
``severity``; the risk score is the rule's base risk scaled by the larger of the
confidence and the source's combined reputation (several feeds listing one address).

State: ``fired`` (per group, the event time of its last alert).
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from shopwatch.contract import (
    ALERT_SCHEMA,
    ENTITY_FIELDS,
    SEVERITY_RANK,
    TIMESTAMP,
    Severity,
    empty_alerts,
    stable_id,
)
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    human_duration,
    kind,
    parse_duration,
    render_message,
)
from shopwatch.detect.state import KeyedState

__all__ = ["IntelDetector", "IntelSpec"]

_CONF = "threat.indicator.confidence"
_INDICATOR_FIELDS = (
    "threat.indicator.feed",
    "threat.indicator.type",
    "threat.indicator.matched",
    "threat.indicator.confidence",
)

#: Lowest confidence of each severity (capped at the rule's own severity).
_BANDS: dict[Severity, int] = {"critical": 95, "high": 80, "medium": 60, "low": 0}


class IntelSpec(RuleSpec):
    """An ``intel`` rule."""

    min_confidence: int = Field(default=50, ge=0, le=100)
    indicator_types: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ("source.ip", "threat.indicator.feed")
    window: Duration = "1h"
    where: WhereClause = Field(default_factory=dict)
    message: str | None = None
    severity_at: dict[Severity, int] = Field(default_factory=lambda: dict(_BANDS))

    @field_validator("group_by")
    @classmethod
    def _has_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("group_by needs at least one field")
        return value


@kind("intel")
class IntelDetector:
    """Alerts on events matched to a threat-intel indicator of enough confidence."""

    Spec = IntelSpec

    def __init__(self, spec: IntelSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = tuple(spec.group_by)
        self.window = parse_duration(spec.window)
        #: Event-time history this rule reads: the last alert of each group.
        self.horizon = self.window
        self.single_event = True
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self.needs = frozenset(
            self.where.fields
            | set(self.keys)
            | set(_INDICATOR_FIELDS)
            | {"@timestamp", "event.id", "source.reputation"}
        )
        self._fired_schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            "_ts": TIMESTAMP,
        }
        self._cap = SEVERITY_RANK[spec.severity]
        self._bands = sorted(spec.severity_at.items(), key=lambda item: -item[1])

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """One alert per group per window, at the group's first matching event."""
        spec = self.spec
        required = {"@timestamp", _CONF, *self.keys}
        where = self.where.for_batch(batch.columns)
        if batch.height == 0 or required - set(batch.columns) or where is None:
            return empty_alerts()
        cond = where & (pl.col(_CONF) >= spec.min_confidence).fill_null(False)
        if spec.indicator_types and "threat.indicator.type" in batch.columns:
            cond = cond & pl.col("threat.indicator.type").is_in(
                list(spec.indicator_types)
            ).fill_null(False)
        elif spec.indicator_types:
            return empty_alerts()

        def column(name: str, dtype: pl.DataType) -> pl.Expr:
            return pl.col(name).cast(dtype) if name in batch.columns else pl.lit(None, dtype)

        hits = (
            batch.lazy()
            .filter(
                cond
                & pl.col("@timestamp").is_not_null()
                & pl.all_horizontal([pl.col(k).is_not_null() for k in self.keys])
            )
            .select(
                *[pl.col(k).cast(pl.String) for k in self.keys],
                pl.col("@timestamp"),
                column("event.id", pl.String()).alias("event.id"),
                column("threat.indicator.feed", pl.String()).alias("_feed"),
                column("threat.indicator.type", pl.String()).alias("_type"),
                column("threat.indicator.matched", pl.String()).alias("_matched"),
                pl.col(_CONF).cast(pl.Int64).alias("_conf"),
                column("source.reputation", pl.Int64()).alias("_rep"),
            )
            .sort([*self.keys, "@timestamp"], maintain_order=True)
            .collect()
        )
        if hits.height == 0:
            return empty_alerts()
        fired = state.table("fired", self._fired_schema)
        last: dict[tuple[str, ...], datetime] = {
            tuple(row[:-1]): row[-1] for row in fired.select(*self.keys, "_ts").iter_rows()
        }
        chosen = self._choose(hits, last)
        if not chosen:
            return empty_alerts()
        state.put(
            "fired",
            pl.DataFrame(
                [(*key, at) for key, at in last.items()], schema=self._fired_schema, orient="row"
            ),
        )
        # event-time order, so that alerts of consecutive batches concatenate to the whole's
        return self._alert_rows(hits[chosen].sort(["@timestamp", *self.keys], maintain_order=True))

    def _choose(self, hits: pl.DataFrame, last: dict[tuple[str, ...], datetime]) -> list[int]:
        """Row positions that fire; updates ``last`` (one Python step per alert, not per event)."""
        n = hits.height
        times = hits.get_column("@timestamp").to_numpy()
        change = np.ones(n, dtype=bool)
        key_frame = hits.select(self.keys)
        for name in self.keys:
            col = key_frame.get_column(name)
            change[1:] |= (col.slice(1) != col.slice(0, n - 1)).to_numpy()
        starts = [*np.flatnonzero(change).tolist(), n]
        window = np.timedelta64(int(self.window.total_seconds() * 1_000_000), "us")
        chosen: list[int] = []
        for a, b in itertools.pairwise(starts):
            key = key_frame.row(a)
            group = times[a:b]
            previous = last.get(key)
            at = a
            if previous is not None:
                bound = np.datetime64(previous.astimezone(UTC).replace(tzinfo=None), "us") + window
                at = a + int(np.searchsorted(group, bound, side="left"))
            while at < b:
                chosen.append(at)
                bound = times[at] + window
                at = a + int(np.searchsorted(group, bound, side="left"))
            if chosen and a <= chosen[-1] < b:
                last[key] = hits.item(chosen[-1], "@timestamp")
        return chosen

    def _severity(self, confidence: int) -> str:
        for name, floor in self._bands:
            if confidence >= floor:
                return name if SEVERITY_RANK[name] <= self._cap else self.spec.severity
        return "low"

    def _alert_rows(self, fired: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        window = human_duration(self.window)
        rows: list[dict[str, Any]] = []
        for ev in fired.iter_rows(named=True):
            key_values = {k: ev[k] for k in self.keys}
            conf = int(ev["_conf"])
            score = max(conf, int(ev["_rep"] or 0))
            values = {
                **key_values,
                "feed": ev["_feed"],
                "indicator": ev["_matched"],
                "type": ev["_type"],
                "confidence": conf,
                "window": window,
            }
            who = key_values.get("source.ip") or next(iter(key_values.values()))
            template = spec.message or (
                f"{who} matches {{indicator}} on threat feed {{feed}} (confidence {{confidence}})"
            )
            details: dict[str, Any] = {
                "feed": ev["_feed"],
                "indicator": ev["_matched"],
                "indicator_type": ev["_type"],
                "confidence": conf,
                "reputation": ev["_rep"],
                "window": window,
                "min_confidence": spec.min_confidence,
            }
            extra = {k: v for k, v in key_values.items() if k not in ENTITY_FIELDS}
            if extra:
                details["keys"] = extra
            rows.append(
                {
                    "alert.id": stable_id(
                        spec.id, *key_values.values(), ev["@timestamp"].isoformat()
                    ),
                    "@timestamp": ev["@timestamp"],
                    "rule.id": spec.id,
                    "rule.name": spec.title,
                    "rule.category": spec.category,
                    "severity": self._severity(conf),
                    "risk_score": max(1, min(100, round(spec.base_risk * score / 100))),
                    "entity": {f: key_values.get(f) for f in ENTITY_FIELDS},
                    "event.ids": [ev["event.id"]] if ev["event.id"] is not None else [],
                    "threat.technique.id": spec.technique,
                    "message": render_message(template, values),
                    "details": json.dumps(details, sort_keys=True),
                }
            )
        return pl.DataFrame(rows, schema=ALERT_SCHEMA)
