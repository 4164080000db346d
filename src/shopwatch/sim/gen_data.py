"""Data leaving the shop: a staff account's exports and customer data sent to a vendor
(loud and low-and-slow forms of each)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import numpy as np

from shopwatch.sim.draw import dc_ips, residential_ips, spread
from shopwatch.sim.emit import APP_ENI, APP_IP, Out
from shopwatch.sim.ranges import draw
from shopwatch.sim.traffic import Traffic
from shopwatch.sim.world import SHOP_OFFSET, Shop

if TYPE_CHECKING:
    from shopwatch.sim.campaigns import Campaign, Generator

__all__ = ["GENERATORS", "local_hour"]

_OBJECTS: Final = ("customers", "orders", "payments", "addresses")


def local_hour(ts: float) -> float:
    """Hour of day at the shop's office (standard time)."""
    return ((ts + SHOP_OFFSET * 3600) % 86400) / 3600


def _data_event(
    out: Out,
    t: float,
    ip: str,
    staff_email: str,
    staff_id: str,
    role: str,
    action: str,
    obj: str,
    records: int,
) -> None:
    out.ecs(
        t,
        {
            "event.dataset": "shop.data_access",
            "event.kind": "event",
            "event.category": "database",
            "event.action": action,
            "event.outcome": "success",
            "source.ip": ip,
            "user.name": staff_email,
            "user.id": staff_id,
            "user.roles": role,
            "shop.data.object": obj,
            "shop.data.records": records,
            "service.name": "backoffice",
            "host.name": "backoffice-1",
        },
    )


def _staff_exfiltration(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    staff = shop.staff[int(rng.integers(0, len(shop.staff)))]
    obj = str(rng.choice(_OBJECTS))
    c.add("user.name", staff.email)
    c.add("host.name", "backoffice-1")
    if c.low:  # repeated mid-size exports from the office, in working hours, over days
        natural = c.last(p["duration_h"] * 3600)
        n = int(p["exports"])
        times = spread(rng, c.start, natural, n)
        sizes = (p["records"] * np.exp(rng.normal(0.0, 0.3, n))).astype(int)
        shown = 0
        for t, size in zip(times, sizes, strict=True):
            if t >= c.end:
                break
            _data_event(
                out,
                float(t),
                tr.staff_ip,
                staff.email,
                staff.user_id,
                staff.role,
                "export",
                obj,
                int(size),
            )
            shown += 1
        c.add("source.ip", tr.staff_ip)
        c.params.update(
            {"exports": n, "visible_exports": shown, "records": int(p["records"]), "object": obj}
        )
        return
    # One large export at an odd hour from a network the account never used (a VPN exit or
    # a home line abroad): the first moment the run offers outside 07:00-20:00 office time.
    ip = (
        dc_ips(rng, shop, 1)[0]
        if rng.random() < 0.6
        else residential_ips(rng, shop, 1, str(rng.choice(["US", "PL", "ES"])))[0]
    )
    t = c.start + float(rng.uniform(0, 600))
    limit = min(c.end, c.start + 86400)
    odd = t
    while odd < limit and 7 <= local_hour(odd) < 20:
        odd += 900
    is_odd = odd < limit
    t = odd + float(rng.uniform(0, 600)) if is_odd else t
    records = int(p["records"])
    if t < c.end:
        _data_event(
            out,
            t,
            ip,
            staff.email,
            staff.user_id,
            staff.role,
            "search",
            obj,
            int(rng.integers(1, 30)),
        )
        _data_event(
            out, t + 240, ip, staff.email, staff.user_id, staff.role, "export", obj, records
        )
    c.last(t - c.start + 300)
    c.add("source.ip", ip)
    c.params.update(
        {
            "records": records,
            "object": obj,
            "odd_hour": is_odd,
            "local_hour": round(local_hour(t), 2),
        }
    )


#: Third parties the shop never approved: (name, domain, address).
_NEW_VENDORS: Final = (
    ("pixelpulse", "collect.pixelpulse.io", "104.18.22.51"),
    ("chatnest", "api.chatnest.app", "172.67.140.9"),
    ("adsync", "t.adsync-cdn.net", "185.199.110.17"),
    ("reviewloop", "ingest.reviewloop.co", "76.76.21.61"),
)


def _vendor_data_leak(
    out: Out, rng: np.random.Generator, c: Campaign, shop: Shop, tr: Traffic
) -> None:
    p = draw(rng, c.kind, c.variant, c.params)
    name, domain, address = _NEW_VENDORS[int(rng.integers(0, len(_NEW_VENDORS)))]
    natural = c.last((p["duration_h"] * 3600) if c.low else (p["duration_min"] * 60))
    n = int(rng.poisson(p["calls_per_min"] * (min(natural, c.end) - c.start) / 60))
    total = int(p["calls_per_min"] * (natural - c.start) / 60)
    times = spread(rng, c.start, min(natural, c.end), n)
    who = rng.integers(0, len(shop.customers), n)
    for t, i in zip(times, who, strict=True):
        cust = shop.customers[int(i)]
        order_id = f"NH-{int(rng.integers(10_000_000, 99_999_999))}"
        query = f"ev=purchase&oid={order_id}&em={quote(cust.email)}&cc={cust.country}&uid={cust.user_id}"
        path = "/v1/events"
        req = int(p["request_kb"] * 1024 * float(np.exp(rng.normal(0.0, 0.3))))
        resp = int(rng.integers(80, 400))
        ms = float(np.exp(rng.normal(np.log(90), 0.4)))
        out.ecs(
            float(t),
            {
                "event.dataset": "vendor.api",
                "event.kind": "event",
                "event.category": "web",
                "event.action": "request",
                "event.outcome": "success",
                "event.duration": int(ms * 1_000_000),
                "source.ip": APP_IP,
                "destination.ip": address,
                "destination.port": 443,
                "destination.domain": domain,
                "url.domain": domain,
                "url.full": f"https://{domain}{path}?{query}",
                "url.path": path,
                "url.query": query,
                "http.request.method": "POST",
                "http.response.status_code": 204,
                "http.request.bytes": req,
                "http.response.bytes": resp,
                "shop.vendor.name": name,
                "host.name": "app-1",
                "service.name": "shop-api",
            },
        )
        out.flow(
            float(t),
            APP_ENI,
            APP_IP,
            address,
            40000 + int(rng.integers(0, 20000)),
            443,
            6,
            10 + (req + resp) // 1380,
            req + resp + 1200,
            "ACCEPT",
        )
    c.add("shop.vendor.name", name)
    c.add("host.name", "app-1")
    c.params.update(
        {
            "vendor": name,
            "domain": domain,
            "calls": total,
            "visible_calls": n,
            "calls_per_min": round(p["calls_per_min"], 3),
            "request_kb": round(p["request_kb"], 2),
        }
    )


GENERATORS: Final[dict[str, Generator]] = {
    "staff_exfiltration": _staff_exfiltration,
    "vendor_data_leak": _vendor_data_leak,
}
