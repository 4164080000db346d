"""Login outcomes read from access logs, per shop platform, as each platform answers.

Every case is a few real access-log lines parsed by the nginx parser and read by the
shipped platform files; the first POST of each case is the login under test.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.enrich.logins import LoginReader
from shopwatch.enrich.platforms import load_platforms, select_platforms
from shopwatch.parse.base import ParseContext
from shopwatch.parse.nginx import parse_access

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.5"


def line(
    second: int, request: str, status: int, *, ip: str = "198.51.100.7", ua: str = CHROME
) -> str:
    """One combined-format line at 09:00:<second> on 14 March 2026."""
    minute, sec = divmod(second, 60)
    when = f"14/Mar/2026:09:{minute:02d}:{sec:02d} +0000"
    return f'{ip} - - [{when}] "{request} HTTP/1.1" {status} 512 "-" "{ua}"'


def parse(*lines: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"line": list(lines), "line_no": list(range(1, len(lines) + 1))},
        schema={"line": pl.String, "line_no": pl.Int64},
    )
    parsed = parse_access(frame, ParseContext(source="access.log"))
    assert parsed.rejects.height == 0
    return parsed.batch


def reader(*platforms: str, max_pending: int = 10_000) -> LoginReader:
    chosen = select_platforms(load_platforms(), list(platforms) or None)
    return LoginReader(chosen, max_pending=max_pending)


def first_post(*lines: str, platforms: tuple[str, ...] = ()) -> dict[str, object]:
    """The login columns of the first POST once the whole stream is read."""
    out = reader(*platforms).read_all(parse(*lines))
    row = out.filter(pl.col("http.request.method") == "POST").row(0, named=True)
    return {k: row[k] for k in ("event.action", "event.outcome", "shop.platform", "event.reason")}


def login(outcome: str, platform: str, reason: str | None = None) -> dict[str, object]:
    return {
        "event.action": "login",
        "event.outcome": outcome,
        "shop.platform": platform,
        "event.reason": reason,
    }


NOT_A_LOGIN = {
    "event.action": "request",
    "event.outcome": None,
    "shop.platform": None,
    "event.reason": None,
}

MAGENTO_POST = "POST /customer/account/loginPost/"

CASES = {
    # WooCommerce: the My account form and wp-login.php redirect on success, render again on failure
    "woocommerce-my-account-redirect-is-success": (
        [line(0, "POST /my-account/", 302)],
        login("success", "woocommerce"),
    ),
    "woocommerce-my-account-rendered-again-is-failure": (
        [line(0, "POST /my-account/", 200)],
        login("failure", "woocommerce"),
    ),
    "woocommerce-shop-in-a-folder": (
        [line(0, "POST /shop/my-account/", 200)],
        login("failure", "woocommerce"),
    ),
    "woocommerce-wp-login-redirect-is-success": (
        [line(0, "POST /wp-login.php", 302)],
        login("success", "woocommerce"),
    ),
    "woocommerce-wp-login-rendered-again-is-failure": (
        [line(0, "POST /wp-login.php?redirect_to=%2Fwp-admin%2F", 200)],
        login("failure", "woocommerce"),
    ),
    "woocommerce-wp-login-refused-by-a-firewall-is-failure": (
        [line(0, "POST /wp-login.php", 403)],
        login("failure", "woocommerce"),
    ),
    "woocommerce-wp-login-password-reset-is-no-login": (
        [line(0, "POST /wp-login.php?action=lostpassword", 302)],
        NOT_A_LOGIN,
    ),
    "woocommerce-xmlrpc-answers-200-either-way": (
        [line(0, "POST /xmlrpc.php", 200)],
        login("unknown", "woocommerce"),
    ),
    # Magento: a redirect whatever the password; the next request of the client tells
    "magento-redirect-to-the-account-is-success": (
        [line(0, MAGENTO_POST, 302), line(1, "GET /customer/account/", 200)],
        login("success", "magento"),
    ),
    "magento-redirect-back-to-the-login-page-is-failure": (
        [line(0, MAGENTO_POST, 302), line(1, "GET /customer/account/login/", 200)],
        login("failure", "magento"),
    ),
    "magento-account-page-bouncing-a-stranger-is-failure": (
        [line(0, MAGENTO_POST, 302), line(1, "GET /customer/account/", 302)],
        login("failure", "magento"),
    ),
    "magento-assets-and-section-loads-are-not-the-next-request": (
        [
            line(0, MAGENTO_POST, 302),
            line(0, "GET /static/version1/frontend/Magento/luma/en_US/css/styles-m.css", 200),
            line(1, "GET /customer/section/load/?sections=cart", 200),
            line(1, "GET /customer/account/login/referer/aHR0cHM6Ly9zaG9w/", 200),
        ],
        login("failure", "magento"),
    ),
    "magento-store-code-and-referer-in-the-path": (
        [
            line(0, "POST /de/customer/account/loginPost/referer/aHR0cHM6/", 302),
            line(1, "GET /de/customer/account/", 200),
        ],
        login("success", "magento"),
    ),
    "magento-same-second-page-before-the-post-is-not-its-follow-up": (
        [
            line(0, "GET /customer/account/", 200),
            line(0, MAGENTO_POST, 302),
            line(1, "GET /customer/account/login/", 200),
        ],
        login("failure", "magento"),
    ),
    "magento-other-clients-requests-do-not-count": (
        [
            line(0, MAGENTO_POST, 302),
            line(1, "GET /customer/account/", 200, ip="198.51.100.8"),
            line(1, "GET /customer/account/", 200, ua=SAFARI),
            line(2, "GET /customer/account/login/", 200),
        ],
        login("failure", "magento"),
    ),
    "magento-redirect-not-followed-is-unknown": (
        [line(0, MAGENTO_POST, 302)],
        login("unknown", "magento"),
    ),
    "magento-posting-again-instead-of-following-is-unknown": (
        [
            line(0, MAGENTO_POST, 302),
            line(1, MAGENTO_POST, 302),
            line(2, "GET /customer/account/", 200),
        ],
        login("unknown", "magento"),
    ),
    "magento-next-request-too-late-is-unknown": (
        [line(0, MAGENTO_POST, 302), line(9, "GET /customer/account/login/", 200)],
        login("unknown", "magento"),
    ),
    "magento-elsewhere-is-unknown": (
        [line(0, MAGENTO_POST, 302), line(1, "GET /checkout/cart/", 200)],
        login("unknown", "magento"),
    ),
    "magento-rest-token-granted-is-success": (
        [line(0, "POST /rest/default/V1/integration/customer/token", 200)],
        login("success", "magento"),
    ),
    "magento-rest-token-refused-is-failure": (
        [line(0, "POST /rest/V1/integration/customer/token", 401)],
        login("failure", "magento"),
    ),
    # Shopware 6: the login page rendered again is a failure, a redirect elsewhere a success
    "shopware-rendered-again-is-failure": (
        [line(0, "POST /account/login", 200)],
        login("failure", "shopware"),
    ),
    "shopware-redirect-to-the-account-is-success": (
        [line(0, "POST /de-de/account/login", 302), line(1, "GET /de-de/account", 200)],
        login("success", "shopware"),
    ),
    "shopware-redirect-not-followed-is-success": (
        [line(0, "POST /account/login", 302)],
        login("success", "shopware"),
    ),
    "shopware-redirect-back-to-the-login-page-is-failure": (
        [line(0, "POST /account/login", 302), line(1, "GET /account/login", 200)],
        login("failure", "shopware"),
    ),
    "shopware-store-api-token-is-success": (
        [line(0, "POST /store-api/account/login", 200)],
        login("success", "shopware"),
    ),
    "shopware-store-api-refusal-is-failure": (
        [line(0, "POST /store-api/account/login", 401)],
        login("failure", "shopware"),
    ),
    "shopware-store-api-throttled": (
        [line(0, "POST /store-api/account/login", 429)],
        login("failure", "shopware", "throttled"),
    ),
    # PrestaShop: a redirect after a good password, the form again after a bad one
    "prestashop-redirect-is-success": (
        [line(0, "POST /login?back=my-account", 302)],
        login("success", "prestashop"),
    ),
    "prestashop-rendered-again-is-failure": (
        [line(0, "POST /fr/login?back=my-account", 200)],
        login("failure", "prestashop"),
    ),
    "prestashop-controller-rendered-again-is-failure": (
        [line(0, "POST /index.php?controller=authentication&back=my-account", 200)],
        login("failure", "prestashop"),
    ),
    "prestashop-controller-redirect-is-success": (
        [line(0, "POST /index.php?back=my-account&controller=authentication", 302)],
        login("success", "prestashop"),
    ),
    "prestashop-registration-is-no-login": (
        [line(0, "POST /login?create_account=1", 200)],
        NOT_A_LOGIN,
    ),
    "prestashop-other-controllers-are-no-login": (
        [line(0, "POST /index.php?controller=cart", 200)],
        NOT_A_LOGIN,
    ),
    # Generic JSON APIs
    "api-200-is-success": ([line(0, "POST /api/v1/auth/login", 200)], login("success", "api")),
    "api-201-is-success": ([line(0, "POST /api/session", 201)], login("success", "api")),
    "api-204-is-success": ([line(0, "POST /v2/sign-in", 204)], login("success", "api")),
    "api-401-is-failure": ([line(0, "POST /oauth/token", 401)], login("failure", "api")),
    "api-403-is-failure": ([line(0, "POST /Account/Logon", 403)], login("failure", "api")),
    "api-429-is-throttled": (
        [line(0, "POST /api/authenticate", 429)],
        login("failure", "api", "throttled"),
    ),
    "api-redirect-is-unknown": ([line(0, "POST /users/sign_in", 302)], login("unknown", "api")),
    "api-bad-request-is-unknown": ([line(0, "POST /oauth/token", 400)], login("unknown", "api")),
    "logout-is-no-login": ([line(0, "POST /logout", 302)], NOT_A_LOGIN),
    "authors-page-is-no-login": ([line(0, "POST /authors/new", 401)], NOT_A_LOGIN),
}


@pytest.mark.parametrize(("lines", "expected"), list(CASES.values()), ids=list(CASES))
def test_platform_reads_the_login(lines: list[str], expected: dict[str, object]) -> None:
    assert first_post(*lines) == expected


def test_a_get_of_a_login_page_is_no_login() -> None:
    out = reader().read_all(
        parse(line(0, "GET /customer/account/login/", 200), line(1, "GET /login", 200))
    )
    assert out["event.action"].to_list() == ["request", "request"]


def test_only_the_chosen_platforms_read() -> None:
    post = line(0, "POST /login", 200)
    assert first_post(post) == login("failure", "prestashop")
    assert first_post(post, platforms=("api",)) == login("success", "api")
    assert first_post(line(0, "POST /my-account/", 200), platforms=("magento",)) == NOT_A_LOGIN


def test_events_that_name_their_own_action_are_left_alone() -> None:
    """A shop's own auth event with a login path keeps what the shop said."""
    batch = conform(
        pl.DataFrame(
            {
                "@timestamp": [datetime(2026, 3, 14, 9, tzinfo=UTC)] * 2,
                "event.dataset": ["shop.auth", "http.access"],
                "event.action": ["login", "login"],
                "event.outcome": ["success", "success"],
                "http.request.method": ["POST", "POST"],
                "url.path": ["/my-account/", "/my-account/"],
                "http.response.status_code": [200, 200],
            }
        )
    )
    out = reader().read_all(batch)
    assert out["event.outcome"].to_list() == ["success", "success"]
    assert out["shop.platform"].to_list() == [None, None]


def test_missing_columns_are_no_error() -> None:
    batch = pl.DataFrame(
        {"@timestamp": [datetime(2026, 3, 14, 9, tzinfo=UTC)], "event.dataset": ["apm.metric"]}
    )
    assert reader().read_all(batch).equals(batch)


MIXED = [
    line(0, "POST /my-account/", 200, ip="198.51.100.1"),
    line(1, MAGENTO_POST, 302, ip="198.51.100.2"),
    line(1, "GET /static/x.js", 200, ip="198.51.100.2"),
    line(2, "GET /customer/account/login/", 200, ip="198.51.100.2"),
    line(3, MAGENTO_POST, 302, ip="198.51.100.3"),
    line(3, MAGENTO_POST, 302, ip="198.51.100.2"),
    line(4, "POST /account/login", 302, ip="198.51.100.4"),
    line(4, "GET /customer/account/", 200, ip="198.51.100.2"),
    line(5, "GET /account", 200, ip="198.51.100.4"),
    line(20, MAGENTO_POST, 302, ip="198.51.100.5"),
    line(21, "GET /customer/account/", 200, ip="198.51.100.5"),
    line(40, "POST /api/login", 401, ip="198.51.100.6"),
]


def _outcomes(frame: pl.DataFrame) -> dict[str, str | None]:
    return dict(frame.select("event.id", "event.outcome").iter_rows())


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_batches_cut_anywhere_read_the_same(size: int) -> None:
    """The wait for a next request crosses batches: the outcomes do not depend on the cut."""
    stream = parse(*MIXED)
    whole = reader().read_all(stream)
    cut = reader()
    parts = [cut.read(stream.slice(i, size)) for i in range(0, stream.height, size)]
    parts.append(cut.flush())
    got = pl.concat([p for p in parts if p.height], how="diagonal_relaxed")
    assert got.height == stream.height
    assert _outcomes(got) == _outcomes(whole)
    assert _outcomes(whole) == {
        "access.log:1": "failure",
        "access.log:2": "failure",
        "access.log:3": None,
        "access.log:4": None,
        "access.log:5": "unknown",
        "access.log:6": "success",
        "access.log:7": "success",
        "access.log:8": None,
        "access.log:9": None,
        "access.log:10": "success",
        "access.log:11": None,
        "access.log:12": "failure",
    }
    assert all(p["@timestamp"].is_sorted() for p in parts if p.height)  # released in place


def test_a_held_login_waits_for_the_clock_then_goes_unanswered() -> None:
    logins = reader()
    held = logins.read(parse(line(0, MAGENTO_POST, 302)))
    assert held.height == 0 and logins.held == 1
    later = logins.read(parse(line(3, "GET /", 200, ip="198.51.100.9")))
    assert later.height == 1 and logins.held == 1  # 3 s: the client may still follow
    out = logins.read(parse(line(6, "GET /", 200, ip="198.51.100.9")))
    assert logins.held == 0
    assert out["event.outcome"].to_list() == ["unknown", None]
    assert out["url.path"].to_list() == ["/customer/account/loginPost/", "/"]


def test_a_held_login_waits_on_its_own_sources_clock() -> None:
    """Another file running ahead (or one that ended) moves no other file's logins."""
    t0 = datetime(2026, 3, 14, 9, tzinfo=UTC)
    logins = reader()
    post = parse(line(0, MAGENTO_POST, 302)).with_columns(pl.lit("a.log").alias("_src"))
    ahead = {"a.log": t0, "b.log": t0.replace(hour=10)}
    assert logins.read(post, ahead["b.log"], clocks=ahead, source="_src").height == 0
    other = parse(line(30, "GET /", 200, ip="192.0.2.1")).with_columns(
        pl.lit("b.log").alias("_src")
    )
    assert logins.read(other, ahead["b.log"], clocks=ahead, source="_src").height == 1
    assert logins.held == 1  # b.log's clock is an hour ahead: a.log's login still waits
    moved = {"a.log": t0.replace(second=6), "b.log": t0.replace(hour=10)}
    out = logins.read(other, moved["b.log"], clocks=moved, source="_src")
    assert logins.held == 0
    assert out["event.outcome"].to_list() == ["unknown", None]


def test_held_logins_are_bounded_and_the_oldest_go_first() -> None:
    logins = reader(max_pending=2)
    posts = [line(0, MAGENTO_POST, 302, ip=f"198.51.100.{i}") for i in range(1, 6)]
    out = logins.read(parse(*posts), clock=datetime(2026, 3, 14, 9, tzinfo=UTC))
    assert logins.held == 2 and logins.overflowed == 3
    assert out["source.ip"].to_list() == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert out["event.outcome"].to_list() == ["unknown"] * 3


def test_held_logins_survive_a_snapshot() -> None:
    before = reader()
    before.read(parse(line(0, MAGENTO_POST, 302), line(0, "GET /static/x.js", 200)))
    assert before.held == 1
    after = reader()
    after.restore(before.snapshot())
    assert after.held == 1
    out = after.read(parse(line(1, "GET /customer/account/login/", 200)))
    assert out["event.outcome"].to_list() == ["failure", None]
    assert out["url.path"].to_list() == ["/customer/account/loginPost/", "/customer/account/login/"]


def test_a_restored_login_of_an_endpoint_no_longer_read_is_dropped() -> None:
    before = reader()
    before.read(parse(line(0, MAGENTO_POST, 302)))
    after = reader("woocommerce")
    after.restore(before.snapshot())
    assert after.held == 0


def test_reader_counts_what_it_read() -> None:
    logins = reader()
    logins.read_all(parse(*MIXED))
    assert logins.describe()["read"] == {
        "api/failure": 1,
        "magento/failure": 1,
        "magento/success": 2,
        "magento/unknown": 1,
        "shopware/success": 1,
        "woocommerce/failure": 1,
    }
