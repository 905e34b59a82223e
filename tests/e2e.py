"""
The whole server on real sockets for end-to-end tests: the composed service (as twistd runs
it) with the embedded simulator, the API on 127.0.0.1, and a webhook receiver of the test's.

Everything listens on port 0; waits are Deferreds with timeouts, never sleeps.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.web.server import Site

from iradialer.tap import Options, makeService
from tests.webhook_receiver import RecordingReceiver

TENANTS = """
[[tenant]]
id = "acme"
token = "acme-token-1"
licenses = 4
gateways = ["sofia/gateway/sim"]
webhook_secret = "acme-secret"
allow_private_webhooks = true

[[tenant]]
id = "globex"
token = "globex-token-1"
licenses = 2
gateways = ["sofia/gateway/sim"]
webhook_secret = "globex-secret"
allow_private_webhooks = true
"""

# Short rings so tests run quickly; numbers ending in other digits use the built-in plan.
SCENARIOS = """
[[scenario]]
match = "0001$"
ring_ms = 100
outcome = "answer"
audio = "human"

[[scenario]]
match = "0002$"
ring_ms = 100
outcome = "answer"
audio = "machine_beep"

[[scenario]]
match = "0006$"
ring_ms = 100
outcome = "answer"
audio = "silence"

[[scenario]]
match = "0008$"
ring_ms = 100
outcome = "busy"

[[scenario]]
match = "0013$"
ring_ms = 100
outcome = "answer"
audio = "silence"
dtmf = [ { after_prompt_ms = 300, digits = "1234#" } ]
"""

TIMEOUT = 20.0


async def start_server(config: Path) -> tuple[Any, str]:
    """The server of configuration file C{config}, started in this reactor; its API's URL."""
    options = Options()
    options.parseOptions(["--config", str(config)])
    service = makeService(options, reactor)
    service.startService()
    api_port = await service.getServiceNamed("api")._waitingForPort
    return service, f"http://127.0.0.1:{api_port.getHost().port}"


class Stack:
    """
    A running server, its simulator, and a webhook receiver.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.receiver = RecordingReceiver(lambda n: 200)
        self.service: Any = None
        self.base = ""
        self.hook_url = ""
        self._ports: list[Any] = []

    async def start(
        self,
        extra: str = "",
        scenarios: str = SCENARIOS,
        tenants: str = TENANTS,
        ports: int | None = None,
    ) -> Stack:
        """
        @param ports: the first FreeSWITCH-side unicast port (1,000 of them); random unless
            given, so test runs side by side do not take each other's ports.
        """
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            Site(self.receiver)
        )
        self._ports.append(port)
        self.hook_url = f"http://127.0.0.1:{port.getHost().port}/hook"
        sounds = self.tmp_path / "sounds"
        sounds.mkdir(exist_ok=True)
        (self.tmp_path / "scenarios.toml").write_text(scenarios)
        if ports is None:
            ports = random.randrange(20000, 60000, 1000)
        config = self.tmp_path / "iradialer.toml"
        config.write_text(
            '[api]\nlisten = "tcp:0:interface=127.0.0.1"\nadmin_token = "admin-token-1"\n'
            "[freeswitch]\nsimulate = true\n"
            f'scenarios = "{self.tmp_path / "scenarios.toml"}"\n'
            'simulator_listen = "tcp:0:interface=127.0.0.1"\n'
            '[media]\nlisten = "127.0.0.1"\nport = 0\n'
            f'freeswitch_ports = "{ports}-{ports + 999}"\n'
            f'files_dir = "{sounds}"\n'
            f'[store]\npath = "{self.tmp_path / "store.sqlite"}"\n'
            "[webhooks]\nbackoff_initial = 0.1\nattempts = 5\ntimeout = 5.0\n" + extra + tenants
        )
        self.service, self.base = await start_server(config)
        await self.node_connected()
        return self

    @property
    def dialer(self) -> Any:
        return self.service.getServiceNamed("calls")

    @property
    def simulator(self) -> Any:
        return self.service.getServiceNamed("simulator").simulator

    async def node_connected(self) -> None:
        pool = self.service.getServiceNamed("freeswitch")
        if all(n.connected for n in pool.nodes):
            return
        d: Deferred[None] = Deferred()
        original = self.dialer.node_up

        def node_up(node: Any, rows: Any) -> None:
            self.dialer.node_up = original
            original(node, rows)
            d.callback(None)

        self.dialer.node_up = node_up
        await d.addTimeout(TIMEOUT, reactor)

    async def stop(self) -> None:
        if self.service is not None and self.service.running:
            await self.service.stopService()
        for port in self._ports:
            await port.stopListening()

    async def post(
        self, name: str, body: Any, token: str | None = "acme-token-1"
    ) -> tuple[int, Any]:
        headers = {"Content-Type": ["application/json"]}
        if token is not None:
            headers["Authorization"] = [f"Bearer {token}"]
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await treq.post(f"{self.base}/api/{name}", data=data, headers=headers)
        raw = await response.content()
        return response.code, json.loads(raw)

    async def get(self, name: str, token: str | None = "acme-token-1") -> tuple[int, Any]:
        headers = {"Authorization": [f"Bearer {token}"]} if token else {}
        response = await treq.get(f"{self.base}/api/{name}", headers=headers)
        return response.code, json.loads(await response.content())

    def events(self, call_uuid: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.receiver.accepted()
            if call_uuid is None or e.get("call_uuid") == call_uuid
        ]

    def names(self, call_uuid: str) -> list[str]:
        return [e["event"] for e in self.events(call_uuid)]

    async def wait_for(
        self,
        call_uuid: str | None,
        event: str,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = TIMEOUT,
    ) -> dict[str, Any]:
        """The first accepted event C{event} of the call matching C{where}, waiting for it."""

        def found() -> dict[str, Any] | None:
            for e in self.events(call_uuid):
                if e["event"] == event and where(e):
                    return e
            return None

        d = self.receiver.when(lambda: found() is not None)
        try:
            await d.addTimeout(timeout, reactor)
        except Exception as e:
            raise AssertionError(
                f"no {event} for {call_uuid} within {timeout} s; got {self.names(call_uuid or '')}"
            ) from e
        result = found()
        assert result is not None
        return result

    async def make_call(
        self, to: str = "15550000001", token: str = "acme-token-1", **extra: Any
    ) -> str:
        code, body = await self.post(
            "makecall",
            {
                "gateway": "sofia/gateway/sim",
                "to": to,
                "from": "15559990000",
                "event_url": self.hook_url,
                **extra,
            },
            token,
        )
        assert code == 200, body
        return body["call_uuid"]

    async def answered_call(self, to: str = "15550000001", **extra: Any) -> str:
        call_uuid = await self.make_call(to, **extra)
        await self.wait_for(call_uuid, "answered")
        return call_uuid


def stack_fixture(**start: Any) -> Any:
    """A pytest fixture: a started L{Stack} per test, stopped afterwards."""

    @pytest_twisted.async_yield_fixture
    async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
        running = await Stack(tmp_path).start(**start)
        yield running
        await running.stop()

    return stack
