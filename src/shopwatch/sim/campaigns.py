"""Attack campaigns and benign look-alikes, each with its ground truth.

A campaign is generated whole when its start is reached: every request, event and log line
it causes is queued in the sink at its own event time. Intensity, timing, addresses and
targets are drawn from the campaign's own random stream (derived from the run's seed and
the campaign's index), so a different seed gives different campaigns of the same kinds.
Rates are the attackers' (or the crawlers', or the office's); nothing is tuned to a
detector's thresholds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from shopwatch.sim import data
from shopwatch.sim.emit import Out, iso_ms
from shopwatch.sim.traffic import (
    SITE,
    Traffic,
    Visitor,
    _lognormal,
    _sid,
    emit_api_form,
    emit_login,
    ssh_failure,
)
from shopwatch.sim.world import IpPool, Shop, pick_browser

__all__ = ["KINDS", "Campaign", "CampaignKind", "generate"]


@dataclass(frozen=True, slots=True)
class CampaignKind:
    """What a kind of campaign is: attack or not, the category it is (or looks like)."""

    name: str
    benign: bool
    category: str  # rule.category a detector should raise (or, if benign, must not)
    looks_like: tuple[str, ...]
    minutes: tuple[float, float]  # natural duration range


KINDS: Final[dict[str, CampaignKind]] = {
    k.name: k
    for k in (
        CampaignKind("brute_force", False, "brute_force", ("brute_force",), (5, 20)),
        CampaignKind("credential_stuffing", False, "credential_stuffing", ("credential_stuffing", "brute_force"), (8, 40)),
        CampaignKind("vuln_scanner", False, "scanner", ("scanner", "web_attack"), (3, 15)),
        CampaignKind("sqli_probe", False, "web_attack", ("web_attack",), (3, 12)),
        CampaignKind("xss_probe", False, "web_attack", ("web_attack",), (2, 10)),
        CampaignKind("scraping", False, "scraping", ("scraping",), (5, 30)),
        CampaignKind("card_testing", False, "card_testing", ("card_testing", "payment_fraud"), (10, 45)),
        CampaignKind("ssh_brute_force", False, "brute_force", ("brute_force", "host"), (5, 30)),
        CampaignKind("flash_sale", True, "anomaly", ("anomaly", "dos", "card_testing"), (20, 60)),
        CampaignKind("corporate_nat", True, "credential_stuffing", ("credential_stuffing", "brute_force"), (60, 480)),
        CampaignKind("search_crawler", True, "scraping", ("scraping", "scanner"), (20, 90)),
        CampaignKind("forgetful_customer", True, "brute_force", ("brute_force", "account_takeover"), (4, 12)),
    )
}


@dataclass(slots=True)
class Campaign:
    """One campaign's ground truth: when, what, and the entities involved."""

    id: str
    kind: str
    start: float
    end: float
    entities: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def benign(self) -> bool:
        """True for look-alikes that no detector should flag."""
        return KINDS[self.kind].benign

    def to_dict(self) -> dict[str, Any]:
        """The ground-truth record (JSON-ready)."""
        kind = KINDS[self.kind]
        return {
            "id": self.id,
            "kind": self.kind,
            "benign": kind.benign,
            "start": iso_ms(self.start),
            "end": iso_ms(self.end),
            "rule.category": kind.category,
            "looks_like": list(kind.looks_like),
            "entities": {k: sorted(set(v)) for k, v in self.entities.items()},
            "params": self.params,
        }


Generator = Callable[[Out, np.random.Generator, Campaign, Shop, Traffic], None]


def _poisson_times(rng: np.random.Generator, start: float, end: float, n: int) -> np.ndarray:
    """``n`` sorted event times between ``start`` and ``end`` (jittered, not a metronome)."""
    return np.sort(rng.uniform(start, end, size=n))


def _dc(rng: np.random.Generator, shop: Shop, n: int, providers: int = 2) -> list[str]:
    """``n`` hosting-provider addresses, from one or a few providers (as a rented proxy list)."""
    cidrs = list(shop.datacenter.cidrs)
    chosen = list(rng.choice(cidrs, size=min(providers, len(cidrs)), replace=False))
    pool = IpPool([str(c) for c in chosen])
    ips: list[str] = []
    while len(ips) < n:
        ip = pool.one(rng)
        if ip not in ips:
            ips.append(ip)
    return ips


def _bot_device(rng: np.random.Generator) -> str:
    return "".join(f"{x:02x}" for x in rng.integers(0, 256, 16))


# ------------------------------------------------------------------------------- attacks


def _brute_force(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    ip = _dc(rng, shop, 1)[0] if rng.random() < 0.6 else shop.home_ip(rng, shop.pick_country(rng))
    n_targets = int(rng.choice([1, 1, 1, 2, 3]))
    targets = [shop.customers[int(i)] for i in rng.choice(len(shop.customers), n_targets, replace=False)]
    minutes = (c.end - c.start) / 60
    n = int(np.clip(rng.uniform(3, 20) * minutes, 30, 300))
    ua = str(rng.choice(["python-requests/2.31.0", "Mozilla/4.0 (Hydra)", *data.STALE_BROWSER_UAS[:4]]))
    v = Visitor(ip, ua, _bot_device(rng), False, None, "HTTP/1.1")
    session = _sid(rng)
    times = _poisson_times(rng, c.start, c.end - 5, n)
    succeed = rng.random() < 0.35
    for k, ts in enumerate(times):
        target = targets[k % n_targets]
        last = k == n - 1
        emit_login(out, float(ts), v, target.email, target.user_id, succeed and last,
                   None if succeed and last else "bad_password", session, rt=float(rng.uniform(0.12, 0.4)))
    if succeed:
        t = float(times[-1]) + 1.0
        out.web(t, ip, "GET", "/account", 200, 14200, SITE + "/login", ua, 0.08, "HTTP/1.1")
    c.entities = {"source.ip": [ip], "user.name": [t.email for t in targets]}
    c.params = {"attempts": n, "targets": n_targets, "succeeded": bool(succeed), "user_agent": ua}


def _credential_stuffing(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    n_ips = int(np.exp(rng.uniform(np.log(3), np.log(40))))
    ips = _dc(rng, shop, n_ips, providers=int(rng.integers(1, 4)))
    minutes = (c.end - c.start) / 60
    known_share = float(rng.uniform(0.2, 0.45))
    success_rate = float(rng.uniform(0.01, 0.03))
    uas = list(data.STALE_BROWSER_UAS) + [u for u, _, _ in data.BROWSER_UAS]
    compromised: list[str] = []
    total = 0
    used: set[str] = set()
    for ip in ips:
        rate = max(float(rng.uniform(3.0, 12.0)), 32.0 / min(minutes, 10.0))  # attempts / min
        begin = c.start + float(rng.uniform(0, 0.1)) * (c.end - c.start)
        n = max(int(rate * (c.end - begin) / 60), 30)
        for ts in _poisson_times(rng, begin, c.end - 2, n):
            total += 1
            ua = uas[int(rng.integers(0, len(uas)))]
            v = Visitor(ip, ua, _bot_device(rng), False, None, "HTTP/1.1")
            cust = shop.customers[int(rng.integers(0, len(shop.customers)))]
            if rng.random() < known_share and cust.email not in used:
                used.add(cust.email)
                ok = rng.random() < success_rate / known_share
                emit_login(out, float(ts), v, cust.email, cust.user_id, ok, None if ok else "bad_password",
                           _sid(rng), rt=float(rng.uniform(0.1, 0.3)))
                if ok:
                    compromised.append(cust.email)
                    out.web(float(ts) + 0.6, ip, "GET", "/account", 200, 14200, SITE + "/login", ua, 0.07, "HTTP/1.1")
                    out.web(float(ts) + 1.1, ip, "GET", "/account/payment-methods", 200, 9800, SITE + "/account", ua, 0.06, "HTTP/1.1")
            else:
                first = str(rng.choice(data.FIRST_NAMES["en"] + data.FIRST_NAMES["de"]))
                last = str(rng.choice(data.LAST_NAMES["en"] + data.LAST_NAMES["de"])).replace("-", "")
                email = f"{first}{rng.choice(['.', '', '_'])}{last}{int(rng.integers(1, 9999))}@{rng.choice(data.LEAKED_EMAIL_DOMAINS)}"
                if email in shop.by_email:
                    email = "x" + email
                emit_login(out, float(ts), v, email, None, False, "unknown_user", _sid(rng), rt=float(rng.uniform(0.08, 0.2)))
    c.entities = {"source.ip": ips, "user.name": compromised}
    c.params = {"ips": n_ips, "attempts": total, "known_share": round(known_share, 3),
                "compromised": len(compromised)}


_WORDLIST: Final = (
    "admin", "administrator", "backup", "backups", "old", "new", "test", "tmp", "temp", "dev",
    "staging", "beta", "demo", "files", "uploads", "upload", "private", "secret", "db", "sql",
    "data", "logs", "log", "config", "conf", "include", "includes", "inc", "lib", "cgi",
    "portal", "panel", "cpanel", "webmail", "mail", "dashboard", "manage", "manager", "system",
    "api/v2", "api/internal", "api/debug", "internal", "status", "stats", "metrics", "health",
    "install", "setup", "update", "upgrade", "shop/admin", "store/admin", "magento/admin",
    "user", "users", "account/admin", "jenkins", "jira", "git", "svn", "web", "www", "site",
)


def _vuln_scanner(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    ip = _dc(rng, shop, 1)[0]
    tool = str(rng.choice(["nikto", "nuclei", "gobuster", "ffuf", "wpscan", "spoofed"]))
    minutes = (c.end - c.start) / 60
    n = int(np.clip(rng.uniform(40, 160) * minutes, 200, 1500))
    paths = list(data.SCANNER_PATHS)
    rng.shuffle(paths)
    words = list(_WORDLIST)
    pool = paths + [f"/{w}" for w in words] + [f"/{w}/" for w in words] + [f"/{w}.php" for w in words] + \
        [f"/{w}.bak" for w in words] + [f"/{w}.zip" for w in words]
    if len(pool) < n:
        pool = pool + [f"/{w}{k}" for k in range(1, n // len(words) + 2) for w in words]
    order = paths + [p for p in pool[len(paths):]]
    times = _poisson_times(rng, c.start, c.end - 1, n)
    for k, ts in enumerate(times):
        path = order[k % len(order)]
        ua = data.SCANNER_UAS[tool].replace("{n}", f"{int(rng.integers(1, 8000)):06d}")
        status, size = _scan_status(path, rng)
        method = "GET" if rng.random() < 0.9 else str(rng.choice(["HEAD", "POST", "OPTIONS"]))
        out.web(float(ts), ip, method, path, status, size if method != "HEAD" else 0, "-", ua,
                float(rng.uniform(0.001, 0.05)), "HTTP/1.1")
    c.entities = {"source.ip": [ip]}
    c.params = {"tool": tool, "requests": n}


def _scan_status(path: str, rng: np.random.Generator) -> tuple[int, int]:
    if path in ("/robots.txt", "/sitemap.xml", "/.well-known/security.txt"):
        return 200, 412 if path != "/sitemap.xml" else 18231
    if path.startswith(("/.git", "/.svn", "/.ht", "/.hg", "/server-", "/.env", "/.aws", "/.ssh", "/.docker")):
        return 403, 153
    if path.rstrip("/") in ("/admin", "/administrator", "/account/admin"):
        return 301, 169
    if "%" in path or ".." in path:
        return 400, 157
    if path == "/graphql":
        return 405, 157
    return (404, 8412) if rng.random() < 0.93 else (403, 153)


def _sqli_probe(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    _injection(out, rng, c, shop, data.SQLI_PAYLOADS, sqlmap=rng.random() < 0.6)


def _xss_probe(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    _injection(out, rng, c, shop, data.XSS_PAYLOADS, sqlmap=False)


def _injection(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop,
               payloads: tuple[str, ...], sqlmap: bool) -> None:
    n_ips = 1 if rng.random() < 0.75 else 2
    ips = _dc(rng, shop, n_ips) if rng.random() < 0.7 else [shop.home_ip(rng, shop.pick_country(rng)) for _ in range(n_ips)]
    ua = "sqlmap/1.8.4#stable (https://sqlmap.org)" if sqlmap else str(rng.choice(data.STALE_BROWSER_UAS))
    minutes = (c.end - c.start) / 60
    n = int(np.clip(rng.uniform(8, 40) * minutes, 30, 400))
    product = shop.pick_product(rng)
    targets = [
        ("/search", "q", "merino"), (f"/products/{product.id}", "ref", "home"),
        (f"/category/{rng.choice(data.CATEGORIES)}", "sort", "price_asc"), ("/api/products", "id", product.id),
    ]
    forms = [("/api/reviews", "text"), ("/api/newsletter", "email"), ("/api/contact", "message")]
    for ts in _poisson_times(rng, c.start, c.end - 1, n):
        ip = ips[int(rng.integers(0, n_ips))]
        payload = str(rng.choice(payloads))
        if rng.random() < 0.2:
            path, fieldname = forms[int(rng.integers(0, len(forms)))]
            raw = _decode(payload).replace('"', '\\"')
            body = f'{{"{fieldname}":"{raw}"}}'
            v = Visitor(ip, ua, _bot_device(rng), False, None, "HTTP/1.1")
            status = int(rng.choice([400, 422, 201, 500], p=[0.4, 0.3, 0.2, 0.1]))
            emit_api_form(out, float(ts), v, path, body, status, "-")
            continue
        path, param, value = targets[int(rng.integers(0, len(targets)))]
        prefix = value if rng.random() < 0.5 else ""
        target = f"{path}?{param}={prefix}{payload}"
        quote_break = payload.startswith(("%27", "%22", "1%27", "admin%27"))
        status = 500 if quote_break and rng.random() < 0.4 else int(rng.choice([200, 200, 200, 400, 403, 404]))
        rt = float(rng.uniform(5.0, 5.3)) if "SLEEP(5)" in payload.upper() or "pg_sleep" in payload or "DELAY" in payload else float(rng.uniform(0.02, 0.3))
        out.web(float(ts), ip, "GET", target, status, 568 if status == 500 else int(rng.integers(8000, 40000)),
                "-", ua, rt, "HTTP/1.1")
    c.entities = {"source.ip": ips}
    c.params = {"requests": n, "tool": "sqlmap" if sqlmap else "manual"}


def _decode(payload: str) -> str:
    from urllib.parse import unquote

    return unquote(payload)


def _scraping(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    n_ips = int(rng.choice([1, 1, 2, 3]))
    ips = _dc(rng, shop, n_ips, providers=1)
    ua = str(rng.choice(data.SCRAPER_UAS))
    ordered = sorted(shop.products, key=lambda p: int(p.id))
    total = 0
    for j, ip in enumerate(ips):
        rate = float(rng.uniform(1.0, 6.0))  # requests per second
        n = int(min(rate * (c.end - c.start), 20000))
        offset = j * len(ordered) // n_ips
        for k, ts in enumerate(_poisson_times(rng, c.start, c.end - 1, n)):
            if k % 25 == 24:
                cat = data.CATEGORIES[(k // 25) % len(data.CATEGORIES)]
                path = f"/category/{cat}?page={(k // 450) % 5 + 1}"
            else:
                path = f"/products/{ordered[(offset + k) % len(ordered)].id}"
            out.web(float(ts), ip, "GET", path, 200, int(rng.integers(28000, 64000)), "-", ua,
                    _lognormal(rng, 0.06, 0.4), "HTTP/1.1")
        total += n
    c.entities = {"source.ip": ips}
    c.params = {"requests": total, "user_agent": ua}


def _card_testing(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    n_ips = int(rng.integers(1, 5))
    ips = _dc(rng, shop, n_ips) if rng.random() < 0.6 else [shop.home_ip(rng, "US") for _ in range(n_ips)]
    devices = [_bot_device(rng) for _ in range(int(rng.integers(1, 4)))]
    sessions = [_sid(rng) for _ in range(int(rng.integers(1, 4)))]
    emails = [f"{''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), 8))}{int(rng.integers(10, 99))}@"
              f"{rng.choice(['gmail.com', 'outlook.com', 'proton.me', 'mail.ru'])}" for _ in range(int(rng.integers(1, 4)))]
    minutes = (c.end - c.start) / 60
    n_cards = int(np.clip(rng.uniform(4, 12) * minutes, 30, 300))
    bins = [str(b) for b in rng.choice(["414720", "426684", "438857", "451014", "474426", "517805", "542418", "552433"],
                                        size=int(rng.integers(1, 4)), replace=False)]
    amount = float(rng.choice([0.5, 1.0, 1.0, 2.0, 2.99, 4.99, 5.0]))
    approve = float(rng.uniform(0.03, 0.12))
    ua, _ = pick_browser(rng, mobile=False)
    codes = [k for k, _ in data.DECLINES_CARD_TESTING]
    weights = np.array([w for _, w in data.DECLINES_CARD_TESTING])
    fingerprints: list[str] = []
    order_id = f"NH-{int(rng.integers(10_000_000, 99_999_999))}"
    attempts = 0
    for ts in _poisson_times(rng, c.start, c.end - 2, n_cards):
        k = int(rng.integers(0, 10**9))
        fp = "".join(f"{x:02x}" for x in rng.integers(0, 256, 8))
        fingerprints.append(fp)
        bin_ = bins[k % len(bins)]
        country = str(rng.choice(["US", "US", "GB", "BR", "CA", "FR", "MX"]))
        ip, dev, sid = ips[k % n_ips], devices[k % len(devices)], sessions[k % len(sessions)]
        email = emails[k % len(emails)]
        Visitor(ip, ua, dev, False, None, "HTTP/1.1")
        tries = 1 if rng.random() < 0.8 else 2
        for t_k in range(tries):
            attempts += 1
            t = float(ts) + 4.0 * t_k
            ok = rng.random() < approve
            code = None if ok else str(rng.choice(codes, p=weights / weights.sum()))
            ms = _lognormal(rng, 380, 0.3)
            out.web(t, ip, "POST", "/api/checkout/payment", 200 if ok else 402, 356 if ok else 298,
                    SITE + "/checkout", ua, ms / 1000 + 0.04, "HTTP/1.1")
            tr.vendor(out, rng, t, "stripe", "POST", "/v1/payment_intents", 200 if ok else 402, ms)
            out.ecs(t, {
                "event.dataset": "shop.payment", "event.kind": "event", "event.category": "payment",
                "event.action": "authorize", "event.outcome": "success" if ok else "failure",
                "event.reason": code, "source.ip": ip, "user.name": email, "user_agent.original": ua,
                "shop.session.id": sid, "shop.device.id": dev, "shop.payment.amount": amount,
                "shop.payment.currency": "EUR", "shop.payment.method": "card",
                "shop.payment.card.bin": bin_, "shop.payment.card.last4": f"{int(rng.integers(0, 10000)):04d}",
                "shop.payment.card.fingerprint": fp, "shop.payment.card.country": country,
                "shop.payment.decline_code": code, "shop.order.id": order_id,
                "shop.billing.country": country, "service.name": "storefront",
            })
            if ok:
                break
    c.entities = {"source.ip": ips, "shop.payment.card.fingerprint": fingerprints,
                  "shop.device.id": devices, "shop.session.id": sessions, "user.name": emails}
    c.params = {"cards": n_cards, "attempts": attempts, "amount": amount, "approve_rate": round(approve, 3),
                "bins": bins}


def _ssh_brute_force(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    ip = _dc(rng, shop, 1)[0]
    host = str(rng.choice(["bastion-1", "web-1", "web-2"]))
    minutes = (c.end - c.start) / 60
    n = int(np.clip(rng.uniform(5, 25) * minutes, 50, 600))
    names = list(data.SSH_USERNAMES)
    p = np.array([12.0 if u == "root" else (4.0 if u in ("admin", "test", "user", "ubuntu") else 1.0) for u in names])
    tried: list[str] = []
    for ts in _poisson_times(rng, c.start, c.end - 3, n):
        user = str(rng.choice(names, p=p / p.sum()))
        tried.append(user)
        ssh_failure(out, rng, float(ts), host, ip, user)
    c.entities = {"source.ip": [ip], "host.name": [host], "user.name": tried}
    c.params = {"attempts": n, "distinct_users": len(set(tried))}


# ------------------------------------------------------------------------------- benign


def _flash_sale(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    mult = float(rng.uniform(5.0, 10.0))
    promo = str(rng.choice(["FLASH30", "MIDSUMMER30", "WEEKEND25", "NORDIC20"]))
    sessions = 0
    t = c.start
    base = tr_base_rate(shop)
    while t < c.end - 60:
        n = int(rng.poisson(base * shop.rate_at(t) * (mult - 1.0)))
        for ts in np.sort(rng.uniform(t, t + 60, n)):
            cust = shop.pick_customer(rng, float(ts)) if rng.random() < 0.85 else None
            v = tr.visitor_for(rng, cust) if cust else tr.anonymous(rng)
            tr.session(out, rng, float(ts), v, sale=True, promo=promo)
            sessions += 1
        t += 60
    c.entities = {"shop.promo.code": [promo]}
    c.params = {"multiplier": round(mult, 2), "extra_sessions": sessions}


def tr_base_rate(shop: Shop) -> float:
    """Mean sessions per minute of the shop (all visitors) at average traffic."""
    return 10.0 * len(shop.customers) / 5000


def _corporate_nat(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    # An office where it is working time at the start of the window.
    hour = (c.start / 3600) % 24
    sizes = {k: sum(1 for cu in shop.customers if cu.country == k) for k in data.COUNTRIES}
    offices = [k for k in ("DE", "GB", "FR", "NL", "US", "AU", "PL", "SE", "IT", "ES")
               if 8 <= (hour + data.COUNTRIES[k][1]) % 24 < 17 and sizes[k] >= 100]
    country = str(rng.choice(offices)) if offices else max(sizes, key=lambda k: sizes[k])
    ip = shop.home_ip(rng, country)
    locals_ = [cu for cu in shop.customers if cu.country == country]
    n_emp = min(int(rng.integers(50, 301)), len(locals_) // 2)
    employees = [locals_[int(i)] for i in rng.choice(len(locals_), n_emp, replace=False)]
    pc_ua = str(rng.choice([u for u, _, m in data.BROWSER_UAS if not m and "Windows" in u][:4]))
    visits_per_hour = float(rng.uniform(0.12, 0.3))  # per employee, during working hours
    sessions = 0
    logins = 0
    t = c.start
    while t < c.end:
        local = (t / 3600 + data.COUNTRIES[country][1]) % 24
        lunch = 1.8 if 12 <= local < 13.5 else 1.0
        working = 1.0 if 8 <= local < 18 else 0.05
        n = int(rng.poisson(n_emp * visits_per_hour / 60 * lunch * working))
        for ts in np.sort(rng.uniform(t, t + 60, n)):
            emp = employees[int(rng.integers(0, n_emp))]
            pc = hashlib.blake2b(f"{c.id}:{emp.index}".encode(), digest_size=16).hexdigest()
            v = Visitor(ip, pc_ua, pc, False, emp)
            wants = rng.random() < 0.5
            logins += wants
            tr.session(out, rng, float(ts), v, wants_login=wants)
            sessions += 1
        t += 60
    c.entities = {"source.ip": [ip], "user.name": [e.email for e in employees]}
    c.params = {"country": country, "employees": n_emp, "sessions": sessions}


def _search_crawler(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    bot = str(rng.choice(["googlebot", "bingbot"]))
    cidrs = data.CRAWLER_RANGES[bot]
    pool = IpPool(list(cidrs))
    ips = sorted(set(pool.sample(rng, int(rng.integers(2, 7)))))
    uas = data.CRAWLER_UAS[bot]
    rate = float(rng.uniform(0.5, 2.0))  # requests per second, all addresses together
    n = int(rate * (c.end - c.start))
    times = _poisson_times(rng, c.start + 2, c.end - 1, n)
    out.web(c.start, ips[0], "GET", "/robots.txt", 200, 412, "-", uas[0], 0.001, "HTTP/1.1")
    out.web(c.start + 1, ips[0], "GET", "/sitemap.xml", 200, 18231, "-", uas[0], 0.004, "HTTP/1.1")
    not_found = 0
    for ts in times:
        ip = ips[int(rng.integers(0, len(ips)))]
        ua = uas[0] if rng.random() < 0.55 else uas[int(rng.integers(0, len(uas)))]
        r = rng.random()
        if "Image" in ua:
            p = shop.pick_product(rng)
            path, status, size = f"/media/products/{p.id}/1.webp", 200, int(rng.integers(38000, 190000))
        elif r < 0.02:
            path, status, size = f"/products/{rng.choice(shop.retired_products)}", 404, 8412
            not_found += 1
        elif r < 0.04:
            path, status, size = f"/product/{shop.products[int(rng.integers(0, len(shop.products)))].id}", 301, 169
        elif r < 0.82:
            path, status, size = f"/products/{shop.products[int(rng.integers(0, len(shop.products)))].id}", 200, int(rng.integers(28000, 64000))
        else:
            path = f"/category/{rng.choice(data.CATEGORIES)}" + (f"?page={int(rng.integers(2, 6))}" if rng.random() < 0.3 else "")
            status, size = 200, int(rng.integers(30000, 70000))
        out.web(float(ts), ip, "GET", path, status, size, "-", ua, _lognormal(rng, 0.07, 0.4), "HTTP/1.1")
    c.entities = {"source.ip": ips, "user_agent.bot.name": [bot]}
    c.params = {"bot": bot, "requests": n + 2, "rate_per_s": round(rate, 2), "not_found": not_found}


def _forgetful_customer(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    cust = shop.customers[int(rng.integers(0, len(shop.customers)))]
    v = tr.visitor_for(rng, cust, ip=cust.ips[0])
    sid = _sid(rng)
    t = c.start
    out.web(t, v.ip, "GET", "/login", 200, 9120, SITE + "/", v.ua, 0.03, v.proto)
    failures = int(rng.integers(3, 6))
    span = (c.end - c.start) * 0.35
    for _ in range(failures):
        t += float(rng.uniform(0.3, 1.0)) * span / failures
        emit_login(out, t, v, cust.email, cust.user_id, False, "bad_password", sid)
    t = tr.password_reset(out, rng, t + 20.0, v, sid)
    emit_login(out, t + 15.0, v, cust.email, cust.user_id, True, None, sid)
    c.entities = {"source.ip": [v.ip], "user.name": [cust.email]}
    c.params = {"failures": failures}


_GENERATORS: Final[dict[str, Generator]] = {
    "brute_force": _brute_force,
    "credential_stuffing": _credential_stuffing,
    "vuln_scanner": _vuln_scanner,
    "sqli_probe": _sqli_probe,
    "xss_probe": _xss_probe,
    "scraping": _scraping,
    "card_testing": _card_testing,
    "ssh_brute_force": _ssh_brute_force,
    "flash_sale": _flash_sale,
    "corporate_nat": _corporate_nat,
    "search_crawler": _search_crawler,
    "forgetful_customer": _forgetful_customer,
}


def generate(out: Out, rng: np.random.Generator, campaign: Campaign, shop: Shop, traffic: Traffic) -> Campaign:
    """Queue every line of ``campaign`` and fill in its entities and parameters."""
    _GENERATORS[campaign.kind](out, rng, campaign, shop, traffic)
    return campaign

