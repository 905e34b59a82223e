"""
Prometheus metrics (issue 8): /metrics on the API's site, for the admin token only, in the
Prometheus text format, moving when calls happen; API requests timed by route and status.

/metrics is the prometheus_client Twisted resource, which renders in the reactor's thread
pool, so these tests use the real reactor on 127.0.0.1, port 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor

from iradialer.api.app import DialerAPI
from iradialer.api.site import ApiSite
from iradialer.config import load, parse
from iradialer.domain.tenants import LicenseLedger, TenantDirectory
from iradialer.metrics import Metrics
from iradialer.status import CallRecorder, StatusBoard
from tests.helpers import TENANTS

CONFIG = parse(
    '[api]\nadmin_token = "admin-token-1"\n[freeswitch]\nsimulate = true\n' + TENANTS,
    "test.toml",
    Path("/tmp"),
)


class Server:
    """An ApiSite listening on 127.0.0.1, with its own registry."""

    def __init__(self) -> None:
        directory = TenantDirectory(CONFIG.tenants, CONFIG.api.admin_token)
        self.ledger = LicenseLedger(directory)
        self.metrics = Metrics()
        self.recorder = CallRecorder(self.metrics)
        board = StatusBoard(
            directory=directory,
            ledger=self.ledger,
            clock=reactor,
            current_config=lambda: CONFIG,
            recorder=self.recorder,
        )
        self.metrics.before_scrape(lambda: self.metrics.set_licenses(board.license_figures()))
        api = DialerAPI(
            directory=directory,
            ledger=self.ledger,
            clock=reactor,
            current_config=lambda: CONFIG,
            reload=lambda: None,
            status_board=board,
        )
        self.port = reactor.listenTCP(0, ApiSite(api, self.metrics, reactor), interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await treq.get(self.base + path, headers=headers, persistent=False)
        return response.code, (await response.text())

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        code, text = await self.get("/metrics", "admin-token-1")
        assert code == 200
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


@pytest.fixture
def server():
    server = Server()
    yield server
    pytest_twisted.blockon(server.port.stopListening())


@pytest_twisted.ensureDeferred
async def test_metrics_need_the_admin_token(server):
    """Tenant data is in the metrics: no token is 401, a tenant's token 403."""
    code, _ = await server.get("/metrics")
    assert code == 401
    code, _ = await server.get("/metrics", "acme-token-1")
    assert code == 403


@pytest_twisted.ensureDeferred
async def test_metrics_parse_and_move_when_calls_happen(server):
    """
    The exposition parses with Prometheus' text parser; calls started, ended, CPA results and
    licenses held show up in the next scrape.
    """
    before = await server.scrape()
    assert before[("iradialer_build_info", (("version", "0.1.0"),))] == 1.0
    assert ("iradialer_calls_started_total", (("tenant", "acme"),)) not in before
    assert before[("iradialer_licenses_limit", (("tenant", "acme"),))] == 2.0
    assert before[("iradialer_licenses_used", (("tenant", "acme"),))] == 0.0

    server.ledger.acquire("acme", "call-1")
    server.recorder.record_call_started("acme", reactor.seconds())
    server.recorder.record_call_answered("acme", reactor.seconds())
    server.recorder.record_cpa("acme", "AM", 1800.0, reactor.seconds())
    server.recorder.record_call_ended("acme", "NORMAL_CLEARING", reactor.seconds())

    after = await server.scrape()
    assert after[("iradialer_calls_started_total", (("tenant", "acme"),))] == 1.0
    assert after[("iradialer_calls_answered_total", (("tenant", "acme"),))] == 1.0
    assert (
        after[("iradialer_calls_ended_total", (("reason", "NORMAL_CLEARING"), ("tenant", "acme")))]
        == 1.0
    )
    assert after[("iradialer_cpa_decisions_total", (("result", "AM"), ("tenant", "acme")))] == 1.0
    assert after[("iradialer_cpa_decision_seconds_count", (("result", "AM"),))] == 1.0
    assert after[("iradialer_cpa_decision_seconds_sum", (("result", "AM"),))] == 1.8
    assert after[("iradialer_cpa_decision_seconds_bucket", (("le", "2.0"), ("result", "AM")))] == 1
    assert after[("iradialer_licenses_used", (("tenant", "acme"),))] == 1.0


@pytest_twisted.ensureDeferred
async def test_api_requests_are_timed_by_route_and_status(server):
    """
    Each request counts under its route, method and status; paths no route serves count
    under one "unmatched" route, so scans cannot grow the metric.
    """
    await server.get("/api/status", "acme-token-1")
    await server.get("/api/status")
    await server.get("/api/license")
    await server.get("/no/such/path/1")
    await server.get("/no/such/path/2")
    samples = await server.scrape()

    def count(route: str, method: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return samples[("iradialer_api_request_seconds_count", labels)]

    assert count("/api/status", "GET", "200") == 1
    assert count("/api/status", "GET", "401") == 1
    assert count("/api/license", "GET", "200") == 1
    assert count("unmatched", "GET", "404") == 2
    assert not any("/no/such" in str(labels) for _, labels in samples)


def test_registries_are_separate():
    """Two Metrics never share figures (each test, and each server, has its own registry)."""
    one, two = Metrics(), Metrics()
    one.calls_started.labels("acme").inc()
    assert one.registry.get_sample_value("iradialer_calls_started_total", {"tenant": "acme"}) == 1
    assert (
        two.registry.get_sample_value("iradialer_calls_started_total", {"tenant": "acme"}) is None
    )


def test_label_values_stay_bounded():
    """Odd hangup reasons and CPA results are counted under OTHER / other."""
    metrics = Metrics()
    recorder = CallRecorder(metrics)
    recorder.record_call_ended("acme", "x" * 500, 0.0)
    recorder.record_cpa("acme", "<script>", 10.0, 0.0)
    get = metrics.registry.get_sample_value
    assert get("iradialer_calls_ended_total", {"tenant": "acme", "reason": "OTHER"}) == 1
    assert get("iradialer_cpa_decisions_total", {"tenant": "acme", "result": "other"}) == 1


@pytest_twisted.ensureDeferred
async def test_the_server_wires_metrics_status_and_pacing(tmp_path):
    """
    The composed server (build_service) serves /metrics with its own registry, license
    gauges and process metrics, and a status whose pacing section comes from the pacer.
    """
    from iradialer.server import build_service
    from tests.helpers import write_config

    config = load(
        write_config(tmp_path, extra='[[gateway]]\nname = "sofia/gateway/sim"\ncps = 3\n')
    )
    root = build_service(config, reactor)
    root.startService()
    try:
        port = await root.getServiceNamed("api")._waitingForPort
        base = f"http://127.0.0.1:{port.getHost().port}"
        admin = {"Authorization": "Bearer admin-token-1"}
        response = await treq.get(base + "/metrics", headers=admin, persistent=False)
        families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        assert families["iradialer_licenses_limit"].samples[0].labels == {"tenant": "acme"}
        assert "process_cpu_seconds" in families
        response = await treq.get(base + "/api/status", headers=admin, persistent=False)
        status = await response.json()
        assert status["pacing"]["gateways"]["sofia/gateway/sim"]["cps"] == 3.0
        assert status["config"]["gateways"] == [
            {"name": "sofia/gateway/sim", "cps": 3.0, "max_calls": None}
        ]
    finally:
        await root.stopService()


def test_before_scrape_hooks_set_read_figures():
    """
    Figures read at scrape time (calls by state) come from hooks run by refresh(); a state
    that has no calls any more leaves the exposition.
    """
    metrics = Metrics()
    counts = {("acme", "answered"): 2, ("acme", "ringing"): 1}
    metrics.before_scrape(lambda: metrics.set_calls_in_state(counts))
    metrics.refresh()
    get = metrics.registry.get_sample_value
    assert get("iradialer_calls_in_state", {"tenant": "acme", "state": "ringing"}) == 1
    del counts[("acme", "ringing")]
    metrics.refresh()
    assert get("iradialer_calls_in_state", {"tenant": "acme", "state": "ringing"}) is None
    assert get("iradialer_calls_in_state", {"tenant": "acme", "state": "answered"}) == 2
