"""Fraud against the checkout: card testing, payment fraud with stolen cards, promotion
abuse and inventory hoarding (loud and low-and-slow forms of each)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from shopwatch.sim import data
from shopwatch.sim.draw import (
    bot_device,
    dc_ips,
    hex_id,
    new_card,
    order,
    residential_ips,
    signup,
    spread,
    throwaway_email,
)
from shopwatch.sim.emit import Out
from shopwatch.sim.ranges import RANGES, draw
from shopwatch.sim.traffic import SITE, Traffic, Visitor, _lognormal
from shopwatch.sim.world import Shop, pick_browser

if TYPE_CHECKING:
    from shopwatch.sim.campaigns import Campaign, Generator

__all__ = ["GENERATORS"]

_BINS: Final = ("414720", "426684", "438857", "451014", "474426", "517805", "542418", "552433")
_CARD_COUNTRIES: Final = ("US", "US", "GB", "BR", "CA", "FR", "MX")
_CODES: Final = [k for k, _ in data.DECLINES_CARD_TESTING]
_CODE_P: Final = np.array([w for _, w in data.DECLINES_CARD_TESTING]) / sum(
    w for _, w in data.DECLINES_CARD_TESTING
)


def _card_testing(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    n_cards = int(p["cards"])
    bins = [str(b) for b in rng.choice(_BINS, size=int(rng.integers(1, 4)), replace=False)]
    amount = float(rng.choice([0.5, 1.0, 1.0, 2.0, 2.99, 4.99, 5.0]))
    approve = p["approve_rate"]
    order_id = f"NH-{int(rng.integers(10_000_000, 99_999_999))}"
    if c.low:
        # Each session tests one to three cards, from a new residential proxy exit and a new
        # browser profile, sessions spread over hours.
        r = RANGES[(c.kind, c.variant)]["attempts_per_session"]
        per = []
        left = n_cards
        while left > 0:
            k = min(int(rng.integers(int(r.lo), int(r.hi) + 1)), left)
            per.append(k)
            left -= k
        natural = c.last(p["duration_h"] * 3600)
        starts = spread(rng, c.start, natural, len(per))
        sessions = []
        for s, k in zip(starts, per, strict=True):
            ua, _ = pick_browser(rng)
            sessions.append(
                (
                    float(s),
                    k,
                    residential_ips(rng, shop, 1, str(rng.choice(["US", "GB", "CA", "DE", "FR"])))[
                        0
                    ],
                    bot_device(rng),
                    hex_id(rng),
                    throwaway_email(rng),
                    ua,
                )
            )
        rate = n_cards / (natural - c.start)
        c.params["attempts_per_session"] = round(n_cards / len(per), 3)  # cards per session, mean
    else:
        ips = (
            dc_ips(rng, shop, int(p["ips"]))
            if rng.random() < 0.6
            else residential_ips(rng, shop, int(p["ips"]), "US")
        )
        devices = [bot_device(rng) for _ in range(int(rng.integers(1, 4)))]
        sids = [hex_id(rng) for _ in range(int(rng.integers(1, 4)))]
        emails = [throwaway_email(rng) for _ in range(int(rng.integers(1, 4)))]
        ua, _ = pick_browser(rng, mobile=False)
        natural = c.last(n_cards / p["cards_per_min"] * 60)
        starts = spread(rng, c.start, natural, n_cards)
        sessions = [
            (
                float(s),
                1,
                ips[k % len(ips)],
                devices[k % len(devices)],
                sids[k % len(sids)],
                emails[k % len(emails)],
                ua,
            )
            for k, s in enumerate(starts)
        ]
        rate = p["cards_per_min"] / 60
    attempts = 0
    for start, k, ip, dev, sid, email, ua in sessions:
        if start >= c.end:
            continue
        c.add("source.ip", ip)
        c.add("shop.device.id", dev)
        c.add("shop.session.id", sid)
        c.add("user.name", email)
        t = start
        for _ in range(k):
            fp = hex_id(rng, 8)
            c.add("shop.payment.card.fingerprint", fp)
            bin_ = bins[int(rng.integers(0, len(bins)))]
            country = str(rng.choice(_CARD_COUNTRIES))
            tries = 1 if rng.random() < 0.8 else 2
            for _t in range(tries):
                attempts += 1
                ok = bool(rng.random() < approve)
                code = None if ok else str(rng.choice(_CODES, p=_CODE_P))
                ms = _lognormal(rng, 380, 0.3)
                out.web(
                    t,
                    ip,
                    "POST",
                    "/api/checkout/payment",
                    200 if ok else 402,
                    356 if ok else 298,
                    SITE + "/checkout",
                    ua,
                    ms / 1000 + 0.04,
                    "HTTP/1.1",
                )
                tr.vendor(
                    out, rng, t, "stripe", "POST", "/v1/payment_intents", 200 if ok else 402, ms
                )
                out.ecs(
                    t,
                    {
                        "event.dataset": "shop.payment",
                        "event.kind": "event",
                        "event.category": "payment",
                        "event.action": "authorize",
                        "event.outcome": "success" if ok else "failure",
                        "event.reason": code,
                        "source.ip": ip,
                        "user.name": email,
                        "user_agent.original": ua,
                        "shop.session.id": sid,
                        "shop.device.id": dev,
                        "shop.payment.amount": amount,
                        "shop.payment.currency": "EUR",
                        "shop.payment.method": "card",
                        "shop.payment.card.bin": bin_,
                        "shop.payment.card.last4": f"{int(rng.integers(0, 10000)):04d}",
                        "shop.payment.card.fingerprint": fp,
                        "shop.payment.card.country": country,
                        "shop.payment.decline_code": code,
                        "shop.order.id": order_id,
                        "shop.billing.country": country,
                        "service.name": "storefront",
                    },
                )
                t += float(rng.uniform(3.0, 20.0)) if c.low else 4.0
                if ok:
                    break
    c.params.update(
        {
            "cards": n_cards,
            "attempts": attempts,
            "amount": amount,
            "approve_rate": round(approve, 3),
            "bins": bins,
            "sessions": len({s[4] for s in sessions}),
            "rate_per_s": round(rate, 5),
        }
    )


def _promo_abuse(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    n = int(p["accounts"])
    # A single-use code (a welcome or influencer code) that leaked and is redeemed again and again.
    code = f"WELCOME-{hex_id(rng, 3).upper()}"
    addresses = [hex_id(rng, 12) for _ in range(int(p["addresses"]))]
    if c.low:
        natural = c.last(p["duration_h"] * 3600)
        devices: list[str] = []
        ips = residential_ips(rng, shop, n)
    else:
        natural = c.last(p["duration_min"] * 60)
        devices = [bot_device(rng) for _ in range(int(p["devices"]))]
        ips = (
            dc_ips(rng, shop, int(rng.integers(1, 6)))
            if rng.random() < 0.5
            else residential_ips(rng, shop, int(rng.integers(3, 20)))
        )
    country = str(rng.choice(["DE", "AT", "NL", "FR"]))
    ua, _ = pick_browser(rng)
    starts = spread(rng, c.start, natural, n)
    redeemed = 0
    for j, start in enumerate(starts):
        t = float(start)
        if t >= c.end:
            break
        ip = ips[j % len(ips)]
        dev = devices[j % len(devices)] if devices else bot_device(rng)
        v = Visitor(ip, ua if not c.low else pick_browser(rng)[0], dev, False, None, "HTTP/2.0")
        sid = hex_id(rng)
        email = throwaway_email(rng, ("gmail.com", "gmx.de", "web.de", "outlook.com"))
        uid = f"u{int(rng.integers(900_000, 999_999))}"
        t = signup(out, t, v, sid, email, uid, gap=float(rng.uniform(8.0, 40.0)))
        product = shop.pick_product(rng)
        t += float(rng.uniform(20.0, 120.0))
        out.web(
            t,
            ip,
            "POST",
            "/api/cart/items",
            201,
            412,
            SITE + f"/products/{product.id}",
            v.ua,
            0.04,
            v.proto,
        )
        out.ecs(
            t,
            {
                "event.dataset": "shop.cart",
                "event.kind": "event",
                "event.action": "add_to_cart",
                "event.outcome": "success",
                "source.ip": ip,
                "user.name": email,
                "user.id": uid,
                "user_agent.original": v.ua,
                "shop.session.id": sid,
                "shop.device.id": dev,
                "shop.product.id": product.id,
                "shop.product.price": product.price,
                "shop.cart.quantity": 1,
                "service.name": "storefront",
            },
        )
        t += float(rng.uniform(30.0, 180.0))
        out.web(
            t, ip, "POST", "/api/checkout/promo", 200, 188, SITE + "/checkout", v.ua, 0.05, v.proto
        )
        address = addresses[int(rng.integers(0, len(addresses)))]
        order(
            out,
            rng,
            tr,
            t + 5.0,
            v,
            sid,
            email,
            uid,
            amount=round(product.price * 0.8, 2),
            currency="EUR",
            card=new_card(rng, country),
            address_hash=address,
            ship_country=country,
            promo=code,
        )
        redeemed += 1
        c.add("source.ip", ip)
        c.add("user.name", email)
        c.add("shop.device.id", dev)
        c.add("shop.session.id", sid)
    c.add("shop.promo.code", code)
    c.params.update(
        {
            "accounts": n,
            "redeemed": redeemed,
            "addresses": len(addresses),
            "devices": len(devices) or n,
            "promo": code,
        }
    )


def _inventory_hoarding(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    # One limited product (a best seller), held in many carts at the most the shop allows.
    product = shop.products[int(np.argmax(shop.product_p))]
    qty = int(p["max_quantity"])
    n = int(p["sessions"])
    ttl = p["reservation_min"] * 60
    if c.low:
        natural = c.last(p["duration_h"] * 3600)
        ips = residential_ips(rng, shop, n)
    else:
        natural = c.last(p["duration_min"] * 60)
        ips = dc_ips(rng, shop, int(p["ips"]))
    ua = str(rng.choice(data.STALE_BROWSER_UAS))
    adds = 0
    for j in range(n):
        ip = ips[j % len(ips)]
        dev = bot_device(rng)
        sid = hex_id(rng)
        t = float(rng.uniform(c.start, c.start + min(ttl, natural - c.start)))
        if t >= c.end:
            continue
        c.add("source.ip", ip)
        c.add("shop.device.id", dev)
        c.add("shop.session.id", sid)
        while t < min(natural, c.end):
            out.web(
                t,
                ip,
                "POST",
                "/api/cart/items",
                201,
                412,
                SITE + f"/products/{product.id}",
                ua,
                0.05,
                "HTTP/1.1",
            )
            out.ecs(
                t,
                {
                    "event.dataset": "shop.cart",
                    "event.kind": "event",
                    "event.action": "add_to_cart",
                    "event.outcome": "success",
                    "source.ip": ip,
                    "user_agent.original": ua,
                    "shop.session.id": sid,
                    "shop.device.id": dev,
                    "shop.product.id": product.id,
                    "shop.product.price": product.price,
                    "shop.cart.quantity": qty,
                    "service.name": "storefront",
                },
            )
            adds += 1
            # re-add just after the reservation lapses
            t += ttl + float(rng.uniform(1.0, 30.0))
    c.params.update(
        {
            "sessions": n,
            "adds": adds,
            "product": product.id,
            "max_quantity": qty,
            "reservation_min": round(p["reservation_min"], 2),
        }
    )


def _payment_fraud(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    """Stolen cards cashed out on fresh accounts: resellable goods shipped to drops.

    Loud: one to three accounts place several orders within the hour, each with another
    stolen card, mostly express, to one or two reshipping addresses. Low and slow: a
    dozen accounts at most, one order each over hours or days, from residential proxies in
    the shop's own country, often with cards issued there too ("fullz" bought to match).
    """
    p = draw(rng, c.kind, c.variant, c.params)
    n_accounts = int(p["accounts"])
    ship_country = str(rng.choice(["DE", "DE", "AT", "NL", "FR"]))
    drops = [hex_id(rng, 12) for _ in range(int(p["addresses"]))]
    if c.low:
        natural = c.last(p["duration_h"] * 3600)
        n_orders = n_accounts
    else:
        natural = c.last(p["duration_min"] * 60)
        n_orders = max(int(p["orders"]), n_accounts)
    n_cards = n_orders if c.low else int(p["cards"])

    def card_country() -> str:
        if rng.random() < p["foreign_card_share"]:
            return str(rng.choice(_CARD_COUNTRIES))
        return ship_country

    cards = [new_card(rng, card_country()) for _ in range(n_cards)]
    ips = residential_ips(rng, shop, max(n_accounts, 1), ship_country if c.low else None)
    accounts = []
    for j in range(n_accounts):
        ua, mobile = pick_browser(rng)
        accounts.append(
            (
                throwaway_email(rng, ("gmail.com", "gmx.de", "web.de", "outlook.com")),
                f"u{int(rng.integers(900_000, 999_999))}",
                Visitor(ips[j % len(ips)], ua, bot_device(rng), mobile, None, "HTTP/2.0"),
            )
        )
    starts = spread(rng, c.start, natural, n_orders)
    signed: set[int] = set()
    placed = 0
    for k, start in enumerate(starts):
        t = float(start)
        if t >= c.end:
            break
        j = k % n_accounts
        email, uid, v = accounts[j]
        sid = hex_id(rng)
        if j not in signed:
            t = signup(out, t, v, sid, email, uid, gap=float(rng.uniform(8.0, 40.0)))
            signed.add(j)
        t += float(rng.uniform(30.0, 300.0))
        items = int(rng.integers(1, 5 if not c.low else 3))
        amount = round(float(p["amount_eur"]) * float(np.exp(rng.normal(0.0, 0.3))), 2)
        card = cards[k % len(cards)]
        order(
            out,
            rng,
            tr,
            t,
            v,
            sid,
            email,
            uid,
            amount=amount,
            currency="EUR",
            card=card,
            address_hash=drops[int(rng.integers(0, len(drops)))],
            ship_country=ship_country,
            items=items,
            method="express" if rng.random() < p["express_share"] else "standard",
        )
        placed += 1
        c.add("source.ip", v.ip)
        c.add("user.name", email)
        c.add("shop.device.id", v.device_id)
        c.add("shop.session.id", sid)
        c.add("shop.payment.card.fingerprint", card["fingerprint"])
    c.params.update(
        {
            "accounts": n_accounts,
            "orders": placed,
            "cards": n_cards,
            "ship_country": ship_country,
            "foreign_cards": sum(card["country"] != ship_country for card in cards),
        }
    )


GENERATORS: Final[dict[str, Generator]] = {
    "card_testing": _card_testing,
    "payment_fraud": _payment_fraud,
    "promo_abuse": _promo_abuse,
    "inventory_hoarding": _inventory_hoarding,
}
