"""Payment fraud scores: patterns, amounts, trust, what teaches."""

from __future__ import annotations

import math

from shopwatch.learn.payments import (
    PRIOR,
    SIGNALS,
    Order,
    Population,
    Segment,
    features,
    score,
)

# An established customer's new phone, card and address (a move): the profile calls them
# new. (For accounts younger than a week the profile calls nothing new: all of it is.)
MOVED = {"new_card": True, "new_device": True, "new_address": True}


def order(
    amount: float = 50.0, days: float | None = 30.0, trusted: bool = False, **on: bool
) -> Order:
    return Order({s: bool(on.get(s)) for s in SIGNALS}, amount, days, trusted)


def taught(orders: list[Order]) -> Population:
    pop = Population()
    for o in orders:
        pop.segments[o.segment].learn(o)
    return pop


def honest_shop() -> Population:
    """400 established orders (10% express, 10% after a move), 100 first orders (15%
    express)."""
    orders = [
        order(40.0 + i % 50, express=(i % 10 == 0), **(MOVED if i % 10 == 5 else {}))
        for i in range(400)
    ]
    orders += [order(45.0 + i % 40, days=0.0, express=(i % 7 == 0)) for i in range(100)]
    return taught(orders)


def test_a_common_pattern_of_signals_costs_less_than_its_signals_alone() -> None:
    pop = honest_shop()
    moved = score(order(60.0, **MOVED), pop, [50.0, 55.0, 60.0])
    alone = sum(b for name, b in moved.parts if name != "amount")
    # Three signals that travel together in honest orders: the pattern is one in ten.
    assert moved.pattern_bits < 4.0 < alone


def test_a_pattern_honest_orders_do_not_show_costs_more_than_its_signals_alone() -> None:
    pop = honest_shop()
    fraud = order(60.0, days=0.0, shared_card=True, shared_address=True)
    got = score(fraud, pop, [])
    alone = sum(b for name, b in got.parts if name in ("shared_card", "shared_address"))
    assert got.pattern_bits > alone > 10.0


def test_segments_are_scored_apart() -> None:
    pop = honest_shop()
    # Express is common among first orders and rarer on established accounts; each
    # segment is measured against itself.
    est = score(order(50.0, express=True), pop, [50.0] * 5)
    new = score(order(50.0, days=0.0, express=True), pop, [])
    assert est.pattern_bits > new.pattern_bits


def test_amount_against_the_accounts_own_orders_once_it_has_three() -> None:
    pop = honest_shop()
    own = [20.0, 22.0, 25.0, 21.0]
    big = score(order(300.0), pop, own)
    assert big.basis == "account" and dict(big.parts)["amount"] == -math.log2(1 / 5)
    usual = score(order(21.0), pop, own)
    assert dict(usual.parts)["amount"] < 1.0
    # Without three own orders, the segment's amounts are the yardstick.
    assert score(order(300.0), pop, [20.0, 22.0]).basis == "established"


def test_a_trusted_order_scores_its_amount_and_only_what_no_owner_does() -> None:
    pop = honest_shop()
    gift = order(60.0, trusted=True, express=True, new_address=True, ip_abroad=True)
    got = score(gift, pop, [50.0, 55.0, 60.0])
    assert got.pattern_bits == 0.0
    assert got.bits == dict(got.parts)["amount"]
    assert score(order(60.0, express=True, new_address=True, ip_abroad=True), pop, []).bits > 10
    # The owner's card and device from a hosting network, with a card other accounts use.
    odd = order(60.0, trusted=True, hosting_ip=True, shared_card=True, express=True)
    parts = dict(score(odd, pop, []).parts)
    assert score(odd, pop, []).pattern_bits == parts["hosting_ip"] + parts["shared_card"]


def test_an_unseen_pattern_is_the_rarer_the_more_orders_there_were() -> None:
    rare = order(shared_card=True)
    small = score(rare, taught([order() for _ in range(50)]), []).pattern_bits
    large = score(rare, taught([order() for _ in range(5000)]), []).pattern_bits
    assert large > small + 5


def test_pattern_share_is_smoothed_towards_the_product_of_the_signals_shares() -> None:
    seg = Segment()
    for _ in range(98):
        seg.learn(order())
    for _ in range(2):
        seg.learn(order(express=True))
    p = order(express=True).pattern
    q = seg.share("express") * math.prod(1 - seg.share(s) for s in SIGNALS if s != "express")
    assert seg.pattern_bits(p) == -math.log2((2 + PRIOR * q) / (100 + PRIOR))


def test_population_state_round_trips() -> None:
    pop = honest_shop()
    again = Population.from_dict(pop.to_dict())
    probe = order(80.0, days=0.0, shared_address=True, express=True)
    assert score(probe, again, []) == score(probe, pop, [])


def test_features_are_the_signals_the_amount_and_the_segment() -> None:
    f = features(order(100.0, days=0.0, express=True), [10.0, 20.0, 50.0])
    assert len(f) == len(SIGNALS) + 3
    assert f[SIGNALS.index("express")] == 1.0 and f[-1] == 1.0
    assert f[-2] == 100.0 / 20.0
    assert features(order(100.0), [])[-2] == 1.0
