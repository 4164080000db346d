"""Attack campaigns and benign look-alikes, each with its ground truth.

A campaign is generated whole when its start is reached: every request, event and log line
it causes is queued in the sink at its own event time. Its size, pace and spread are drawn
from the campaign's own random stream (derived from the run's seed and the campaign's
index) over the ranges in :mod:`shopwatch.sim.ranges`, so a different seed gives different
campaigns of the same kinds. Nothing here knows what a detector looks for.

Every attack kind comes in two variants: ``loud`` (tool speed, few sources) and
``low_slow`` (spread over hours, many sources or long gaps). A campaign lasts as long as its
parameters say; a run (or a demo's schedule) that ends sooner truncates it, and the ground
truth's ``end`` is where the run cut it off (``params.duration_min`` is the natural length).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from shopwatch.sim.emit import Out, iso_ms
from shopwatch.sim.traffic import Traffic
from shopwatch.sim.world import Shop

__all__ = ["KINDS", "VARIANTS", "Campaign", "CampaignKind", "generate", "tr_base_rate"]

#: The two forms of every attack kind.
VARIANTS: Final = ("loud", "low_slow")


@dataclass(frozen=True, slots=True)
class CampaignKind:
    """What a kind of campaign is: attack or not, the category it is (or looks like)."""

    name: str
    benign: bool
    category: str  # rule.category a detector should raise (or, if benign, must not)
    looks_like: tuple[str, ...]
    variants: tuple[str, ...] = VARIANTS
    #: It writes no lines of its own but changes the shop's traffic (a slowdown).
    through_traffic: bool = False
    #: Its own random stream for its place in a schedule (kinds added after the first
    #: schedule have one, so that adding a kind moves no campaign of another kind).
    stream: int | None = None
    #: The shop's own metrics it moves (an alert about one of them while it runs is its
    #: symptom: not a detection, since it names no attacker, and not a false alert).
    symptoms: tuple[str, ...] = ()


_ONE: Final = ("loud",)  # benign look-alikes have one form
# What attacks do to the shop's own metrics: guessed passwords fail, probes and scanners
# draw errors, a flood or a fast crawl slows every page.
_LOGINS: Final = ("auth.login_failure_rate",)
_WEB_ERRORS: Final = ("http.client_error_rate", "http.error_rate")
_WEB_LOAD: Final = (*_WEB_ERRORS, "http.latency.p95_ms")

KINDS: Final[dict[str, CampaignKind]] = {
    k.name: k
    for k in (
        CampaignKind("brute_force", False, "brute_force", ("brute_force",), symptoms=_LOGINS),
        CampaignKind(
            "credential_stuffing",
            False,
            "credential_stuffing",
            ("credential_stuffing", "brute_force"),
            symptoms=_LOGINS,
        ),
        CampaignKind(
            "vuln_scanner", False, "scanner", ("scanner", "web_attack"), symptoms=_WEB_LOAD
        ),
        CampaignKind("sqli_probe", False, "web_attack", ("web_attack",), symptoms=_WEB_ERRORS),
        CampaignKind("xss_probe", False, "web_attack", ("web_attack",), symptoms=_WEB_ERRORS),
        CampaignKind("scraping", False, "scraping", ("scraping",), symptoms=_WEB_LOAD),
        CampaignKind(
            "card_testing",
            False,
            "card_testing",
            ("card_testing", "payment_fraud"),
            symptoms=("payments.decline_rate",),
        ),
        CampaignKind("ssh_brute_force", False, "brute_force", ("brute_force", "host")),
        CampaignKind(
            "account_takeover", False, "account_takeover", ("account_takeover", "payment_fraud")
        ),
        CampaignKind(
            "payment_fraud", False, "payment_fraud", ("payment_fraud", "account_takeover")
        ),
        CampaignKind("promo_abuse", False, "promo_abuse", ("promo_abuse",)),
        CampaignKind("inventory_hoarding", False, "inventory_hoarding", ("inventory_hoarding",)),
        CampaignKind("fake_account_creation", False, "promo_abuse", ("promo_abuse", "brute_force")),
        CampaignKind("staff_exfiltration", False, "data_exfiltration", ("data_exfiltration",)),
        CampaignKind("vendor_data_leak", False, "data_leak", ("data_leak", "vendor_risk")),
        CampaignKind("http_flood", False, "dos", ("dos", "anomaly"), symptoms=_WEB_LOAD),
        CampaignKind(
            "checkout_latency_shift",
            False,
            "anomaly",
            ("anomaly",),
            through_traffic=True,
            stream=1,
        ),
        CampaignKind(
            "vendor_anomaly",
            False,
            "vendor_risk",
            ("vendor_risk", "anomaly"),
            through_traffic=True,
            stream=3,
            # the payment provider's failed calls count in its latency samples
            symptoms=("gateway.latency.p95_ms", "gateway.slow_share"),
        ),
        CampaignKind("flash_sale", True, "anomaly", ("anomaly", "dos", "card_testing"), _ONE),
        CampaignKind(
            "corporate_nat",
            True,
            "credential_stuffing",
            ("credential_stuffing", "brute_force"),
            _ONE,
        ),
        CampaignKind("search_crawler", True, "scraping", ("scraping", "scanner"), _ONE),
        CampaignKind(
            "forgetful_customer", True, "brute_force", ("brute_force", "account_takeover"), _ONE
        ),
        CampaignKind("office_bulk_export", True, "data_exfiltration", ("data_exfiltration",), _ONE),
        CampaignKind(
            "declined_card_retry", True, "card_testing", ("card_testing", "payment_fraud"), _ONE
        ),
        CampaignKind(
            "mobile_cgnat",
            True,
            "credential_stuffing",
            ("credential_stuffing", "brute_force"),
            _ONE,
        ),
        CampaignKind("moving_house", True, "account_takeover", ("account_takeover",), _ONE),
        CampaignKind(
            "gift_order", True, "payment_fraud", ("payment_fraud", "account_takeover"), _ONE
        ),
        CampaignKind(
            "latency_blip", True, "anomaly", ("anomaly",), _ONE, through_traffic=True, stream=2
        ),
        CampaignKind(
            "vendor_month_end", True, "vendor_risk", ("vendor_risk", "anomaly"), _ONE, stream=4
        ),
        CampaignKind(
            "account_upkeep", True, "account_takeover", ("account_takeover", "payment_fraud"), _ONE
        ),
    )
}


@dataclass(slots=True)
class Campaign:
    """One campaign's ground truth: when, what, and the entities involved.

    ``end`` starts as the latest moment the run lets the campaign reach (its cut-off) and
    becomes ``min(cut-off, start + natural length)`` once the generator has drawn the length
    (:meth:`last`). Generators skip events at or after :attr:`end`.
    """

    id: str
    kind: str
    start: float
    end: float = float("inf")
    variant: str = "loud"
    entities: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def benign(self) -> bool:
        """True for look-alikes that no detector should flag."""
        return KINDS[self.kind].benign

    @property
    def low(self) -> bool:
        """True for the low-and-slow variant."""
        return self.variant == "low_slow"

    def last(self, seconds: float) -> float:
        """Set the natural length; returns the natural end (the run may cut ``end`` sooner)."""
        natural = self.start + seconds
        self.end = min(self.end, natural)
        self.params["duration_min"] = round(seconds / 60.0, 2)
        return natural

    def add(self, key: str, values: list[str] | str) -> None:
        """Name entities an alert about this campaign may point at."""
        self.entities.setdefault(key, []).extend([values] if isinstance(values, str) else values)

    def to_dict(self) -> dict[str, Any]:
        """The ground-truth record (JSON-ready)."""
        kind = KINDS[self.kind]
        return {
            "id": self.id,
            "kind": self.kind,
            "variant": None if kind.benign else self.variant,  # look-alikes have one form
            "benign": kind.benign,
            "start": iso_ms(self.start),
            "end": iso_ms(self.end),
            "rule.category": kind.category,
            "looks_like": list(kind.looks_like),
            "entities": {k: sorted(set(v)) for k, v in self.entities.items() if v},
            **({"symptoms": list(kind.symptoms)} if kind.symptoms and self.entities else {}),
            "params": self.params,
        }


Generator = Callable[[Out, np.random.Generator, Campaign, Shop, Traffic], None]


def tr_base_rate(shop: Shop) -> float:
    """Mean sessions per minute of the shop (all visitors) at average traffic."""
    return 10.0 * len(shop.customers) / 5000


def _generators() -> dict[str, Generator]:
    from shopwatch.sim import gen_auth, gen_benign, gen_data, gen_fraud, gen_ops, gen_web

    found: dict[str, Generator] = {}
    for module in (gen_auth, gen_web, gen_fraud, gen_data, gen_ops, gen_benign):
        found.update(module.GENERATORS)
    return found


_GENERATORS: dict[str, Generator] = {}


def generate(
    out: Out, rng: np.random.Generator, campaign: Campaign, shop: Shop, traffic: Traffic
) -> Campaign:
    """Queue every line of ``campaign`` and fill in its entities and parameters."""
    if not _GENERATORS:
        _GENERATORS.update(_generators())
    if campaign.variant not in KINDS[campaign.kind].variants:
        raise ValueError(f"{campaign.kind} has no variant {campaign.variant!r}")
    if out.sink.horizon is not None:
        campaign.end = min(campaign.end, out.sink.horizon)
    before = out.sink.pushed
    _GENERATORS[campaign.kind](out, rng, campaign, shop, traffic)
    ended = out.sink.horizon is not None and campaign.start >= out.sink.horizon
    if ended or (out.sink.pushed == before and not KINDS[campaign.kind].through_traffic):
        campaign.entities = {}  # the run ended before the campaign wrote (or changed) anything
    if campaign.end == float("inf"):
        campaign.end = campaign.start
    return campaign
