"""
GET /api/status and GET /api/license (issue 8): the figures, who sees which, the call
history, the sources of the other parts, and the dashboard's HTTP behaviour.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.task import Clock

from iradialer.api.app import DialerAPI
from iradialer.config import parse
from iradialer.domain.tenants import ADMIN, LicenseLedger, Principal, TenantDirectory
from iradialer.status import CallRecorder, StatusBoard
from tests.helpers import TENANTS, call

CONFIG = parse(
    '[api]\nadmin_token = "admin-token-1"\n[freeswitch]\nsimulate = true\n' + TENANTS,
    "test.toml",
    Path("/tmp"),
)
ACME = Principal(CONFIG.tenants[0])
GLOBEX = Principal(CONFIG.tenants[1])
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
T0 = 1_800_000_000.0  # a whole minute: 2027-01-15T08:00:00Z


def basic(token: str, user: str = "ops") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(T0)
    return clock


@pytest.fixture
def board(clock):
    directory = TenantDirectory(CONFIG.tenants, CONFIG.api.admin_token)
    return StatusBoard(
        directory=directory,
        ledger=LicenseLedger(directory),
        clock=clock,
        current_config=lambda: CONFIG,
        recorder=CallRecorder(),
    )


@pytest.fixture
def stub(board, clock):
    api = DialerAPI(
        directory=board.directory,
        ledger=board.ledger,
        clock=clock,
        current_config=lambda: CONFIG,
        reload=lambda: None,
        status_board=board,
    )
    return StubTreq(api.resource())


# -- the figures and their scope ----------------------------------------------------------------


def test_tenant_sees_only_its_own_licenses_and_calls(board, clock):
    """
    A tenant's status holds its own licenses and call history, never another tenant's; the
    admin's holds every tenant's, summed, and the configuration with secrets masked.
    """
    board.ledger.acquire("acme", "a1")
    board.ledger.acquire("globex", "g1")
    board.recorder.record_call_started("acme", clock.seconds())
    board.recorder.record_call_started("globex", clock.seconds())
    board.recorder.record_call_started("globex", clock.seconds())
    board.recorder.record_cpa("globex", "AM", 2500, clock.seconds())

    acme = board.snapshot(ACME)
    assert acme["viewer"] == "acme"
    assert acme["tenants"] == [{"id": "acme", "licenses_used": 1, "licenses_total": 2}]
    assert acme["licenses"] == {"used": 1, "total": 2}
    assert acme["calls"]["active"] == 1
    assert acme["calls"]["last_5_minutes"]["started"] == 1
    assert acme["calls"]["last_5_minutes"]["cpa"] == {}
    assert "config" not in acme
    assert "globex" not in repr(acme)

    admin = board.snapshot(ADMIN)
    assert admin["viewer"] == "admin"
    assert [t["id"] for t in admin["tenants"]] == ["acme", "globex"]
    assert admin["licenses"] == {"used": 2, "total": 3}
    assert admin["calls"]["last_60_minutes"]["started"] == 3
    assert admin["calls"]["last_60_minutes"]["cpa"] == {"AM": 1}
    assert admin["config"]["tenants"][1]["token"] == "***"
    assert "globex-token-1" not in repr(admin) and "admin-token-1" not in repr(admin)


def test_version_uptime_and_time(board, clock):
    """Uptime counts from the board's start on the injected clock; time is UTC ISO 8601."""
    clock.advance(3725.5)
    status = board.snapshot(ADMIN)
    assert status["uptime_seconds"] == 3725.5
    assert status["time"] == "2027-01-15T09:02:05Z"
    assert re.fullmatch(r"\d+\.\d+\.\d+", status["version"])


def test_missing_parts_say_not_running(board):
    """Parts that registered no source are reported as not running, with no figures."""
    status = board.snapshot(ADMIN)
    for name in ("freeswitch", "cpa", "webhooks", "dialer"):
        assert status[name] == {"running": False}


def test_sources_are_scoped(board):
    """
    A shared source is shown to everyone; an admin source to the admin only; a tenant
    source is asked for the viewer's tenant (None for the admin).
    """
    asked: list[str | None] = []
    board.add_source(
        "freeswitch", lambda: {"nodes": [{"name": "fs1", "connected": True}]}, "shared"
    )
    board.add_source("webhooks", lambda: {"outbox_depth": 4, "dead_letters": 1})
    board.add_source("dialer", lambda tenant_id: asked.append(tenant_id) or {"calls": 7}, "tenant")

    acme = board.snapshot(ACME)
    assert acme["freeswitch"] == {"running": True, "nodes": [{"name": "fs1", "connected": True}]}
    assert "webhooks" not in acme
    assert acme["dialer"] == {"running": True, "calls": 7}
    admin = board.snapshot(ADMIN)
    assert admin["webhooks"] == {"running": True, "outbox_depth": 4, "dead_letters": 1}
    assert asked == ["acme", None]

    board.remove_source("freeswitch")
    assert board.snapshot(ADMIN)["freeswitch"] == {"running": False}


def test_failing_source_is_reported_not_invented(board):
    """A source that raises shows an error in its section (and is logged); the rest stands."""

    def broken():
        raise RuntimeError("pool is confused")

    board.add_source("freeswitch", broken, "shared")
    status = board.snapshot(ACME)
    assert status["freeswitch"]["running"] is True
    assert "could not report" in status["freeswitch"]["error"]
    assert "nodes" not in status["freeswitch"]
    assert status["tenants"][0]["id"] == "acme"


def test_source_may_not_overwrite_the_boards_own_figures(board):
    """The board's own sections cannot be replaced by a part's source."""
    with pytest.raises(ValueError):
        board.add_source("calls", lambda: {"active": 999})


# -- the call history ---------------------------------------------------------------------------


def test_history_windows_and_per_minute(clock):
    """
    The last 5 minutes are the minute in progress and the 4 before it; the last 60 the hour;
    per_minute has 60 entries, oldest first, the current minute last.
    """
    recorder = CallRecorder()
    recorder.record_call_started("acme", T0 - 5 * 60)  # the 6th minute back: hour only
    recorder.record_call_started("acme", T0 - 4 * 60)  # the 5th minute back: both
    recorder.record_call_answered("acme", T0 - 4 * 60 + 3)
    recorder.record_call_ended("acme", "NORMAL_CLEARING", T0 + 59)
    recorder.record_call_ended("acme", "bogus reason!", T0 + 59)
    recorder.record_cpa("acme", "LV", 800, T0 + 1)
    recorder.record_cpa("acme", "AM", 2000, T0 + 2)
    report = recorder.report(None, T0 + 59)
    assert report["last_5_minutes"] == {
        "started": 1,
        "answered": 1,
        "ended": 2,
        "ended_by_reason": {"NORMAL_CLEARING": 1, "OTHER": 1},
        "cpa": {"AM": 1, "LV": 1},
        "cpa_latency_ms_avg": 1400.0,
    }
    assert report["last_60_minutes"]["started"] == 2
    per_minute = report["per_minute"]
    assert len(per_minute) == 60
    assert per_minute[-1] == {
        "minute": "2027-01-15T08:00:00Z",
        "started": 0,
        "answered": 0,
        "ended": 2,
        "cpa": {"AM": 1, "LV": 1},
    }
    assert per_minute[-5]["started"] == 1 and per_minute[-6]["started"] == 1
    assert per_minute[0]["minute"] == "2027-01-15T07:01:00Z"


def test_history_forgets_what_is_older_than_an_hour():
    """Minutes leave the windows as time passes, and old ones are dropped from memory."""
    recorder = CallRecorder()
    recorder.record_call_started("acme", T0)
    assert recorder.report(None, T0 + 59 * 60)["last_60_minutes"]["started"] == 1
    assert recorder.report(None, T0 + 60 * 60)["last_60_minutes"]["started"] == 0
    recorder.record_call_started("acme", T0 + 60 * 60)
    assert list(recorder._minutes["acme"]) == [int(T0 // 60) + 60]


# -- GET /api/license ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_license_status_both_ways(board, stub):
    """
    200 while tenants hold licenses and every health check passes (no token needed); 400
    with 112 when a health check fails (no FreeSWITCH node connected), 111 with no licenses.
    """
    connected = [True]
    board.add_health_check(
        "freeswitch", lambda: None if connected[0] else "no FreeSWITCH node is connected"
    )
    code, body, _ = await call(stub, "GET", "/api/license")
    assert (code, body) == (200, {"statusCode": 200, "message": "OK", "licenses": 3})

    connected[0] = False
    code, body, _ = await call(stub, "GET", "/api/license")
    assert (code, body["status_code"]) == (400, 112)
    assert body["message"] == "Unable to use the licences: no FreeSWITCH node is connected"

    connected[0] = True
    board.directory.replace([], "admin-token-1")
    code, body, _ = await call(stub, "GET", "/api/license")
    assert (code, body["status_code"], body["message"]) == (
        400,
        111,
        "No iraDial licenses are installed",
    )


# -- HTTP: JSON for programs, the dashboard for browsers --------------------------------------


@pytest_twisted.ensureDeferred
async def test_json_for_programs(stub):
    """Without an HTML preference (curl's */*, no Accept, JSON) the answer is JSON."""
    for accept in (None, "*/*", "application/json", "text/html;q=0.5, application/json"):
        headers = {"Accept": accept} if accept else {}
        code, body, response_headers = await call(
            stub, "GET", "/api/status", token="acme-token-1", headers=headers
        )
        assert code == 200, accept
        assert body["statusCode"] == 200 and body["viewer"] == "acme", accept
        assert response_headers.getRawHeaders("content-type") == ["application/json"]


@pytest_twisted.ensureDeferred
async def test_browser_without_credentials_is_challenged(stub):
    """
    A browser without credentials, or with a wrong token, gets 401 and the Basic challenge
    of the contract; a program gets the plain 401 (no browser dialog from the page's fetch).
    """
    for headers in ({}, basic("wrong-token-9")):
        code, body, response_headers = await call(
            stub, "GET", "/api/status", headers={"Accept": BROWSER_ACCEPT, **headers}
        )
        assert code == 401
        assert response_headers.getRawHeaders("www-authenticate") == ['Basic realm="iradialer"']
        assert body["statusCode"] == 401
    code, _, response_headers = await call(stub, "GET", "/api/status", headers={"Accept": "*/*"})
    assert code == 401
    assert response_headers.getRawHeaders("www-authenticate") is None


@pytest_twisted.ensureDeferred
async def test_browser_with_basic_credentials_gets_the_page(stub):
    """
    Basic credentials (any user, the token as password) open the self-contained page; its
    Content-Security-Policy allows its own inline script and style (by hash) and nothing
    from elsewhere.
    """
    code, body, headers = await call(
        stub, "GET", "/api/status", headers={"Accept": BROWSER_ACCEPT, **basic("acme-token-1")}
    )
    assert code == 200
    assert headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    html = body.decode("utf-8")
    assert "<table" in html and "<caption>" in html and 'scope="col"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external resources"
    (policy,) = headers.getRawHeaders("content-security-policy")
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    for element in ("script", "style"):
        inline = re.search(rf"<{element}>(.*?)</{element}>", html, re.DOTALL).group(1)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{element}-src 'sha256-{digest}'" in policy
    assert headers.getRawHeaders("cache-control") == ["no-store"]


@pytest_twisted.ensureDeferred
async def test_page_refreshes_with_json_over_the_same_credentials(stub):
    """The page's own refresh (Accept: application/json, Basic) is answered with JSON."""
    code, body, _ = await call(
        stub,
        "GET",
        "/api/status",
        headers={"Accept": "application/json", **basic("globex-token-1")},
    )
    assert code == 200 and body["viewer"] == "globex"
