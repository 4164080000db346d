"""Attacks on log-ins and accounts: brute force, credential stuffing, SSH brute force,
account takeover and fake account creation (loud and low-and-slow forms of each)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from shopwatch.sim import data
from shopwatch.sim.draw import (
    account_event,
    bot_device,
    dc_ips,
    hex_id,
    leaked_email,
    new_card,
    order,
    paced,
    residential_ips,
    signup,
    spread,
    throwaway_email,
)
from shopwatch.sim.emit import Out
from shopwatch.sim.ranges import RANGES, draw
from shopwatch.sim.traffic import SITE, Traffic, Visitor, emit_login, ssh_failure
from shopwatch.sim.world import FX, Shop, pick_browser

if TYPE_CHECKING:
    from shopwatch.sim.campaigns import Campaign, Generator

__all__ = ["GENERATORS"]

_TOOL_UAS: Final = (
    "python-requests/2.31.0",
    "Mozilla/4.0 (Hydra)",
    "Go-http-client/1.1",
    *data.STALE_BROWSER_UAS[:4],
)
_UAS: Final = np.array(list(data.STALE_BROWSER_UAS) + [u for u, _, _ in data.BROWSER_UAS])
_CURRENT_UAS: Final = np.array([u for u, _, _ in data.BROWSER_UAS])


def _visible(times: np.ndarray, c: Campaign) -> np.ndarray:
    return times[times < c.end]


def _brute_force(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    idx = rng.choice(len(shop.customers), int(p["targets"]), replace=False)
    targets = [shop.customers[int(i)] for i in idx]
    if c.low:
        ips = residential_ips(rng, shop, int(p["ips"]))
        ua = str(rng.choice(_CURRENT_UAS))
        natural = c.last(p["duration_h"] * 3600)
        n = int((natural - c.start) / (0.7 * p["interval_s"])) + 2  # enough waits to reach the end
        r = RANGES[(c.kind, c.variant)]["interval_s"]
        times = paced(rng, c.start, p["interval_s"], r.lo, r.hi, n)
        times = times[times < natural]
    else:
        ips = dc_ips(rng, shop, 1)
        ua = str(rng.choice(_TOOL_UAS))
        natural = c.last(p["duration_min"] * 60)
        times = spread(rng, c.start, natural, int(p["rate_per_s"] * (natural - c.start)))
    total = len(times)
    # The attacker stops once a password works (if one does, somewhere in the list).
    hit = int(rng.integers(0, total)) if total and rng.random() < p["success_p"] else -1
    if hit >= 0:
        times = times[: hit + 1]
    times = _visible(times, c)
    device = bot_device(rng)
    session = hex_id(rng)
    for k, ts in enumerate(times):
        target = targets[k % len(targets)]
        ok = k == hit
        v = Visitor(ips[k % len(ips)], ua, device, False, None, "HTTP/1.1")
        emit_login(
            out,
            float(ts),
            v,
            target.email,
            target.user_id,
            ok,
            None if ok else "bad_password",
            session,
            rt=float(rng.uniform(0.12, 0.4)),
        )
        if ok:
            out.web(
                float(ts) + 1.0,
                v.ip,
                "GET",
                "/account",
                200,
                14200,
                SITE + "/login",
                ua,
                0.08,
                "HTTP/1.1",
            )
    used = sorted({ips[k % len(ips)] for k in range(len(times))})
    c.add("source.ip", used)
    c.add("user.name", [t.email for t in targets])
    c.add("shop.device.id", device)
    c.add("shop.session.id", session)
    rate = p["rate_per_s"] if not c.low else 1.0 / p["interval_s"]
    c.params.update(
        {
            "attempts": total,
            "visible_attempts": len(times),
            "targets": len(targets),
            "rate_per_s": round(rate, 4),
            "succeeded": hit >= 0 and hit < len(times),
            "user_agent": ua,
        }
    )


def _credential_stuffing(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    n_ips = int(p["ips"])
    if c.low:
        natural = c.last(p["duration_h"] * 3600)
        ips = residential_ips(rng, shop, n_ips)
        r = RANGES[(c.kind, c.variant)]["attempts_per_ip"]
        per_ip = rng.integers(int(r.lo), int(r.hi) + 1, n_ips)  # drawn for each address
        c.params["attempts_per_ip"] = round(float(per_ip.mean()), 3)
        first = rng.uniform(c.start, natural, n_ips)
        owner = np.repeat(np.arange(n_ips), per_ip)
        # A proxy exit is used for a few tries in a row, seconds to minutes apart.
        offset = np.zeros(owner.size)
        repeat = np.flatnonzero(owner[1:] == owner[:-1]) + 1
        offset[repeat] = 30.0 * np.exp(rng.normal(0.0, 0.8, repeat.size))
        starts = np.repeat(first, per_ip)
        group_base = np.repeat(np.cumsum(per_ip) - per_ip, per_ip)
        csum = np.cumsum(offset)
        times = starts + csum - csum[group_base]
        uas = _CURRENT_UAS
    else:
        natural = c.last(p["duration_min"] * 60)
        ips = dc_ips(rng, shop, n_ips, providers=int(rng.integers(1, 4)))
        n = int(p["attempts"])
        owner = rng.integers(0, n_ips, n)
        times = rng.uniform(c.start, natural, n)
        uas = _UAS
    order_ = np.argsort(times, kind="stable")
    times, owner = times[order_], owner[order_]
    total = int(times.size)
    keep = times < c.end
    times, owner = times[keep], owner[keep]
    n = int(times.size)
    known = rng.random(n) < p["known_share"]
    ok = known & (rng.random(n) < p["success_rate"] / p["known_share"])
    victims = rng.integers(0, len(shop.customers), n)
    ua_idx = rng.integers(0, len(uas), n)
    devices = [bot_device(rng) for _ in range(n_ips)] if c.low else []
    tried: list[str] = []
    compromised: list[str] = []
    for k in range(n):
        ts = float(times[k])
        ip = ips[int(owner[k])]
        ua = str(uas[int(ua_idx[k])])
        v = Visitor(
            ip, ua, devices[int(owner[k])] if c.low else bot_device(rng), False, None, "HTTP/1.1"
        )
        if known[k]:
            cust = shop.customers[int(victims[k])]
            tried.append(cust.email)
            good = bool(ok[k])
            emit_login(
                out,
                ts,
                v,
                cust.email,
                cust.user_id,
                good,
                None if good else "bad_password",
                hex_id(rng),
                rt=float(rng.uniform(0.1, 0.3)),
            )
            if good:
                compromised.append(cust.email)
                out.web(
                    ts + 0.6,
                    ip,
                    "GET",
                    "/account",
                    200,
                    14200,
                    SITE + "/login",
                    ua,
                    0.07,
                    "HTTP/1.1",
                )
                out.web(
                    ts + 1.1,
                    ip,
                    "GET",
                    "/account/payment-methods",
                    200,
                    9800,
                    SITE + "/account",
                    ua,
                    0.06,
                    "HTTP/1.1",
                )
        else:
            email = leaked_email(rng)
            if email in shop.by_email:
                email = "x" + email
            emit_login(
                out,
                ts,
                v,
                email,
                None,
                False,
                "unknown_user",
                hex_id(rng),
                rt=float(rng.uniform(0.08, 0.2)),
            )
    c.add("source.ip", sorted({ips[int(i)] for i in owner}))
    c.add("user.name", tried)
    if c.low:
        c.add("shop.device.id", sorted({devices[int(i)] for i in owner}))
    c.params.update(
        {
            "ips": n_ips,
            "attempts": total,
            "visible_attempts": n,
            "known_share": round(p["known_share"], 4),
            "success_rate": round(p["success_rate"], 5),
            "compromised": len(compromised),
            "compromised_accounts": sorted(set(compromised)),
        }
    )


_SSH_P: Final = np.array(
    [
        12.0 if u == "root" else (4.0 if u in ("admin", "test", "user", "ubuntu") else 1.0)
        for u in data.SSH_USERNAMES
    ]
)


def _ssh_brute_force(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    host = str(rng.choice(["bastion-1", "web-1", "web-2"]))
    if c.low:
        natural = c.last(p["duration_h"] * 3600)
        n_ips = int(p["ips"])
        n_dc = int(rng.binomial(n_ips, 0.3))  # botnets are mostly hacked home routers and cameras
        ips = (
            dc_ips(rng, shop, n_dc, providers=3) + residential_ips(rng, shop, n_ips - n_dc)
            if n_dc
            else residential_ips(rng, shop, n_ips)
        )
        horizon = min(natural, c.end)
        chunks_t, chunks_ip = [], []
        r = RANGES[(c.kind, c.variant)]["interval_s"]
        for j in range(n_ips):
            # each bot keeps its own pace, near the herder's setting and inside the range
            pace = min(max(p["interval_s"] * float(rng.uniform(0.8, 1.25)), r.lo), r.hi)
            first = c.start + float(rng.uniform(0, pace))
            m = int((horizon - first) / (0.7 * pace)) + 2
            t = np.concatenate(([first], paced(rng, first, pace, r.lo, r.hi, m - 1)))
            t = t[t < horizon]
            chunks_t.append(t)
            chunks_ip.append(np.full(t.size, j))
        times = np.concatenate(chunks_t) if chunks_t else np.zeros(0)
        owner = np.concatenate(chunks_ip) if chunks_ip else np.zeros(0, dtype=int)
        order_ = np.argsort(times, kind="stable")
        times, owner = times[order_], owner[order_]
        total = int(n_ips * (natural - c.start) / p["interval_s"])
        rate = n_ips / p["interval_s"]
    else:
        natural = c.last(p["duration_min"] * 60)
        ips = dc_ips(rng, shop, 1)
        times = _visible(
            spread(rng, c.start, natural, int(p["rate_per_s"] * (natural - c.start))), c
        )
        owner = np.zeros(times.size, dtype=int)
        total = int(p["rate_per_s"] * (natural - c.start))
        rate = p["rate_per_s"]
    users = rng.choice(len(data.SSH_USERNAMES), size=times.size, p=_SSH_P / _SSH_P.sum())
    for ts, j, u in zip(times, owner, users, strict=True):
        ssh_failure(out, rng, float(ts), host, ips[int(j)], data.SSH_USERNAMES[int(u)])
    c.add("source.ip", sorted({ips[int(j)] for j in owner}))
    c.add("host.name", host)
    c.add("user.name", sorted({data.SSH_USERNAMES[int(u)] for u in users}))
    c.params.update(
        {
            "attempts": total,
            "visible_attempts": int(times.size),
            "ips": len(ips),
            "rate_per_s": round(rate, 4),
        }
    )


_TAKEOVER_CHAIN: Final = (
    "email_change",
    "password_change",
    "mfa_disable",
    "address_add",
    "payment_method_add",
)
_DROP_COUNTRIES: Final = ("NG", "RO", "US", "GB", "NL", "UA", "BR")


def _account_takeover(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    n = int(p["victims"])
    victims = [shop.customers[int(i)] for i in rng.choice(len(shop.customers), n, replace=False)]
    gap = p["step_gap_s"]
    t = c.start
    last = c.start
    cards: list[str] = []
    for victim in victims:
        if c.low:  # a residential proxy in the victim's own country, a fresh browser profile
            ip = residential_ips(rng, shop, 1, victim.country)[0]
            ua, _ = pick_browser(rng, mobile=False)
            failures = 0 if rng.random() < 0.7 else int(rng.integers(1, 3))
            ship_country = victim.country
        else:
            ip = dc_ips(rng, shop, 1)[0]
            ua = str(rng.choice(_UAS))
            failures = int(rng.integers(0, int(p["failed_tries"]) + 1))
            ship_country = str(rng.choice(_DROP_COUNTRIES))
        v = Visitor(ip, ua, bot_device(rng), False, None, "HTTP/1.1")
        sid = hex_id(rng)
        if t < c.end:
            c.add("source.ip", ip)
            c.add("user.name", victim.email)
            c.add("shop.device.id", v.device_id)
            c.add("shop.session.id", sid)
        for _ in range(failures):
            if t < c.end:
                emit_login(out, t, v, victim.email, victim.user_id, False, "bad_password", sid)
            t += float(rng.uniform(2.0, 12.0)) * (20.0 if c.low else 1.0)
        if t < c.end:
            emit_login(out, t, v, victim.email, victim.user_id, True, None, sid)
            out.web(
                t + 1.0, ip, "GET", "/account", 200, 14200, SITE + "/login", ua, 0.08, "HTTP/1.1"
            )
        for action in _TAKEOVER_CHAIN:
            t += gap * float(np.exp(rng.normal(0.0, 0.5)))
            if t < c.end:
                account_event(out, t, v, sid, victim.email, victim.user_id, action)
        t += gap * float(np.exp(rng.normal(0.0, 0.5)))
        card = new_card(rng, ship_country)
        if t < c.end:
            cards.append(card["fingerprint"])
            price = float(np.exp(rng.uniform(np.log(80), np.log(900))))
            order(
                out,
                rng,
                tr,
                t,
                v,
                sid,
                victim.email,
                victim.user_id,
                amount=round(price * FX[victim.currency], 2),
                currency=victim.currency,
                card=card,
                address_hash=hex_id(rng, 12),
                ship_country=ship_country,
                items=int(rng.integers(1, 4)),
            )
        last = t + 120.0
        t += gap * float(np.exp(rng.normal(0.0, 0.5)))
    c.last(last - c.start)
    c.add("shop.payment.card.fingerprint", cards)
    c.params.update(
        {"victims": n, "step_gap_s": round(gap, 1), "failed_tries": int(p.get("failed_tries", 0))}
    )


def _fake_account_creation(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    created: list[str] = []
    requests = 0
    if c.low:
        natural = c.last(p["duration_h"] * 3600)
        n_ips = int(p["ips"])
        n_dc = int(rng.binomial(n_ips, 0.5))
        ips = dc_ips(rng, shop, n_dc, providers=6) + residential_ips(rng, shop, n_ips - n_dc)
        starts = np.sort(rng.uniform(c.start, natural, n_ips))
        r = RANGES[(c.kind, c.variant)]["requests_per_ip"]
        per_ip = rng.integers(int(r.lo), int(r.hi) + 1, n_ips)  # drawn for each address
        c.params["requests_per_ip"] = round(float(per_ip.mean()), 3)
    else:
        n_ips = int(p["ips"])
        ips = dc_ips(rng, shop, n_ips)
        signups = int(p["signups"])
        natural = c.last(signups / p["rate_per_s"])
        starts = spread(rng, c.start, natural, signups)
        per_ip = np.full(signups, 4)
    used: set[str] = set()
    for j, t0 in enumerate(starts):
        t = float(t0)
        if t >= c.end:
            break
        ip = ips[j % len(ips)] if not c.low else ips[j]
        ua = str(rng.choice(data.STALE_BROWSER_UAS))
        v = Visitor(ip, ua, bot_device(rng), False, None, "HTTP/1.1")
        sid = hex_id(rng)
        email = throwaway_email(rng)
        uid = f"u{int(rng.integers(900_000, 999_999))}"
        steps = int(per_ip[j])
        used.add(ip)
        c.add("shop.device.id", v.device_id)
        # The shape of the real sign-up bot log: form, post, then the log-in form and a try.
        if steps == 1:
            out.web(t, ip, "GET", "/signup", 200, 11114, SITE + "/", ua, 0.04, "HTTP/1.0")
            requests += 1
        else:
            t = signup(
                out, t, v, sid, email, uid, gap=float(rng.uniform(0.6, 2.5)), proto="HTTP/1.0"
            )
            requests += 2
            created.append(email)
        for k in range(2, steps):
            t += float(rng.uniform(0.8, 3.0))
            if k % 2 == 0:
                out.web(t, ip, "GET", "/login", 200, 9120, SITE + "/signup", ua, 0.03, "HTTP/1.0")
            else:
                good = rng.random() < 0.5
                emit_login(
                    out,
                    t,
                    v,
                    email,
                    uid if good else None,
                    good,
                    None if good else "unknown_user",
                    sid,
                )
            requests += 1
    c.add("source.ip", sorted(used))
    c.add("user.name", created)
    c.params.update({"ips": len(ips), "signups": len(created), "requests": requests})


GENERATORS: Final[dict[str, Generator]] = {
    "brute_force": _brute_force,
    "credential_stuffing": _credential_stuffing,
    "ssh_brute_force": _ssh_brute_force,
    "account_takeover": _account_takeover,
    "fake_account_creation": _fake_account_creation,
}
