"""
Helpers for driving the simulator deterministically, in this project's tests and in yours:
a clock-driven reactor whose UDP ports record what they send, Event Socket connections over
C{StringTransport}, and a parser for what FreeSWITCH (or the simulator) writes on the wire.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport

from iradialer.sim.scenarios import ScenarioPlan, parse_scenarios
from iradialer.sim.server import EventSocketFactory, EventSocketProtocol
from iradialer.sim.simulator import Simulator


@dataclass
class Frame:
    """One frame as an Event Socket client reads it."""

    headers: dict[str, str]
    body: bytes = b""
    event: dict[str, str] | None = None
    event_pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def text(self) -> str:
        """Reply-Text of a command/reply, else the body."""
        if self.content_type == "command/reply":
            return self.headers.get("Reply-Text", "")
        return self.body.decode("utf-8", "replace")

    @property
    def name(self) -> str | None:
        if self.event is None:
            return None
        if self.event.get("Event-Name") == "CUSTOM":
            return self.event.get("Event-Subclass")
        return self.event.get("Event-Name")


def parse_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """Complete frames in C{data}, and the bytes of an incomplete last one."""
    frames: list[Frame] = []
    while True:
        end = data.find(b"\n\n")
        if end < 0:
            return frames, data
        headers: dict[str, str] = {}
        for line in data[:end].decode("utf-8", "surrogateescape").split("\n"):
            key, _, value = line.partition(": ")
            headers[key] = value
        length = int(headers.get("Content-Length", "0") or 0)
        if len(data) < end + 2 + length:
            return frames, data
        body = data[end + 2 : end + 2 + length]
        data = data[end + 2 + length :]
        frame = Frame(headers, body)
        if frame.content_type == "text/event-json":
            pairs = list(json.loads(body, object_pairs_hook=lambda p: p))
            frame.event_pairs = [(k, v) for k, v in pairs]
            frame.event = dict(frame.event_pairs)
        elif frame.content_type == "text/event-plain":
            text = body.decode("utf-8", "surrogateescape")
            head, _, rest = text.partition("\n\n")
            pairs = []
            for line in head.split("\n"):
                key, _, value = line.partition(": ")
                pairs.append((key, urllib.parse.unquote(value)))
            if pairs and pairs[-1][0] == "Content-Length":
                pairs.append(("_body", rest))
            frame.event_pairs = pairs
            frame.event = dict(pairs)
        frames.append(frame)


def client_packets(sent: bytes) -> list[bytes]:
    """Split what a client sent into its commands (each ends with an empty line)."""
    return [chunk + b"\n\n" for chunk in sent.split(b"\n\n") if chunk.strip()]


class FakeDatagramTransport:
    def __init__(self, port: FakeUDPPort) -> None:
        self.port = port

    def write(self, data: bytes, addr: Any = None) -> None:
        self.port.sent.append((data, addr))


class FakeUDPPort:
    """A bound UDP port that records its datagrams; L{receive} delivers one to it."""

    def __init__(self, reactor: SimulatorReactor, port: int, protocol: Any, interface: str):
        self.reactor = reactor
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.sent: list[tuple[bytes, Any]] = []
        self.listening = True
        protocol.makeConnection(FakeDatagramTransport(self))

    def stopListening(self) -> None:  # noqa: N802
        self.listening = False
        self.protocol.doStop()

    def receive(self, data: bytes, addr: tuple[str, int] = ("127.0.0.1", 9000)) -> None:
        self.protocol.datagramReceived(data, addr)


class SimulatorReactor(MemoryReactorClock):
    """A MemoryReactorClock with fake UDP ports."""

    def __init__(self) -> None:
        super().__init__()
        self.udp_ports: list[FakeUDPPort] = []

    def listenUDP(  # noqa: N802
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeUDPPort:
        fake = FakeUDPPort(self, port, protocol, interface)
        self.udp_ports.append(fake)
        return fake

    def run_for(self, seconds: float, step: float = 0.02) -> None:
        """Advance the clock in C{step}s (the media tick) for C{seconds}."""
        steps = int(round(seconds / step))
        for _ in range(steps):
            self.advance(step)
        self.advance(0)


class Connection:
    """One Event Socket client connection over a StringTransport."""

    def __init__(self, protocol: EventSocketProtocol) -> None:
        self.protocol = protocol
        self.transport = StringTransport()
        protocol.makeConnection(self.transport)
        self._seen = 0
        self._partial = b""

    def send(self, data: bytes | str) -> None:
        self.protocol.dataReceived(data.encode() if isinstance(data, str) else data)

    def command(self, line: str) -> None:
        self.send(line + "\n\n")

    def frames(self) -> list[Frame]:
        """The frames written since the last call."""
        data = self.transport.value()
        new = self._partial + data[self._seen :]
        self._seen = len(data)
        frames, self._partial = parse_frames(new)
        return frames

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting


class Harness:
    """A simulator on a fake clock, with Event Socket connections to it."""

    def __init__(
        self,
        scenarios: str | None = None,
        sounds_dir: Path | None = None,
        password: str = "ClueCon",
    ) -> None:
        self.reactor = SimulatorReactor()
        plan = parse_scenarios(scenarios, "(test)", Path.cwd()) if scenarios else ScenarioPlan()
        self.sim = Simulator(self.reactor, plan, sounds_dir=sounds_dir)
        self.factory = EventSocketFactory(self.sim, password)

    def connect(self, authenticate: bool = False, events: str | None = None) -> Connection:
        connection = Connection(self.factory.buildProtocol(None))
        if authenticate:
            connection.command("auth ClueCon")
        if events:
            connection.command(f"event {events}")
        if authenticate or events:
            connection.frames()
        return connection

    def run_for(self, seconds: float, step: float = 0.02) -> None:
        self.reactor.run_for(seconds, step)
