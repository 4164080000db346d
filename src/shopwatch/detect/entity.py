"""Kind ``entity_baseline``: an entity's action far from its own learned normal.

Each entity (by default ``user.name``, per ``event.action``) keeps a
:class:`~shopwatch.learn.baseline.Profile` of its own events matching ``where``: recent
sizes (``value``, e.g. ``shop.data.records``), hours of day (in ``timezone``), networks,
countries, daily totals. A population profile of all entities (per ``event.action``) is
kept beside them and stands in for an entity still in its warm-up (fewer than
``warmup_events`` events, or known for less than ``warmup``): a new staff account is
measured against its colleagues, not against nothing.

A new event is scored in bits of surprise (:func:`~shopwatch.learn.baseline.surprise`):
the size over the usual high (or today's total over the usual daily high, whichever is
larger), plus an odd hour, a network and a country never used, a first hosting network.
It alerts when the score reaches ``threshold`` *and* the size (or the day's total) is at
least ``min_ratio`` times the usual high: an ordinary export at an odd hour from a hotel
is not exfiltration. With the defaults (4.5 bits, 3x) an export 23 times the usual high
alerts on its own, one 4 times it from a new network at 03:00 alerts, and an office-hours
export six times the usual from the office network (2.6 bits) does not.

Poisoning bound: only events that are not far out teach (an event held back by
``quiet`` teaches no more than the one that alerted), each taught value is capped at
``learn_cap`` times the usual high, and a day with a far event does not enter the daily
totals. The usual high (the 90th percentile of ``keep`` = 50 values) rises fully once six
values exceed it, and an export passes unseen while under 23 times it (4.5 bits) from the
office in office hours. So a patient insider can raise their usual about fourfold per six
alert-free exports: an export 100 times today's usual passes after about ten exports,
each up to four times the usual, spread over days (one a day keeps the day totals too
low to alert), each visible in the account's history. The bound slows poisoning; it does
not prevent it.

One alert per entity per ``quiet``; the alert's time, id and evidence depend only on the
events and their order (time, then event id), never on how they were cut into batches.
State: one row per entity and action, at most a few hundred bytes
(:data:`~shopwatch.learn.baseline.MAX_BYTES`), forgotten ``forget`` after its last event.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any, Final

import polars as pl
from pydantic import Field, field_validator

from shopwatch.contract import empty_alerts
from shopwatch.detect.conditions import Where, network_of
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    kind,
    parse_duration,
)
from shopwatch.detect.state import KeyedState, split_by_keys
from shopwatch.learn.baseline import (
    PROFILE_SCHEMA,
    Profile,
    Surprise,
    hour_span,
    quantile,
    surprise,
)

__all__ = ["EntityBaselineDetector", "EntityBaselineSpec"]

#: The entity value of the population profile (no account is named this).
POPULATION: Final = "\x00all"
_VERBS: Final = {"export": "exported", "bulk_read": "read in bulk", "search": "searched"}


class EntityBaselineSpec(RuleSpec):
    """An ``entity_baseline`` rule."""

    where: WhereClause
    entity: str = "user.name"
    by: tuple[str, ...] = ("event.action",)
    value: str = "shop.data.records"
    noun: str = "records"
    timezone: str = "UTC"
    keep: int = Field(default=50, ge=5, le=500)
    keep_days: int = Field(default=30, ge=3, le=365)
    warmup_events: int = Field(default=10, ge=1)
    warmup: Duration = "7d"
    population_events: int = Field(default=30, ge=1)
    threshold: float = Field(default=4.5, gt=0)
    min_ratio: float = Field(default=3.0, ge=1)
    learn_cap: float = Field(default=4.0, ge=1)
    quiet: Duration = "1h"
    forget: Duration = "90d"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r}") from err
        return value


@kind("entity_baseline")
class EntityBaselineDetector:
    """Scores each matching event against its entity's learned normal."""

    Spec = EntityBaselineSpec

    def __init__(self, spec: EntityBaselineSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = (spec.entity, *spec.by)
        self.warmup = parse_duration(spec.warmup)
        self.quiet = parse_duration(spec.quiet)
        self.horizon = self.quiet
        #: Profiles live this long after an entity's last event (the engine keeps them).
        self.memory = parse_duration(spec.forget)
        self.single_event = False
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self._context = (
            "source.ip",
            "source.geo.country_iso_code",
            "source.as.type",
            "shop.data.object",
        )
        self.needs = frozenset(
            self.where.fields
            | set(self.keys)
            | {spec.value, "@timestamp", "event.id", *self._context}
        )
        self._schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            **PROFILE_SCHEMA,
            "_alerted": PROFILE_SCHEMA["_ts"],
        }

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Score, alert and learn, one event at a time in event order (few events: the
        matching ones, e.g. staff data access)."""
        spec = self.spec
        where = self.where.for_batch(batch.columns)
        needed = {"@timestamp", spec.value, *self.keys}
        if batch.height == 0 or where is None or needed - set(batch.columns):
            return empty_alerts()

        def column(name: str) -> pl.Expr:
            return (
                pl.col(name).cast(pl.String) if name in batch.columns else pl.lit(None, pl.String)
            )

        local = pl.col("@timestamp").dt.convert_time_zone(spec.timezone)
        events = (
            batch.lazy()
            .filter(
                where
                & pl.col("@timestamp").is_not_null()
                & pl.col(spec.value).is_not_null()
                & (pl.col(spec.value).cast(pl.Float64, strict=False) >= 0).fill_null(False)
                & pl.all_horizontal([pl.col(k).is_not_null() for k in self.keys])
            )
            .select(
                *[pl.col(k).cast(pl.String) for k in self.keys],
                pl.col("@timestamp"),
                column("event.id").alias("event.id"),
                pl.col(spec.value).cast(pl.Float64, strict=False).alias("_value"),
                local.dt.hour().cast(pl.Int32).alias("_hour"),
                local.dt.date().cast(pl.Int32).alias("_day"),
                network_of(column("source.ip")).alias("_net"),
                *[column(f).alias(f) for f in self._context],
            )
            .sort("@timestamp", "event.id", maintain_order=True, nulls_last=True)
            .collect()
        )
        if events.height == 0:
            return empty_alerts()
        # Only the batch's entities (and their populations) come out of the table: a batch
        # costs in proportion to its own entities, not to every profile held.
        wanted = (
            events.select(self.keys)
            .vstack(events.select(pl.lit(POPULATION).alias(self.keys[0]), *self.keys[1:]))
            .unique()
        )
        table, rest = split_by_keys(state.table("profiles", self._schema), wanted, list(self.keys))
        profiles: dict[tuple[str, ...], Profile] = {}
        alerted: dict[tuple[str, ...], datetime | None] = {}
        for row in table.iter_rows(named=True):
            key = tuple(row[k] for k in self.keys)
            profiles[key] = Profile.from_row(row)
            alerted[key] = row["_alerted"]
        alerts: list[dict[str, Any]] = []
        for ev in events.iter_rows(named=True):
            key = tuple(ev[k] for k in self.keys)
            pop_key = (POPULATION, *key[1:])
            at: datetime = ev["@timestamp"]
            own = profiles.get(key)
            pop = profiles.get(pop_key)
            value, hour, day = float(ev["_value"]), int(ev["_hour"]), int(ev["_day"])
            net, country = ev["_net"], ev["source.geo.country_iso_code"]
            hosting = ev["source.as.type"] == "hosting"
            today = (own.today(day) if own else 0.0) + value
            ref, basis = None, ""
            if own is not None and self._warm(own, at, spec.warmup_events):
                ref, basis = own, "account"
            elif pop is not None and self._warm(pop, at, spec.population_events):
                ref, basis = pop, "population"
            # ``far``: the event is far enough out to alert. One alert per ``quiet``, but
            # every far event, alerted or held back, is kept out of what the profile learns.
            far = False
            if ref is not None:
                s = surprise(ref, hour, value, net, country, hosting, today)
                far = max(s.ratio, s.day_ratio) >= spec.min_ratio and s.total >= spec.threshold
                last = alerted.get(key)
                if far and (last is None or at >= last + self.quiet):
                    alerted[key] = at
                    alerts.append(self._alert(ev, key, ref, basis, s, today))
            for k in (key, pop_key):
                prof = profiles.get(k)
                if prof is None:
                    prof = profiles[k] = Profile(first=at, last=at)
                    alerted.setdefault(k, None)
                prof.add_to_day(day, value, spec.keep_days)
                if far:
                    prof.day_alerted = True
                    prof.last = max(prof.last, at)
                else:
                    high = quantile(prof.values, 0.9)
                    taught = min(value, spec.learn_cap * high) if high > 0 and ref else value
                    prof.learn(at, hour, taught, net, country, hosting, keep=spec.keep)
        columns: dict[str, list[Any]] = {name: [] for name in self._schema}
        for k, p in profiles.items():
            for name, key_value in zip(self.keys, k, strict=True):
                columns[name].append(key_value)
            for name, field_value in p.row().items():
                columns[name].append(field_value)
            columns["_alerted"].append(alerted.get(k))
        updated = pl.DataFrame(columns, schema=self._schema)
        state.put("profiles", pl.concat([rest, updated]) if rest.height else updated)
        if not alerts:
            return empty_alerts()
        return pl.DataFrame(alerts, schema=empty_alerts().schema)

    def model_summary(self, state: KeyedState) -> dict[str, Any]:
        """What this baseline holds (``shopwatch models``)."""
        table = state.table("profiles", self._schema)
        mine = table.filter(pl.col(self.spec.entity) != POPULATION)
        warm = mine.filter(pl.col("n") >= self.spec.warmup_events).height
        return {
            "kind_version": 1,
            "learns_from": f"{self.spec.value} of events matching its where clause",
            "entities": mine.height,
            "entity": ", ".join(self.keys),
            "events": int(mine.get_column("n").sum()) if mine.height else 0,
            "first": mine.get_column("_first").min() if mine.height else None,
            "last": mine.get_column("_ts").max() if mine.height else None,
            "warm_entities": warm,
        }

    def _warm(self, profile: Profile, at: datetime, events: int) -> bool:
        return profile.n >= events and at - profile.first >= self.warmup

    def _alert(
        self,
        ev: dict[str, Any],
        key: tuple[str, ...],
        ref: Profile,
        basis: str,
        s: Surprise,
        today: float,
    ) -> dict[str, Any]:
        spec = self.spec
        who = key[0]
        action = ev.get("event.action") or (key[1] if len(key) > 1 else "")
        verb = _VERBS.get(str(action), str(action) or "used")
        obj = ev.get("shop.data.object")
        value = int(ev["_value"])
        local = ev["@timestamp"].astimezone(zoneinfo.ZoneInfo(spec.timezone))
        ip = ev.get("source.ip")
        where_bits = []
        if ev.get("source.as.type"):
            where_bits.append(f"{ev['source.as.type']} network")
        if ev.get("source.geo.country_iso_code"):
            where_bits.append(str(ev["source.geo.country_iso_code"]))
        origin = f" from {ip}" + (f" ({', '.join(where_bits)})" if where_bits else "") if ip else ""
        news = []
        if s.network:
            news.append(
                f"a network {'this account never' if basis == 'account' else 'no account'} used"
            )
        if s.country:
            news.append("a country it never used")
        odd = " at an unusual hour" if s.hour >= 2 else ""
        p10, p90 = quantile(ref.values, 0.1), quantile(ref.values, 0.9)
        span = hour_span(ref.hours)
        hours = f" between {span[0]:02d}:00 and {span[1]:02d}:00 {spec.timezone}" if span else ""
        whose = (
            "this account's usual"
            if basis == "account"
            else "the usual of all accounts (this one is new)"
        )
        day_part = (
            f"; {today:,.0f} {spec.noun} today against a usual day of up to "
            f"{quantile(ref.days, 0.9):,.0f}"
            if s.day > s.size
            else ""
        )
        never = f", {' and '.join(news)}" if news else ""
        message = (
            f"{who} {verb} {value:,} {spec.noun}"
            + (f" of {obj}" if obj else "")
            + f" at {local:%H:%M}{odd}{origin}{never}; {whose} is "
            f"{p10:,.0f} to {p90:,.0f} {spec.noun}{hours}, from {len(ref.nets)} "
            f"network{'s' if len(ref.nets) != 1 else ''}{day_part}"
        )
        features = {
            "size": round(s.size, 2),
            "day_total": round(s.day, 2),
            "hour": round(s.hour, 2),
            "new_network": s.network,
            "new_country": s.country,
            "first_hosting": s.hosting,
        }
        top = sorted((k for k, v in features.items() if v), key=lambda k: -features[k])
        entity = {spec.entity: who, "source.ip": ip}
        return alert_record(
            spec,
            at=ev["@timestamp"],
            key=key,
            entity=entity,
            event_ids=[ev["event.id"]] if ev.get("event.id") else [],
            message=message,
            details={
                "score": round(s.total, 2),
                "threshold": spec.threshold,
                "features": features,
                "top_features": top,
                "ratio": round(s.ratio, 2),
                "day_ratio": round(s.day_ratio, 2),
                "value": value,
                "today": today,
                "baseline": basis,
                "keys": {k: v for k, v in zip(self.keys, key, strict=True) if k != spec.entity},
                "usual": {
                    "p10": round(p10, 1),
                    "median": round(quantile(ref.values, 0.5), 1),
                    "p90": round(p90, 1),
                    "daily_p90": round(quantile(ref.days, 0.9), 1),
                    "hours": list(span) if span else None,
                    "networks": len(ref.nets),
                    "events": ref.n,
                    "since": ref.first.isoformat(),
                },
            },
            risk=min(100, round(spec.base_risk + 4 * (s.total - spec.threshold))),
        )
