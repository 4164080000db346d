"""Streaming anomaly scores for one metric series, one point at a time.

A :class:`SeriesModel` learns a series (latency, error rate, throughput, a NAB file) as it
arrives and scores each point by how far it lies outside what the series has done, with
no labels and no look at the future. Three features are watched:

- ``value``: the point itself;
- ``level``: the mean (or, with :attr:`SeriesParams.robust_level`, the median) of the last
  :attr:`SeriesParams.level` points, which a level shift (a change point) moves while
  single noisy points do not;
- ``daily``: the change since the same moment one :attr:`SeriesParams.period` earlier (the
  median of the point nearest that moment and its two neighbours, so a spike then is not
  echoed now), so a series with a daily rhythm is judged against its own hour of day.

Each feature keeps its last :attr:`SeriesParams.window` values (30 days of 5-minute
points by default). A new feature value is scored by its two-sided tail probability among
them: *surprise* is ``-log10`` of the share of remembered values at least as extreme (the
point counted, so a value beyond all ``N`` scores ``log10(N + 1)``), and a value beyond
the remembered range adds ``excess`` per width of the half-range it oversteps (the
distance from the median to that extreme). The derived features' surprise is weighted by
``0.8``, a discount for looking three times. The point's score is ``S / (1 + S)`` for the
largest weighted surprise ``S``, in [0, 1).

After a point scores :attr:`SeriesParams.alarm` or more, the next ``rest`` points score 0
(they are still learnt): one change is one alarm, not a run of them. A missing or
non-finite value scores 0 and changes nothing.

Memory is bounded: per feature ``window`` floats kept twice (arrival order, sorted), plus
one period of (time, value) pairs for the daily feature: about 3 x 2 x 8,640 + 2 x 288
floats, ~430 KB for a 5-minute series, less for a short window. Cost per point: a binary
search and a list insertion per feature (microseconds).

On NAB's 35 labelled series (55 windows, scored by NAB's rules with one threshold for the
corpus) these defaults give the figures in ``docs/metrics.md``; they were chosen there,
so those figures are not a held-out measurement.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["FEATURES", "MAX_SURPRISE", "MAX_VALUE", "Point", "SeriesModel", "SeriesParams", "Tail"]

#: The watched features, in the order their weights are given.
FEATURES: Final = ("value", "level", "daily")
#: Values beyond this magnitude are not a measurement (and would overflow the sums).
MAX_VALUE: Final = 1e150
#: Surprise is capped here: a score stays a number, however far out a value lies.
MAX_SURPRISE: Final = 1e6


@dataclass(frozen=True, slots=True)
class SeriesParams:
    """How a :class:`SeriesModel` learns and scores."""

    window: int = 8640
    min_history: int = 50
    level: int = 10
    period: float = 86400.0
    weights: tuple[float, float, float] = (1.0, 0.8, 0.8)
    excess: float = 10.0
    alarm: float = 0.8
    rest: int = 150
    #: Seconds a harmful score must hold (on three samples or more) before it alarms; 0: at
    #: once. Until then its samples are candidates: scored, not learnt. Quiet samples
    #: between harmful ones do not break the hold; three times as long without one does.
    persist: float = 0.0
    #: The level is the median of the last ``level`` samples rather than their mean: one
    #: spike then moves no level (it needs half of them to move).
    robust_level: bool = False

    def __post_init__(self) -> None:
        if self.window < 2 or self.min_history < 1 or self.level < 2 or self.rest < 0:
            raise ValueError("window >= 2, min_history >= 1, level >= 2 and rest >= 0")
        if self.persist < 0:
            raise ValueError("persist >= 0")
        if not 0 < self.alarm < 1 or self.period <= 0 or self.excess < 0:
            raise ValueError("alarm in (0, 1), period > 0, excess >= 0")
        if len(self.weights) != len(FEATURES) or min(self.weights) < 0:
            raise ValueError(f"one weight >= 0 per feature {FEATURES}")


@dataclass(slots=True)
class Tail:
    """The last ``window`` finite values of one feature, and how extreme a new one is."""

    window: int
    order: deque[float] = field(default_factory=deque)
    ranked: list[float] = field(default_factory=list)

    def surprise(self, v: float, min_history: int, excess: float) -> tuple[float, int]:
        """``(surprise, direction)``: ``-log10`` of the two-sided tail share, plus the
        overstep past the remembered range; direction ``+1`` above the median, ``-1``
        below (0 with too little history)."""
        ranked = self.ranked
        n = len(ranked)
        if n < min_history:
            return 0.0, 0
        lo = bisect.bisect_left(ranked, v)
        hi = bisect.bisect_right(ranked, v)
        p_up = (n - lo + 1) / (n + 1)
        p_down = (hi + 1) / (n + 1)
        s = -math.log10(min(p_up, p_down))
        median = ranked[n // 2]
        scale = 1e-9 * max(1.0, abs(median))
        if v > ranked[-1]:
            s += excess * (v - ranked[-1]) / max(ranked[-1] - median, scale)
        elif v < ranked[0]:
            s += excess * (ranked[0] - v) / max(median - ranked[0], scale)
        return s, (1 if p_up < p_down else -1 if p_down < p_up else 0)

    def add(self, v: float) -> None:
        """Remember ``v``, forgetting the oldest value past ``window``."""
        self.order.append(v)
        bisect.insort(self.ranked, v)
        if len(self.order) > self.window:
            old = self.order.popleft()
            del self.ranked[bisect.bisect_left(self.ranked, old)]

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the remembered values (None when empty)."""
        if not self.ranked:
            return None
        return self.ranked[min(len(self.ranked) - 1, int(q * len(self.ranked)))]


@dataclass(frozen=True, slots=True)
class Point:
    """One scored point: the score, which feature made it and which way."""

    score: float
    surprise: float
    feature: str
    direction: int
    alarm: bool
    #: The feature's value at this point (``None`` for the daily feature without a match).
    observed: float | None = None


_QUIET: Final = Point(0.0, 0.0, "", 0, False)


class SeriesModel:
    """One series' learned normal; :meth:`update` scores a point, then learns it."""

    def __init__(self, params: SeriesParams | None = None) -> None:
        self.params = params or SeriesParams()
        p = self.params
        self.tails = [Tail(p.window) for _ in FEATURES]
        self.recent: deque[float] = deque(maxlen=p.level)
        #: Times and values of the last period (from ``head`` on), for the daily feature.
        self.past_t: list[float] = []
        self.past_v: list[float] = []
        self.past_ok: list[bool] = []
        self.head = 0
        self.gaps: deque[float] = deque(maxlen=32)
        self.last_time: float | None = None
        self.resting = 0
        self.points = 0
        self.first_time: float | None = None
        #: A harmful score holding since this time, on this many samples, the last at
        #: ``last_harm`` (see persist).
        self.since: float | None = None
        self.streak = 0
        self.last_harm: float | None = None

    # The daily feature: the value one period before ``t``, within half a usual gap.
    def _day_ago(self, t: float) -> float | None:
        if self.head >= len(self.past_t) or not self.gaps:
            return None
        gaps = sorted(self.gaps)
        tolerance = gaps[len(gaps) // 2] / 2
        target = t - self.params.period
        times = self.past_t
        i = bisect.bisect_left(times, target, self.head)
        best: int | None = None
        for j in (i - 1, i):
            close = self.head <= j < len(times) and abs(times[j] - target) <= tolerance
            if close and (best is None or abs(times[j] - target) < abs(times[best] - target)):
                best = j
        if best is None or not self.past_ok[best]:
            return None
        # The median of the match and its neighbours: a spike a period ago is not echoed.
        near = sorted(self.past_v[max(self.head, best - 1) : best + 2])
        return near[len(near) // 2]

    def update(
        self,
        t: float,
        value: float,
        wanted: int = 0,
        floor: float | None = None,
        evidence: tuple[float, float] | None = None,
    ) -> Point:
        """Score ``value`` at time ``t`` (seconds), then learn it.

        ``wanted`` is the direction that may alarm: ``1`` up, ``-1`` down, ``0`` both. A
        move the other way is scored and learnt but raises no alarm and starts no rest (a
        flash sale's surge must not hide the outage after it).

        ``floor``, for values that are standard scores (a share's likelihood), is the least
        evidence an alarm needs in its direction: ``evidence`` gives it for the sample and
        for the level (the caller's combined score of the last samples), else the value
        itself and the level's mean times the square root of the samples it averages. A
        point short of it is scored and learnt but does not alarm: one slow request in a
        day of fast ones is unusual for the model and expected for the statistics.
        """
        p = self.params
        if not (math.isfinite(value) and abs(value) <= MAX_VALUE):
            return _QUIET
        if self.last_time is not None and math.isfinite(t) and t < self.last_time - p.period:
            # More than a period behind: the clock jumped back (or one point was dated in
            # the future); the daily feature starts again rather than switch off for good.
            self.past_t, self.past_v, self.past_ok, self.head = [], [], [], 0
            self.last_time = None
        in_order = self.last_time is None or t >= self.last_time
        self.recent.append(value)
        level = None
        if len(self.recent) == p.level:
            if p.robust_level:
                ranked = sorted(self.recent)
                mid = len(ranked) // 2
                level = ranked[mid] if len(ranked) % 2 else (ranked[mid - 1] + ranked[mid]) / 2
            else:
                level = sum(self.recent) / len(self.recent)
        ago = self._day_ago(t) if in_order and math.isfinite(t) else None
        observed = (value, level, None if ago is None else value - ago)
        best = _QUIET
        harmful = _QUIET
        for name, tail, weight, x in zip(FEATURES, self.tails, p.weights, observed, strict=True):
            if x is None:
                continue
            s, direction = tail.surprise(x, p.min_history, p.excess)
            s = min(s * weight, MAX_SURPRISE)
            point = Point(s / (1.0 + s), s, name, direction, False, x)
            if s > best.surprise:
                best = point
            if floor is not None:
                if evidence is not None:
                    e = evidence[1] if name == "level" else evidence[0]
                else:
                    e = x * math.sqrt(p.level) if name == "level" else value
                if e * direction < floor:
                    continue
            if (wanted == 0 or direction == wanted) and s > harmful.surprise:
                harmful = point
        alarm = self.resting == 0 and harmful.score >= p.alarm
        held = False
        if p.persist > 0 and self.resting == 0:
            # A harmful score must hold a while: a blip of a minute or two is no alarm. A
            # quiet sample does not end the hold (a flapping gateway is one incident);
            # three times ``persist`` without a harmful score does.
            last_harm = self.last_harm
            stale = last_harm is None or not math.isfinite(t) or t - last_harm > 3 * p.persist
            if stale:
                self.since, self.streak = None, 0
            if alarm:
                if self.since is None:
                    self.since = t
                self.streak += 1
                self.last_harm = t
                alarm = self.streak >= 3 and t - self.since >= p.persist
                held = not alarm
        if alarm:
            self.since, self.streak, self.last_harm = None, 0, None
        # The point that alarms does not teach: one spike must not raise the bar for a
        # month. The points after it, while the series rests, do (a level that stays is
        # the new normal). Nor do candidates of an alarm that has to hold.
        if not alarm and not held:
            for tail, x in zip(self.tails, observed, strict=True):
                if x is not None:
                    tail.add(x)
        self.points += 1
        if self.first_time is None:
            self.first_time = t
        if in_order and math.isfinite(t):
            if self.last_time is not None and t > self.last_time:
                self.gaps.append(t - self.last_time)
            self.last_time = t
            self.past_t.append(t)
            self.past_v.append(value)
            # An alarm or its rest is no "same time yesterday" for tomorrow: no echo.
            self.past_ok.append(not alarm and not held and self.resting == 0)
            horizon = t - p.period - (max(self.gaps) if self.gaps else 0.0)
            self.head = bisect.bisect_left(self.past_t, horizon, self.head)
            if self.head > 64 and self.head * 2 > len(self.past_t):
                del self.past_t[: self.head], self.past_v[: self.head], self.past_ok[: self.head]
                self.head = 0
        if self.resting > 0:
            self.resting -= 1
            return _QUIET
        if alarm:
            self.resting = p.rest
            return Point(
                harmful.score,
                harmful.surprise,
                harmful.feature,
                harmful.direction,
                True,
                harmful.observed,
            )
        return best

    def usual(self, feature: str = "value") -> tuple[float, float] | None:
        """The 5th and 95th percentiles of a feature's remembered values."""
        tail = self.tails[FEATURES.index(feature)]
        lo, hi = tail.quantile(0.05), tail.quantile(0.95)
        return None if lo is None or hi is None else (lo, hi)

    # Saving and restoring: the arrival-ordered values; the sorted copies are rebuilt.
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "tails": [list(t.order) for t in self.tails],
            "recent": list(self.recent),
            "past_t": self.past_t[self.head :],
            "past_v": self.past_v[self.head :],
            "past_ok": self.past_ok[self.head :],
            "gaps": list(self.gaps),
            "last_time": self.last_time,
            "first_time": self.first_time,
            "resting": self.resting,
            "points": self.points,
            "since": self.since,
            "streak": self.streak,
            "last_harm": self.last_harm,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], params: SeriesParams | None = None) -> SeriesModel:
        """The model :meth:`to_dict` saved."""
        model = cls(params)
        for tail, values in zip(model.tails, data["tails"], strict=True):
            # A value the JSON could not hold (written as null) is dropped, not fatal.
            kept = [float(v) for v in values if v is not None][-tail.window :]
            tail.order = deque(kept)
            tail.ranked = sorted(kept)
        model.recent.extend(float(v) for v in data["recent"] if v is not None)
        pairs = [
            (float(pt), float(pv), bool(ok))
            for pt, pv, ok in zip(
                data["past_t"],
                data["past_v"],
                data.get("past_ok") or [True] * len(data["past_t"]),
                strict=True,
            )
            if pt is not None and pv is not None
        ]
        model.past_t = [pt for pt, _, _ in pairs]
        model.past_v = [pv for _, pv, _ in pairs]
        model.past_ok = [ok for _, _, ok in pairs]
        model.gaps.extend(float(g) for g in data["gaps"])
        model.last_time = data["last_time"]
        model.first_time = data["first_time"]
        model.resting = int(data["resting"])
        model.points = int(data["points"])
        since = data.get("since")
        model.since = float(since) if since is not None else None
        model.streak = int(data.get("streak") or 0)
        last_harm = data.get("last_harm")
        model.last_harm = float(last_harm) if last_harm is not None else None
        return model

    def state_bytes(self) -> int:
        """Floats held, at 8 bytes each (the figure ``shopwatch models`` reports)."""
        floats = sum(2 * len(t.order) for t in self.tails)
        floats += len(self.recent) + 3 * (len(self.past_t) - self.head) + len(self.gaps)
        return 8 * floats
