"""Attacks on the web tier: vulnerability scanning, SQL injection and XSS probing, scraping
and application-layer floods (loud and low-and-slow forms of each)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import quote_plus, unquote

import numpy as np

from shopwatch.sim import data
from shopwatch.sim.draw import bot_device, dc_ips, hosting_block, paced, residential_ips, spread
from shopwatch.sim.emit import Out
from shopwatch.sim.ranges import RANGES, draw
from shopwatch.sim.traffic import _STATIC, SITE, Traffic, Visitor, _lognormal, emit_api_form
from shopwatch.sim.world import Shop, pick_browser

if TYPE_CHECKING:
    from shopwatch.sim.campaigns import Campaign, Generator

__all__ = ["GENERATORS"]

_DESKTOP_UAS: Final = tuple(u for u, _, m in data.BROWSER_UAS if not m)

_WORDLIST: Final = (
    "admin",
    "administrator",
    "backup",
    "backups",
    "old",
    "new",
    "test",
    "tmp",
    "temp",
    "dev",
    "staging",
    "beta",
    "demo",
    "files",
    "uploads",
    "upload",
    "private",
    "secret",
    "db",
    "sql",
    "data",
    "logs",
    "log",
    "config",
    "conf",
    "include",
    "includes",
    "inc",
    "lib",
    "cgi",
    "portal",
    "panel",
    "cpanel",
    "webmail",
    "mail",
    "dashboard",
    "manage",
    "manager",
    "system",
    "api/v2",
    "api/internal",
    "api/debug",
    "internal",
    "status",
    "stats",
    "metrics",
    "health",
    "install",
    "setup",
    "update",
    "upgrade",
    "shop/admin",
    "store/admin",
    "magento/admin",
    "user",
    "users",
    "account/admin",
    "jenkins",
    "jira",
    "git",
    "svn",
    "web",
    "www",
    "site",
)
_SUFFIXES: Final = ("", "/", ".php", ".bak", ".zip", ".old", ".txt", ".json")


def _scan_paths(rng: np.random.Generator, n: int) -> list[str]:
    """A scanner's request list: known-bad paths first, then wordlist guesses."""
    paths = list(data.SCANNER_PATHS)
    rng.shuffle(paths)
    out = paths[:n]
    k = 0
    while len(out) < n:
        word = _WORDLIST[k % len(_WORDLIST)]
        round_ = k // len(_WORDLIST)
        suffix = _SUFFIXES[round_ % len(_SUFFIXES)]
        extra = "" if round_ < len(_SUFFIXES) else str(round_ // len(_SUFFIXES))
        out.append(f"/{word}{extra}{suffix}")
        k += 1
    return out


def _scan_status(path: str, rng: np.random.Generator) -> tuple[int, int]:
    if path in ("/robots.txt", "/sitemap.xml", "/.well-known/security.txt"):
        return 200, 412 if path != "/sitemap.xml" else 18231
    if path.startswith(
        ("/.git", "/.svn", "/.ht", "/.hg", "/server-", "/.env", "/.aws", "/.ssh", "/.docker")
    ):
        return 403, 153
    if path.rstrip("/") in ("/admin", "/administrator", "/account/admin"):
        return 301, 169
    if "%" in path or ".." in path:
        return 400, 157
    if path == "/graphql":
        return 405, 157
    return (404, 8412) if rng.random() < 0.93 else (403, 153)


def _vuln_scanner(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    n = int(p["requests"])
    if c.low:  # throttled, browser-like, from a few rented addresses
        ips = dc_ips(rng, shop, int(p["ips"]), providers=1)
        tool = "slow"
        ua_fixed = str(rng.choice(_DESKTOP_UAS))
        r = RANGES[(c.kind, c.variant)]["interval_s"]
        times = paced(rng, c.start, p["interval_s"], r.lo, r.hi, n)
        rate = 1.0 / p["interval_s"]
    else:
        ips = dc_ips(rng, shop, 1)
        tool = str(rng.choice(["nikto", "nuclei", "gobuster", "ffuf", "wpscan"]))
        ua_fixed = ""
        times = spread(rng, c.start, c.start + n / p["rate_per_s"], n)
        rate = p["rate_per_s"]
    c.last(float(times[-1] - c.start) + 1.0)
    paths = _scan_paths(rng, n)
    visible = 0
    for k, ts in enumerate(times):
        if ts >= c.end:
            break
        path = paths[k]
        ua = ua_fixed or data.SCANNER_UAS[tool].replace("{n}", f"{int(rng.integers(1, 8000)):06d}")
        status, size = _scan_status(path, rng)
        method = (
            "GET" if c.low or rng.random() < 0.9 else str(rng.choice(["HEAD", "POST", "OPTIONS"]))
        )
        out.web(
            float(ts),
            ips[k % len(ips)],
            method,
            path,
            status,
            size if method != "HEAD" else 0,
            "-" if not c.low else SITE + "/",
            ua,
            float(rng.uniform(0.001, 0.05)),
            "HTTP/1.1",
        )
        visible += 1
    c.add("source.ip", ips[: max(1, min(len(ips), visible))])
    c.params.update(
        {"tool": tool, "requests": n, "visible_requests": visible, "rate_per_s": round(rate, 4)}
    )


_SLEEPS: Final = ("SLEEP(5)", "pg_sleep", "DELAY")


def _injection(
    out: Out,
    rng: np.random.Generator,
    c: Campaign,
    shop: Shop,
    payloads: tuple[str, ...],
    sqli: bool,
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    if c.low:  # by hand, from a browser, a handful of payloads over hours
        ips = residential_ips(rng, shop, 1) if rng.random() < 0.6 else dc_ips(rng, shop, 1)
        ua, _ = pick_browser(rng, mobile=False)
        tool = "manual"
        n = int(p["payloads"])
        natural = c.last(p["duration_h"] * 3600)
        times = spread(rng, c.start, natural, n)
        rate = n / (natural - c.start)
    else:
        ips = dc_ips(rng, shop, 1)
        if sqli:
            tool = "sqlmap"
            ua = (
                "sqlmap/1.8.4#stable (https://sqlmap.org)"
                if rng.random() < 0.7
                else str(rng.choice(data.STALE_BROWSER_UAS))
            )
        else:
            tool = str(rng.choice(["dalfox", "xsstrike"]))
            ua = str(rng.choice(data.STALE_BROWSER_UAS))
        n = int(p["requests"])
        times = spread(rng, c.start, c.start + n / p["rate_per_s"], n)
        c.last(float(times[-1] - c.start) + 1.0)
        rate = p["rate_per_s"]
    product = shop.pick_product(rng)
    targets = [
        ("/search", "q", "merino"),
        (f"/products/{product.id}", "ref", "home"),
        (f"/category/{rng.choice(data.CATEGORIES)}", "sort", "price_asc"),
        ("/api/products", "id", product.id),
    ]
    forms = [("/api/reviews", "text"), ("/api/newsletter", "email"), ("/api/contact", "message")]
    visible = 0
    for ts in times:
        if ts >= c.end:
            break
        visible += 1
        ip = ips[0]
        payload = str(rng.choice(payloads))
        if rng.random() < 0.2:
            path, fieldname = forms[int(rng.integers(0, len(forms)))]
            raw = unquote(payload).replace('"', '\\"')
            v = Visitor(ip, ua, bot_device(rng), False, None, "HTTP/1.1")
            status = int(rng.choice([400, 422, 201, 500], p=[0.4, 0.3, 0.2, 0.1]))
            emit_api_form(out, float(ts), v, path, f'{{"{fieldname}":"{raw}"}}', status, "-")
            continue
        path, param, value = targets[int(rng.integers(0, len(targets)))]
        prefix = value if rng.random() < 0.5 else ""
        quote_break = payload.startswith(("%27", "%22", "1%27", "admin%27"))
        status = (
            500
            if quote_break and rng.random() < 0.4
            else int(rng.choice([200, 200, 200, 400, 403, 404]))
        )
        slow = any(s in payload for s in _SLEEPS) or "SLEEP(5)" in payload.upper()
        rt = float(rng.uniform(5.0, 5.3)) if slow else float(rng.uniform(0.02, 0.3))
        out.web(
            float(ts),
            ip,
            "GET",
            f"{path}?{param}={prefix}{payload}",
            status,
            568 if status == 500 else int(rng.integers(8000, 40000)),
            "-",
            ua,
            rt,
            "HTTP/1.1",
        )
    c.add("source.ip", ips)
    c.params.update(
        {"requests": n, "visible_requests": visible, "tool": tool, "rate_per_s": round(rate, 5)}
    )


def _sqli_probe(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    _injection(out, rng, c, shop, data.SQLI_PAYLOADS, sqli=True)


def _xss_probe(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    _injection(out, rng, c, shop, data.XSS_PAYLOADS, sqli=False)


def _scraping(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    ordered = sorted(shop.products, key=lambda pr: int(pr.id))
    total = 0
    if not c.low:
        n_ips = int(p["ips"])
        ips = dc_ips(rng, shop, n_ips, providers=1)
        ua = str(rng.choice(data.SCRAPER_UAS))
        natural = c.last(p["duration_min"] * 60)
        n = int(p["rate_per_s"] * (natural - c.start))
        times = spread(rng, c.start, natural, n)
        owner = rng.integers(0, n_ips, n)
        for k, ts in enumerate(times):
            if ts >= c.end:
                break
            if k % 25 == 24:
                cat = data.CATEGORIES[(k // 25) % len(data.CATEGORIES)]
                path = f"/category/{cat}?page={(k // 450) % 5 + 1}"
            else:
                path = f"/products/{ordered[k % len(ordered)].id}"
            out.web(
                float(ts),
                ips[int(owner[k])],
                "GET",
                path,
                200,
                int(rng.integers(28000, 64000)),
                "-",
                ua,
                _lognormal(rng, 0.06, 0.4),
                "HTTP/1.1",
            )
            total += 1
        c.add("source.ip", sorted({ips[int(j)] for j in owner[:total]}))
        c.params.update(
            {
                "ips": n_ips,
                "requests": n,
                "visible_requests": total,
                "user_agent": ua,
                "rate_per_s": round(p["rate_per_s"], 3),
            }
        )
        return
    # Low and slow: a headless browser on each address of one /24 or one hosting range, a page
    # every few seconds, with the page's stylesheets, scripts and images, current browser UAs.
    n_ips = int(p["ips"])
    ips, block = hosting_block(rng, shop, n_ips)
    natural = c.last(p["duration_h"] * 3600)
    pages_per_ip = int(p["pages_per_ip"])
    gap = RANGES[(c.kind, c.variant)]["gap_s"]
    used: list[str] = []
    cursor = int(rng.integers(0, len(ordered)))
    for ip in ips:
        ua = str(rng.choice(_DESKTOP_UAS))
        t = float(rng.uniform(c.start, natural))
        if t >= c.end:
            continue
        used.append(ip)
        first = True
        for k in range(pages_per_ip):
            if t >= c.end:
                break
            product = ordered[cursor % len(ordered)]
            cursor += 1
            path = (
                f"/products/{product.id}"
                if k % 12
                else f"/category/{data.CATEGORIES[cursor % len(data.CATEGORIES)]}"
            )
            rt = _lognormal(rng, 0.07, 0.4)
            out.web(
                t,
                ip,
                "GET",
                path,
                200,
                int(rng.integers(28000, 64000)),
                SITE + "/",
                ua,
                rt,
                "HTTP/2.0",
            )
            total += 1
            a = t + rt
            if first:
                for spath, size in _STATIC:
                    a += float(rng.uniform(0.01, 0.06))
                    out.web(a, ip, "GET", spath, 200, size, SITE + path, ua, 0.002, "HTTP/2.0")
                    total += 1
                first = False
            if path.startswith("/products/"):
                for img in range(1, product.images + 1):
                    out.web(
                        a + 0.05 * img,
                        ip,
                        "GET",
                        f"/media/products/{product.id}/{img}.webp",
                        200,
                        int(rng.integers(38000, 190000)),
                        SITE + path,
                        ua,
                        0.001,
                        "HTTP/2.0",
                    )
                    total += 1
            out.web(a + 0.3, ip, "GET", "/api/cart", 200, 212, SITE + path, ua, 0.01, "HTTP/2.0")
            total += 1
            t += float(rng.uniform(max(gap.lo, 0.7 * p["gap_s"]), min(gap.hi, 1.3 * p["gap_s"])))
    c.add("source.ip", used)
    c.params.update(
        {
            "ips": n_ips,
            "block": block,
            "pages_per_ip": pages_per_ip,
            "visible_requests": total,
            "gap_s": round(p["gap_s"], 2),
        }
    )


_SEARCH_WORDS: Final = (
    "jacket",
    "merino",
    "tent",
    "boots",
    "down",
    "gore-tex",
    "sale",
    "kids",
    "hat",
    "socks",
    "sleeping bag",
    "stove",
    "headlamp",
    "fleece",
    "trousers",
    "backpack 40l",
)


def _http_flood(out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    n_ips = int(p["ips"])
    if c.low:
        ips = (
            residential_ips(rng, shop, n_ips)
            if rng.random() < 0.5
            else dc_ips(rng, shop, n_ips, providers=2)
        )
        natural = c.last(p["duration_min"] * 60)
        rate = p["rate_per_ip_s"] * n_ips
    else:
        n_dc = int(rng.binomial(n_ips, 0.4))
        ips = dc_ips(rng, shop, n_dc, providers=5) + residential_ips(rng, shop, n_ips - n_dc)
        natural = c.last(p["duration_min"] * 60)
        rate = p["rate_per_s"]
    n = int(rate * (min(natural, c.end) - c.start))
    total = int(rate * (natural - c.start))
    times = spread(rng, c.start, min(natural, c.end), n)
    owner = rng.integers(0, n_ips, n)
    words = rng.integers(0, len(_SEARCH_WORDS), n)
    pages = rng.integers(1, 40, n)
    uas = np.array(_DESKTOP_UAS + data.STALE_BROWSER_UAS)
    ua_of = rng.integers(0, len(uas), n_ips)
    # The origin slows down under load; past its capacity some requests fail.
    load = min(rate / 60.0, 8.0)
    rts = 0.35 * (1.0 + load) * np.exp(rng.normal(0.0, 0.5, n))
    fail = rng.random(n) < min(0.03 * load, 0.6)
    endpoint = "/search" if rng.random() < 0.7 else "/api/products"
    quoted = [quote_plus(w) for w in _SEARCH_WORDS]
    ua_by_ip = [str(uas[int(u)]) for u in ua_of]
    rows = zip(
        times.tolist(),
        owner.tolist(),
        words.tolist(),
        pages.tolist(),
        rts.tolist(),
        fail.tolist(),
        strict=True,
    )
    for ts, who, word, page, rt, failed in rows:
        target = f"{endpoint}?q={quoted[word]}&page={page}&sort=relevance"
        out.web(
            ts,
            ips[who],
            "GET",
            target,
            503 if failed else 200,
            612 if failed else 48211,
            "-",
            ua_by_ip[who],
            rt,
            "HTTP/1.1",
        )
    c.add("source.ip", sorted({ips[int(j)] for j in owner}))
    c.params.update(
        {
            "ips": n_ips,
            "requests": total,
            "visible_requests": n,
            "rate_per_s": round(rate, 3),
            "endpoint": endpoint,
        }
    )


GENERATORS: Final[dict[str, Generator]] = {
    "vuln_scanner": _vuln_scanner,
    "sqli_probe": _sqli_probe,
    "xss_probe": _xss_probe,
    "scraping": _scraping,
    "http_flood": _http_flood,
}
