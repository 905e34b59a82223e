"""
The dashboard in a real browser (issue 8): the whole server runs in-process on 127.0.0.1
(port 0), headless Chromium (Debian's package, driven by Playwright; no browser is ever
downloaded) signs in with HTTP Basic as the contract says, and the page shows the figures,
follows a change on its own 10-second refresh, and is saved as a screenshot in
test-artifacts/.

Playwright's synchronous API runs in one worker thread while the reactor runs the server;
the test changes the server's state from that thread through blockingCallFromThread.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from iradialer.config import parse
from iradialer.server import build_service
from iradialer.status import StatusBoard
from tests.conftest import REPO
from tests.helpers import TENANTS

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
REFRESH_MS = 10_000

# What a node pool reports, for the node table: the pool itself is another part's.
NODES = [
    {
        "name": "fs1",
        "host": "10.0.0.5",
        "port": 8021,
        "connected": True,
        "sessions": 3,
        "cps": 1.5,
        "last_heartbeat": "2026-11-27T10:00:00Z",
    },
    {"name": "fs2", "host": "10.0.0.6", "port": 8021, "connected": False, "sessions": 0, "cps": 0},
]


def seed_history(board: StatusBoard, now: float) -> None:
    """Some calls over the last hour, so the chart has something to draw (all in the past)."""
    recorder = board.recorder
    for minutes_ago in range(0, 60, 3):
        at = now - minutes_ago * 60 - 50
        for tenant in ("acme", "globex"):
            recorder.record_call_started(tenant, at)
            recorder.record_call_answered(tenant, at + 5)
            recorder.record_cpa(tenant, "LV" if minutes_ago % 2 else "AM", 1200, at + 6)
            recorder.record_call_ended(tenant, "NORMAL_CLEARING", at + 40)
        if minutes_ago % 9 == 0:
            recorder.record_call_started("acme", at)
            recorder.record_call_ended("acme", "NO_ANSWER", at + 30)


def text(page, selector: str) -> str:
    return page.text_content(selector).strip()


def browse(base: str, board: StatusBoard) -> list[Path]:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []

    def watch(page) -> None:
        """Script errors and CSP violations (console errors) fail the test."""
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))

    ARTIFACTS.mkdir(exist_ok=True)
    shots = [ARTIFACTS / "dashboard-tenant.png", ARTIFACTS / "dashboard-admin.png"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            anonymous = browser.new_context()
            page = anonymous.new_page()
            challenges: list[tuple[int, str | None]] = []
            page.on(
                "response",
                lambda r: challenges.append((r.status, r.headers.get("www-authenticate"))),
            )
            with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                page.goto(base + "/api/status")  # headless: nobody to type a password
            assert challenges == [(401, 'Basic realm="iradialer"')]
            anonymous.close()

            context = browser.new_context(
                http_credentials={"username": "ops", "password": "acme-token-1"},
                viewport={"width": 1366, "height": 900},
            )
            context.set_default_timeout(20_000)
            page = context.new_page()
            watch(page)
            page.clock.install()
            response = page.goto(base + "/api/status")
            assert response.status == 200
            expect(page.locator("#updated")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d UTC$"))
            assert text(page, "#state") == "Live · refreshes every 10 s"
            assert text(page, "#viewer") == "tenant acme"
            assert text(page, "#active-calls") == "0"
            assert text(page, "#licenses") == "0 of 2"
            assert text(page, "#calls-60") == "27"
            assert text(page, "#nodes-up") == "1 of 2"
            assert "● connected" in text(page, "#nodes-table") and "down" in text(
                page, "#nodes-table"
            )
            assert page.locator("#chart rect.started").count() == 20
            assert page.locator("#chart rect.human, #chart rect.machine").count() == 20
            assert "globex" not in page.inner_text("body")

            def one_more_call() -> None:
                now = reactor.seconds()
                board.ledger.acquire("acme", "browser-call-1")
                board.recorder.record_call_started("acme", now)
                board.recorder.record_call_answered("acme", now)
                board.recorder.record_cpa("acme", "LV", 900, now)

            threads.blockingCallFromThread(reactor, one_more_call)
            assert text(page, "#active-calls") == "0", "the page changed before its refresh"
            page.clock.run_for(REFRESH_MS)
            expect(page.locator("#active-calls")).to_have_text("1")
            assert text(page, "#licenses") == "1 of 2"
            assert text(page, "#calls-5") == "4"
            assert text(page, "#calls-60") == "28"
            assert "28 calls started" in page.text_content("#chart-desc")
            page.screenshot(path=str(shots[0]), full_page=True)
            context.close()

            admin = browser.new_context(
                http_credentials={"username": "admin", "password": "admin-token-1"},
                viewport={"width": 1366, "height": 900},
            )
            page = admin.new_page()
            watch(page)
            page.goto(base + "/api/status")
            expect(page.locator("#updated")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d UTC$"))
            assert text(page, "#viewer") == "administrator (all tenants)"
            assert text(page, "#licenses") == "1 of 3"
            assert "globex" in text(page, "#tenants-table")
            assert not page.locator("#config-section").is_hidden()
            page.screenshot(path=str(shots[1]), full_page=True)
            admin.close()
        finally:
            browser.close()
    assert problems == []
    return shots


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_dashboard_in_headless_chromium(tmp_path):
    """
    A browser without credentials is challenged (401, Basic realm="iradialer"); with a
    tenant's token as Basic password it sees its own figures, node health and the chart;
    after a call it shows the new figures on its next 10-second refresh (the page's timers
    are driven by Playwright's clock, no sleeping); the admin sees every tenant.
    """
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is needed: `make test` installs it when run as root")
    config = parse(
        '[api]\nlisten = "tcp:0:interface=127.0.0.1"\nadmin_token = "admin-token-1"\n'
        f'[freeswitch]\nsimulate = true\n[store]\npath = "{tmp_path / "store.sqlite"}"\n' + TENANTS,
        "test.toml",
        tmp_path,
    )
    root = build_service(config, reactor)
    root.startService()
    try:
        api_service = root.getServiceNamed("api")
        port = await api_service._waitingForPort
        board = api_service.factory.api.status_board
        board.add_source("freeswitch", lambda: {"nodes": NODES}, "shared")
        seed_history(board, reactor.seconds())
        base = f"http://127.0.0.1:{port.getHost().port}"
        shots = await threads.deferToThread(browse, base, board)
    finally:
        await root.stopService()
    for shot in shots:
        assert shot.stat().st_size > 10_000
