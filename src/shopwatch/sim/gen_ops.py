"""The shop's own operations going wrong: a checkout that becomes slow (suddenly at the
payment provider, or creeping up in the shop's own checkout), a vendor that refuses or
fails the shop's calls, and what is normal beside them: the short blip of a payment
provider's hiccup, a month-end run that calls a vendor many times more than usual.

These campaigns write no lines of their own: they change the shop's benign traffic (every
request of their target takes ``factor`` times as long while they last), and the change
shows where an operator would see it, in the access log's request times, the vendor calls'
durations and the minute's latency samples (``gateway.latency.p95_ms`` and
``gateway.slow_share`` of the payments service, ``checkout.latency.p95_ms`` and
``checkout.slow_share`` of the storefront). Requests of sessions already under
way when a slowdown begins are slowed from the moment they are made, whoever makes them
(the sink applies it to every request of the target).

A vendor outage works the same way on the vendor's calls (``Sink.fail``: a share of them
fail, and the client retries what may be retried); the month-end run writes its own calls.

Each slowdown variant has its target (:data:`TARGETS`); the planner keeps a look-alike clear of the
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

__all__ = ["GENERATORS", "METRICS", "TARGETS", "VENDORS"]

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
    if target == "gateway":  # the payment provider's calls show it too
        c.add("shop.vendor.name", "stripe")
    c.params["target"] = target


#: The vendors an outage may hit (every vendor the shop calls), and those a month-end run
#: calls (the mailer sends invoices and statements, the carrier books the month's parcels).
VENDORS: Final = ("stripe", "dhl", "sendgrid", "algolia", "google-analytics")
_MONTH_END_CALLS: Final = {
    "sendgrid": ("POST", "/v3/mail/send", 202, 110.0),
    "dhl": ("POST", "/parcel/de/shipping/v2/orders", 200, 380.0),
}


def _vendor_failing(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    """A vendor stops answering the shop: it refuses the shop's key (revoked after a leak,
    or rate limited after abuse) at once (loud), or degrades, failing more and more calls
    with server errors over hours (low_slow). The shop's own calls show it."""
    p = draw(rng, c.kind, c.variant, c.params)
    vendor = VENDORS[int(rng.integers(0, len(VENDORS)))]
    length = p["duration_h"] * 3600.0 if c.low else p["duration_min"] * 60.0
    ramp = min(p["ramp_min"] * 60.0, length) if c.low else 0.0
    c.last(length)
    if c.low:
        statuses: tuple[int, ...] = (500, 502, 503, 504)
    else:
        statuses = ((401, 403), (429,))[int(rng.integers(0, 2))]
    out.sink.fail(vendor, c.start, ramp, c.end, float(p["share"]), statuses)
    c.add("shop.vendor.name", vendor)
    c.params.update({"vendor": vendor, "statuses": ",".join(map(str, statuses))})


def _month_end(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    """The shop's own month-end run: many more calls than usual to one vendor, the usual
    calls to the usual endpoint, for hours."""
    p = draw(rng, c.kind, c.variant, c.params)
    vendor = sorted(_MONTH_END_CALLS)[int(rng.integers(0, len(_MONTH_END_CALLS)))]
    method, path, status, median_ms = _MONTH_END_CALLS[vendor]
    natural = c.last(p["duration_h"] * 3600.0)
    stop = min(natural, c.end)
    n = int(rng.poisson(p["calls_per_min"] * max(stop - c.start, 0.0) / 60.0))
    for t in np.sort(rng.uniform(c.start, stop, n)):
        ms = float(median_ms * np.exp(rng.normal(0.0, 0.35)))
        tr.vendor(out, rng, float(t), vendor, method, path, status, ms)
    c.add("shop.vendor.name", vendor)
    c.params.update({"vendor": vendor, "calls": n})


GENERATORS: Final[dict[str, Generator]] = {
    "checkout_latency_shift": _slowdown,
    "latency_blip": _slowdown,
    "vendor_anomaly": _vendor_failing,
    "vendor_month_end": _month_end,
}
