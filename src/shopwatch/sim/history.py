"""The shop's past weeks: each customer's earlier logins and orders, before a run starts.

A shop that has run shopwatch for a while has seen its customers before: the devices and
networks they log in from, the cards and addresses they order with. A run starting from
nothing would make every customer a stranger, so account-history detections could only be
measured on a shop seen for the first time. :func:`history` writes that past as the shop's
own ECS events (``shop.auth`` logins with their typos and password resets, ``shop.order``
checkouts and ``shop.payment`` authorizations with their declines; the access log of those
weeks is not written), drawn from the customers' own devices, addresses and cards by the
same login and checkout code as live traffic.

How much past (documented in ``docs/simulator.md``): logged-in visits per customer over
``days`` are Poisson with a mean drawn per customer log-uniformly from 0.5 to 8 visits per
28 days (repeat-visit figures of e-commerce benchmarks: most customers return a few times
a month, a few weekly, some not at all); a visit ends in an order with probability 0.3
(the share of logged-in visits that convert, an assumption of this simulator). Visits
are spread uniformly over the weeks; each comes from one of the customer's devices, on
their home or mobile network, as in live traffic.

The staff's back-office work of those weeks is written too (``shop.data_access``): on
weekdays between 08:00 and 18:00 office time, Poisson at 0.5 events a minute, each drawn
by the same code as live (a search, a bulk read or, one time in fifty, an export), from the
office network. A shop that has watched its back office for weeks knows each account's
usual exports.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from shopwatch.sim.draw import hex_id
from shopwatch.sim.emit import Out, Sink
from shopwatch.sim.traffic import REVIEW_SHARE, Traffic
from shopwatch.sim.world import SHOP_OFFSET, Shop

__all__ = ["history"]

#: Mean logged-in visits per customer per 28 days: log-uniform over this range.
VISITS_PER_28D: Final = (0.5, 8.0)
#: Probability that a logged-in visit of the past ends in an order.
ORDER_SHARE: Final = 0.3
#: Back-office events per minute of office hours (as live traffic: ``Traffic.minute``).
STAFF_PER_MIN: Final = 0.5
OFFICE_HOURS: Final = (8.0, 18.0)


def history(shop: Shop, traffic: Traffic, seed: int, start: float, days: float) -> list[str]:
    """ECS lines of the ``days`` before ``start`` (epoch seconds), oldest first."""
    if days <= 0:
        return []
    begin = start - days * 86400.0
    sink = Sink(seed, begin, keep=frozenset({"ecs"}))
    out = Out(sink, "history")
    rng = np.random.default_rng([seed, 3])
    reviews = np.random.default_rng([seed, 4])  # its own stream: the logins stay as they were
    lo, hi = np.log(VISITS_PER_28D[0]), np.log(VISITS_PER_28D[1])
    for cust in shop.customers:
        mean = float(np.exp(rng.uniform(lo, hi))) * days / 28.0
        # The last hour before the run is left out: the run's own traffic starts there.
        for t in np.sort(rng.uniform(begin, start - 3600.0, int(rng.poisson(mean)))):
            v = traffic.visitor_for(rng, cust)
            sid = hex_id(rng)
            # Logins with their typos and resets, checkouts with their declines, as live.
            after, _ = traffic.login(out, rng, float(t), v, sid)
            if reviews.random() < REVIEW_SHARE:
                product = shop.pick_product(reviews)
                traffic.review(out, reviews, after + float(reviews.uniform(60, 900)), v, sid, product)
            if rng.random() < ORDER_SHARE:
                cart = [(shop.pick_product(rng), max(1, int(rng.poisson(cust.basket))))]
                traffic.checkout(out, rng, after + float(rng.uniform(120, 1500)), v, sid, cart)
    _back_office(out, traffic, np.random.default_rng([seed, 5]), begin, start - 3600.0)
    return sink.release(start - 1e-3)["ecs"]


def _back_office(
    out: Out, traffic: Traffic, rng: np.random.Generator, begin: float, end: float
) -> None:
    """The staff's data access on the office days between ``begin`` and ``end``."""
    offset = SHOP_OFFSET * 3600.0
    first_day = int((begin + offset) // 86400)
    for day in range(first_day, int((end + offset) // 86400) + 1):
        if (day + 3) % 7 >= 5:  # 1970-01-01 was a Thursday: 0 = Monday
            continue
        opens = day * 86400.0 + OFFICE_HOURS[0] * 3600.0 - offset
        length = (OFFICE_HOURS[1] - OFFICE_HOURS[0]) * 3600.0
        n = int(rng.poisson(STAFF_PER_MIN * length / 60.0))
        for t in np.sort(rng.uniform(opens, opens + length, n)):
            if begin <= t < end:
                traffic.data_access(out, rng, float(t))
