"""One entity's learned normal: recent sizes, hours, networks and daily totals, bounded.

A :class:`Profile` is what a baseline keeps of one entity (a staff account's exports, a
vendor's calls): fixed-size, so memory per entity is bounded whatever the traffic
(:data:`MAX_BYTES`):

- ``values``: the last ``keep`` observed sizes (a ring; the median and the 10th/90th
  percentiles are exact over it, and old habits age out as new ones come in);
- ``hours``: events per hour of day (24 counters, halved when they pass ``HOUR_CAP`` so
  recent months weigh more than last year);
- ``nets``, ``countries``: the last eight /24 (IPv4) or /48 (IPv6) networks and countries
  seen, most recent last; ``hosting``: whether a hosting network was ever used;
- ``day``, ``day_sum``, ``days``: today's running total and the last ``keep_days`` totals
  of days with activity and no alert.

Nothing here decides what is an alert; :func:`surprise` turns a new observation into bits
of surprise per feature, which a detector weighs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import polars as pl

from shopwatch.contract import TIMESTAMP

__all__ = [
    "HOUR_CAP",
    "MAX_BYTES",
    "PROFILE_SCHEMA",
    "Profile",
    "Surprise",
    "hour_span",
    "quantile",
    "surprise",
]

#: Hour counters are halved when their total passes this (recency weighting).
HOUR_CAP: Final = 2000
#: Networks and countries remembered per entity.
MAX_NETS: Final = 8
#: Upper bound of :meth:`Profile.nbytes` for the defaults (50 values of 4 bytes, 24 hour
#: counters, 8 networks of at most 19 characters (an IPv6 /48 such as
#: ``2a01:4ff8:c17b::/48``) plus 4, 8 countries, 30 daily totals, 6 scalars of 8 bytes).
#: It counts the values a profile holds; ``bench.models`` measures what its table takes.
MAX_BYTES: Final = 50 * 4 + 24 * 4 + 8 * (19 + 4) + 8 * 3 + 30 * 4 + 6 * 8

#: The Polars schema profiles are kept in (beside the detector's key columns).
PROFILE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "_first": TIMESTAMP,
    "_ts": TIMESTAMP,
    "n": pl.Int64(),
    "values": pl.List(pl.Float32()),
    "hours": pl.List(pl.UInt32()),
    "nets": pl.List(pl.String()),
    "countries": pl.List(pl.String()),
    "hosting": pl.Boolean(),
    "day": pl.Int32(),
    "day_sum": pl.Float64(),
    "day_alerted": pl.Boolean(),
    "days": pl.List(pl.Float32()),
}


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation; 0 for none).

    >>> quantile([1, 2, 3, 4], 0.5), quantile([5.0], 0.9), quantile([], 0.5)
    (2.5, 5.0, 0.0)
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


def hour_span(hours: list[int], share: float = 0.8) -> tuple[int, int] | None:
    """The shortest run of hours (wrapping past midnight) holding ``share`` of the events:
    ``(first hour, hour after the last)``; None with no events.

    >>> hour_span([0] * 9 + [5] * 9 + [0] * 6, share=1.0)
    (9, 18)
    >>> hour_span([3] * 2 + [0] * 20 + [3] * 2, share=1.0)
    (22, 2)
    """
    total = sum(hours)
    if total == 0:
        return None
    best: tuple[int, int] | None = None
    for width in range(1, 25):
        for start in range(24):
            covered = sum(hours[(start + k) % 24] for k in range(width))
            if covered >= share * total:
                best = (start, (start + width) % 24)
                return best
    return best


@dataclass(slots=True)
class Profile:
    """One entity's learned normal (see the module docstring)."""

    first: datetime
    last: datetime
    n: int = 0
    values: list[float] = field(default_factory=list)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    nets: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    hosting: bool = False
    day: int = -1
    day_sum: float = 0.0
    day_alerted: bool = False
    days: list[float] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Profile:
        """A profile from one row of a frame of :data:`PROFILE_SCHEMA`."""
        return cls(
            first=row["_first"],
            last=row["_ts"],
            n=int(row["n"]),
            values=list(row["values"] or []),
            hours=list(row["hours"] or [0] * 24),
            nets=list(row["nets"] or []),
            countries=list(row["countries"] or []),
            hosting=bool(row["hosting"]),
            day=int(row["day"]),
            day_sum=float(row["day_sum"]),
            day_alerted=bool(row["day_alerted"]),
            days=list(row["days"] or []),
        )

    def row(self) -> dict[str, Any]:
        """This profile as a row of :data:`PROFILE_SCHEMA`."""
        return {
            "_first": self.first,
            "_ts": self.last,
            "n": self.n,
            "values": self.values,
            "hours": self.hours,
            "nets": self.nets,
            "countries": self.countries,
            "hosting": self.hosting,
            "day": self.day,
            "day_sum": self.day_sum,
            "day_alerted": self.day_alerted,
            "days": self.days,
        }

    def nbytes(self) -> int:
        """Approximate bytes this profile holds in its table."""
        return (
            4 * len(self.values)
            + 4 * 24
            + sum(len(n) + 4 for n in self.nets)
            + 3 * len(self.countries)
            + 4 * len(self.days)
            + 8 * 6
        )

    def today(self, day: int) -> float:
        """Today's running total, once the day of ``day`` has begun."""
        return self.day_sum if self.day == day else 0.0

    def learn(
        self,
        at: datetime,
        hour: int,
        value: float,
        net: str | None,
        country: str | None,
        hosting: bool,
        *,
        keep: int,
    ) -> None:
        """Fold one observation in (the caller decides whether it may teach)."""
        self.last = max(self.last, at)
        self.n += 1
        self.values.append(float(value))
        del self.values[:-keep]
        self.hours[hour] += 1
        if sum(self.hours) > HOUR_CAP:
            self.hours = [h // 2 for h in self.hours]
        for seen, item in ((self.nets, net), (self.countries, country)):
            if item:
                if item in seen:
                    seen.remove(item)
                seen.append(item)
                del seen[:-MAX_NETS]
        self.hosting = self.hosting or hosting

    def add_to_day(self, day: int, value: float, keep_days: int) -> None:
        """Count ``value`` into the total of ``day``, closing the day before: its total is
        learned unless the day raised an alert (an attacker's day teaches nothing)."""
        if day != self.day:
            if self.day >= 0 and self.day_sum > 0 and not self.day_alerted:
                self.days.append(float(self.day_sum))
                del self.days[:-keep_days]
            self.day, self.day_sum, self.day_alerted = day, 0.0, False
        self.day_sum += value


@dataclass(frozen=True, slots=True)
class Surprise:
    """Bits of surprise of one observation per feature, against a profile."""

    ratio: float  # the value against the profile's usual high (its 90th percentile)
    size: float
    day_ratio: float  # today's total with this value against the usual daily high
    day: float
    hour: float
    network: float
    country: float
    hosting: float

    @property
    def total(self) -> float:
        """The score: the larger of the size and day bits, plus the context bits."""
        return max(self.size, self.day) + self.hour + self.network + self.country + self.hosting


def _bits(ratio: float, cap: float = 8.0) -> float:
    return min(cap, max(0.0, math.log2(ratio))) if ratio > 0 else 0.0


def surprise(
    profile: Profile,
    hour: int,
    value: float,
    net: str | None,
    country: str | None,
    hosting: bool,
    day_total: float,
) -> Surprise:
    """How unusual an observation is for ``profile`` (see :class:`Surprise`).

    - size: log2 of the value over the usual high (the 90th percentile of recent values),
      0 when at or under it, at most 8;
    - day: the same for today's running total over the usual daily high;
    - hour: log2 of how much rarer the three hours around ``hour`` are than an even
      spread would make them (Laplace-smoothed), at most 4;
    - network: 2 when the /24 or /48 was never used, country: 1 when the country was
      never used, hosting: 1 when the network is a hosting one and the profile never used one.
    """
    high = quantile(profile.values, 0.9)
    ratio = value / high if high > 0 else 1.0
    day_high = quantile(profile.days, 0.9)
    day_ratio = day_total / day_high if day_high > 0 else 1.0
    total = sum(profile.hours)
    near = profile.hours[(hour - 1) % 24] + profile.hours[hour] + profile.hours[(hour + 1) % 24]
    share = (near + 1) / (total + 8)
    hour_bits = min(4.0, max(0.0, math.log2(0.125 / share))) if total else 0.0
    return Surprise(
        ratio=ratio,
        size=_bits(ratio),
        day_ratio=day_ratio,
        day=_bits(day_ratio),
        hour=hour_bits,
        network=2.0 if net and profile.nets and net not in profile.nets else 0.0,
        country=1.0 if country and profile.countries and country not in profile.countries else 0.0,
        hosting=1.0 if hosting and not profile.hosting else 0.0,
    )
