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
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import orjson
import polars as pl
from pydantic import Field
from scipy.special import bdtr, bdtrc, ndtri

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

__all__ = ["HARM", "MetricAnomalyDetector", "MetricAnomalySpec", "SeriesRuleSpec"]

Direction = Literal["up", "down", "both"]

#: Which way a metric going is harmful, by name pattern, case-insensitive, first match
#: wins: failure words before volume words (``http.requests.5xx`` is a failure count).
HARM: Final[dict[str, Direction]] = {
    "*latency*": "up",
    "*slow*": "up",
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

#: The standard score a share's alarm needs (about one in 30,000 by chance), of its own
#: sample or of its last ten pooled (for the level): a share's score is a probability, and
#: one slow request of one is unlikely but expected once a day in a few hundred samples.
SHARE_EVIDENCE: Final = 4.0
#: A share sample (or its last ten pooled) this many standard scores from the usual share
#: never teaches it, once the usual share rests on ``SETTLED`` observations (before,
#: everything that does not alarm teaches it). Not lower: real outcomes come in clusters
#: (one visitor's broken links), so a tighter cut would keep the bursts and learn the lulls,
#: and the usual share would sink. A share raised step by step is held by the fading in
#: event time instead: a minute of a busy shop is a small part of six hours.
TEACH_Z: Final = 4.0
SETTLED: Final = 1_000.0

_WANTED: Final[dict[str, int]] = {"up": 1, "down": -1, "both": 0}

_STATE: Final[dict[str, pl.DataType]] = {
    "_model": pl.String(),
    "_hits": pl.Float64(),  # a share metric's outcomes counted (forgotten little by little)
    "_trials": pl.Float64(),  # and the observations they are out of
    "_recent": pl.String(),  # a share's last samples as [outcomes, observations] pairs
    "_points": pl.Int64(),
    "_first": pl.Datetime("us", "UTC"),
    "_ts": pl.Datetime("us", "UTC"),
}


class SeriesRuleSpec(RuleSpec):
    """What every rule scoring series with :class:`SeriesModel` sets (``metric_anomaly``,
    ``vendor_calls``)."""

    #: The usual share's outcomes fade by half over this long (in event time).
    share_half_life: Duration = "6h"
    threshold: float = Field(default=0.9, gt=0, lt=1)
    harm: dict[str, Direction] = Field(default_factory=lambda: dict(HARM))
    window: int = Field(default=8640, ge=100, le=100_000)
    min_history: int = Field(default=100, ge=10)
    rest: int = Field(default=150, ge=0)
    #: How long a harmful score must hold (on three samples or more) before it alerts: a
    #: blip of a minute or two is no incident (alerting rules' ``for: 5m``).
    persist: Duration = "5m"
    period: Duration = "1d"
    forget: Duration = "30d"


class MetricAnomalySpec(SeriesRuleSpec):
    """A ``metric_anomaly`` rule."""

    where: WhereClause
    #: The fields that name a series; the last is the metric's name (required), the others
    #: may be missing (several hosts reporting one metric are several series).
    series: tuple[str, ...] = ("service.name", "host.name", "shop.metric.name")
    value: str = "shop.metric.value"
    #: How many observations a sample summarises (logins behind a failure rate); optional.
    #: A sample of a ``shares`` metric (a share of outcomes) that carries its count is
    #: judged by how likely its outcomes are under the series' usual share (one failed
    #: login of two is not a 50 % failure rate, 40 errors of 300 requests are a storm);
    #: the model learns that likelihood as a normal score. Latencies and counts are
    #: taken as they are: one slow request is a real sample of how slow requests are.
    count: str = "shop.metric.count"
    shares: tuple[str, ...] = ("*rate*", "*ratio*", "*share*", "*conversion*")


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
            self.where.fields | set(self.keys) | {spec.value, spec.count, "@timestamp", "event.id"}
        )
        self.params = SeriesParams(
            window=spec.window,
            min_history=spec.min_history,
            period=parse_duration(spec.period).total_seconds(),
            alarm=spec.threshold,
            rest=spec.rest,
            persist=parse_duration(spec.persist).total_seconds(),
            robust_level=True,
        )
        self.share_half_life = parse_duration(spec.share_half_life).total_seconds()
        self._schema: dict[str, pl.DataType] = {
            **{k: pl.String() for k in self.keys},
            **_STATE,
        }

    def _is_share(self, metric: str) -> bool:
        name = metric.lower()
        return any(fnmatch.fnmatchcase(name, p.lower()) for p in self.spec.shares)

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
        counts = (
            pl.col(spec.count).cast(pl.Float64, strict=False)
            if spec.count in batch.columns
            else pl.lit(None, pl.Float64)
        )
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
                counts.alias("_count"),
            )
            .filter(pl.col("_value").is_not_null())
            .sort("@timestamp", "event.id", maintain_order=True, nulls_last=True)
            .collect()
        )
        if samples.height == 0:
            return empty_alerts()
        table, rest = split_by_keys(
            self._series(state), samples.select(self.keys).unique(), list(self.keys)
        )
        models: dict[tuple[str, ...], SeriesModel] = {}
        first: dict[tuple[str, ...], datetime] = {}
        last: dict[tuple[str, ...], datetime] = {}
        shares: dict[tuple[str, ...], tuple[float, float]] = {}
        recent: dict[tuple[str, ...], deque[tuple[float, float]]] = {}
        pooled_of: dict[tuple[str, ...], Share] = {}
        old_state: set[tuple[str, ...]] = set()
        for row in table.iter_rows(named=True):
            key = tuple(row[k] for k in self.keys)
            models[key] = SeriesModel.from_dict(orjson.loads(row["_model"]), self.params)
            shares[key] = (row["_hits"] or 0.0, row["_trials"] or 0.0)
            if row["_trials"] is None and row["_model"] and self._is_share(key[-1]):
                old_state.add(key)  # its model learnt raw shares: it restarts on a counted one
            if row["_recent"]:
                recent[key] = deque(
                    (tuple(x) for x in orjson.loads(row["_recent"])), maxlen=self.params.level
                )
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
            previous = last.get(key)
            last[key] = max(at, previous or at)
            value = float(ev["_value"])
            n, share = ev["_count"], None
            if self._is_share(key[-1]):
                counted = shares.get(key, (0.0, 0.0))[1] > 0 or key in old_state
                if n is None or not math.isfinite(n) or not math.isfinite(value):
                    if counted:
                        continue  # a counted share without its count: nothing to judge by
                elif round(n) < 1 or not 0.0 <= value <= 1.0:
                    continue  # a share of nothing, or no share at all: says nothing
                else:
                    if key in old_state:  # saved before shares were counted: start afresh
                        old_state.discard(key)
                        model = models[key] = SeriesModel(self.params)
                    hits, trials = shares.get(key, (0.0, 0.0))
                    share = Share(value, n, hits, trials)
                    value = share.score
                    if not math.isfinite(value):
                        continue
            wanted = _WANTED[self.harm_of(key[-1])]
            proof: tuple[float, float] | None = None
            if share is not None:
                window = recent.setdefault(key, deque(maxlen=self.params.level))
                window.append((share.hits, round(share.trials)))
                k, n_all = sum(h for h, _ in window), sum(n for _, n in window)
                pooled = Share(k / n_all, n_all, share.hits_seen, share.trials_seen)
                proof = (share.score, pooled.score)
                pooled_of[key] = pooled
            point = model.update(
                at.timestamp(),
                value,
                wanted,
                floor=None if share is None else SHARE_EVIDENCE,
                evidence=proof,
            )
            # What scores as an alarm (or would, while the series rests) does not teach the
            # usual share, nor does a share far from it: an attacker holding a rate up
            # cannot make it usual (a lasting change is learnt by the model of the scores).
            if (
                share is not None
                and point.score < spec.threshold
                and not model.resting
                and share.teaches(proof[1] if proof else 0.0)
            ):
                elapsed = 0.0 if previous is None else max(0.0, (at - previous).total_seconds())
                shares[key] = share.learnt(elapsed, self.share_half_life)
            if point.alarm:
                if share is not None and point.feature == "level":
                    share = pooled_of.get(key, share)  # say what the last samples add up to
                alerts.append(self._alert(ev, key, model, point, share))
        updated = pl.DataFrame(
            {
                **{k: [key[i] for key in models] for i, k in enumerate(self.keys)},
                "_model": [orjson.dumps(m.to_dict()).decode() for m in models.values()],
                "_hits": [shares.get(key, (0.0, 0.0))[0] for key in models],
                "_trials": [shares.get(key, (0.0, 0.0))[1] for key in models],
                "_recent": [
                    orjson.dumps(list(recent[key])).decode() if key in recent else None
                    for key in models
                ],
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

    def _series(self, state: KeyedState) -> pl.DataFrame:
        """The series table in this version's columns (a state saved before a column was
        added gets it empty)."""
        table = state.table("series", self._schema)
        missing = [
            pl.lit(None, t).alias(c) for c, t in self._schema.items() if c not in table.columns
        ]
        return table.with_columns(missing).select(list(self._schema)) if missing else table

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
        self,
        ev: dict[str, Any],
        key: tuple[str, ...],
        model: SeriesModel,
        point: Point,
        share: Share | None = None,
    ) -> dict[str, Any]:
        spec = self.spec
        named = dict(zip(self.keys, key, strict=True))
        service, metric = named.get("service.name", ""), key[-1]
        host = named.get("host.name", "")
        value = float(ev["_value"]) if share is None else share.value
        usual = model.usual("value")
        way = "up" if point.direction == 1 else "down"
        what = {
            "value": f"at {_num(value)}",
            "level": f"its last ten samples' median is {_num(_or(point.observed, value))}",
            "daily": (
                f"at {_num(value)}, {_num(abs(_or(point.observed, 0.0)))} "
                f"{'above' if point.direction == 1 else 'below'} the same time yesterday"
            ),
        }[point.feature]
        span = f"; its usual is {_num(usual[0])} to {_num(usual[1])}" if usual else ""
        if share is not None:  # the model saw likelihood scores; say it in shares
            what = (
                f"{_num(share.hits)} of {_num(share.trials)} ({_num(round(share.value, 4))})"
                + (" over its last ten samples" if point.feature == "level" else "")
                + (", unlike the same time yesterday" if point.feature == "daily" else "")
            )
            span = f"; its usual share is {_num(share.usual)}"
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
                # the series this alert is about, beyond the shared service and host
                "members": {"shop.metric.name": [metric]},
                "metric": metric,
                "value": value,
                "feature": point.feature,
                "direction": way,
                "score": round(point.score, 4),
                "surprise": round(point.surprise, 3),
                "usual_p5_p95": [round(u, 6) for u in usual] if usual and share is None else None,
                **(
                    {"count": share.trials, "usual_share": round(share.usual, 6)}
                    if share is not None
                    else {}
                ),
                "samples_learnt": model.points,
            },
            risk=risk,
        )


@dataclass(frozen=True, slots=True)
class Share:
    """A share-of-outcomes sample (``value`` of ``trials``) against the series' usual share.

    ``score`` is the mid-p binomial tail of its outcomes under the usual share, as a normal
    score: about 0 for an ordinary sample whatever its count, large for more outcomes than
    the usual share makes likely (an error storm), negative for fewer. The usual share is
    Jeffreys-smoothed from the outcomes learnt so far, so a new series starts near 0.5
    weight-less and settles within a few hundred observations.
    """

    value: float
    trials: float
    hits_seen: float
    trials_seen: float

    @property
    def hits(self) -> float:
        return round(min(max(self.value, 0.0), 1.0) * self.trials)

    @property
    def usual(self) -> float:
        return (self.hits_seen + 0.5) / (self.trials_seen + 1.0)

    @property
    def score(self) -> float:
        n, k, p = round(self.trials), self.hits, self.usual
        upper = float(bdtrc(k, n, p))  # more outcomes than k
        at = float(bdtr(k, n, p) - (bdtr(k - 1, n, p) if k >= 1 else 0.0))
        tail = min(max(upper + 0.5 * at, 1e-300), 1.0 - 1e-16)
        return float(-ndtri(tail))

    def teaches(self, pooled: float = 0.0) -> bool:
        """Whether this sample (whose last ten pooled score ``pooled``) may move the usual
        share (see :data:`TEACH_Z`)."""
        return self.trials_seen < SETTLED or max(abs(self.score), abs(pooled)) < TEACH_Z

    def learnt(self, elapsed_s: float, half_life_s: float) -> tuple[float, float]:
        """The outcomes seen once this sample is learnt, those before it faded by the
        ``elapsed_s`` since the series' last sample (by half per ``half_life_s``)."""
        fade = 0.5 ** (elapsed_s / half_life_s) if half_life_s > 0 else 1.0
        return (
            self.hits_seen * fade + self.hits,
            self.trials_seen * fade + round(self.trials),
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
