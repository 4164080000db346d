"""Kind ``metric_anomaly``: an application metric far outside its own learned normal.

Each series (by default ``service.name`` and ``shop.metric.name`` of ``apm.metric``
samples) has a :class:`~shopwatch.learn.series.SeriesModel`, fed one sample at a time in
event order: its value, the mean of its last ten samples (a level shift, a change point)
and its change since the same time a day earlier (its daily rhythm). A sample alerts when
the model's score reaches ``threshold`` in a direction that ``harm`` names as harmful for
that metric: latency and error rates going up, throughput, orders and conversion going
down. A surge of requests or orders (a flash sale, a newsletter) is learnt, not alerted:
floods have their own rules. A metric no ``harm`` pattern names alerts both ways.

With ``threshold`` 0.9 plain noise raises no alarm (measured: none in 10,000 points of
Gaussian, log-normal or Poisson noise; about four per 10,000 of Student-t noise with
three degrees of freedom, heavy tails); a short blip inside what the series has done
scores low. The first ``min_history`` samples of a series only teach. After an alarm the
series is quiet for ``rest`` samples (still learning), so one change is one alert.

State: one row per series holding the model's values (``window`` per feature, a day of
samples), saved and restored with the engine's state; ``shopwatch models`` reports the
bytes. Series not seen for ``forget`` are dropped.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any, Final, Literal

import orjson
import polars as pl
from pydantic import Field

from shopwatch.contract import empty_alerts
from shopwatch.detect.conditions import Where
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    kind,
    parse_duration,
)
from shopwatch.detect.state import KeyedState, split_by_keys
from shopwatch.learn.series import Point, SeriesModel, SeriesParams

__all__ = ["HARM", "MetricAnomalyDetector", "MetricAnomalySpec"]

Direction = Literal["up", "down", "both"]

#: Which way a metric going is harmful, by name pattern, case-insensitive, first match
#: wins: failure words before volume words (``http.requests.5xx`` is a failure count).
HARM: Final[dict[str, Direction]] = {
    "*latency*": "up",
    "*duration*": "up",
    "*error*": "up",
    "*5xx*": "up",
    "*fail*": "up",
    "*timeout*": "up",
    "*reject*": "up",
    "*decline*": "up",
    "*refund*": "up",
    "*chargeback*": "up",
    "*conversion*": "down",
    "*orders*": "down",
    "*requests*": "down",
    "*per_min*": "down",
    "*revenue*": "down",
}

_WANTED: Final[dict[str, int]] = {"up": 1, "down": -1, "both": 0}

_STATE: Final[dict[str, pl.DataType]] = {
    "_model": pl.String(),
    "_points": pl.Int64(),
    "_first": pl.Datetime("us", "UTC"),
    "_ts": pl.Datetime("us", "UTC"),
}


class MetricAnomalySpec(RuleSpec):
    """A ``metric_anomaly`` rule."""

    where: WhereClause
    #: The fields that name a series; the last is the metric's name (required), the others
    #: may be missing (several hosts reporting one metric are several series).
    series: tuple[str, ...] = ("service.name", "host.name", "shop.metric.name")
    value: str = "shop.metric.value"
    threshold: float = Field(default=0.9, gt=0, lt=1)
    harm: dict[str, Direction] = Field(default_factory=lambda: dict(HARM))
    window: int = Field(default=8640, ge=100, le=100_000)
    min_history: int = Field(default=50, ge=10)
    rest: int = Field(default=150, ge=0)
    period: Duration = "1d"
    forget: Duration = "30d"


@kind("metric_anomaly")
class MetricAnomalyDetector:
    """Scores every sample of every series against that series' learned normal."""

    Spec = MetricAnomalySpec

    def __init__(self, spec: MetricAnomalySpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = spec.series
        self.horizon = parse_duration("1h")
        self.memory = parse_duration(spec.forget)
        self.single_event = False
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self.needs = frozenset(
            self.where.fields | set(self.keys) | {spec.value, "@timestamp", "event.id"}
        )
        self.params = SeriesParams(
            window=spec.window,
            min_history=spec.min_history,
            period=parse_duration(spec.period).total_seconds(),
            alarm=spec.threshold,
            rest=spec.rest,
        )
        self._schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            **_STATE,
        }

    def harm_of(self, metric: str) -> Direction:
        """Which way ``metric`` moving is harmful."""
        name = metric.lower()
        for pattern, direction in self.spec.harm.items():
            if fnmatch.fnmatchcase(name, pattern.lower()):
                return direction
        return "both"

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Score and learn each sample in event order (few: one per series per minute)."""
        spec = self.spec
        where = self.where.for_batch(batch.columns)
        needed = {"@timestamp", spec.value, self.keys[-1]}
        if batch.height == 0 or where is None or needed - set(batch.columns):
            return empty_alerts()

        def part(name: str) -> pl.Expr:
            found = (
                pl.col(name).cast(pl.String) if name in batch.columns else pl.lit(None, pl.String)
            )
            return found.fill_null("").alias(name)

        ids = pl.col("event.id").cast(pl.String) if "event.id" in batch.columns else pl.lit(None)
        samples = (
            batch.lazy()
            .filter(
                where & pl.col("@timestamp").is_not_null() & pl.col(self.keys[-1]).is_not_null()
            )
            .select(
                *[part(k) for k in self.keys],
                pl.col("@timestamp"),
                ids.alias("event.id"),
                pl.col(spec.value).cast(pl.Float64, strict=False).alias("_value"),
            )
            .filter(pl.col("_value").is_not_null())
            .sort("@timestamp", "event.id", maintain_order=True, nulls_last=True)
            .collect()
        )
        if samples.height == 0:
            return empty_alerts()
        table, rest = split_by_keys(
            state.table("series", self._schema), samples.select(self.keys).unique(), list(self.keys)
        )
        models: dict[tuple[str, ...], SeriesModel] = {}
        first: dict[tuple[str, ...], datetime] = {}
        last: dict[tuple[str, ...], datetime] = {}
        for row in table.iter_rows(named=True):
            key = tuple(row[k] for k in self.keys)
            models[key] = SeriesModel.from_dict(orjson.loads(row["_model"]), self.params)
            first[key] = row["_first"]
            if row["_ts"] is not None:
                last[key] = row["_ts"]  # never moved back by an old sample
        alerts: list[dict[str, Any]] = []
        for ev in samples.iter_rows(named=True):
            key = tuple(ev[k] for k in self.keys)
            model = models.get(key)
            if model is None:
                model = models[key] = SeriesModel(self.params)
                first[key] = ev["@timestamp"]
            at: datetime = ev["@timestamp"]
            wanted = _WANTED[self.harm_of(key[-1])]
            point = model.update(at.timestamp(), float(ev["_value"]), wanted)
            last[key] = max(at, last.get(key, at))
            if point.alarm:
                alerts.append(self._alert(ev, key, model, point))
        updated = pl.DataFrame(
            {
                **{k: [key[i] for key in models] for i, k in enumerate(self.keys)},
                "_model": [orjson.dumps(m.to_dict()).decode() for m in models.values()],
                "_points": [m.points for m in models.values()],
                "_first": [first[key] for key in models],
                "_ts": [last.get(key) or _last_time(m) for key, m in models.items()],
            },
            schema=self._schema,
        )
        state.put("series", pl.concat([rest, updated]) if rest.height else updated)
        if not alerts:
            return empty_alerts()
        return pl.DataFrame(alerts, schema=empty_alerts().schema)

    def model_summary(self, state: KeyedState) -> dict[str, Any]:
        """What this model holds (``shopwatch models``)."""
        table = state.table("series", self._schema)
        sizes = [
            SeriesModel.from_dict(orjson.loads(m), self.params).state_bytes()
            for m in table.get_column("_model").to_list()
        ]
        return {
            "kind_version": 1,
            "learns_from": f"{self.spec.value} per {', '.join(self.keys)}",
            "entities": table.height,
            "entity": ", ".join(self.keys),
            "events": int(table.get_column("_points").sum()) if table.height else 0,
            "first": table.get_column("_first").min() if table.height else None,
            "last": table.get_column("_ts").max() if table.height else None,
            "model_bytes": sum(sizes),
        }

    def _alert(
        self, ev: dict[str, Any], key: tuple[str, ...], model: SeriesModel, point: Point
    ) -> dict[str, Any]:
        spec = self.spec
        named = dict(zip(self.keys, key, strict=True))
        service, metric = named.get("service.name", ""), key[-1]
        host = named.get("host.name", "")
        value = float(ev["_value"])
        usual = model.usual("value")
        way = "up" if point.direction == 1 else "down"
        what = {
            "value": f"at {_num(value)}",
            "level": f"its last ten samples average {_num(_or(point.observed, value))}",
            "daily": (
                f"at {_num(value)}, {_num(abs(_or(point.observed, 0.0)))} "
                f"{'above' if point.direction == 1 else 'below'} the same time yesterday"
            ),
        }[point.feature]
        span = f"; its usual is {_num(usual[0])} to {_num(usual[1])}" if usual else ""
        on = (f" on {service}" if service else "") + (f" ({host})" if host else "")
        message = f"{metric}{on} went {way}: {what}{span} (score {point.score:.2f})"
        risk = min(100, int(40 + 50 * (point.score - spec.threshold) / (1 - spec.threshold)))
        return alert_record(
            spec,
            at=ev["@timestamp"],
            key=key,
            entity={"service.name": service or None, "host.name": host or None},
            event_ids=[ev["event.id"]] if ev["event.id"] else [],
            message=message,
            details={
                "keys": dict(zip(self.keys, key, strict=True)),
                "metric": metric,
                "value": value,
                "feature": point.feature,
                "direction": way,
                "score": round(point.score, 4),
                "surprise": round(point.surprise, 3),
                "usual_p5_p95": [round(u, 6) for u in usual] if usual else None,
                "samples_learnt": model.points,
            },
            risk=risk,
        )


def _last_time(model: SeriesModel) -> datetime | None:
    from datetime import UTC

    return None if model.last_time is None else datetime.fromtimestamp(model.last_time, UTC)


def _or(x: float | None, default: float) -> float:
    return default if x is None else x


def _num(x: float) -> str:
    """A figure as people read it: 412, 0.031, 1,250."""
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"
