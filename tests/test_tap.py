"""
The twistd plugin: options, makeService composition, reload.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from iradialer.server import API_BACKLOG, with_backlog
from iradialer.tap import Options, makeService
from tests.helpers import TENANTS, ThreadedMemoryReactor, call, write_config


def make(tmp_path, *args: str, extra: str = ""):
    options = Options()
    options.parseOptions(["--config", str(write_config(tmp_path, extra)), *args])
    reactor = ThreadedMemoryReactor()
    return makeService(options, reactor=reactor), reactor


def test_listens_where_configured(tmp_path):
    """
    The API listens on the endpoint of the file, or of --listen when given; the embedded
    simulator on simulator_listen; the media receiver on [media].
    """
    service, reactor = make(
        tmp_path,
        "--listen",
        "tcp:8123:interface=127.0.0.2",
        extra='[media]\nlisten = "127.0.0.3"\nport = 9123\n',
    )
    service.startService()
    try:
        tcp = {(port, interface) for port, _, _, interface in reactor.tcpServers}
        assert tcp == {(8123, "127.0.0.2"), (8021, "127.0.0.1")}
        backlog = {port: backlog for port, _, backlog, _ in reactor.tcpServers}
        assert backlog[8123] == API_BACKLOG == 1024
        assert [(port, interface) for port, _, interface, _ in reactor.udpServers] == [
            (9123, "127.0.0.3")
        ]
    finally:
        service.stopService()


def test_children_are_named(tmp_path):
    """Tests and the manhole find the parts by name."""
    service, _ = make(tmp_path)
    assert service.getServiceNamed("api").name == "api"
    assert service.getServiceNamed("reload")


def test_config_error_refuses_to_start(tmp_path):
    """A bad file is a usage error that names the key; twistd prints it and exits."""
    path = write_config(tmp_path, extra="[media]\nport = 70000\n")
    with pytest.raises(usage.UsageError) as caught:
        Options().parseOptions(["--config", str(path)])
    assert "media.port" in str(caught.value) and str(path) in str(caught.value)


def test_without_config_runs_embedded_demo():
    options = Options()
    options.parseOptions([])
    assert options.config.freeswitch.simulate
    assert options.config.api.listen == "tcp:8080:interface=127.0.0.1"


@pytest_twisted.ensureDeferred
async def test_reload_changes_tenants_without_restart(tmp_path):
    """
    POST /api/reload (admin token) re-reads the file: a new tenant's token works at once,
    a removed one stops working, and a lowered license count applies.
    """
    options = Options()
    path = write_config(tmp_path)
    options.parseOptions(["--config", str(path)])
    service = makeService(options, reactor=MemoryReactorClock())
    api = service.getServiceNamed("api").factory.resource
    stub = StubTreq(api)

    code, body, _ = await call(stub, "GET", "/api/status", token="globex-token-1")
    assert code == 200

    path.write_text(
        path.read_text()
        .replace('id = "globex"', 'id = "initech"')
        .replace("globex-token-1", "initech-token-1")
        .replace("licenses = 2", "licenses = 7")
    )
    code, body, _ = await call(stub, "POST", "/api/reload", token="acme-token-1", body={})
    assert code == 403
    code, body, _ = await call(stub, "POST", "/api/reload", token="admin-token-1", body={})
    assert code == 200, body
    assert body["tenants"] == ["acme", "initech"]

    code, body, _ = await call(stub, "GET", "/api/status", token="globex-token-1")
    assert (code, body["message"]) == (401, "invalid auth token")
    code, body, _ = await call(stub, "GET", "/api/status", token="initech-token-1")
    assert code == 200 and body["tenants"][0]["id"] == "initech"
    code, body, _ = await call(stub, "GET", "/api/status", token="acme-token-1")
    assert body["tenants"][0]["licenses_total"] == 7


@pytest_twisted.ensureDeferred
async def test_bad_reload_keeps_the_old_configuration(tmp_path):
    options = Options()
    path = write_config(tmp_path)
    options.parseOptions(["--config", str(path)])
    service = makeService(options, reactor=MemoryReactorClock())
    stub = StubTreq(service.getServiceNamed("api").factory.resource)
    path.write_text(path.read_text().replace("licenses = 2", "licenses = -1"))
    code, body, _ = await call(stub, "POST", "/api/reload", token="admin-token-1", body={})
    assert code == 400 and "tenant[0].licenses" in body["message"]
    code, body, _ = await call(stub, "GET", "/api/status", token="acme-token-1")
    assert code == 200


def test_sighup_reloads(tmp_path):
    """SIGHUP asks the reactor to reload; the new tenant is known afterwards."""
    import os
    import signal

    options = Options()
    path = write_config(tmp_path)
    options.parseOptions(["--config", str(path)])
    reactor = ThreadedMemoryReactor()
    service = makeService(options, reactor=reactor)
    service.startService()
    try:
        path.write_text(
            path.read_text()
            + TENANTS.replace("acme", "hooli")
            .replace("globex", "pied")
            .replace("-token-1", "-token-2")
        )
        os.kill(os.getpid(), signal.SIGHUP)
        live = service.getServiceNamed("reload").live
        assert {t.id for t in live.current.tenants} == {"acme", "globex", "hooli", "pied"}
    finally:
        service.stopService()


@pytest.mark.parametrize(
    "given, listened",
    [
        ("tcp:8080:interface=127.0.0.1", "tcp:8080:interface=127.0.0.1:backlog=64"),
        ("tcp:8080:backlog=10:interface=127.0.0.1", "tcp:8080:backlog=10:interface=127.0.0.1"),
        ("unix:/run/iradialer.sock", "unix:/run/iradialer.sock:backlog=64"),
        ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
    ],
)
def test_the_api_listens_with_a_large_backlog_unless_told(given, listened):
    """A burst of new connections must not overflow the accept queue (a 1 s SYN retry)."""
    assert with_backlog(given, 64) == listened
