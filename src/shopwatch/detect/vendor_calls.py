"""Kind ``vendor_calls``: a vendor's calls failing or slowing far beyond their own normal.

Every outbound call (``vendor.api``) is counted per vendor and minute of event time: the
calls, the calls that failed and the minute's 95th percentile of their durations. A call
failed when the vendor answered with a server error (5xx), refused the shop's key (401,
403, 407), limited its rate (429) or timed out (408), or did not answer at all (no status
and ``event.outcome: failure``). A declined card (402) or a rejected request (400, 404,
422) is the vendor working; those are not failures.

Each vendor's minutes make two series of the :mod:`~shopwatch.detect.metrics` model, one
sample a minute: ``vendor.error_share`` (a share with its count: how likely its failures
are under the vendor's usual share, so one failed call of two is not an outage and 40 of
300 is) and ``vendor.latency.p95_ms``. A harmful score must hold for ``persist`` (on three
samples or more) before it alerts, so a minute or two of a vendor's hiccup is no incident.

More calls with the usual share failing is the shop's business (a month-end run, a sale,
a newsletter) and raises nothing; the alert says how many calls a minute came. A vendor
the shop never called has no history and is ``vendor.new_vendor``'s.

A minute is judged once a later event (of any source) shows it has ended; its calls wait
in the state until then (one minute per vendor). A call older than its vendor's last
judged minute counts in the vendor's next minute.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import orjson
import polars as pl
from pydantic import Field
from scipy.special import ndtri, pdtr, pdtrc

from shopwatch.contract import empty_alerts
from shopwatch.detect.conditions import Where
from shopwatch.detect.metrics import (
    SETTLED,
    MetricAnomalyDetector,
    MetricAnomalySpec,
    SeriesRuleSpec,
    Share,
    _num,
)
from shopwatch.detect.registry import (
    Duration,
    RuleSpec,
    WhereClause,
    alert_record,
    kind,
    parse_duration,
)
from shopwatch.detect.state import KeyedState, shift_time
from shopwatch.learn.series import Point, SeriesModel

__all__ = ["VendorCallsDetector", "VendorCallsSpec"]

VENDOR: Final = "shop.vendor.name"
METRIC: Final = "shop.metric.name"
ERRORS: Final = "vendor.error_share"
SPREAD: Final = "vendor.failing_minutes"
LATENCY: Final = "vendor.latency.p95_ms"
CALLS: Final = "vendor.calls"  # the key of the tables of calls and minutes
#: Vendor names are cut to this many characters (a name comes from the input).
NAME_CHARS: Final = 200
#: Calls dated this far after the engine's clock are set aside (counted), not counted in
#: a minute: a forged date must not hold a minute open or push the judged minutes ahead.
SKEW: Final = timedelta(minutes=5)
_MINUTE: Final = timedelta(minutes=1)
_DATASET: Final = "vendor.minute"  # the samples handed to the series model

_PENDING: Final[dict[str, pl.DataType]] = {
    VENDOR: pl.String(),
    METRIC: pl.String(),  # CALLS: the tables share the state's keys, so a budget sheds them
    "event.id": pl.String(),
    "_status": pl.Int64(),
    "_failed": pl.Boolean(),
    "_ms": pl.Float64(),
    "_ts": pl.Datetime("us", "UTC"),
}
_HOUR: Final[dict[str, pl.DataType]] = {  # a vendor's judged minutes of the last hour
    VENDOR: pl.String(),
    METRIC: pl.String(),
    "_minute": pl.Datetime("us", "UTC"),
    "_calls": pl.Int64(),
    "_any": pl.Boolean(),  # a call failed in it
    "_ts": pl.Datetime("us", "UTC"),
}
_SPREAD: Final[dict[str, pl.DataType]] = {  # a vendor's failing minutes: hold and usual share
    VENDOR: pl.String(),
    METRIC: pl.String(),
    "_since": pl.Datetime("us", "UTC"),
    "_streak": pl.Int64(),
    "_last": pl.Datetime("us", "UTC"),
    "_rest": pl.Int64(),
    "_hits": pl.Float64(),
    "_trials": pl.Float64(),
    "_ts": pl.Datetime("us", "UTC"),
}
_NO_HOLD: Final[dict[str, Any]] = {"_since": None, "_streak": 0, "_last": None, "_rest": 0}
#: A minute whose hour of failing minutes scores this high (a standard score) does not
#: teach the vendor's usual failing share.
SPREAD_TEACH: Final = 2.0
_JUDGED: Final[dict[str, pl.DataType]] = {
    VENDOR: pl.String(),
    METRIC: pl.String(),
    "_minute": pl.Datetime("us", "UTC"),
    "_ts": pl.Datetime("us", "UTC"),
}


class VendorCallsSpec(SeriesRuleSpec):
    """A ``vendor_calls`` rule."""

    where: WhereClause = Field(default_factory=lambda: {"event.dataset": "vendor.api"})
    #: Where a call's vendor is named, first present wins.
    vendor: tuple[str, ...] = (VENDOR, "url.domain", "destination.domain")
    #: The statuses that count as the vendor failing (``5xx`` is every server error).
    failing: tuple[str, ...] = ("5xx", "401", "403", "407", "408", "429")
    #: A vendor's usual failing share fades by half over this long: its availability is a
    #: figure of weeks, so a degradation over hours stands out against it instead of
    #: becoming its usual (a shop metric's share follows the shop's day: six hours).
    share_half_life: Duration = "3d"
    #: The score the failing minutes of an hour need (a standard score: 5 is about one
    #: hour in three and a half million by chance).
    spread_z: float = Field(default=5.0, ge=3.0)
    #: At most this many calls of one vendor wait for their minute to end (past it the
    #: vendor's oldest whole minutes are judged early).
    max_pending: int = Field(default=100_000, ge=1_000)


def _poisson_z(k: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The standard score of ``k`` or more events where ``mean`` are expected (mid-p)."""
    k = k.astype(float)
    upper = pdtrc(k, mean)  # more than k
    at = pdtr(k, mean) - np.where(k >= 1, pdtr(k - 1, mean), 0.0)
    tail = np.clip(upper + 0.5 * at, 1e-300, 1.0 - 1e-16)
    return np.asarray(-ndtri(tail), dtype=float)


def _metric_of(alert: dict[str, Any]) -> str | None:
    details = orjson.loads(alert["details"]) if alert["details"] else {}
    metric = details.get("metric") if isinstance(details, dict) else None
    return metric if isinstance(metric, str) else None


def _drop_told(found: pl.DataFrame, resting: set[str]) -> pl.DataFrame:
    """``found`` without failing-share alerts of vendors whose failing minutes have just
    alerted (one outage, one alert, whichever signal tells it first)."""
    if not resting or found.height == 0:
        return found
    keep = [
        not (a["entity"][VENDOR] in resting and _metric_of(a) == ERRORS)
        for a in found.iter_rows(named=True)
    ]
    return found.filter(pl.Series(keep, dtype=pl.Boolean))


def _calls(n: int) -> str:
    return "1 call" if n == 1 else f"{_num(n)} calls"


def _status_codes(failing: tuple[str, ...]) -> tuple[frozenset[int], bool]:
    codes: set[int] = set()
    server = False
    for item in failing:
        text = str(item).strip().lower()
        if text == "5xx":
            server = True
        elif text.isdigit():
            codes.add(int(text))
        else:
            raise ValueError(f"failing: {item!r} is neither a status code nor '5xx'")
    return frozenset(codes), server


class _VendorSeries(MetricAnomalyDetector):
    """The metric model over a vendor's minutes, with alerts that speak of the vendor."""

    def __init__(
        self, spec: MetricAnomalySpec, minutes: dict[tuple[str, datetime], dict[str, Any]]
    ):
        super().__init__(spec)
        self.minutes = minutes  # (vendor, sample time) -> what the minute held

    def _alert(
        self,
        ev: dict[str, Any],
        key: tuple[str, ...],
        model: SeriesModel,
        point: Point,
        share: Share | None = None,
    ) -> dict[str, Any]:
        record = super()._alert(ev, key, model, point, share)
        vendor, metric = key
        minute = self.minutes.get((vendor, ev["@timestamp"]), {})
        calls = int(minute.get("calls", 0))
        failures = minute.get("statuses") or {}
        usual = model.usual("value")
        if metric == ERRORS and share is not None:
            codes = ", ".join(f"{code}: {n}" for code, n in failures.items())
            over = " over its last ten minutes" if point.feature == "level" else ""
            what = (
                f"{_num(share.hits)} of {_num(share.trials)} calls failed "
                f"({share.value:.1%}){over}; its usual share failing is {share.usual:.2%}"
                f" (this minute: {_calls(calls)}"
                + (f", failures by status {codes})" if codes else ", none failed)")
            )
        else:
            value = float(ev["_value"])
            span = f"; its usual is {_num(usual[0])} to {_num(usual[1])} ms" if usual else ""
            over = " (median of its last ten minutes)" if point.feature == "level" else ""
            what = f"its calls' p95 took {_num(round(value))} ms{over}{span} ({_calls(calls)})"
        record["message"] = f"Vendor {vendor}: {what} (score {point.score:.2f})"
        record["entity"] = {**record["entity"], VENDOR: vendor, "service.name": None}
        return record


@kind("vendor_calls")
class VendorCallsDetector:
    """Learns each vendor's failing share and latency per minute; alerts on departures."""

    Spec = VendorCallsSpec

    def __init__(self, spec: VendorCallsSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.category = spec.category
        self.keys = (VENDOR, METRIC)
        self.horizon = parse_duration("1h")
        self.memory = parse_duration(spec.forget)
        self.single_event = False
        self.where = Where(spec.where)
        self.derived = self.where.derived
        self._codes, self._server = _status_codes(spec.failing)
        self.needs = frozenset(
            self.where.fields
            | set(spec.vendor)
            | {
                "@timestamp",
                "event.id",
                "event.duration",
                "event.outcome",
                "http.response.status_code",
            }
        )
        self.minutes: dict[tuple[str, datetime], dict[str, Any]] = {}
        #: Calls set aside for being dated past the engine's clock (see :data:`SKEW`).
        self.set_aside = 0
        inner = MetricAnomalySpec(
            id=spec.id,
            kind="metric_anomaly",
            name=spec.name,
            category=spec.category,
            severity=spec.severity,
            technique=spec.technique,
            risk_score=spec.risk_score,
            tags=spec.tags,
            where={"event.dataset": _DATASET},
            series=self.keys,
            **{
                f: getattr(spec, f)
                for f in SeriesRuleSpec.model_fields
                if f not in RuleSpec.model_fields
            },
        )
        self.series = _VendorSeries(inner, self.minutes)

    def _calls(self, batch: pl.DataFrame) -> pl.DataFrame | None:
        """The batch's vendor calls as pending rows (None: the batch has none)."""
        where = self.where.for_batch(batch.columns)
        names = [f for f in self.spec.vendor if f in batch.columns]
        if where is None or not names or "@timestamp" not in batch.columns:
            return None

        def col(name: str, dtype: pl.DataType) -> pl.Expr:
            if name in batch.columns:
                return pl.col(name).cast(dtype, strict=False)
            return pl.lit(None, dtype)

        status = col("http.response.status_code", pl.Int64())
        failed = status.is_in(list(self._codes)) if self._codes else pl.lit(False)
        if self._server:
            failed = failed | ((status >= 500) & (status <= 599))
        outcome = col("event.outcome", pl.String())
        # no answer: no status, or a client's status 0, with the call failed
        failed = failed | ((status.is_null() | (status < 100)) & (outcome == "failure"))
        vendor = pl.coalesce(
            [
                pl.when(pl.col(n).cast(pl.String).str.strip_chars() != "").then(
                    pl.col(n).cast(pl.String).str.slice(0, NAME_CHARS)
                )
                for n in names
            ]
        )
        calls = (
            batch.lazy()
            .filter(where & pl.col("@timestamp").is_not_null())
            .select(
                vendor.alias(VENDOR),
                pl.lit(CALLS).alias(METRIC),
                col("event.id", pl.String()).alias("event.id"),
                status.alias("_status"),
                failed.fill_null(False).alias("_failed"),
                (col("event.duration", pl.Float64()) / 1e6).alias("_ms"),
                pl.col("@timestamp").alias("_ts"),
            )
            .filter(pl.col(VENDOR).is_not_null())
            .collect()
        )
        return calls if calls.height else None

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """Count the batch's calls into minutes; judge the minutes that have ended."""
        if batch.height == 0 or "@timestamp" not in batch.columns:
            return empty_alerts()
        calls = self._calls(batch)
        pending = state.table("pending", _PENDING)
        if calls is None and pending.height == 0:
            return empty_alerts()
        rows = pl.concat([pending, calls]) if calls is not None else pending
        newest = batch.get_column("@timestamp").max()
        if not isinstance(newest, datetime):
            return empty_alerts()
        clock = state.now(newest)
        ahead = pl.col("_ts") > shift_time(clock, SKEW)
        if state.clock is not None and rows.select(ahead.any()).item():
            self.set_aside += int(rows.select(ahead.sum()).item())
            rows = rows.filter(~ahead)
        return self._judge(rows, state, clock)

    def flush(self, state: KeyedState) -> pl.DataFrame:
        """The end of a replay: the minutes still waiting are judged with what they have."""
        pending = state.table("pending", _PENDING)
        if pending.height == 0:
            return empty_alerts()
        return self._judge(pending, state, datetime(9999, 12, 31, 23, 0, tzinfo=UTC))

    def _judge(self, rows: pl.DataFrame, state: KeyedState, clock: datetime) -> pl.DataFrame:
        """Judge the minutes of ``rows`` (calls) that have ended by ``clock``; the others
        wait in the state."""
        judged = state.table("judged", _JUDGED)
        # A call older than its vendor's last judged minute counts in the next one, but
        # never in a minute past the clock's (then in the judged minute once more).
        now = pl.lit(clock).dt.truncate("1m")
        rows = rows.join(judged.select(VENDOR, "_minute"), on=VENDOR, how="left").with_columns(
            pl.min_horizontal(
                pl.max_horizontal(
                    pl.col("_ts").dt.truncate("1m"), pl.col("_minute").dt.offset_by("1m")
                ),
                pl.max_horizontal(now, pl.col("_minute")),
            ).alias("_minute")
        )
        ended = pl.col("_minute").dt.offset_by("1m") <= clock
        if rows.height > self.spec.max_pending:
            # bounded: past the cap a vendor's oldest whole minutes end early (a minute
            # ends when it and the later ones hold more calls than the cap)
            suffix = (
                rows.group_by(VENDOR, "_minute")
                .len()
                .sort(VENDOR, "_minute", descending=[False, True])
                .with_columns(pl.col("len").cum_sum().over(VENDOR).alias("_suffix"))
                .select(VENDOR, "_minute", "_suffix")
            )
            rows = rows.join(suffix, on=[VENDOR, "_minute"], how="left")
            ended = ended | (pl.col("_suffix") > self.spec.max_pending)
        rows = rows.with_columns(ended.alias("_ended"))
        done = rows.filter(pl.col("_ended"))
        waiting = rows.filter(~pl.col("_ended"))
        state.put("pending", waiting.select(list(_PENDING)))
        if done.height == 0:
            return empty_alerts()
        self.minutes.clear()
        per, samples = self._samples(done)
        last = done.group_by(VENDOR).agg(
            pl.lit(CALLS).alias(METRIC), pl.col("_minute").max(), pl.col("_ts").max()
        )
        state.put(
            "judged",
            pl.concat(
                [
                    judged.join(last.select(VENDOR), on=VENDOR, how="anti"),
                    last.select(list(_JUDGED)),
                ]
            ),
        )
        resting = {
            r[VENDOR]
            for r in state.table("spread", _SPREAD).iter_rows(named=True)
            if (r["_rest"] or 0) > 0
        }
        try:
            found = _drop_told(self.series.detect(samples, state), resting)
            spread = self._spread(per, state, found)
        finally:
            self.minutes.clear()
        if not spread:
            return found
        extra = pl.DataFrame(spread, schema=empty_alerts().schema)
        return pl.concat([found, extra]).sort("@timestamp", "alert.id") if found.height else extra

    def _spread(
        self, per: pl.DataFrame, state: KeyedState, found: pl.DataFrame
    ) -> list[dict[str, Any]]:
        """Alerts on the minutes of the last hour in which a call failed, against how many
        the vendor's usual failing share makes likely given each minute's calls.

        A minute of ``n`` calls has a failure with chance ``1 - (1 - p) ** n`` at the usual
        share ``p``; the hour's failing minutes are then about Poisson with the sum of those
        chances. A degrading vendor fails a call or two in many minutes, which no ten
        minutes of calls tell from chance; a hiccup of two minutes is two minutes whatever
        it failed. The score (a standard score of the Poisson mid-p tail) must reach
        ``spread_z`` with at least three failing minutes, and hold for ``persist``. A
        vendor whose failing share has just alerted (its series rests) is not alerted on
        again: one outage, one alert.

        ``p`` is learnt here, minute by minute, only from minutes whose hour scores under
        :data:`SPREAD_TEACH` (and from every minute until it rests on ``SETTLED`` calls),
        fading by half per ``share_half_life``: a degradation that creeps up is not taught
        to the share it is judged against.
        """
        spec = self.spec
        # a vendor whose failing share alerted rests from then on, as that series does
        told: dict[str, datetime] = {}
        for alert in found.iter_rows(named=True):
            vendor, at = alert["entity"][VENDOR], alert["@timestamp"]
            if _metric_of(alert) != ERRORS or vendor is None:
                continue
            if vendor not in told or at < told[vendor]:
                told[vendor] = at
        windows: dict[str, deque[tuple[datetime, int, bool]]] = {}
        for row in state.table("hour", _HOUR).sort("_minute").iter_rows(named=True):
            windows.setdefault(row[VENDOR], deque()).append(
                (row["_minute"], row["_calls"], row["_any"])
            )
        holds = {r[VENDOR]: r for r in state.table("spread", _SPREAD).iter_rows(named=True)}
        persist = parse_duration(spec.persist).total_seconds()
        half_life = parse_duration(spec.share_half_life).total_seconds()
        alerts: list[dict[str, Any]] = []
        for row in per.sort("@timestamp", VENDOR).iter_rows(named=True):
            vendor, at, minute = row[VENDOR], row["@timestamp"], row["_minute"]
            calls, failures = int(row["calls"]), int(row["failures"])
            h = holds.setdefault(
                vendor,
                {
                    VENDOR: vendor,
                    METRIC: CALLS,
                    **_NO_HOLD,
                    "_hits": 0.0,
                    "_trials": 0.0,
                    "_ts": None,
                },
            )
            window = windows.setdefault(vendor, deque())
            window.append((minute, calls, failures > 0))
            while window and window[0][0] <= minute - timedelta(minutes=60):
                window.popleft()
            usual = Share(failures / max(calls, 1), calls, h["_hits"], h["_trials"])
            p = usual.usual
            failing = sum(1 for _, _, bad in window if bad)
            expected = sum(1.0 - (1.0 - p) ** n for _, n, _ in window)
            score = float(_poisson_z(np.array([failing]), np.array([expected]))[0])
            settled = h["_trials"] >= SETTLED
            # quiet hours teach, and so do the minutes after an alert (a level that stays
            # becomes the vendor's usual, as in the metric model)
            if not settled or score < SPREAD_TEACH or h["_rest"] > 0:
                elapsed = 0.0 if h["_ts"] is None else max(0.0, (at - h["_ts"]).total_seconds())
                h["_hits"], h["_trials"] = usual.learnt(elapsed, half_life)
            h["_ts"] = at
            if vendor in told and at >= told[vendor]:
                del told[vendor]
                h.update({**_NO_HOLD, "_rest": spec.rest})
            if h["_rest"] > 0:
                h["_rest"] -= 1
                continue
            if h["_last"] is not None and (at - h["_last"]).total_seconds() > 3 * persist:
                h["_since"], h["_streak"] = None, 0
            # only a minute with a failure of its own counts towards the hold: the hour
            # remembers a hiccup for an hour, the hold must not
            if not (settled and failures and failing >= 3 and score >= spec.spread_z):
                continue
            h["_since"] = h["_since"] or at
            h["_streak"] += 1
            h["_last"] = at
            held = h["_streak"] < 3 or (at - h["_since"]).total_seconds() < persist
            if persist > 0 and held:
                continue
            h.update({**_NO_HOLD, "_rest": spec.rest})
            alerts.append(
                self._spread_alert(
                    row,
                    score,
                    {"failing": failing, "minutes": len(window), "expected": expected, "p": p},
                )
            )
        state.put(
            "hour",
            pl.DataFrame(
                [
                    {
                        VENDOR: v,
                        METRIC: CALLS,
                        "_minute": m,
                        "_calls": n,
                        "_any": bad,
                        "_ts": shift_time(m, _MINUTE),
                    }
                    for v, w in windows.items()
                    for m, n, bad in w
                ],
                schema=_HOUR,
            ),
        )
        state.put("spread", pl.DataFrame(list(holds.values()), schema=_SPREAD))
        return alerts

    def _spread_alert(
        self, row: dict[str, Any], score: float, hour: dict[str, Any]
    ) -> dict[str, Any]:
        vendor = row[VENDOR]
        minute = self.minutes.get((vendor, row["@timestamp"]), {})
        codes = ", ".join(f"{c}: {n}" for c, n in (minute.get("statuses") or {}).items())
        message = (
            f"Vendor {vendor}: calls failed in {hour['failing']} of its last {hour['minutes']} "
            f"minutes with calls (an hour), where its usual failing share of {hour['p']:.2%} "
            f"makes {hour['expected']:.1f} likely"
            + (
                f" (this minute: {_calls(int(row['calls']))}, failures by status {codes})"
                if codes
                else ""
            )
            + f" (score {min(score, 99.0):.1f})"
        )
        excess = min(1.0, (score - self.spec.spread_z) / self.spec.spread_z)
        return alert_record(
            self.spec,
            at=row["@timestamp"],
            key=(vendor, SPREAD),
            entity={VENDOR: vendor},
            event_ids=[i for i in (row["failed_id"] or row["slow_id"],) if i],
            message=message,
            details={
                "keys": {VENDOR: vendor, METRIC: SPREAD},
                "members": {METRIC: [SPREAD]},
                "metric": SPREAD,
                "feature": "hour",
                "direction": "up",
                "failing_minutes": int(hour["failing"]),
                "minutes": int(hour["minutes"]),
                "expected": round(float(hour["expected"]), 3),
                "usual_share": round(float(hour["p"]), 6),
                "score": round(min(score, 99.0), 3),
            },
            risk=int(40 + 50 * excess),
        )

    def _samples(self, done: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Each vendor's ended minutes, and two samples of each for the series model,
        stamped with the minute's last call: its failing share (with the count of calls)
        and its calls' p95 duration."""
        per = (
            done.sort("_ts", "event.id", nulls_last=True)
            .group_by(VENDOR, "_minute", maintain_order=True)
            .agg(
                pl.len().alias("calls"),
                pl.col("_failed").sum().alias("failures"),
                pl.col("_ms").quantile(0.95, "linear").alias("p95"),
                pl.col("_ts").max().alias("@timestamp"),
                pl.col("event.id").filter(pl.col("_failed")).first().alias("failed_id"),
                pl.col("event.id").sort_by(pl.col("_ms").fill_null(-1.0)).last().alias("slow_id"),
                pl.col("_status").filter(pl.col("_failed")).alias("statuses"),
            )
        )
        for row in per.iter_rows(named=True):
            codes: dict[str, int] = {}
            for code in row["statuses"] or ():
                label = "no answer" if code is None else str(code)
                codes[label] = codes.get(label, 0) + 1
            ordered = dict(sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])))
            self.minutes[(row[VENDOR], row["@timestamp"])] = {
                "calls": row["calls"],
                "statuses": ordered,
            }
        errors = per.select(
            pl.col(VENDOR),
            pl.lit(ERRORS).alias(METRIC),
            (pl.col("failures") / pl.col("calls")).cast(pl.Float64).alias("shop.metric.value"),
            pl.col("calls").cast(pl.Float64).alias("shop.metric.count"),
            pl.col("@timestamp"),
            pl.coalesce("failed_id", "slow_id").alias("event.id"),
        )
        latency = per.filter(pl.col("p95").is_not_null()).select(
            pl.col(VENDOR),
            pl.lit(LATENCY).alias(METRIC),
            pl.col("p95").alias("shop.metric.value"),
            pl.lit(None, pl.Float64).alias("shop.metric.count"),
            pl.col("@timestamp"),
            pl.col("slow_id").alias("event.id"),
        )
        samples = pl.concat([errors, latency]).with_columns(pl.lit(_DATASET).alias("event.dataset"))
        return per, samples

    def model_summary(self, state: KeyedState) -> dict[str, Any]:
        """What this model holds (``shopwatch models``)."""
        summary = self.series.model_summary(state)
        return {
            **summary,
            "learns_from": (
                "vendor.api calls per vendor and minute: failing share, failing minutes "
                "of the hour, p95 duration"
            ),
            "entity": VENDOR,
            "entities": int(
                state.table("series", self.series._schema).get_column(VENDOR).n_unique()
            ),
        }
