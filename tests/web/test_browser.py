"""The live alerts page in a real browser: Debian's Chromium driven by Playwright.

The app runs under uvicorn on 127.0.0.1 (a free port); the browser logs in, watches a new
alert arrive without a reload, filters, opens an alert and marks it a false positive.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shopwatch.contract import Alert
from shopwatch.store import Store
from shopwatch.web import WebServer, create_app, serve
from tests.web.conftest import NOW, RUNTIME, TOKEN, make_alert

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 10_000

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"Chromium not found at {CHROMIUM}; install Debian's package: apt-get install chromium",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture()
def server(store: Store, alerts: list[Alert]) -> Iterator[WebServer]:
    """The app on 127.0.0.1 with a free port."""
    running = serve(create_app(store, token=TOKEN, stats=lambda: dict(RUNTIME)), port=0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; fails on console errors and dialogs."""
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    problems: list[str] = []

    def console(message: Any) -> None:  # the wrong-token login answers 401 on purpose
        if message.type == "error" and "status of 401" not in message.text:
            problems.append(message.text)

    opened.on("console", console)
    opened.on("pageerror", lambda err: problems.append(str(err)))

    def refuse(dialog: Any) -> None:  # an alert() would mean a payload ran
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    opened.on("dialog", refuse)
    try:
        yield opened
        assert problems == [], problems  # CSP violations and script errors show up here
    finally:
        context.close()


def test_live_alerts_page(
    page: Any, server: WebServer, store: Store, alerts: list[Alert], tmp_path: Path
) -> None:
    page.goto(f"{server.url}/login?token={TOKEN}&analyst=alice")
    assert page.url == f"{server.url}/"  # redirected: the token left the address bar
    rows = page.locator("#alert-rows tr")
    expect(rows).to_have_count(len(alerts))
    newest = max(alerts, key=lambda a: a.timestamp)
    expect(rows.first).to_have_attribute("data-id", newest.id)
    expect(page.locator("#live")).to_contain_text("live")

    # Counters and last-hour badges from /api/stats.
    expect(page.locator("#c-eps")).to_have_text("1,234.5")
    expect(page.locator("#c-events")).to_have_text("987,654")
    expect(page.locator("#c-rejected")).to_have_text("12")
    expect(page.locator("#c-lag")).to_have_text("85 ms")
    expect(page.locator("#c-alerts")).to_have_text("8")
    expect(page.locator('#hour-badges [data-category="web_attack"]')).to_contain_text("2")
    expect(page.locator('#hour-badges [data-category="scraping"]')).to_have_count(0)

    # The XSS payload in a message is shown as text, never run (the fixture fails on dialogs).
    xss = next(a for a in alerts if a.rule_id == "web.xss_probe")
    expect(page.locator(f'tr[data-id="{xss.id}"] td.msg')).to_contain_text('<script>alert("xss")')

    # A new alert appears without a reload.
    fresh = make_alert(
        "payment.card_testing",
        "Card testing: many small declined authorizations",
        "card_testing",
        "critical",
        at=NOW + timedelta(seconds=30),
        entity={"source.ip": "45.155.205.77", "shop.device.id": "dev-11aa90"},
        message="45.155.205.77 tried 18 cards in 4 minutes; 17 of 18 authorizations declined",
        events=18,
        risk=90,
        details={"distinct_cards": 18, "declines": 17},
    )
    store.save_alerts([fresh])
    expect(rows).to_have_count(len(alerts) + 1)
    expect(rows.first).to_have_attribute("data-id", fresh.id)
    expect(page.locator("#c-alerts")).to_have_text("9")
    page.screenshot(path=str(tmp_path / "alerts.png"))

    # Filter by category: only the two card-testing alerts are left.
    page.select_option("#filter-category", "card_testing")
    expect(rows).to_have_count(2)
    expect(page.locator("#alert-rows td.col-cat")).to_have_text(["card testing", "card testing"])
    expect(page.locator("#shown")).to_contain_text("2 alerts shown (filtered)")

    # Details of the older card-testing alert, then mark it a false positive.
    card = next(a for a in alerts if a.category == "card_testing")
    page.click(f'tr[data-id="{card.id}"]')
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#d-message")).to_have_text(card.message)
    expect(page.locator("#d-events")).to_have_text("40 events")
    expect(page.locator("#d-technique")).to_have_text("—")
    expect(page.locator("#d-entity")).to_contain_text("dev-8f2c41")
    expect(page.locator("#d-details")).to_contain_text("incorrect_cvc")
    page.screenshot(path=str(tmp_path / "detail.png"))

    page.fill("#d-note", "our QA team testing the checkout with test cards")
    page.click('#detail button[data-verdict="false_positive"]')
    expect(page.locator("#feedback-status")).to_have_text("Marked false positive by alice.")
    expect(page.locator("#d-feedback li")).to_have_count(1)
    expect(page.locator(f'tr[data-id="{card.id}"] .verdict-tag')).to_have_text("false positive")
    saved = store.feedback(card.id)
    assert [(f["verdict"], f["analyst"], f["note"]) for f in saved] == [
        ("false_positive", "alice", "our QA team testing the checkout with test cards")
    ]
    assert store.feedback(fresh.id) == []


def test_login_form_in_the_browser(page: Any, server: WebServer, alerts: list[Alert]) -> None:
    page.goto(f"{server.url}/")
    assert page.url == f"{server.url}/login"
    page.fill('input[name="token"]', "not-the-token")
    page.click('button[type="submit"]')
    expect(page.locator(".login-error")).to_contain_text("not right")
    page.fill('input[name="token"]', TOKEN)
    page.fill('input[name="analyst"]', "bob")
    page.click('button[type="submit"]')
    expect(page.locator("#alert-rows tr")).to_have_count(len(alerts))
    expect(page.locator(".analyst")).to_have_text("bob")
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["shopwatch_session"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert TOKEN not in cookies[0]["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
