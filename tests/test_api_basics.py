"""
The HTTP surface every endpoint shares: routing errors, authentication, status, license.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.task import Clock

from iradialer.api.app import DialerAPI
from iradialer.config import parse
from iradialer.domain.tenants import LicenseLedger, TenantDirectory
from tests.helpers import TENANTS, call

CONFIG = parse(
    '[api]\nadmin_token = "admin-token-1"\n[freeswitch]\nsimulate = true\n' + TENANTS,
    "test.toml",
    Path("/tmp"),
)


@pytest.fixture
def api():
    directory = TenantDirectory(CONFIG.tenants, CONFIG.api.admin_token)
    clock = Clock()
    clock.advance(1000)
    api = DialerAPI(
        directory=directory,
        ledger=LicenseLedger(directory),
        clock=clock,
        current_config=lambda: CONFIG,
        reload=lambda: None,
    )
    api.test_clock = clock
    return api


@pytest.fixture
def stub(api):
    return StubTreq(api.resource())


@pytest_twisted.ensureDeferred
async def test_unknown_route_is_contract_404(stub):
    code, body, headers = await call(stub, "POST", "/api/nosuch", token="acme-token-1", body={})
    assert code == 404
    assert body == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "Route POST:/api/nosuch not found",
    }
    assert headers.getRawHeaders("content-type") == ["application/json"]


@pytest_twisted.ensureDeferred
async def test_wrong_method_is_405(stub):
    code, body, _ = await call(stub, "POST", "/api/status", token="acme-token-1", body={})
    assert code == 405
    assert body == {
        "statusCode": 405,
        "error": "Method Not Allowed",
        "message": "Method not allowed",
    }


@pytest_twisted.ensureDeferred
async def test_missing_and_invalid_tokens(stub):
    code, body, _ = await call(stub, "GET", "/api/status")
    assert (code, body) == (
        401,
        {"statusCode": 401, "error": "Unauthorized", "message": "missing authorization header"},
    )
    code, body, _ = await call(stub, "GET", "/api/status", token="acme-token-X")
    assert (code, body["message"]) == (401, "invalid auth token")
    code, body, _ = await call(
        stub, "GET", "/api/status", headers={"Authorization": "Token acme-token-1"}
    )
    assert (code, body["message"]) == (401, "invalid auth token")


@pytest_twisted.ensureDeferred
async def test_basic_credentials_are_for_the_dashboard_only(stub):
    """
    HTTP Basic is for the browser dashboard (issue 8): GET /api/status takes it, also for the
    JSON the page refreshes itself with; every other endpoint wants a Bearer token.
    """
    basic = base64.b64encode(b"x:admin-token-1").decode()
    code, _, _ = await call(stub, "GET", "/api/status", headers={"Authorization": f"Basic {basic}"})
    assert code == 200
    code, body, _ = await call(
        stub, "POST", "/api/reload", body={}, headers={"Authorization": f"Basic {basic}"}
    )
    assert (code, body["message"]) == (401, "invalid auth token")


@pytest_twisted.ensureDeferred
async def test_status_is_scoped_to_the_tenant(api, stub):
    api.ledger.acquire("acme", "call-1")
    api.test_clock.advance(12.5)
    code, body, _ = await call(stub, "GET", "/api/status", token="acme-token-1")
    assert code == 200
    assert body["tenants"] == [{"id": "acme", "licenses_used": 1, "licenses_total": 2}]
    assert body["uptime_seconds"] == 12.5
    assert "config" not in body
    code, body, _ = await call(stub, "GET", "/api/status", token="admin-token-1")
    assert {t["id"] for t in body["tenants"]} == {"acme", "globex"}
    assert body["config"]["tenants"][0]["token"] == "***"


@pytest_twisted.ensureDeferred
async def test_license_status_both_ways(api, stub):
    """200 while some tenant holds licenses (no token needed), 400 when none does."""
    code, body, _ = await call(stub, "GET", "/api/license")
    assert (code, body["licenses"]) == (200, 3)
    api.directory.replace([], "admin-token-1")
    code, body, _ = await call(stub, "GET", "/api/license")
    assert (code, body["status_code"]) == (400, 111)


def test_license_ledger_limits_and_releases():
    directory = TenantDirectory(CONFIG.tenants, "admin-token-1")
    ledger = LicenseLedger(directory)
    ledger.acquire("globex", "a")
    with pytest.raises(Exception, match=r"\[1/1\]"):
        ledger.acquire("globex", "b")
    assert ledger.release("a") and not ledger.release("a")
    ledger.acquire("globex", "b")
    assert ledger.used("globex") == 1
