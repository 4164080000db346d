"""Helpers the campaign generators share: addresses, devices, times, names, account events."""

from __future__ import annotations

import ipaddress
from typing import Any, Final

import numpy as np

from shopwatch.sim import data
from shopwatch.sim.emit import Out
from shopwatch.sim.traffic import SITE, Traffic, Visitor
from shopwatch.sim.world import Card, IpPool, Shop

__all__ = [
    "account_event",
    "bot_device",
    "card_fields",
    "dc_ips",
    "hex_id",
    "hosting_block",
    "leaked_email",
    "new_card",
    "order",
    "paced",
    "residential_ips",
    "signup",
    "spread",
    "throwaway_email",
    "visitor_fields",
]

_ALPHA: Final = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def visitor_fields(v: Visitor, email: str, user_id: str | None, sid: str) -> dict[str, Any]:
    """The fields every storefront event of one visitor's session carries."""
    return {
        "source.ip": v.ip,
        "user.name": email,
        "user.id": user_id,
        "user_agent.original": v.ua,
        "shop.session.id": sid,
        "shop.device.id": v.device_id,
        "service.name": "storefront",
    }


def hex_id(rng: np.random.Generator, nbytes: int = 16) -> str:
    """Random hex of ``nbytes`` bytes (session ids, device fingerprints, hashes)."""
    return bytes(rng.integers(0, 256, nbytes, dtype=np.uint8)).hex()


def bot_device(rng: np.random.Generator) -> str:
    """A fresh device fingerprint (a bot's, or an anti-detect browser's new profile)."""
    return hex_id(rng, 16)


def spread(rng: np.random.Generator, start: float, end: float, n: int) -> np.ndarray:
    """``n`` sorted times, uniform between ``start`` and ``end`` (a Poisson process, given n)."""
    return np.sort(rng.uniform(start, end, size=n))


def paced(
    rng: np.random.Generator, start: float, pace: float, lo: float, hi: float, n: int
) -> np.ndarray:
    """``n`` times from ``start``, each gap uniform within 30% of ``pace`` and inside [lo, hi].

    The way a tool's randomized delay works: the operator sets a pace from the documented
    range and every wait varies around it, never outside the range.
    """
    a, b = max(lo, 0.7 * pace), min(hi, 1.3 * pace)
    return start + np.cumsum(rng.uniform(a, b, n))


def dc_ips(rng: np.random.Generator, shop: Shop, n: int, providers: int = 2) -> list[str]:
    """``n`` distinct hosting addresses from one or a few providers (a rented proxy list)."""
    cidrs = list(shop.datacenter.cidrs)
    chosen = list(rng.choice(cidrs, size=min(providers, len(cidrs)), replace=False))
    pool = IpPool([str(c) for c in chosen])
    got: dict[str, None] = {}
    while len(got) < n:
        for ip in pool.sample(rng, n - len(got)):
            got[ip] = None
    return list(got)


def hosting_block(rng: np.random.Generator, shop: Shop, n: int) -> tuple[list[str], str]:
    """``n`` distinct addresses in one /24 (if it fits) or one hosting range; and that range."""
    cidr = str(rng.choice(list(shop.datacenter.cidrs)))
    net = ipaddress.IPv4Network(cidr)
    if n <= 200 and rng.random() < 0.5:
        block = int(rng.integers(0, max(net.num_addresses // 256, 1)))
        net = ipaddress.IPv4Network((int(net.network_address) + 256 * block, 24))
    hosts = rng.choice(np.arange(1, net.num_addresses - 1), size=n, replace=False)
    base = int(net.network_address)
    return [str(ipaddress.IPv4Address(base + int(h))) for h in hosts], str(net)


def residential_ips(
    rng: np.random.Generator, shop: Shop, n: int, country: str | None = None
) -> list[str]:
    """``n`` residential addresses: in ``country``, or spread evenly over every country."""
    if country is not None:
        return shop.residential[country].sample(rng, n)
    countries = list(shop.residential)
    which = rng.integers(0, len(countries), n)
    out: list[str] = [""] * n
    for k, cc in enumerate(countries):
        idx = np.flatnonzero(which == k)
        if idx.size:
            for i, ip in zip(idx, shop.residential[cc].sample(rng, int(idx.size)), strict=True):
                out[int(i)] = ip
    return out


def throwaway_email(
    rng: np.random.Generator,
    domains: tuple[str, ...] = ("gmail.com", "outlook.com", "proton.me", "mail.ru"),
) -> str:
    """A fresh address of the kind bots sign up with."""
    name = "".join(rng.choice(_ALPHA, int(rng.integers(6, 11))))
    return f"{name}{int(rng.integers(10, 9999))}@{domains[int(rng.integers(0, len(domains)))]}"


def leaked_email(rng: np.random.Generator) -> str:
    """An address from a leaked combo list that is not one of the shop's customers."""
    first = data.FIRST_NAMES["en"] + data.FIRST_NAMES["de"] + data.FIRST_NAMES["fr"]
    last = data.LAST_NAMES["en"] + data.LAST_NAMES["de"] + data.LAST_NAMES["fr"]
    f = first[int(rng.integers(0, len(first)))]
    la = last[int(rng.integers(0, len(last)))].replace("-", "")
    sep = ("", ".", "_")[int(rng.integers(0, 3))]
    dom = data.LEAKED_EMAIL_DOMAINS[int(rng.integers(0, len(data.LEAKED_EMAIL_DOMAINS)))]
    return f"{f}{sep}{la}{int(rng.integers(1, 9999))}@{dom}"


def account_event(
    out: Out,
    t: float,
    v: Visitor,
    sid: str,
    email: str,
    user_id: str | None,
    action: str,
    rt: float = 0.09,
) -> None:
    """A change to an account: the form post in the access log and its ``shop.account`` event."""
    out.web(
        t,
        v.ip,
        "POST",
        f"/account/{action.replace('_', '-')}",
        302,
        0,
        SITE + "/account",
        v.ua,
        rt,
        v.proto,
    )
    out.ecs(
        t,
        {
            "event.dataset": "shop.account",
            "event.kind": "event",
            "event.category": "iam",
            "event.action": action,
            "event.outcome": "success",
            **visitor_fields(v, email, user_id, sid),
        },
    )


def signup(
    out: Out,
    t: float,
    v: Visitor,
    sid: str,
    email: str,
    user_id: str,
    gap: float = 1.4,
    proto: str = "HTTP/1.1",
) -> float:
    """The sign-up form fetched and posted, and the ``shop.auth`` signup; returns the post's time."""
    out.web(t, v.ip, "GET", "/signup", 200, 11114, SITE + "/", v.ua, 0.04, proto)
    t += gap
    out.web(t, v.ip, "POST", "/signup", 302, 0, SITE + "/signup", v.ua, 0.21, v.proto)
    out.ecs(
        t,
        {
            "event.dataset": "shop.auth",
            "event.kind": "event",
            "event.category": "authentication",
            "event.action": "signup",
            "event.outcome": "success",
            **visitor_fields(v, email, user_id, sid),
        },
    )
    return t


def order(
    out: Out,
    rng: np.random.Generator,
    tr: Traffic,
    t: float,
    v: Visitor,
    sid: str,
    email: str,
    user_id: str | None,
    *,
    amount: float,
    currency: str,
    card: dict[str, str],
    address_hash: str,
    ship_country: str,
    promo: str | None = None,
    items: int = 1,
    method: str = "standard",
) -> str:
    """Checkout, a successful card authorization and the order; returns the order id."""
    order_id = f"NH-{int(rng.integers(10_000_000, 99_999_999))}"
    base = visitor_fields(v, email, user_id, sid)
    out.web(t, v.ip, "GET", "/checkout", 200, 33100, SITE + "/cart", v.ua, 0.09, v.proto)
    out.ecs(
        t + 0.2,
        {
            **base,
            "event.dataset": "shop.order",
            "event.kind": "event",
            "event.action": "checkout",
            "event.outcome": "success",
            "shop.order.id": order_id,
            "shop.order.amount": amount,
            "shop.order.currency": currency,
            "shop.order.item_count": items,
            "shop.shipping.country": ship_country,
            "shop.shipping.method": method,
            "shop.promo.code": promo,
        },
    )
    t += float(rng.uniform(20, 90))
    out.web(
        t, v.ip, "POST", "/api/checkout/payment", 200, 356, SITE + "/checkout", v.ua, 0.45, v.proto
    )
    tr.vendor(
        out, rng, t, "stripe", "POST", "/v1/payment_intents", 200, float(rng.uniform(250, 600))
    )
    out.ecs(
        t,
        {
            **base,
            "event.dataset": "shop.payment",
            "event.kind": "event",
            "event.category": "payment",
            "event.action": "authorize",
            "event.outcome": "success",
            "shop.payment.amount": amount,
            "shop.payment.currency": currency,
            "shop.payment.method": "card",
            "shop.payment.card.bin": card["bin"],
            "shop.payment.card.last4": card["last4"],
            "shop.payment.card.fingerprint": card["fingerprint"],
            "shop.payment.card.country": card["country"],
            "shop.order.id": order_id,
            "shop.billing.country": card["country"],
        },
    )
    t += 0.8
    out.ecs(
        t,
        {
            **base,
            "event.dataset": "shop.order",
            "event.kind": "event",
            "event.action": "order_placed",
            "event.outcome": "success",
            "shop.order.id": order_id,
            "shop.order.amount": amount,
            "shop.order.currency": currency,
            "shop.order.item_count": items,
            "shop.shipping.country": ship_country,
            "shop.billing.country": card["country"],
            "shop.shipping.address_hash": address_hash,
            "shop.shipping.method": method,
            "shop.promo.code": promo,
            "shop.payment.method": "card",
        },
    )
    out.web(
        t,
        v.ip,
        "GET",
        f"/checkout/confirmation/{order_id}",
        200,
        24100,
        SITE + "/checkout",
        v.ua,
        0.07,
        v.proto,
    )
    return order_id


def card_fields(card: Card) -> dict[str, str]:
    """A customer's own card as :func:`order` takes it."""
    return {
        "bin": card.bin,
        "last4": card.last4,
        "fingerprint": card.fingerprint,
        "country": card.country,
    }


def new_card(rng: np.random.Generator, country: str) -> dict[str, str]:
    """A card the shop has not seen: bin, last four, fingerprint, issuing country."""
    bin_ = ("4" if rng.random() < 0.6 else "5") + "".join(str(d) for d in rng.integers(0, 10, 5))
    return {
        "bin": bin_,
        "last4": f"{int(rng.integers(0, 10000)):04d}",
        "fingerprint": hex_id(rng, 8),
        "country": country,
    }
