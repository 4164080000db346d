"""Payment fraud scores: how unlike this shop's normal orders an order is, in bits.

An order is described by risk *signals* (true or false) and its amount:

========================  ==================================================================
``card_abroad``           the card was issued in another country than the goods go to
``ip_abroad``             the buyer is in another country than the goods go to
``express``               express shipping
``new_address``           a shipping address the account has not used before
``new_card``              a card the account has not used before
``new_device``            a device the account has not used before
``hosting_ip``            the buyer's address belongs to a hosting network
``shared_address``        the shipping address was used by another account in 30 days
``shared_card``           the card was used by another account in 30 days
``cards_today``           the account used two or more cards in 24 hours
``declined_first``        a payment of this order was declined before it went through
========================  ==================================================================

The signals are scored *together*: the order's pattern (which signals are true) costs
``-log2 P(pattern)``, where ``P`` is the share of earlier orders of the same *segment*
with exactly that pattern, smoothed towards the product of the signals' own shares
(``(count + a * q) / (n + a)``, ``a`` = :data:`PRIOR`). Signals that travel together in
honest orders (a new customer's new card, device and address; a new phone and a new card
after a move) are as cheap as that pattern is common; a pattern honest orders do not show
costs more than its signals alone. Segments are new accounts (known for less than a week)
and established ones, so a foreign card on a ten-year-old account is measured against
other established accounts. The amount adds the surprise of its upper tail: against the
account's own last orders when it has three or more, else against the segment's.

For the analyst each true signal is also given alone (``-log2`` of its share): the parts
say which signals made the pattern rare.

A *trusted* order, an established account paying with a card and from a device it has
used before (both known to its profile), is its owner's: its pattern costs nothing and
only its amount against its own orders counts. A gift sent abroad by express is not
stolen-card fraud. The blind spot is deliberate and stated: someone using the owner's own
device and saved card (a family member, malware on that device) is not scored as fraud,
and neither is friendly fraud (the owner disputing their own order).

This is the *unsupervised* score. :func:`features` gives the same description as a vector,
for a model fitted to labels (chargebacks, analyst verdicts) where they exist.

Poisoning bound: only orders that did not alert teach the population, and each order
teaches once; an attacker who wants a signal to look common must place, without alerting,
about as many orders with it as the shop's customers place without it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["SIGNALS", "Order", "Population", "Scored", "features", "score"]

#: The risk signals, in the order of :func:`features`.
SIGNALS: Final = (
    "card_abroad",
    "ip_abroad",
    "express",
    "new_address",
    "new_card",
    "new_device",
    "hosting_ip",
    "shared_address",
    "shared_card",
    "cards_today",
    "declined_first",
)
#: Signals that count even on a trusted order (each alone, by its share).
HARD: Final = frozenset({"hosting_ip", "shared_address", "shared_card", "cards_today"})
#: Weight of the independence prior in a pattern's smoothed share.
PRIOR: Final = 4.0
#: An account known for less than this many days is in the "new" segment.
NEW_DAYS: Final = 7.0
#: Amounts kept per segment for the population's tail.
KEEP_AMOUNTS: Final = 2000
#: An account's own amounts kept, and how many make its own history count.
KEEP_OWN: Final = 10
OWN_MIN: Final = 3


@dataclass(frozen=True, slots=True)
class Order:
    """One order's signals and amount (in euros), with its account's age in days."""

    signals: dict[str, bool]
    amount: float
    known_days: float | None
    #: An established account paying with a card and from a device it used before.
    trusted: bool = False

    @property
    def pattern(self) -> int:
        """The true signals as bits (bit ``i`` for ``SIGNALS[i]``)."""
        return sum(1 << i for i, name in enumerate(SIGNALS) if self.signals.get(name))

    @property
    def segment(self) -> str:
        """``new`` or ``established``."""
        return "new" if self.known_days is None or self.known_days < NEW_DAYS else "established"


@dataclass(slots=True)
class Segment:
    """Counts of one segment's earlier orders: how many, how many with each signal."""

    orders: int = 0
    true: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0))
    patterns: dict[int, int] = field(default_factory=dict)  # at most 2 ** len(SIGNALS)
    amounts: list[float] = field(default_factory=list)  # sorted, the last KEEP_AMOUNTS
    order: list[float] = field(default_factory=list)  # the same, in arrival order

    def share(self, signal: str) -> float:
        """Smoothed share of orders with ``signal`` true."""
        return (self.true[signal] + 1) / (self.orders + 2)

    def pattern_bits(self, pattern: int) -> float:
        """``-log2`` of the smoothed share of orders with exactly ``pattern``."""
        q = 1.0
        for i, name in enumerate(SIGNALS):
            share = self.share(name)
            q *= share if pattern >> i & 1 else 1.0 - share
        count = self.patterns.get(pattern, 0)
        return -math.log2((count + PRIOR * q) / (self.orders + PRIOR))

    def learn(self, o: Order) -> None:
        self.orders += 1
        self.patterns[o.pattern] = self.patterns.get(o.pattern, 0) + 1
        for name, on in o.signals.items():
            if on:
                self.true[name] += 1
        bisect.insort(self.amounts, o.amount)
        self.order.append(o.amount)
        if len(self.order) > KEEP_AMOUNTS:
            old = self.order.pop(0)
            del self.amounts[bisect.bisect_left(self.amounts, old)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "true": dict(self.true),
            "patterns": {str(k): v for k, v in self.patterns.items()},
            "amounts": list(self.order),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        seg = cls(orders=int(data["orders"]))
        seg.true.update({k: int(v) for k, v in data["true"].items() if k in seg.true})
        seg.patterns = {int(k): int(v) for k, v in data.get("patterns", {}).items()}
        seg.order = [float(a) for a in data["amounts"]][-KEEP_AMOUNTS:]
        seg.amounts = sorted(seg.order)
        return seg


@dataclass(slots=True)
class Population:
    """The shop's orders so far, per segment."""

    segments: dict[str, Segment] = field(
        default_factory=lambda: {"new": Segment(), "established": Segment()}
    )

    def to_dict(self) -> dict[str, Any]:
        return {k: s.to_dict() for k, s in self.segments.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Population:
        pop = cls()
        for k in pop.segments:
            if k in data:
                pop.segments[k] = Segment.from_dict(data[k])
        return pop


@dataclass(frozen=True, slots=True)
class Scored:
    """An order's score: total bits (pattern plus amount), each true signal's bits alone
    and the amount's (largest first)."""

    bits: float
    pattern_bits: float
    parts: tuple[tuple[str, float], ...]
    basis: str  # what the amount was measured against: "account" or the segment


def _tail_bits(sorted_values: list[float], x: float) -> float:
    n = len(sorted_values)
    at_least = n - bisect.bisect_left(sorted_values, x)
    return -math.log2((at_least + 1) / (n + 1))


def score(o: Order, pop: Population, own: list[float]) -> Scored:
    """The surprise of ``o`` given the population and the account's own amounts ``own``."""
    seg = pop.segments[o.segment]
    parts: list[tuple[str, float]] = [
        (name, -math.log2(seg.share(name))) for name in SIGNALS if o.signals.get(name)
    ]
    if len(own) >= OWN_MIN:
        amount = _tail_bits(sorted(own), o.amount)
        basis = "account"
    else:
        amount = _tail_bits(seg.amounts, o.amount)
        basis = o.segment
    parts.append(("amount", amount))
    parts.sort(key=lambda p: -p[1])
    if o.trusted:
        # The owner's card and device: only what no owner's order shows still counts.
        pattern = sum(b for name, b in parts if name in HARD)
    else:
        pattern = seg.pattern_bits(o.pattern)
    return Scored(pattern + amount, pattern, tuple(parts), basis)


def features(o: Order, own: list[float]) -> list[float]:
    """The order as numbers for a supervised model: the signals (0/1), log amount, the
    amount over the account's own median (1 without history), new account (0/1)."""
    median = sorted(own)[len(own) // 2] if len(own) >= OWN_MIN else None
    return [
        *(1.0 if o.signals.get(s) else 0.0 for s in SIGNALS),
        math.log1p(max(o.amount, 0.0)),
        (o.amount / median) if median else 1.0,
        1.0 if o.segment == "new" else 0.0,
    ]
