"""
Pieces for the fault tests (C{tests/test_faults.py}): the composed server talking to a
simulator through a TCP proxy the test can cut, hold and point elsewhere, a webhook
receiver that can go away and come back on the same port, and waits on what the server
reports.  Everything listens on 127.0.0.1, port 0; waits are Deferreds with timeouts.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from iradialer.sim import make_simulator_service
from tests.e2e import start_server
from tests.webhook_receiver import RecordingReceiver, collapse_repeats

#: The soak forms (make soak) run the same tests with longer outages and more calls.
SOAK = bool(os.environ.get("IRADIALER_SOAK"))
TIMEOUT = 30.0 if not SOAK else 300.0
TOKEN = "acme-token-1"
ADMIN = "admin-token-1"

SCENARIOS = """
[[scenario]]
match = "0001$"
ring_ms = 100
audio = "human"

[[scenario]]
match = "0002$"
ring_ms = 100
audio = "machine_beep"

[[scenario]]
match = "0003$"
ring_ms = 100
audio = "human"
hangup_after_ms = 300

[[scenario]]
match = "0008$"
ring_ms = 50
outcome = "busy"

[[scenario]]
match = "0009$"
ring_ms = 100
outcome = "no_answer"
"""


class _Link(Protocol):
    """The server's side of one proxied connection."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.upstream: Protocol | None = None
        self.waiting: list[bytes] = []

    def connectionMade(self) -> None:  # noqa: N802
        self.proxy.links.append(self)
        if not self.proxy.holding:
            self.connect()

    def connect(self) -> None:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.proxy.upstream_port)
        connectProtocol(endpoint, _Upstream(self)).addErrback(lambda _: self.abort())

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
        else:
            self.waiting.append(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if self in self.proxy.links:
            self.proxy.links.remove(self)
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.loseConnection()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abortConnection()


class _Upstream(Protocol):
    def __init__(self, link: _Link) -> None:
        self.link = link

    def connectionMade(self) -> None:  # noqa: N802
        self.link.upstream = self
        waiting, self.link.waiting = self.link.waiting, []
        for data in waiting:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.link.transport is not None:
            self.link.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        if self.link.transport is not None:
            self.link.transport.loseConnection()  # after what is on its way


class Proxy(Factory):
    """
    A TCP proxy in front of the FreeSWITCH stand-in: L{cut} drops every connection at
    once (as a network failure does), L{hold} keeps new connections waiting without an
    answer until L{release}, and C{upstream_port} may change (a restarted FreeSWITCH).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.links: list[_Link] = []
        self.holding = False
        self.port: Any = None

    def buildProtocol(self, addr: Any) -> _Link:  # noqa: N802
        return _Link(self)

    async def listen(self) -> int:
        self.port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self)
        return self.port.getHost().port

    def cut(self) -> None:
        for link in list(self.links):
            link.abort()

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False
        for link in list(self.links):
            if link.upstream is None:
                link.connect()


class Simulator:
    """The FreeSWITCH stand-in in this process; a new one is a restarted FreeSWITCH."""

    def __init__(self, scenarios: Path) -> None:
        self.service = make_simulator_service("tcp:0:interface=127.0.0.1", reactor, scenarios)
        self.sim = self.service.simulator
        self.port = 0

    async def start(self, up_for: float = 3600.0) -> Simulator:
        """Listen, as a FreeSWITCH that has been up C{up_for} seconds (its status says so)."""
        self.sim.started -= up_for
        self.service.startService()
        self.port = (await self.service.when_listening()).getHost().port
        return self

    async def stop(self) -> None:
        """
        A clean shutdown: every channel hangs up with SYSTEM_SHUTDOWN (the simulator ends
        hangups in the next turn of the reactor), the events go out, the sockets close.
        """
        await maybeDeferred(self.service.stopService)
        await deferLater(reactor, 0)
        for listener in list(self.sim.listeners):
            listener.transport.loseConnection()

    async def crash(self) -> None:
        """Gone at once: connections drop, nothing more is sent, every call is lost."""
        for listener in list(self.sim.listeners):
            listener.transport.abortConnection()
        await maybeDeferred(self.service.stopService)

    def hang_up(self, call_uuid: str) -> None:
        """The far end hangs up (BYE), as if the callee put the phone down."""
        channel = self.sim.channel(call_uuid)
        assert channel is not None and channel.alive, call_uuid
        channel.hangup(16, "recv_bye", remote=True)

    def count(self, name: str, n: int) -> Deferred[None]:
        """Fires once the simulator has fired C{n} more events C{name} (any calls)."""
        d: Deferred[None] = Deferred()
        sim = self.sim
        seen = [0]

        class Counting:
            def deliver(self, event: Any) -> None:
                if event.name == name:
                    seen[0] += 1
                    if seen[0] == n:
                        sim.listeners.remove(self)
                        reactor.callLater(0, d.callback, None)

        sim.listeners.append(Counting())
        return d.addTimeout(TIMEOUT, reactor)


class _Slow(Resource):
    """Answers what the recording receiver answers, C{delay} seconds later."""

    isLeaf = True

    def __init__(self, recording: RecordingReceiver) -> None:
        super().__init__()
        self.recording = recording
        self.delay = 0.0

    def render_POST(self, request: Any) -> Any:  # noqa: N802
        result = self.recording.render_POST(request)
        if not self.delay or result is NOT_DONE_YET:
            return result

        def answer() -> None:
            if not request._disconnected:
                request.write(result)
                request.finish()

        reactor.callLater(self.delay, answer)
        return NOT_DONE_YET


class Receiver:
    """
    A webhook receiver on a port that stays the same when it goes away (L{down}) and comes
    back (L{up}); C{slow(seconds)} delays every answer.
    """

    def __init__(self) -> None:
        self.recording = RecordingReceiver(lambda n: 200)
        self._resource = _Slow(self.recording)
        self.port: Any = None
        self.number = 0

    async def up(self) -> None:
        endpoint = f"tcp:{self.number}:interface=127.0.0.1"
        self.port = await serverFromString(reactor, endpoint).listen(Site(self._resource))
        self.number = self.port.getHost().port

    def slow(self, seconds: float) -> None:
        self._resource.delay = seconds

    async def down(self) -> None:
        """Connections are refused from now on (a receiver that is not running)."""
        port, self.port = self.port, None
        if port is not None:
            await port.stopListening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.number}/hook"


class Stack:
    """
    The composed server (as twistd runs it) with one FreeSWITCH node behind a L{Proxy} in
    front of an in-process L{Simulator}, and a L{Receiver}.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.receiver = Receiver()
        self.scenarios = tmp_path / "scenarios.toml"
        self.scenarios.write_text(SCENARIOS)
        self.simulator: Simulator | None = None
        self.proxy: Proxy | None = None
        self.service: Any = None
        self.base = ""

    async def start(self, webhooks: str = "", licenses: int = 50) -> Stack:
        await self.receiver.up()
        self.simulator = await Simulator(self.scenarios).start()
        self.proxy = Proxy(self.simulator.port)
        proxy_port = await self.proxy.listen()
        (self.tmp_path / "sounds").mkdir(exist_ok=True)
        config = self.tmp_path / "iradialer.toml"
        config.write_text(
            server_config(self.tmp_path, proxy_port, webhooks=webhooks, licenses=licenses)
        )
        self.service, self.base = await start_server(config)
        await self.node_up()
        return self

    async def stop(self) -> None:
        if self.service is not None and self.service.running:
            await self.service.stopService()
        if self.proxy is not None:
            self.proxy.cut()
            await self.proxy.port.stopListening()
        if self.simulator is not None:
            await self.simulator.stop()
        await self.receiver.down()

    @property
    def dialer(self) -> Any:
        return self.service.getServiceNamed("calls")

    @property
    def pool(self) -> Any:
        return self.service.getServiceNamed("freeswitch")

    @property
    def media(self) -> Any:
        return self.service.getServiceNamed("media")

    @property
    def webhooks(self) -> Any:
        return self.service.getServiceNamed("webhooks")

    def _when(self, method: str) -> Deferred[None]:
        """Fires after the dialer's next C{method} call (node_up, node_down)."""
        d: Deferred[None] = Deferred()
        dialer = self.dialer
        original = getattr(dialer, method)

        def wrapped(*args: Any) -> None:
            setattr(dialer, method, original)
            original(*args)
            reactor.callLater(0, d.callback, None)

        setattr(dialer, method, wrapped)
        return d.addTimeout(TIMEOUT, reactor)

    def node_up(self) -> Deferred[None]:
        if all(node.connected for node in self.pool.nodes):
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        return self._when("node_up")

    def next_node_up(self) -> Deferred[None]:
        return self._when("node_up")

    def next_node_down(self) -> Deferred[None]:
        return self._when("node_down")

    # -- HTTP --------------------------------------------------------------------------

    async def post(self, name: str, body: Any, token: str = TOKEN) -> tuple[int, Any]:
        return await post(self.base, name, body, token)

    async def get(self, name: str, token: str = TOKEN) -> tuple[int, Any]:
        return await get(self.base, name, token)

    async def make_call(self, to: str, **extra: Any) -> str:
        code, body = await self.post(
            "makecall",
            {
                "gateway": "sofia/gateway/sim",
                "to": to,
                "from": "15559990000",
                "event_url": self.receiver.url,
                **extra,
            },
        )
        assert code == 200, body
        return body["call_uuid"]

    async def licenses_used(self) -> int:
        code, body = await self.get("status", token=ADMIN)
        assert code == 200, body
        return body["licenses"]["used"]

    # -- events ------------------------------------------------------------------------

    @property
    def recording(self) -> RecordingReceiver:
        return self.receiver.recording

    def events(self, call_uuid: str) -> list[dict[str, Any]]:
        return events_of(self.recording, call_uuid)

    async def wait_for(
        self,
        call_uuid: str,
        event: str,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = TIMEOUT,
    ) -> dict[str, Any]:
        return await wait_for(self.recording, call_uuid, event, where, timeout)


def server_config(
    tmp_path: Path,
    freeswitch_port: int,
    *,
    api: str = "tcp:0",
    webhooks: str = "",
    licenses: int = 50,
) -> str:
    """A configuration with one FreeSWITCH node (no embedded simulator) and tenant acme."""
    return (
        f'[api]\nlisten = "{api}:interface=127.0.0.1"\nadmin_token = "{ADMIN}"\n'
        "[freeswitch]\nsimulate = false\n"
        '[[freeswitch.node]]\nname = "fs1"\nhost = "127.0.0.1"\n'
        f'port = {freeswitch_port}\npassword = "ClueCon"\nmax_sessions = 10000\ncps = 1000\n'
        '[media]\nlisten = "127.0.0.1"\nport = 0\nfreeswitch_ports = "44000-44999"\n'
        f'files_dir = "{tmp_path / "sounds"}"\n'
        f'[store]\npath = "{tmp_path / "store.sqlite"}"\n'
        "[webhooks]\nbackoff_initial = 0.2\nbackoff_max = 1.0\nattempts = 100\ntimeout = 5.0\n"
        + webhooks
        + f'[[tenant]]\nid = "acme"\ntoken = "{TOKEN}"\nlicenses = {licenses}\n'
        'gateways = ["sofia/gateway/sim"]\nwebhook_secret = "acme-secret"\n'
        "allow_private_webhooks = true\n"
    )


async def post(base: str, name: str, body: Any, token: str = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": ["application/json"], "Authorization": [f"Bearer {token}"]}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await treq.post(f"{base}/api/{name}", data=data, headers=headers)
    return response.code, json.loads(await response.content())


async def get(base: str, name: str, token: str = TOKEN) -> tuple[int, Any]:
    response = await treq.get(f"{base}/api/{name}", headers={"Authorization": [f"Bearer {token}"]})
    return response.code, json.loads(await response.content())


def events_of(recording: RecordingReceiver, call_uuid: str) -> list[dict[str, Any]]:
    """A call's accepted events in arrival order, repeats of one event_id collapsed."""
    seen: set[str] = set()
    out = []
    for event in recording.accepted():
        if event.get("call_uuid") == call_uuid and event["event_id"] not in seen:
            seen.add(event["event_id"])
            out.append(event)
    return out


async def wait_for(
    recording: RecordingReceiver,
    call_uuid: str,
    event: str,
    where: Callable[[dict[str, Any]], bool] = lambda e: True,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """The first accepted C{event} of the call matching C{where}, waiting for it."""

    def found() -> dict[str, Any] | None:
        for e in events_of(recording, call_uuid):
            if e["event"] == event and where(e):
                return e
        return None

    try:
        await recording.when(lambda: found() is not None).addTimeout(timeout, reactor)
    except Exception as e:
        names = [x["event"] for x in events_of(recording, call_uuid)]
        raise AssertionError(f"no {event} for {call_uuid} within {timeout} s; got {names}") from e
    result = found()
    assert result is not None
    return result


def assert_complete_and_ordered(recording: RecordingReceiver, call_uuid: str) -> list[str]:
    """
    The call's events arrived in sequence order, each sequence number from 1 to the last
    exactly once (an at-least-once repeat of one event_id aside), each with its own
    event_id, ending with hangup and call_quality: the names, in order.
    """
    arrivals = [e for e in recording.accepted() if e.get("call_uuid") == call_uuid]
    sequences = collapse_repeats([e["sequence"] for e in arrivals])
    assert sequences == list(range(1, len(sequences) + 1)), (call_uuid, sequences)
    by_sequence: dict[int, str] = {}
    for e in arrivals:
        assert by_sequence.setdefault(e["sequence"], e["event_id"]) == e["event_id"], e
    names = [e["event"] for e in events_of(recording, call_uuid)]
    assert names[-2:] == ["hangup", "call_quality"], (call_uuid, names)
    assert names.count("hangup") == 1, (call_uuid, names)
    return names


class ServerProcess(ProcessProtocol):
    """
    C{twistd -n iradialer --config FILE} in a process of its own: its log lines, a Deferred
    for a line to come, and one for its end (with the signal that ended it).
    """

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log.open("ab")
        self.lines: list[str] = []
        self.ended: Deferred[int | None] = Deferred()
        self._buffer = b""
        self._waiting: list[tuple[str, Deferred[str]]] = []
        self.process: Any = None

    def start(self) -> ServerProcess:
        twistd = str(Path(sys.executable).parent / "twistd")
        argv = [twistd, "--pidfile=", "-n", "iradialer", "--config", str(self.config)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = reactor.spawnProcess(
            self, twistd, argv, env=env, path=str(self.config.parent)
        )
        return self

    def line(self, text: str) -> Deferred[str]:
        """Fires with the first log line (from now) that contains C{text}."""
        d: Deferred[str] = Deferred()
        self._waiting.append((text, d))
        return d.addTimeout(TIMEOUT, reactor)

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.log.write(data)
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            for entry in list(self._waiting):
                if entry[0] in line:
                    self._waiting.remove(entry)
                    entry[1].callback(line)

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        self.log.close()
        self.ended.callback(getattr(reason.value, "signal", None))

    async def kill(self) -> int | None:
        """SIGKILL: no shutdown code runs."""
        self.process.signalProcess("KILL")
        return await self.ended

    async def stop(self) -> None:
        if not self.ended.called:
            self.process.signalProcess("TERM")
            await self.ended


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack_fixture(**start: Any) -> Any:
    """A pytest fixture: a started L{Stack} per test, stopped afterwards."""

    @pytest_twisted.async_yield_fixture
    async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
        running = Stack(tmp_path)
        try:
            yield await running.start(**start)
        finally:
            await running.stop()

    return stack
