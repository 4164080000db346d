"""The shop's own operations going wrong: a checkout that becomes slow (suddenly at the
payment provider, or creeping up in the shop's own checkout), and the short blip of a
payment provider's hiccup that is normal.

These campaigns write no lines of their own: they change the shop's benign traffic (every
request of their target takes ``factor`` times as long while they last), and the change
shows where an operator would see it, in the access log's request times, the vendor calls'
durations and the minute's latency samples (``gateway.latency.p95_ms`` and
``gateway.slow_share`` of the payments service, ``checkout.latency.p95_ms`` and
``checkout.slow_share`` of the storefront). Requests of sessions already under
way when a slowdown begins are slowed from the moment they are made, whoever makes them
(the sink applies it to every request of the target).

Each variant has its target (:data:`TARGETS`); the planner keeps a look-alike clear of the
attacks on its target, so that an alert about a target's metric is about one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from shopwatch.sim.emit import Out
from shopwatch.sim.ranges import draw
from shopwatch.sim.traffic import Traffic
from shopwatch.sim.world import Shop

if TYPE_CHECKING:
    from shopwatch.sim.campaigns import Campaign, Generator

__all__ = ["GENERATORS", "METRICS", "TARGETS"]

#: (kind, variant) -> what it slows: a provider incident is sudden, a regression of the
#: shop's own code creeps; a provider's brief hiccup is the look-alike.
TARGETS: Final[dict[tuple[str, str], str]] = {
    ("checkout_latency_shift", "loud"): "gateway",
    ("checkout_latency_shift", "low_slow"): "checkout",
    ("latency_blip", "loud"): "gateway",
}
#: The metrics each target's slowness shows in (its p95 and its share of slow requests).
METRICS: Final[dict[str, tuple[str, ...]]] = {
    "gateway": ("gateway.latency.p95_ms", "gateway.slow_share"),
    "checkout": ("checkout.latency.p95_ms", "checkout.slow_share"),
}


def _slowdown(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    """The checkout degrades: at once and for a while (loud), or creeping up (low_slow)."""
    p = draw(rng, c.kind, c.variant, c.params)
    length = p["duration_h"] * 3600.0 if c.low else p["duration_min"] * 60.0
    ramp = p["ramp_min"] * 60.0 if c.low else 0.0
    c.last(length)
    target = TARGETS[(c.kind, c.variant)]
    out.sink.slow(target, c.start, ramp, c.end, float(p["factor"]))
    c.add("shop.metric.name", list(METRICS[target]))
    c.params["target"] = target


GENERATORS: Final[dict[str, Generator]] = {
    "checkout_latency_shift": _slowdown,
    "latency_blip": _slowdown,
}
