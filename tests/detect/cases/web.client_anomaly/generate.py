"""Writes fires.log.gz and benign.log.gz of the web.client_anomaly case (seeded, repeatable).

    python tests/detect/cases/web.client_anomaly/generate.py

Both files start with the same five hours of a small shop's clients (``LEARN_SLOTS`` ten-minute
slots, 60-90 active clients each): customers browsing in a browser (pages with their images,
scripts and style sheets, a search now and then, a cart or a login POST, a missing favicon),
shoppers of the mobile app (JSON API calls with query strings, small answers, no assets) and
a few monitoring probes. Requests per window are log-normal (median 22 for browsers, 30 for
app sessions), as in the shared real access logs, where most addresses send under a hundred
requests in ten minutes. Then, in fires.log.gz, the attacking variants of :func:`fires`, each
from its own address; in benign.log.gz an hour more of ordinary clients with the look-alikes
of :func:`benign`.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
START = datetime(
    2026, 3, 21, 6, 0, tzinfo=UTC
)  # a day no other case uses: the cases are also one stream
LEARN_SLOTS = 30
SLOT = timedelta(minutes=10)
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
APP_UA = "NordhavenShop/4.12.1 (iPhone; iOS 18.1; Scale/3.00)"
SITE = "https://shop.example"
Line = tuple[datetime, str]


def log_line(
    t: datetime,
    ip: str,
    method: str,
    path: str,
    status: int,
    size: int,
    ua: str,
    referrer: str = "-",
) -> Line:
    stamp = t.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return t, f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {size} "{referrer}" "{ua}"'


def times(rng: np.random.Generator, start: datetime, n: int) -> list[datetime]:
    offsets = np.sort(rng.uniform(0, SLOT.total_seconds() - 1, n))
    return [start + timedelta(seconds=float(o)) for o in offsets]


def browser(
    rng: np.random.Generator, ip: str, start: datetime, scale: float = 1.0, uas: int = 1
) -> list[Line]:
    """A customer in a browser: pages, each with its assets; a search, a POST, a 404 now and then."""
    n = max(int(rng.lognormal(np.log(22 * scale), 0.5)), 4)
    agents = [BROWSERS[int(i)] for i in rng.choice(len(BROWSERS), uas, replace=False)]
    out: list[Line] = []
    for t in times(rng, start, n):
        ua = agents[int(rng.integers(0, len(agents)))]
        r = rng.random()
        if r < 0.30:
            path = f"/products/{int(rng.integers(1000, 9000))}"
            came_from = SITE + f"/category/{int(rng.integers(1, 12))}"  # a click in the shop
            out.append(
                log_line(
                    t, ip, "GET", path, 200, int(rng.lognormal(np.log(48_000), 0.3)), ua, came_from
                )
            )
        elif r < 0.36:
            q = ["boots", "jacket", "rain+coat", "wool+socks", "tent"][int(rng.integers(0, 5))]
            out.append(
                log_line(
                    t,
                    ip,
                    "GET",
                    f"/search?q={q}",
                    200,
                    int(rng.lognormal(np.log(36_000), 0.3)),
                    ua,
                    SITE + "/",
                )
            )
        elif r < 0.40:
            path = ["/cart/add", "/login", "/cart/update"][int(rng.integers(0, 3))]
            out.append(log_line(t, ip, "POST", path, 302, 0, ua, SITE + "/products/1"))
        elif r < 0.41:
            out.append(log_line(t, ip, "GET", "/favicon.ico", 404, 162, ua))
        else:
            ext = ["webp", "js", "css", "woff2", "webp", "webp"][int(rng.integers(0, 6))]
            path = f"/static/{int(rng.integers(1, 400))}.{ext}"
            out.append(
                log_line(
                    t,
                    ip,
                    "GET",
                    path,
                    200,
                    int(rng.lognormal(np.log(40_000), 1.0)),
                    ua,
                    SITE + "/products/1",
                )
            )
    return out


def app(rng: np.random.Generator, ip: str, start: datetime) -> list[Line]:
    """A shopper in the mobile app: JSON calls, most with a query string."""
    n = max(int(rng.lognormal(np.log(30), 0.5)), 4)
    out: list[Line] = []
    for t in times(rng, start, n):
        r = rng.random()
        if r < 0.6:
            path = f"/api/v2/products?category={int(rng.integers(1, 12))}&page={int(rng.integers(1, 3))}"
            size = int(rng.lognormal(np.log(9_000), 0.4))
        elif r < 0.9:
            path = f"/api/v2/products/{int(rng.integers(1000, 9000))}"
            size = int(rng.lognormal(np.log(4_000), 0.4))
        else:
            out.append(log_line(t, ip, "POST", "/api/v2/cart", 200, 900, APP_UA))
            continue
        out.append(log_line(t, ip, "GET", path, 200, size, APP_UA))
    return out


def probe(rng: np.random.Generator, ip: str, start: datetime) -> list[Line]:
    """An uptime probe: HEAD / every thirty seconds."""
    ua = "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"
    return [
        log_line(start + timedelta(seconds=30 * i), ip, "HEAD", "/", 200, 0, ua) for i in range(20)
    ]


def learning(rng: np.random.Generator) -> list[Line]:
    """Five hours of ordinary clients (addresses from a pool, so many come back)."""
    pool = [
        f"{int(a)}.{int(b)}.{int(c)}.{int(d)}"
        for a, b, c, d in rng.integers([77, 0, 0, 1], [95, 256, 256, 255], (900, 4))
    ]
    out: list[Line] = []
    for slot in range(LEARN_SLOTS):
        start = START + slot * SLOT
        active = int(rng.integers(60, 91))
        for k, i in enumerate(rng.choice(len(pool), active, replace=False)):
            ip = pool[int(i)]
            kind = rng.random()
            if kind < 0.75:
                out += browser(rng, ip, start)
            elif kind < 0.97:
                out += app(rng, ip, start)
            elif k % 2 == 0:
                out += probe(rng, ip, start)
    out += probe(rng, "69.162.124.226", START)
    return out


def later(rng: np.random.Generator, start: datetime) -> list[Line]:
    """The last hour's ordinary clients, beside the variants."""
    out: list[Line] = []
    for slot in range(6):
        for j in range(int(rng.integers(60, 91))):
            ip = f"81.{slot + 10}.{j // 200}.{j % 200 + 1}"
            out += (
                browser(rng, ip, start + slot * SLOT)
                if rng.random() < 0.8
                else app(rng, ip, start + slot * SLOT)
            )
    return out


def fires(rng: np.random.Generator, at: datetime) -> list[Line]:
    """The variants, each from its own address, in the hour after the learning."""
    ua = BROWSERS[0]
    out: list[Line] = []
    # slow-scanner: 45 requests in ten minutes, most for files that are not there
    probes = [
        "/.env",
        "/.git/config",
        "/wp-login.php",
        "/phpinfo.php",
        "/admin/config.php",
        "/backup.zip",
        "/server-status",
        "/.aws/credentials",
        "/config.json",
    ]
    for i, t in enumerate(times(rng, at, 45)):
        path = probes[i % len(probes)] if i % 6 else "/"
        status = 200 if path == "/" else 404
        out.append(
            log_line(t, "45.148.10.7", "GET", path, status, 48_000 if status == 200 else 162, ua)
        )
    # login-stuffer: 28 POSTs to /login in ten minutes, every one refused
    for t in times(rng, at + 2 * SLOT, 28):
        out.append(log_line(t, "20.26.86.106", "POST", "/login", 401, 310, ua, SITE + "/login"))
    # card-tester: 24 payment attempts in ten minutes, most declined, tiny answers
    for i, t in enumerate(times(rng, at + 3 * SLOT, 24)):
        status = 402 if i % 5 else 200
        out.append(
            log_line(
                t, "3.89.86.100", "POST", "/checkout/payment", status, 290, ua, SITE + "/checkout"
            )
        )
    return out


def benign(rng: np.random.Generator, at: datetime) -> list[Line]:
    """Look-alikes: unusual for one customer, not unlike the shop's customers."""
    out: list[Line] = []
    out += browser(rng, "92.170.4.8", at, scale=2.5)  # heavy-shopper: a long session
    out += browser(rng, "195.82.30.4", at + SLOT, scale=3.0, uas=4)  # office-nat: four people
    broken = browser(rng, "88.160.2.77", at + 2 * SLOT)  # broken-link: three missing images
    for k in range(3):
        t = at + 2 * SLOT + timedelta(seconds=60 * k + 5)
        broken.append(
            log_line(
                t,
                "88.160.2.77",
                "GET",
                f"/static/old-{k}.webp",
                404,
                162,
                BROWSERS[1],
                SITE + "/products/1",
            )
        )
    out += broken
    out += app(rng, "176.130.8.12", at + 3 * SLOT)  # app-user: a long app session
    out += app(rng, "176.130.8.12", at + 4 * SLOT)
    return out


def write(name: str, lines: list[Line]) -> int:
    lines.sort(key=lambda x: x[0])
    text = "".join(line + "\n" for _, line in lines).encode()
    (HERE / name).write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    return len(lines)


def main() -> None:
    base = learning(np.random.default_rng(20260314))
    at = START + LEARN_SLOTS * SLOT
    rest = later(np.random.default_rng(7), at)
    n = write("fires.log.gz", base + fires(np.random.default_rng(11), at))
    m = write("benign.log.gz", base + benign(np.random.default_rng(12), at) + rest)
    print(f"learning lines: {len(base)}; fires.log.gz {n} lines, benign.log.gz {m} lines")


if __name__ == "__main__":
    main()
