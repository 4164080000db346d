"""Benign shop traffic: browsing sessions, logins, carts, orders, payments and the back office.

A session is generated whole when it starts (its later requests are queued in the sink at
their own event times). Every web action is written twice where a real shop would log it
twice: the access-log line and the ECS business event share source address, user agent and
second. Generation is per session in Python: a session is a few dozen lines and a busy
minute a few hundred, well within budget (see ``bench/simulate.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote_plus

import numpy as np

from shopwatch.sim import data
from shopwatch.sim.emit import (
    APP_ENI,
    APP_IP,
    BASTION_ENI,
    BASTION_IP,
    LB_ENI,
    LB_IP,
    PAYMENT_GATEWAYS,
    Out,
)
from shopwatch.sim.world import FX, SHOP_DOMAIN, SHOP_OFFSET, Card, Customer, Shop, pick_browser

__all__ = [
    "SITE",
    "VENDOR_INVENTORY",
    "Traffic",
    "Visitor",
    "emit_api_form",
    "emit_login",
    "ssh_failure",
    "vendor_inventory",
]

SITE: Final = f"https://www.{SHOP_DOMAIN}"
_STATIC: Final = (
    ("/assets/css/app.3f9a1c.css", 48213),
    ("/assets/js/vendor.8e21b4.js", 183442),
    ("/assets/js/app.c41d07.js", 96120),
    ("/assets/img/logo.svg", 5120),
    ("/assets/fonts/inter-var.woff2", 98304),
    ("/favicon.ico", 15086),
)
_REFERRERS: Final = (
    ("https://www.google.com/", 0.42), ("-", 0.30), ("https://www.bing.com/", 0.04),
    ("https://www.instagram.com/", 0.06), ("https://duckduckgo.com/", 0.03),
    ("https://l.facebook.com/", 0.04), ("https://www.google.de/", 0.06),
    (f"https://mail.{SHOP_DOMAIN}/", 0.05),
)
_REFERRER_P: Final = np.array([p for _, p in _REFERRERS]) / sum(p for _, p in _REFERRERS)
_VENDORS: Final[dict[str, tuple[str, str]]] = {
    # name -> (domain, address)
    "stripe": ("api.stripe.com", "3.18.12.63"),
    "dhl": ("api-eu.dhl.com", "18.196.21.4"),
    "sendgrid": ("api.sendgrid.com", "3.125.51.120"),
    "google-analytics": ("www.google-analytics.com", "34.95.102.37"),
    "algolia": ("nordhaven-dsn.algolia.net", "51.254.33.17"),
}
#: What the shop declares each vendor receives (its vendor inventory, written beside a run
#: as ``vendors.yaml``): the payment processor and the carrier get contact details for
#: receipts and delivery, the mailer the address it mails, search and analytics nothing.
VENDOR_INVENTORY: Final[dict[str, tuple[str, ...]]] = {
    "stripe": ("email", "phone"),
    "dhl": ("email", "phone"),
    "sendgrid": ("email",),
    "google-analytics": (),
    "algolia": (),
}
_SSH_HOSTS: Final = ("bastion-1", "web-1", "web-2")
_ADMINS: Final = ("deploy", "mkoch", "jwagner")
_UPTIME_UA: Final = "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"
_UPTIME_IPS: Final = ("69.162.124.226", "63.143.42.243", "216.245.221.82")


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who sends a session's requests."""

    ip: str
    ua: str
    device_id: str
    is_mobile: bool
    customer: Customer | None
    proto: str = "HTTP/2.0"


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * np.exp(rng.normal(0.0, sigma)))


def _sid(rng: np.random.Generator) -> str:
    return "".join(f"{x:02x}" for x in rng.integers(0, 256, 16))


def _dev(rng: np.random.Generator) -> str:
    return "".join(f"{x:02x}" for x in rng.integers(0, 256, 16))


def emit_login(
    out: Out, ts: float, v: Visitor, email: str, user_id: str | None, ok: bool, reason: str | None,
    session: str, rt: float = 0.18, referrer: str = f"{SITE}/login",
) -> None:
    """A web login: ``POST /login`` in the access log and its ``shop.auth`` event (same second)."""
    status = 302 if ok else 401
    out.web(ts, v.ip, "POST", "/login", status, 0 if ok else 1843, referrer, v.ua, rt, v.proto)
    out.ecs(ts, {
        "event.dataset": "shop.auth", "event.kind": "event", "event.category": "authentication",
        "event.action": "login", "event.outcome": "success" if ok else "failure",
        "event.reason": reason, "source.ip": v.ip, "user.name": email,
        "user.id": user_id if ok or reason == "bad_password" else None,
        "user_agent.original": v.ua, "shop.session.id": session, "shop.device.id": v.device_id,
        "url.path": "/login", "http.request.method": "POST", "http.response.status_code": status,
        "service.name": "storefront",
    })


def emit_api_form(
    out: Out, ts: float, v: Visitor, path: str, body: str, status: int, referrer: str,
    session: str | None = None, rt: float = 0.06,
) -> None:
    """A form post to the shop API: the access-log line and the API's ``http.access`` event.

    The API logs its public form endpoints (reviews, newsletter, contact) with their bodies;
    log-in and payment bodies are never logged.
    """
    out.web(ts, v.ip, "POST", path, status, 96 if status < 300 else 412, referrer, v.ua, rt, v.proto)
    out.ecs(ts, {
        "event.dataset": "http.access", "event.kind": "event", "event.category": "web",
        "event.action": "request", "event.outcome": "success" if status < 400 else "failure",
        "source.ip": v.ip, "user_agent.original": v.ua, "url.original": path, "url.path": path,
        "http.request.method": "POST", "http.request.body.content": body,
        "http.request.bytes": len(body), "http.response.status_code": status,
        "http.request.referrer": referrer, "shop.session.id": session, "shop.device.id": v.device_id,
        "service.name": "shop-api", "host.name": "app-1",
    })


#: Share of a customer's visits that end in a product review (an assumption of this
#: simulator: review requests reach a few percent of orders, and most visits do not order).
REVIEW_SHARE: Final = 0.006


#: A vendor's usual share of failing calls (drawn per shop and vendor, log-uniform): API
#: providers' published monthly availability of 99.5 % to 99.95 % and the error rates of
#: their status pages; the failures are mostly 5xx and some rate limiting.
VENDOR_ERRORS: Final = (0.0005, 0.005)
_USUAL_ERRORS: Final = np.array([500, 502, 503, 504, 429])
_USUAL_ERROR_P: Final = np.array([0.2, 0.25, 0.3, 0.05, 0.2])
#: Failures a vendor SDK retries (rate limits, server errors, timeouts; not a refused key),
#: and how many times: Stripe's and most vendors' SDKs retry twice by default, backing off
#: from half a second, doubling, with jitter.
_RETRIED: Final = frozenset({429, 500, 502, 503, 504})
RETRIES: Final = 2


def vendor_inventory() -> str:
    """The shop's vendor inventory as YAML (the format of ``detect.vendor_inventory``)."""
    lines = ["# The vendors this shop uses and the personal data each may receive.", "vendors:"]
    for name, receives in VENDOR_INVENTORY.items():
        domain = _VENDORS[name][0]
        lines.append(f"  {name}: {{domains: [{domain}], receives: [{', '.join(receives)}]}}")
    return "\n".join(lines) + "\n"


class Traffic:
    """Generates benign traffic for a :class:`Shop`."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        rng = np.random.default_rng([shop.seed, 3])
        self.office_ip = shop.residential["DE"].one(rng)  # the shop's own office (static)
        self.ci_ip = shop.datacenter.one(rng)
        self.staff_ip = self.office_ip
        # Each vendor's usual share of failing calls, and the stream that draws failures
        # (their own, so that the rest of the traffic is the same whatever fails).
        usual = np.random.default_rng([shop.seed, 14])
        lo, hi = VENDOR_ERRORS
        self.vendor_errors = {
            name: float(np.exp(usual.uniform(np.log(lo), np.log(hi)))) for name in _VENDORS
        }
        self._vendor_rng = np.random.default_rng([shop.seed, 15])

    # ------------------------------------------------------------------ visitors

    def review(self, out: Out, rng: np.random.Generator, t: float, v: Visitor, sid: str | None, product: Any) -> None:
        """A product review posted through the API (its text from :data:`data.REVIEWS`)."""
        text = str(rng.choice(data.REVIEWS))
        body = json.dumps({"product": product.id, "rating": int(rng.integers(3, 6)), "text": text},
                          ensure_ascii=False, separators=(",", ":"))
        emit_api_form(out, t, v, "/api/reviews", body, 201, SITE + f"/products/{product.id}", sid, rt=0.12)

    def visitor_for(self, rng: np.random.Generator, c: Customer, ip: str | None = None) -> Visitor:
        """A session of customer ``c`` from one of their devices (home or mobile network)."""
        dev = c.devices[int(rng.integers(0, len(c.devices)))]
        if ip is None:
            ip = c.ips[1] if dev.is_mobile and len(c.ips) > 1 and rng.random() < 0.5 else c.ips[0]
        return Visitor(ip, dev.ua, dev.id, dev.is_mobile, c)

    def anonymous(self, rng: np.random.Generator) -> Visitor:
        """A visitor without an account (new browser, residential address)."""
        country = self.shop.pick_country(rng)
        ua, mobile = pick_browser(rng)
        return Visitor(self.shop.home_ip(rng, country), ua, _dev(rng), mobile, None)

    # ------------------------------------------------------------------ helpers

    def _assets(self, out: Out, rng: np.random.Generator, t: float, v: Visitor, page: str, first: bool) -> None:
        ref = SITE + page
        if first and (v.customer is None or rng.random() < 0.3):
            for path, size in _STATIC:
                t += float(rng.uniform(0.01, 0.12))
                out.web(t, v.ip, "GET", path, 200, size, ref, v.ua, float(rng.uniform(0.0, 0.004)), v.proto)
            if "iPhone" in v.ua and rng.random() < 0.4:
                out.web(t + 0.2, v.ip, "GET", "/apple-touch-icon.png", 404, 153, "-", v.ua, 0.0, v.proto)
                out.web(t + 0.21, v.ip, "GET", "/apple-touch-icon-precomposed.png", 404, 153, "-", v.ua, 0.0, v.proto)
        out.web(t + float(rng.uniform(0.15, 0.6)), v.ip, "GET", "/api/cart", 200, int(rng.integers(180, 900)),
                ref, v.ua, float(rng.uniform(0.008, 0.04)), v.proto)
        if rng.random() < 0.5:
            out.web(t + float(rng.uniform(0.5, 2.0)), v.ip, "POST", "/api/events", 204, 0, ref, v.ua,
                    float(rng.uniform(0.002, 0.01)), v.proto)

    def _page(
        self, out: Out, rng: np.random.Generator, t: float, v: Visitor, path: str, ref: str,
        first: bool, size: int, slow: float = 1.0, error_rate: float = 0.002,
    ) -> int:
        status = 500 if rng.random() < error_rate else 200
        rt = _lognormal(rng, 0.06 * slow, 0.5) if status == 200 else float(rng.uniform(0.5, 3.0))
        out.web(t, v.ip, "GET", path, status, size if status == 200 else 568, ref, v.ua, rt, v.proto)
        if status == 200:
            self._assets(out, rng, t + rt, v, path.split("?")[0], first)
        return status

    def vendor(
        self, out: Out, rng: np.random.Generator, ts: float, vendor: str, method: str, path: str,
        status: int, ms: float,
    ) -> None:
        """An outbound call to a third party (``vendor.api``) and its network flow; a slow
        payment gateway makes every authorization slower, whoever asks for it.

        A call fails now and then (the vendor's usual errors, :data:`VENDOR_ERRORS`) and
        more often while the vendor is down or refuses the shop (``Sink.fail``); a failure
        the client may retry (429, 5xx) is retried up to :data:`RETRIES` times with
        exponential backoff, as vendors' SDKs do. Whether a call fails is drawn from a
        stream of its own, so the rest of the traffic is the same whatever fails. The
        shop's own flow goes on as if the call had answered (a fallback, a later retry).
        """
        if vendor in PAYMENT_GATEWAYS:
            ms *= out.sink.slowness("gateway", ts)
        # the call's sizes and port from the traffic's stream, once, whatever fails
        req, resp = int(rng.integers(300, 2400)), int(rng.integers(200, 4000))
        port = 40000 + int(rng.integers(0, 20000))
        extra, codes = out.sink.failing(vendor, ts) if out.sink.failures else (0.0, ())
        usual = self.vendor_errors[vendor]
        draws = self._vendor_rng
        for attempt in range(RETRIES + 1):
            u = float(draws.random())
            if u < extra:
                now = int(codes[int(draws.integers(0, len(codes)))])
            elif u < extra + (1.0 - extra) * usual:
                now = int(draws.choice(_USUAL_ERRORS, p=_USUAL_ERROR_P))
            else:
                self._call(out, ts, vendor, method, path, status, ms, req, resp, port)
                return
            took = float(draws.uniform(5_000, 30_000)) if now == 504 else _lognormal(draws, 45, 0.5)
            error_bytes = int(draws.integers(80, 400))
            self._call(out, ts, vendor, method, path, now, took, req, error_bytes,
                       port if attempt == 0 else 40000 + int(draws.integers(0, 20000)))
            if now not in _RETRIED or attempt == RETRIES:
                return
            ts += took / 1000.0 + 0.5 * 2**attempt * float(draws.uniform(0.5, 1.0))

    def _call(
        self, out: Out, ts: float, vendor: str, method: str, path: str, status: int, ms: float,
        req: int, resp: int, port: int,
    ) -> None:
        domain, address = _VENDORS[vendor]
        out.ecs(ts, {
            "event.dataset": "vendor.api", "event.kind": "event", "event.category": "web",
            "event.action": "request", "event.outcome": "success" if status < 400 else "failure",
            "event.duration": int(ms * 1_000_000), "source.ip": APP_IP, "destination.ip": address,
            "destination.port": 443, "destination.domain": domain, "url.domain": domain,
            "url.full": f"https://{domain}{path}", "url.path": path.split("?")[0],
            "http.request.method": method, "http.response.status_code": status,
            "http.request.bytes": req, "http.response.bytes": resp, "shop.vendor.name": vendor,
            "host.name": "app-1", "service.name": "shop-api",
        })
        out.flow(ts, APP_ENI, APP_IP, address, port, 443, 6,
                 10 + (req + resp) // 1380, req + resp + 1200, "ACCEPT")

    # ------------------------------------------------------------------ logins

    def login(
        self, out: Out, rng: np.random.Generator, t: float, v: Visitor, session: str,
        typo_rate: float = 0.06,
    ) -> tuple[float, bool]:
        """A customer logs in, sometimes after typos or a reset; returns (time, logged in)."""
        c = v.customer
        assert c is not None
        out.web(t, v.ip, "GET", "/login", 200, 9120, SITE + "/", v.ua, _lognormal(rng, 0.03, 0.4), v.proto)
        t += _lognormal(rng, 9.0, 0.5)
        if rng.random() < 0.008:  # mistyped e-mail address
            wrong = c.email.replace("@", "@@", 1) if rng.random() < 0.2 else _typo(rng, c.email)
            emit_login(out, t, v, wrong, None, False, "unknown_user", session)
            t += _lognormal(rng, 12.0, 0.5)
        failures = 0
        while failures < 4 and rng.random() < (typo_rate if failures == 0 else 0.35):
            emit_login(out, t, v, c.email, c.user_id, False, "bad_password", session)
            failures += 1
            t += _lognormal(rng, 10.0, 0.6)
        if failures >= 2 and rng.random() < 0.4:
            self.password_reset(out, rng, t, v, session)
            t += _lognormal(rng, 150.0, 0.5)
        emit_login(out, t, v, c.email, c.user_id, True, None, session)
        return t + _lognormal(rng, 0.5, 0.3), True

    def password_reset(self, out: Out, rng: np.random.Generator, t: float, v: Visitor, session: str) -> float:
        """Reset request, the e-mail, and the new password set a few minutes later."""
        c = v.customer
        assert c is not None
        out.web(t, v.ip, "GET", "/password/forgot", 200, 7021, SITE + "/login", v.ua, 0.03, v.proto)
        t += _lognormal(rng, 12.0, 0.4)
        out.web(t, v.ip, "POST", "/password/forgot", 302, 0, SITE + "/password/forgot", v.ua, 0.11, v.proto)
        out.ecs(t, self._auth_fields("password_reset_request", "success", v, c, session))
        self.vendor(out, rng, t + 0.2, "sendgrid", "POST", "/v3/mail/send", 202, _lognormal(rng, 120, 0.3))
        t += _lognormal(rng, 100.0, 0.5)
        token = _sid(rng)[:24]
        out.web(t, v.ip, "GET", f"/password/reset?token={token}", 200, 7304, "-", v.ua, 0.04, v.proto)
        t += _lognormal(rng, 25.0, 0.4)
        out.web(t, v.ip, "POST", "/password/reset", 302, 0, SITE + "/password/reset", v.ua, 0.21, v.proto)
        out.ecs(t, self._auth_fields("password_reset", "success", v, c, session))
        return t

    @staticmethod
    def _auth_fields(action: str, outcome: str, v: Visitor, c: Customer, session: str) -> dict[str, Any]:
        return {
            "event.dataset": "shop.auth", "event.kind": "event", "event.category": "authentication",
            "event.action": action, "event.outcome": outcome, "source.ip": v.ip,
            "user.name": c.email, "user.id": c.user_id, "user_agent.original": v.ua,
            "shop.session.id": session, "shop.device.id": v.device_id, "service.name": "storefront",
        }

    # ------------------------------------------------------------------ sessions

    def session(
        self, out: Out, rng: np.random.Generator, t: float, v: Visitor, *,
        sale: bool = False, promo: str | None = None, wants_login: bool = False,
    ) -> None:
        """One browsing session of ``v`` starting at ``t`` (all its lines are queued now)."""
        shop = self.shop
        c = v.customer
        sid = _sid(rng)
        logged_in = c is not None and rng.random() < 0.55
        ref = _REFERRERS[int(rng.choice(len(_REFERRERS), p=_REFERRER_P))][0]
        error_rate = 0.012 if sale else 0.002
        slow = 2.2 if sale else 1.0
        n_pages = min(1 + int(rng.geometric(0.12 if sale else 0.17)), 40)
        cart: list[tuple[Any, int]] = []
        add_p = 0.32 if sale else 0.13
        # Entry page.
        entry = rng.random()
        if sale:
            page = "/category/sale" if entry < 0.7 else "/"
            ref = f"https://mail.{SHOP_DOMAIN}/" if rng.random() < 0.6 else ref
        elif ref.startswith("https://www.google") and entry < 0.55:
            if rng.random() < 0.02:
                page = f"/products/{rng.choice(shop.retired_products)}"
            elif rng.random() < 0.03:
                page = f"/product/{shop.pick_product(rng).id}"  # old URL scheme -> 301
            else:
                page = f"/products/{shop.pick_product(rng).id}"
        elif entry < 0.75:
            page = "/"
        else:
            page = f"/category/{rng.choice(data.CATEGORIES)}"
        first = True
        current = shop.pick_product(rng)
        for _ in range(n_pages):
            if page.startswith("/product/"):
                out.web(t, v.ip, "GET", page, 301, 169, ref, v.ua, 0.002, v.proto)
                ref, page = SITE + page, page.replace("/product/", "/products/", 1)
                t += 0.05
            if page.startswith("/products/") and page.split("/")[2] in shop.retired_products:
                out.web(t, v.ip, "GET", page, 404, 8412, ref, v.ua, _lognormal(rng, 0.03, 0.3), v.proto)
                self._assets(out, rng, t + 0.05, v, page, first)
                first = False
                ref, page = SITE + page, "/"
                t += _lognormal(rng, 6.0, 0.5)
                continue
            size = int(rng.integers(28000, 64000))
            pt = t
            status = self._page(out, rng, pt, v, page, ref, first, size, slow, error_rate)
            first = False
            dwell = _lognormal(rng, 22.0, 0.9)
            t = pt + dwell
            if status != 200:
                ref = SITE + page
                continue
            if page.startswith("/products/"):
                pid = page.split("/")[2].split("?")[0]
                current = shop.product_by_id.get(pid, current)
                for k in range(1, current.images + 1):
                    out.web(pt + 0.15 + 0.08 * k, v.ip, "GET", f"/media/products/{current.id}/{k}.webp", 200,
                            int(rng.integers(38000, 190000)), SITE + page, v.ua, 0.001, v.proto)
                if rng.random() < 0.35:
                    out.web(pt + 0.4, v.ip, "GET", f"/api/recommendations?product={current.id}", 200,
                            int(rng.integers(2000, 6000)), SITE + page, v.ua, _lognormal(rng, 0.05, 0.4), v.proto)
                if rng.random() < add_p:
                    qty = 1 if rng.random() < 0.85 else int(rng.integers(2, 4))
                    cart.append((current, qty))
                    self._cart(out, rng, pt + 1.0 + float(rng.uniform(0.2, 0.9)) * dwell, v, sid, current, qty, "add_to_cart", page)
            if page.startswith("/search"):
                self.vendor(out, rng, pt + 0.01, "algolia", "POST", "/1/indexes/products/query", 200,
                            _lognormal(rng, 18, 0.4))
            ref = SITE + page
            # Next page.
            r = rng.random()
            if r < 0.45:
                page = f"/products/{shop.pick_product(rng).id}"
            elif r < 0.65:
                cat = current.category if rng.random() < 0.6 else str(rng.choice(data.CATEGORIES))
                page = f"/category/{cat}" + (f"?page={int(rng.integers(2, 6))}" if rng.random() < 0.25 else "")
            elif r < 0.8:
                words = current.name.split()
                q = " ".join(words[int(rng.integers(0, len(words))):]) if rng.random() < 0.7 else str(rng.choice(data.CATEGORIES)).replace("-", " ")
                page = f"/search?q={quote_plus(q)}"
            elif r < 0.88:
                page = "/"
            elif r < 0.93 and cart:
                page = "/cart"
            else:
                page = f"/products/{shop.pick_product(rng).id}"
        if rng.random() < 0.012:
            email = v.customer.email if v.customer else _throwaway(rng)
            emit_api_form(out, t, v, "/api/newsletter", f'{{"email":"{email}","source":"footer"}}', 201, ref, sid)
            t += _lognormal(rng, 6.0, 0.4)
        if c is not None and rng.random() < REVIEW_SHARE:
            self.review(out, rng, t, v, sid, current)
            t += _lognormal(rng, 6.0, 0.4)
        if cart and rng.random() < 0.15:
            product, qty = cart.pop()
            self._cart(out, rng, t, v, sid, product, qty, "remove_from_cart", "/cart")
            t += _lognormal(rng, 8.0, 0.5)
        if c is None:
            return
        # Account pages and changes.
        checkout_p = 0.72 if sale else 0.5
        will_checkout = bool(cart) and rng.random() < checkout_p
        visit_account = rng.random() < 0.08
        if (will_checkout or visit_account or wants_login) and not logged_in:
            t, logged_in = self.login(out, rng, t, v, sid)
        if visit_account and logged_in:
            self._page(out, rng, t, v, "/account", ref, False, 14200)
            t += _lognormal(rng, 15.0, 0.6)
            self._page(out, rng, t, v, "/account/orders", SITE + "/account", False, 18100)
            t += _lognormal(rng, 20.0, 0.6)
            if rng.random() < 0.12:
                self._account_change(out, rng, t, v, sid)
                t += _lognormal(rng, 20.0, 0.5)
        if will_checkout and logged_in:
            self.checkout(out, rng, t, v, sid, cart, sale=sale, promo=promo)
        elif logged_in and rng.random() < 0.04:
            out.web(t, v.ip, "POST", "/logout", 302, 0, ref, v.ua, 0.02, v.proto)
            out.ecs(t, self._auth_fields("logout", "success", v, c, sid))

    def _cart(self, out: Out, rng: np.random.Generator, t: float, v: Visitor, sid: str, product: Any,
              qty: int, action: str, page: str) -> None:
        c = v.customer
        method, path, status = ("POST", "/api/cart/items", 201) if action == "add_to_cart" else ("DELETE", f"/api/cart/items/{product.id}", 204)
        out.web(t, v.ip, method, path, status, 412 if status == 201 else 0, SITE + page, v.ua, _lognormal(rng, 0.04, 0.3), v.proto)
        rate = FX[c.currency] if c else 1.0
        out.ecs(t, {
            "event.dataset": "shop.cart", "event.kind": "event", "event.action": action,
            "event.outcome": "success", "source.ip": v.ip, "user.name": c.email if c else None,
            "user.id": c.user_id if c else None, "user_agent.original": v.ua,
            "shop.session.id": sid, "shop.device.id": v.device_id, "shop.product.id": product.id,
            "shop.product.price": round(product.price * rate, 2), "shop.cart.quantity": qty,
            "service.name": "storefront",
        })

    def _account_change(self, out: Out, rng: np.random.Generator, t: float, v: Visitor, sid: str) -> None:
        c = v.customer
        assert c is not None
        action = str(rng.choice(["address_add", "address_change", "phone_change", "password_change",
                                 "payment_method_add", "email_change"], p=[0.3, 0.25, 0.15, 0.12, 0.13, 0.05]))
        out.web(t, v.ip, "POST", f"/account/{action.replace('_', '-')}", 302, 0, SITE + "/account", v.ua,
                _lognormal(rng, 0.09, 0.4), v.proto)
        out.ecs(t, {
            "event.dataset": "shop.account", "event.kind": "event", "event.category": "iam",
            "event.action": action, "event.outcome": "success", "source.ip": v.ip,
            "user.name": c.email, "user.id": c.user_id, "user_agent.original": v.ua,
            "shop.session.id": sid, "shop.device.id": v.device_id, "service.name": "storefront",
        })

    def checkout(
        self, out: Out, rng: np.random.Generator, t: float, v: Visitor, sid: str,
        cart: list[tuple[Any, int]], *, sale: bool = False, promo: str | None = None,
    ) -> None:
        """Checkout, card authorization (with real decline reasons), order and follow-ups."""
        c = v.customer
        assert c is not None
        rate = FX[c.currency]
        items = sum(q for _, q in cart)
        subtotal = sum(p.price * q for p, q in cart) * (0.7 if sale else 1.0)
        shipping_eur = 0.0 if subtotal >= 50 else 4.95
        amount = round((subtotal + shipping_eur) * rate, 2)
        method = "standard" if rng.random() < 0.8 else str(rng.choice(["express", "pickup"]))
        order_id = f"NH-{int(rng.integers(10_000_000, 99_999_999))}"
        base = {
            "source.ip": v.ip, "user.name": c.email, "user.id": c.user_id,
            "user_agent.original": v.ua, "shop.session.id": sid, "shop.device.id": v.device_id,
            "service.name": "storefront",
        }
        self._page(out, rng, t, v, "/cart", SITE + "/", False, 21500)
        t += _lognormal(rng, 10.0, 0.5)
        self._page(out, rng, t, v, "/checkout", SITE + "/cart", False, 33100, slow=1.5)
        self.vendor(out, rng, t + 0.1, "dhl", "GET", f"/rates?country={c.country}", 200, _lognormal(rng, 160, 0.4))
        out.ecs(t + 0.2, {
            **base, "event.dataset": "shop.order", "event.kind": "event", "event.action": "checkout",
            "event.outcome": "success", "shop.order.id": order_id, "shop.order.amount": amount,
            "shop.order.currency": c.currency, "shop.order.item_count": items,
            "shop.shipping.country": c.country, "shop.shipping.method": method,
            "shop.promo.code": promo,
        })
        t += _lognormal(rng, 45.0, 0.5)
        out.web(t, v.ip, "POST", "/api/checkout/shipping", 200, 812, SITE + "/checkout", v.ua, _lognormal(rng, 0.08, 0.3), v.proto)
        t += _lognormal(rng, 30.0, 0.5)
        cards = list(c.cards)
        card = cards[int(rng.integers(0, len(cards)))]
        decline_p = 0.13 if sale else 0.06
        for attempt in range(3):
            code: str | None = None
            if card.is_expired:
                code = "expired_card"
            elif rng.random() < decline_p:
                weights = np.array([w * (2.5 if k == "insufficient_funds" and sale else 1.0) for k, w in data.DECLINES_CUSTOMER])
                code = str(rng.choice([k for k, _ in data.DECLINES_CUSTOMER], p=weights / weights.sum()))
            ok = code is None
            gateway_ms = _lognormal(rng, 420, 0.35)
            out.web(t, v.ip, "POST", "/api/checkout/payment", 200 if ok else 402, 356 if ok else 298,
                    SITE + "/checkout", v.ua, gateway_ms / 1000 + 0.05, v.proto)
            self.vendor(out, rng, t, "stripe", "POST", "/v1/payment_intents", 200 if ok else 402, gateway_ms)
            out.ecs(t, self._payment(base, "authorize", ok, code, amount, c.currency, card, order_id, c.country))
            if ok:
                break
            t += _lognormal(rng, 40.0, 0.5)
            if code == "incorrect_cvc" and attempt == 0:
                continue  # retype the code
            others = [k for k in cards if k is not card]
            if others and rng.random() < 0.7:
                card = others[0]
                continue
            return  # gives up
        t += 0.8
        out.ecs(t, {
            **base, "event.dataset": "shop.order", "event.kind": "event", "event.action": "order_placed",
            "event.outcome": "success", "shop.order.id": order_id, "shop.order.amount": amount,
            "shop.order.currency": c.currency, "shop.order.item_count": items,
            "shop.shipping.country": c.country, "shop.billing.country": card.country,
            "shop.shipping.address_hash": c.address_hash, "shop.shipping.method": method,
            "shop.promo.code": promo, "shop.payment.method": "card",
        })
        out.web(t, v.ip, "GET", f"/checkout/confirmation/{order_id}", 200, 24100, SITE + "/checkout", v.ua, 0.07, v.proto)
        self.vendor(out, rng, t + 1.5, "sendgrid", "POST", "/v3/mail/send", 202, _lognormal(rng, 110, 0.3))
        self.vendor(out, rng, t + 2.0, "dhl", "POST", "/parcel/de/shipping/v2/orders", 200, _lognormal(rng, 380, 0.4))
        later = t + float(rng.uniform(120, 1800))
        out.ecs(later, self._payment({"service.name": "payments", "user.name": c.email, "user.id": c.user_id},
                                     "capture", True, None, amount, c.currency, card, order_id, c.country))
        if rng.random() < 0.01:
            out.ecs(later + float(rng.uniform(60, 600)), {
                **base, "event.dataset": "shop.order", "event.kind": "event",
                "event.action": "order_cancelled", "event.outcome": "success", "shop.order.id": order_id,
                "shop.order.amount": amount, "shop.order.currency": c.currency,
            })

    @staticmethod
    def _payment(base: dict[str, Any], action: str, ok: bool, code: str | None, amount: float,
                 currency: str, card: Card, order_id: str, billing: str) -> dict[str, Any]:
        return {
            **base, "event.dataset": "shop.payment", "event.kind": "event", "event.category": "payment",
            "event.action": action, "event.outcome": "success" if ok else "failure",
            "event.reason": code, "shop.payment.amount": amount, "shop.payment.currency": currency,
            "shop.payment.method": "card", "shop.payment.card.bin": card.bin,
            "shop.payment.card.last4": card.last4, "shop.payment.card.fingerprint": card.fingerprint,
            "shop.payment.card.country": card.country, "shop.payment.decline_code": code,
            "shop.order.id": order_id, "shop.billing.country": billing,
        }

    # ------------------------------------------------------------------ background

    def minute(self, out: Out, rng: np.random.Generator, t0: float, rate: float) -> None:
        """Everything that is not a shopper in the minute from ``t0``: staff, admins, noise."""
        local = time_of_day(t0 + SHOP_OFFSET * 3600)
        weekday = int(((t0 + SHOP_OFFSET * 3600) // 86400 + 3) % 7)  # 0 = Monday
        office = weekday < 5 and 8 <= local < 18
        if office:
            for _ in range(int(rng.poisson(0.5))):
                self.data_access(out, rng, t0 + float(rng.uniform(0, 60)))
            if rng.random() < 0.03:
                self._admin_ssh(out, rng, t0 + float(rng.uniform(0, 60)), str(rng.choice(_ADMINS[1:])), self.office_ip)
        if rng.random() < 1 / 120:
            self._admin_ssh(out, rng, t0 + float(rng.uniform(0, 60)), "deploy", self.ci_ip)
        for _ in range(int(rng.poisson(0.15))):
            self.ssh_noise(out, rng, t0 + float(rng.uniform(0, 60)))
        if int(t0 // 60) % 5 == 0:
            ip = _UPTIME_IPS[int(t0 // 300) % len(_UPTIME_IPS)]
            out.web(t0 + 0.4, ip, "HEAD", "/", 200, 0, "https://www.uptimerobot.com/", _UPTIME_UA, 0.021, "HTTP/1.1")
        if rate > 0:
            self.vendor(out, rng, t0 + 59.0, "google-analytics", "POST", "/mp/collect", 204, _lognormal(rng, 60, 0.3))
        # Internet background radiation against the public addresses: rejected flows.
        for _ in range(int(rng.poisson(18))):
            src = self.shop.datacenter.one(rng) if rng.random() < 0.6 else self.shop.home_ip(rng, self.shop.pick_country(rng))
            port = int(rng.choice([23, 445, 3389, 8080, 5900, 6379, 1433, 3306, 8443, 2375, 9200, 5432, 81, 8888]))
            eni, dst = (LB_ENI, LB_IP) if rng.random() < 0.6 else (BASTION_ENI, BASTION_IP)
            out.flow(t0 + float(rng.uniform(0, 60)), eni, src, dst, int(rng.integers(1024, 65535)), port, 6,
                     int(rng.integers(1, 3)), int(rng.integers(40, 120)), "REJECT")

    def data_access(self, out: Out, rng: np.random.Generator, t: float) -> None:
        """One staff member reading customer data in the back office (search, bulk read, export)."""
        staff = self.shop.staff[int(rng.integers(0, len(self.shop.staff)))]
        action = str(rng.choice(["search", "bulk_read", "export"], p=[0.78, 0.2, 0.02]))
        obj = str(rng.choice(["customers", "orders", "payments", "addresses", "returns"], p=[0.35, 0.4, 0.1, 0.1, 0.05]))
        records = {"search": int(rng.integers(1, 25)), "bulk_read": int(rng.integers(20, 300)),
                   "export": int(rng.integers(100, 2500))}[action]
        out.ecs(t, {
            "event.dataset": "shop.data_access", "event.kind": "event", "event.category": "database",
            "event.action": action, "event.outcome": "success", "source.ip": self.staff_ip,
            "user.name": staff.email, "user.id": staff.user_id, "user.roles": staff.role,
            "shop.data.object": obj, "shop.data.records": records, "service.name": "backoffice",
            "host.name": "backoffice-1",
        })

    def _admin_ssh(self, out: Out, rng: np.random.Generator, t: float, user: str, ip: str) -> None:
        host = str(rng.choice(_SSH_HOSTS))
        pid = int(rng.integers(2000, 65000))
        port = int(rng.integers(32768, 61000))
        key = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), 43))
        out.syslog(t, host, "sshd", pid, f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{key}")
        out.syslog(t + 0.01, host, "sshd", pid, f"pam_unix(sshd:session): session opened for user {user}(uid={1001 + _ADMINS.index(user)}) by (uid=0)")
        dur = _lognormal(rng, 240.0, 0.8)
        out.syslog(t + dur, host, "sshd", pid, f"Received disconnect from {ip} port {port}:11: disconnected by user")
        out.syslog(t + dur + 0.01, host, "sshd", pid, f"pam_unix(sshd:session): session closed for user {user}")
        out.flow(t, BASTION_ENI, ip, BASTION_IP, port, 22, 6, int(rng.integers(40, 400)), int(rng.integers(8000, 90000)), "ACCEPT")

    def ssh_noise(self, out: Out, rng: np.random.Generator, t: float) -> None:
        """A passing internet scanner: one to four SSH attempts, then it moves on."""
        ip = self.shop.datacenter.one(rng) if rng.random() < 0.7 else self.shop.home_ip(rng, self.shop.pick_country(rng))
        host = str(rng.choice(_SSH_HOSTS))
        for _ in range(int(rng.integers(1, 5))):
            user = str(rng.choice(data.SSH_USERNAMES[:12]))
            ssh_failure(out, rng, t, host, ip, user)
            t += float(rng.uniform(1.0, 8.0))


def ssh_failure(out: Out, rng: np.random.Generator, t: float, host: str, ip: str, user: str) -> None:
    """One failed SSH password login as OpenSSH logs it (invalid users get two lines)."""
    pid = int(rng.integers(2000, 65000))
    port = int(rng.integers(32768, 65000))
    if user == "root":
        out.syslog(t, host, "sshd", pid, f"Failed password for root from {ip} port {port} ssh2")
        out.syslog(t + 0.8, host, "sshd", pid, f"Connection closed by authenticating user root {ip} port {port} [preauth]")
    else:
        out.syslog(t, host, "sshd", pid, f"Invalid user {user} from {ip} port {port}")
        out.syslog(t + 1.7, host, "sshd", pid, f"Failed password for invalid user {user} from {ip} port {port} ssh2")
        out.syslog(t + 2.1, host, "sshd", pid, f"Connection closed by invalid user {user} {ip} port {port} [preauth]")
    out.flow(t, BASTION_ENI, ip, BASTION_IP, port, 22, 6, int(rng.integers(10, 24)), int(rng.integers(2200, 5200)), "ACCEPT")


def time_of_day(ts: float) -> float:
    """Hours since midnight (UTC) of an epoch second."""
    return (ts % 86400) / 3600.0




def _throwaway(rng: np.random.Generator) -> str:
    name = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(6, 11))))
    return f"{name}{int(rng.integers(1, 999))}@{rng.choice(['gmail.com', 'outlook.com', 'yahoo.com'])}"


def _typo(rng: np.random.Generator, email: str) -> str:
    local, _, domain = email.partition("@")
    swaps = {"gmail.com": "gmial.com", "web.de": "web.d", "gmx.de": "gmx.e", "outlook.com": "outlok.com",
             "hotmail.com": "hotmial.com", "yahoo.com": "yaho.com", "icloud.com": "icloud.co"}
    if domain in swaps and rng.random() < 0.6:
        return f"{local}@{swaps[domain]}"
    i = int(rng.integers(0, max(len(local) - 1, 1)))
    return f"{local[:i]}{local[i + 1:]}@{domain}" if len(local) > 2 else f"{local}x@{domain}"
