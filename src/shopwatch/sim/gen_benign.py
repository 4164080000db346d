"""Benign look-alikes: traffic that resembles an attack and is not one.

A flash sale, an office behind one NAT address, verified search crawlers, a customer who
forgot a password, a staff member's bigger-than-usual export, a customer retrying a declined
card, a mobile carrier's shared address, a customer who moved house, and customers tending
their accounts (a new password or e-mail address, a new card). Their sizes come
from the same kind of ranges as the attacks' (:mod:`shopwatch.sim.ranges`), never from a
detector's threshold.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final

import numpy as np

from shopwatch.sim import data
from shopwatch.sim.draw import (
    account_event,
    card_fields,
    hex_id,
    new_card,
    order,
    residential_ips,
    spread,
)
from shopwatch.sim.emit import Out
from shopwatch.sim.gen_data import local_hour
from shopwatch.sim.ranges import draw
from shopwatch.sim.traffic import SITE, Traffic, Visitor, _lognormal, _sid, emit_login
from shopwatch.sim.world import FX, IpPool, Shop, pick_browser

if TYPE_CHECKING:
    from shopwatch.sim.campaigns import Campaign, Generator

__all__ = ["GENERATORS"]


def _base_rate(shop: Shop) -> float:
    return 10.0 * len(shop.customers) / 5000


def _flash_sale(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    mult = p["multiplier"]
    promo = str(rng.choice(["FLASH30", "MIDSUMMER30", "WEEKEND25", "NORDIC20"]))
    natural = c.last(p["duration_min"] * 60)
    sessions = 0
    t = c.start
    base = _base_rate(shop)
    while t < min(natural, c.end) - 60:
        n = int(rng.poisson(base * shop.rate_at(t) * (mult - 1.0)))
        for ts in np.sort(rng.uniform(t, t + 60, n)):
            cust = shop.pick_customer(rng, float(ts)) if rng.random() < 0.85 else None
            v = tr.visitor_for(rng, cust) if cust else tr.anonymous(rng)
            tr.session(out, rng, float(ts), v, sale=True, promo=promo)
            sessions += 1
        t += 60
    c.add("shop.promo.code", promo)
    c.params.update({"multiplier": round(mult, 2), "extra_sessions": sessions})


def _corporate_nat(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    hour = (c.start / 3600) % 24
    sizes = {k: sum(1 for cu in shop.customers if cu.country == k) for k in data.COUNTRIES}
    offices = [
        k
        for k in ("DE", "GB", "FR", "NL", "US", "AU", "PL", "SE", "IT", "ES")
        if 8 <= (hour + data.COUNTRIES[k][1]) % 24 < 17 and sizes[k] >= 40
    ]
    country = str(rng.choice(offices)) if offices else max(sizes, key=lambda k: sizes[k])
    ip = shop.home_ip(rng, country)
    locals_ = [cu for cu in shop.customers if cu.country == country]
    # Staff who also shop here are a share of the office; the shop has only so many locals.
    n_emp = min(int(p["employees"]), len(locals_) // 2)
    employees = [locals_[int(i)] for i in rng.choice(len(locals_), n_emp, replace=False)]
    pc_ua = str(rng.choice([u for u, _, m in data.BROWSER_UAS if not m and "Windows" in u][:4]))
    natural = c.last(p["duration_h"] * 3600)
    visits_per_hour = p["visits_per_hour"]
    sessions = 0
    t = c.start
    while t < min(natural, c.end):
        local = (t / 3600 + data.COUNTRIES[country][1]) % 24
        lunch = 1.8 if 12 <= local < 13.5 else 1.0
        working = 1.0 if 8 <= local < 18 else 0.05
        n = int(rng.poisson(n_emp * visits_per_hour / 60 * lunch * working))
        for ts in np.sort(rng.uniform(t, t + 60, n)):
            emp = employees[int(rng.integers(0, n_emp))]
            pc = hashlib.blake2b(f"{c.id}:{emp.index}".encode(), digest_size=16).hexdigest()
            v = Visitor(ip, pc_ua, pc, False, emp)
            tr.session(out, rng, float(ts), v, wants_login=bool(rng.random() < 0.5))
            sessions += 1
        t += 60
    c.add("source.ip", ip)
    c.add("user.name", [e.email for e in employees])
    c.params.update(
        {
            "country": country,
            "employees": n_emp,
            "sessions": sessions,
            "visits_per_hour": round(visits_per_hour, 3),
        }
    )


def _search_crawler(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    bot = str(rng.choice(["googlebot", "bingbot"]))
    pool = IpPool(list(data.CRAWLER_RANGES[bot]))
    ips = sorted(set(pool.sample(rng, int(p["ips"]))))
    uas = data.CRAWLER_UAS[bot]
    rate = p["rate_per_s"]
    natural = c.last(p["duration_min"] * 60)
    stop = min(natural, c.end)
    n = int(rng.poisson(rate * max(stop - c.start - 2, 0)))
    times = spread(rng, c.start + 2, max(stop - 1, c.start + 2), n)
    out.web(c.start, ips[0], "GET", "/robots.txt", 200, 412, "-", uas[0], 0.001, "HTTP/1.1")
    out.web(c.start + 1, ips[0], "GET", "/sitemap.xml", 200, 18231, "-", uas[0], 0.004, "HTTP/1.1")
    not_found = 0
    for ts in times:
        ip = ips[int(rng.integers(0, len(ips)))]
        ua = uas[0] if rng.random() < 0.55 else uas[int(rng.integers(0, len(uas)))]
        r = rng.random()
        if "Image" in ua:
            pr = shop.pick_product(rng)
            path, status, size = (
                f"/media/products/{pr.id}/1.webp",
                200,
                int(rng.integers(38000, 190000)),
            )
        elif r < 0.02:
            path, status, size = f"/products/{rng.choice(shop.retired_products)}", 404, 8412
            not_found += 1
        elif r < 0.04:
            path, status, size = (
                f"/product/{shop.products[int(rng.integers(0, len(shop.products)))].id}",
                301,
                169,
            )
        elif r < 0.82:
            path, status, size = (
                f"/products/{shop.products[int(rng.integers(0, len(shop.products)))].id}",
                200,
                int(rng.integers(28000, 64000)),
            )
        else:
            path = f"/category/{rng.choice(data.CATEGORIES)}" + (
                f"?page={int(rng.integers(2, 6))}" if rng.random() < 0.3 else ""
            )
            status, size = 200, int(rng.integers(30000, 70000))
        out.web(
            float(ts),
            ip,
            "GET",
            path,
            status,
            size,
            "-",
            ua,
            _lognormal(rng, 0.07, 0.4),
            "HTTP/1.1",
        )
    c.add("source.ip", ips)
    c.add("user_agent.bot.name", bot)
    c.params.update(
        {"bot": bot, "requests": n + 2, "rate_per_s": round(rate, 3), "not_found": not_found}
    )


def _forgetful_customer(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    cust = shop.customers[int(rng.integers(0, len(shop.customers)))]
    v = tr.visitor_for(rng, cust, ip=cust.ips[0])
    sid = _sid(rng)
    t = c.start
    out.web(t, v.ip, "GET", "/login", 200, 9120, SITE + "/", v.ua, 0.03, v.proto)
    failures = int(p["failures"])
    for _ in range(failures):
        t += p["typing_gap_s"] * float(np.exp(rng.normal(0.0, 0.4)))
        emit_login(out, t, v, cust.email, cust.user_id, False, "bad_password", sid)
    t = tr.password_reset(out, rng, t + 20.0, v, sid)
    emit_login(out, t + 15.0, v, cust.email, cust.user_id, True, None, sid)
    c.last(t + 16.0 - c.start)
    c.add("source.ip", v.ip)
    c.add("user.name", cust.email)
    c.params.update({"failures": failures, "typing_gap_s": round(p["typing_gap_s"], 2)})


def _office_time(c: Campaign, t: float) -> float:
    """The first moment from ``t`` (within a day) in office hours, 09:00-17:00 office time."""
    probe = t
    while probe < t + 86400 and not 9 <= local_hour(probe) < 17:
        probe += 900
    return probe if probe < t + 86400 else t


def _office_bulk_export(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    staff = shop.staff[int(rng.integers(0, len(shop.staff)))]
    usual = int(p["usual_records"])
    records = int(usual * p["factor"])
    obj = str(rng.choice(["orders", "customers", "returns"]))
    t = _office_time(c, c.start + float(rng.uniform(0, 300)))
    for k in range(int(rng.integers(1, 4))):  # the usual exports first (a month-end report)
        out.ecs(
            t + 60.0 * k,
            _export(
                tr.staff_ip,
                staff.email,
                staff.user_id,
                staff.role,
                obj,
                int(usual * float(np.exp(rng.normal(0, 0.25)))),
            ),
        )
    out.ecs(t + 600.0, _export(tr.staff_ip, staff.email, staff.user_id, staff.role, obj, records))
    c.last(t + 660.0 - c.start)
    c.add("source.ip", tr.staff_ip)
    c.add("user.name", staff.email)
    c.params.update(
        {"usual_records": usual, "records": records, "factor": round(p["factor"], 2), "object": obj}
    )


def _export(ip: str, email: str, uid: str, role: str, obj: str, records: int) -> dict[str, object]:
    return {
        "event.dataset": "shop.data_access",
        "event.kind": "event",
        "event.category": "database",
        "event.action": "export",
        "event.outcome": "success",
        "source.ip": ip,
        "user.name": email,
        "user.id": uid,
        "user.roles": role,
        "shop.data.object": obj,
        "shop.data.records": records,
        "service.name": "backoffice",
        "host.name": "backoffice-1",
    }


_RETRY_CODES: Final = (
    "insufficient_funds",
    "incorrect_cvc",
    "do_not_honor",
    "card_velocity_exceeded",
)


def _declined_card_retry(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    natural = c.last(p["duration_min"] * 60)
    n = int(p["customers"])
    retries = int(p["retries"])
    for start in spread(rng, c.start, natural, n):
        t = float(start)
        if t >= c.end:
            break
        cust = shop.customers[int(rng.integers(0, len(shop.customers)))]
        v = tr.visitor_for(rng, cust)
        sid = _sid(rng)
        card = cust.cards[0]
        amount = round(float(np.exp(rng.uniform(np.log(20), np.log(400)))) * FX[cust.currency], 2)
        code = str(rng.choice(_RETRY_CODES))
        order_id = f"NH-{int(rng.integers(10_000_000, 99_999_999))}"
        base = {
            "source.ip": v.ip,
            "user.name": cust.email,
            "user.id": cust.user_id,
            "user_agent.original": v.ua,
            "shop.session.id": sid,
            "shop.device.id": v.device_id,
            "service.name": "storefront",
        }
        for _ in range(retries):
            out.web(
                t,
                v.ip,
                "POST",
                "/api/checkout/payment",
                402,
                298,
                SITE + "/checkout",
                v.ua,
                0.45,
                v.proto,
            )
            out.ecs(
                t,
                tr._payment(
                    base,
                    "authorize",
                    False,
                    code,
                    amount,
                    cust.currency,
                    card,
                    order_id,
                    cust.country,
                ),
            )
            t += 40.0 * float(np.exp(rng.normal(0.0, 0.6)))
        c.add("source.ip", v.ip)
        c.add("user.name", cust.email)
        c.add("shop.payment.card.fingerprint", card.fingerprint)
        if rng.random() < 0.6:  # switches to another card (adds one if there is none)
            other = cust.cards[1] if len(cust.cards) > 1 else None
            if other is None:
                account_event(out, t, v, sid, cust.email, cust.user_id, "payment_method_add")
                fields = {
                    "bin": card.bin[:1] + "12345",
                    "last4": f"{int(rng.integers(0, 10000)):04d}",
                    "fingerprint": hex_id(rng, 8),
                    "country": cust.country,
                }
            else:
                fields = {
                    "bin": other.bin,
                    "last4": other.last4,
                    "fingerprint": other.fingerprint,
                    "country": other.country,
                }
            c.add("shop.payment.card.fingerprint", fields["fingerprint"])
            order(
                out,
                rng,
                tr,
                t + 30.0,
                v,
                sid,
                cust.email,
                cust.user_id,
                amount=amount,
                currency=cust.currency,
                card=fields,
                address_hash=cust.address_hash,
                ship_country=cust.country,
            )
    c.params.update({"customers": n, "retries": retries})


def _mobile_cgnat(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    country = str(rng.choice(["DE", "GB", "FR", "US", "NL"]))
    ip = residential_ips(rng, shop, 1, country)[0]
    locals_ = [cu for cu in shop.customers if cu.country == country]
    n = min(int(p["customers"]), len(locals_))
    people = [locals_[int(i)] for i in rng.choice(len(locals_), n, replace=False)]
    natural = c.last(p["duration_h"] * 3600)
    sessions = 0
    for cust, start in zip(people, spread(rng, c.start, natural, n), strict=True):
        if start >= c.end:
            continue
        phone = next((d for d in cust.devices if d.is_mobile), None)
        if phone is None:
            ua, _ = pick_browser(rng, mobile=True)
            device = hex_id(rng)
        else:
            ua, device = phone.ua, phone.id
        tr.session(
            out,
            rng,
            float(start),
            Visitor(ip, ua, device, True, cust),
            wants_login=bool(rng.random() < 0.6),
        )
        sessions += 1
    c.add("source.ip", ip)
    c.add("user.name", [cu.email for cu in people])
    c.params.update({"country": country, "customers": n, "sessions": sessions})


def _moving_house(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    gap = p["step_gap_s"]
    t = c.start
    for _ in range(int(p["customers"])):
        cust = shop.customers[int(rng.integers(0, len(shop.customers)))]
        ip = residential_ips(rng, shop, 1, cust.country)[0]  # the new flat's line, same country
        ua, mobile = pick_browser(rng)
        v = Visitor(ip, ua, hex_id(rng), mobile, cust)  # and a new phone or laptop
        sid = _sid(rng)
        t0, _ = tr.login(out, rng, t, v, sid)
        t = t0 + gap * float(np.exp(rng.normal(0.0, 0.5)))
        account_event(out, t, v, sid, cust.email, cust.user_id, "address_change")
        t += gap * float(np.exp(rng.normal(0.0, 0.5)))
        if rng.random() < 0.4:
            account_event(out, t, v, sid, cust.email, cust.user_id, "phone_change")
        card = cust.cards[0]
        new_home = hex_id(rng, 12)
        order(
            out,
            rng,
            tr,
            t + 60.0,
            v,
            sid,
            cust.email,
            cust.user_id,
            amount=round(
                float(np.exp(rng.uniform(np.log(30), np.log(300)))) * FX[cust.currency], 2
            ),
            currency=cust.currency,
            card=card_fields(card),
            address_hash=new_home,
            ship_country=cust.country,
        )
        c.add("source.ip", ip)
        c.add("user.name", cust.email)
        c.add("shop.device.id", v.device_id)
        t += gap * float(np.exp(rng.normal(0.0, 0.5)))
    c.last(t - c.start)
    c.params.update({"customers": int(p["customers"]), "step_gap_s": round(gap, 1)})


def _gift_order(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    """Long-standing customers buy a present: a larger basket than usual, express, to a new
    address (a friend's, sometimes abroad), from their own device with their own card."""
    p = draw(rng, c.kind, c.variant, c.params)
    gap = p["step_gap_s"]
    t = c.start
    for _ in range(int(p["customers"])):
        cust = shop.customers[int(rng.integers(0, len(shop.customers)))]
        v = tr.visitor_for(rng, cust)
        sid = _sid(rng)
        t, _ = tr.login(out, rng, t, v, sid)
        t += gap * float(np.exp(rng.normal(0.0, 0.5)))
        usual = 25.0 * cust.basket * float(np.exp(rng.normal(0.0, 0.4)))
        abroad = rng.random() < p["abroad_share"]
        order(
            out,
            rng,
            tr,
            t,
            v,
            sid,
            cust.email,
            cust.user_id,
            amount=round(usual * p["basket_factor"] * FX[cust.currency], 2),
            currency=cust.currency,
            card=card_fields(cust.cards[0]),
            address_hash=hex_id(rng, 12),
            ship_country=shop.pick_country(rng) if abroad else cust.country,
            method="express",
        )
        c.add("source.ip", v.ip)
        c.add("user.name", cust.email)
        c.add("shop.device.id", v.device_id)
        t += gap * float(np.exp(rng.normal(0.0, 0.5)))
    c.last(t - c.start)
    c.params.update({"customers": int(p["customers"]), "step_gap_s": round(gap, 1)})


def _account_upkeep(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    """Customers on their own devices change a password or e-mail, add a card, and order."""
    p = draw(rng, c.kind, c.variant, c.params)
    gap = p["step_gap_s"]
    t = c.start
    for _ in range(int(p["customers"])):
        cust = shop.customers[int(rng.integers(0, len(shop.customers)))]
        v = tr.visitor_for(rng, cust)
        sid = _sid(rng)
        t, _ = tr.login(out, rng, t, v, sid)
        changes = [a for a in ("password_change", "email_change") if rng.random() < 0.5]
        for action in changes or ["password_change"]:
            t += gap * float(np.exp(rng.normal(0.0, 0.5)))
            account_event(out, t, v, sid, cust.email, cust.user_id, action)
        t += gap * float(np.exp(rng.normal(0.0, 0.5)))
        card = new_card(rng, cust.country)  # a renewed or second card
        account_event(out, t, v, sid, cust.email, cust.user_id, "payment_method_add")
        order(
            out,
            rng,
            tr,
            t + 60.0,
            v,
            sid,
            cust.email,
            cust.user_id,
            amount=round(
                float(np.exp(rng.uniform(np.log(20), np.log(400)))) * FX[cust.currency], 2
            ),
            currency=cust.currency,
            card=card,
            address_hash=cust.address_hash,
            ship_country=cust.country,
        )
        c.add("source.ip", v.ip)
        c.add("user.name", cust.email)
        c.add("shop.device.id", v.device_id)
        t += 120.0 + gap * float(np.exp(rng.normal(0.0, 0.5)))
    c.last(t - c.start)
    c.params.update({"customers": int(p["customers"]), "step_gap_s": round(gap, 1)})


GENERATORS: Final[dict[str, Generator]] = {
    "flash_sale": _flash_sale,
    "corporate_nat": _corporate_nat,
    "search_crawler": _search_crawler,
    "forgetful_customer": _forgetful_customer,
    "office_bulk_export": _office_bulk_export,
    "declined_card_retry": _declined_card_retry,
    "mobile_cgnat": _mobile_cgnat,
    "moving_house": _moving_house,
    "gift_order": _gift_order,
    "account_upkeep": _account_upkeep,
}
