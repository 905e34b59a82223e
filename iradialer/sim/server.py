"""
The Event Socket server side (mod_event_socket, inbound connections) over the simulator.

Framing and replies follow mod_event_socket.c: a packet is a command line plus header lines
up to an empty line (a C{Content-Length} header brings a body), commands are handled one at a
time per connection, a blocking C{api} holds back the connection's events until its reply
is written, and events go out in the connection's format (plain, json or xml) chosen when
they are sent.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.sim.channels import PrivateCommand
from iradialer.sim.commands import ApiCommands
from iradialer.sim.scenarios import ScenarioPlan, load_scenarios
from iradialer.sim.simulator import Simulator
from iradialer.sim.wire import EVENT_NAMES, Event, event_type, header

DISCONNECT = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
MAX_CONTENT_LENGTH = 10 * 1024 * 1024
LOG_LEVELS = {
    "console": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


class Packet:
    """One command as mod_event_socket's read_packet parses it."""

    def __init__(self, command: str, headers: list[tuple[str, str]], body: str | None) -> None:
        self.command = command
        self.headers = headers
        self.body = body

    def get(self, name: str) -> str | None:
        return header(self.headers, name)


class EventSocketProtocol(Protocol):
    """One inbound Event Socket connection."""

    log = Logger()

    def __init__(self, sim: Simulator, api: ApiCommands, password: str) -> None:
        self.sim = sim
        self.api = api
        self.password = password
        self.buffer = b""
        self.authed = False
        self.running = True
        self.busy = False
        self.inbox: list[Packet] = []
        self.outbox: list[Event] = []
        self.format = "plain"
        self.events_on = False
        self.all_events = False
        self.subscribed: set[str] = set()
        self.custom: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.logging = False
        self.my_uuid: str | None = None

    # Connection

    def connectionMade(self) -> None:  # noqa: N802
        self.sim.listeners.append(self)
        self._send(b"Content-Type: auth/request\n\n")

    def _send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        self.running = False
        if self in self.sim.listeners:
            self.sim.listeners.remove(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.buffer += data
        while self.running:
            packet = self._take_packet()
            if packet is None:
                break
            self.inbox.append(packet)
        self._work()

    def _take_packet(self) -> Packet | None:
        buffer = self.buffer.lstrip(b"\r\n")
        match = re.search(rb"\n\r*\n", buffer)
        if match is None:
            self.buffer = buffer
            return None
        head = buffer[: match.start()].decode("utf-8", "surrogateescape")
        rest = buffer[match.end() :]
        lines = [line.rstrip("\r") for line in head.split("\n")]
        headers: list[tuple[str, str]] = []
        body = None
        length = 0
        for line in lines[1:]:
            if ":" not in line:
                continue
            key, _, value = line.partition(":")
            headers.append((key, value.lstrip(" ")))
            if key.lower() == "content-length":
                try:
                    length = int(value.strip() or 0)
                except ValueError:
                    length = 0
                if length < 0 or length > MAX_CONTENT_LENGTH:
                    self.log.warn("Rejecting Content-Length {value!r}", value=value)
                    self._close()
                    self.running = False
                    return None
        if length:
            if len(rest) < length:
                self.buffer = buffer
                return None
            body = rest[:length].decode("utf-8", "surrogateescape")
            rest = rest[length:]
        self.buffer = rest
        return Packet(lines[0], headers, body)

    # Commands, one at a time

    def _work(self) -> None:
        while self.inbox and not self.busy and self.running:
            packet = self.inbox.pop(0)
            self.busy = True
            try:
                pending = self.handle(packet)
            except Exception:
                self.log.failure("Command {command!r} failed", command=packet.command)
                pending = None
                self._write_reply("-ERR command parse error.")
            if pending is not None:
                pending.addCallback(self._api_reply)
                pending.addErrback(self._api_failed)
                return
            self._idle()
        if not self.running and self.transport is not None:
            self.inbox.clear()

    def _idle(self) -> None:
        self.busy = False
        self._flush()

    def _api_reply(self, text: str) -> None:
        if self.running:
            self._write_api(text)
            self._idle()
            self._work()

    def _api_failed(self, failure: Failure) -> None:
        self.log.failure("api command failed", failure)
        self._api_reply("-ERR command failed\n")

    def _write_reply(self, reply: str) -> None:
        if reply.startswith("~"):
            self._send(f"Content-Type: command/reply\n{reply[1:]}".encode())
        else:
            self._send(f"Content-Type: command/reply\nReply-Text: {reply}\n\n".encode())

    def _write_api(self, text: str) -> None:
        body = (text or "-ERR no reply\n").encode("utf-8", "surrogateescape")
        head = f"Content-Type: api/response\nContent-Length: {len(body)}\n\n".encode()
        self._send(head + body)

    def handle(self, packet: Packet) -> Deferred[str] | None:
        """Answer one command; a blocking C{api} returns the Deferred of its reply."""
        cmd = packet.command
        lower = cmd.lower()
        if lower.startswith(("exit", "...")):
            self._write_reply("+OK bye")
            self._disconnect()
            return None
        if not self.authed:
            if lower.startswith("auth ") and cmd[5:] == self.password:
                self.authed = True
                self._write_reply("+OK accepted")
            elif lower.startswith(("auth ", "userauth ")):
                self._write_reply("-ERR invalid")
                self._disconnect()
            return None
        if lower.startswith("api "):
            return self._api(cmd[4:])
        if lower.startswith("bgapi "):
            self._bgapi(cmd[6:], packet.get("job-uuid"))
            return None
        self._write_reply(self._command(packet, cmd, lower))
        return None

    def _command(self, packet: Packet, cmd: str, lower: str) -> str:
        if lower.startswith("filter "):
            return self._filter(cmd[7:])
        if lower.startswith("myevents "):
            return self._myevents(cmd[9:])
        if lower.startswith("sendmsg"):
            return self._sendmsg(packet)
        if lower.startswith("log"):
            return self._log(cmd[3:])
        if lower.startswith("linger") or lower.startswith("nolinger"):
            return "-ERR not controlling a session"
        if lower.startswith("nolog"):
            if self.logging:
                self.logging = False
                return "+OK no longer logging"
            return "-ERR not loging"
        if lower.startswith("event"):
            return self._event(cmd)
        if lower.startswith("nixevent"):
            return self._nixevent(cmd)
        if lower.startswith("noevents"):
            if self.events_on:
                self.outbox.clear()
                self.events_on = self.all_events = False
                self.subscribed.clear()
                self.custom.clear()
                return "+OK no longer listening for events"
            return "-ERR not listening for events"
        return "-ERR command not found"

    def _disconnect(self) -> None:
        self.running = False
        self.outbox.clear()
        self.inbox.clear()
        notice = b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n" % len(DISCONNECT)
        self._send(notice + DISCONNECT)
        self._close()

    def _run_api(self, line: str) -> tuple[str, str | None, str | Deferred[str]]:
        command, space, rest = line.partition(" ")
        arg = rest if space else None
        reply = self.api.execute(command, arg)
        if reply is None:
            reply = f"-ERR {command} Command not found!\n"
        return command, arg, reply

    def _api(self, line: str) -> Deferred[str] | None:
        _, _, reply = self._run_api(line)
        if isinstance(reply, Deferred):
            return reply
        self._write_api(reply)
        return None

    def _bgapi(self, line: str, job_uuid: str | None) -> None:
        job = job_uuid or str(uuidlib.uuid4())
        self._write_reply(f"~Reply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n")
        command, arg, reply = self._run_api(line)
        if isinstance(reply, Deferred):
            reply.addCallback(self._background_job, job, command, arg)
            reply.addErrback(lambda f: self.log.failure("bgapi {cmd} failed", f, cmd=command))
        else:
            self._background_job(reply, job, command, arg)

    def _background_job(self, reply: str, job: str, command: str, arg: str | None) -> None:
        event = Event("BACKGROUND_JOB", body=reply)
        event.add("Job-UUID", job)
        event.add("Job-Command", command)
        event.add("Job-Command-Arg", arg)
        self.sim.fire(event, ("mod_event_socket.c", "api_exec", 1580))

    def _sendmsg(self, packet: Packet) -> str:
        uuid = packet.command[7:].strip(" ")
        if not uuid:
            uuid = packet.get("session-id") or ""
        channel = self.sim.channel(uuid)
        if channel is None or channel.destroyed:
            return f"-ERR invalid session id [{uuid}]"
        headers = [("Command", packet.command)] + packet.headers
        channel.queue_private(PrivateCommand(headers, packet.body, from_sendmsg=True))
        return "+OK"

    def _log(self, rest: str) -> str:
        level = rest.strip().split(" ")[0]
        if not level:
            self.logging = True
            return "+OK log level  [7]"
        number = int(level) if level.isdigit() else LOG_LEVELS.get(level.lower())
        if number is None or number > 7:
            return "-ERR invalid log level"
        self.logging = True
        return f"+OK log level {level} [{number}]"

    # Subscriptions

    def _event(self, cmd: str) -> str:
        words = cmd.split(" ")[1:]
        keys = 0
        custom = False
        for i, word in enumerate(words):
            if not word:
                continue
            if i == 0 and word.lower() in ("plain", "json", "xml"):
                self.format = word.lower()
                continue
            if custom:
                self.custom.add(word)
                continue
            name = event_type(word)
            if name is None:
                continue
            keys += 1
            if name == "ALL":
                self.all_events = True
            else:
                self.subscribed.add(name)
            if name == "CUSTOM":
                custom = True
        if not keys:
            return "-ERR no keywords supplied"
        self.events_on = True
        return f"+OK event listener enabled {self.format}"

    def _nixevent(self, cmd: str) -> str:
        words = cmd.split(" ")[1:]
        keys = 0
        custom = False
        for word in words:
            if not word:
                continue
            if custom:
                self.custom.discard(word)
                continue
            name = event_type(word)
            if name is None:
                continue
            keys += 1
            if name == "CUSTOM":
                custom = True
            elif name == "ALL":
                self.all_events = False
                self.subscribed.clear()
            else:
                if self.all_events:
                    self.all_events = False
                    self.subscribed = {n for n in _ALL_NAMES}
                self.subscribed.discard(name)
        if not keys:
            return "-ERR no keywords supplied"
        self.events_on = True
        return "+OK events nixed"

    def _filter(self, rest: str) -> str:
        rest = rest.lstrip(" ")
        name, _, value = rest.partition(" ")
        if name.lower() == "delete" and value:
            name, _, value = value.partition(" ")
            if name.lower() == "all":
                self.filters.clear()
            else:
                self.filters = [
                    (n, v)
                    for n, v in self.filters
                    if not (n.lower() == name.lower() and (not value or v == value))
                ]
            return f"+OK filter deleted. [{name}][{value}]"
        if not _:
            return "-ERR invalid syntax"
        if name.lower() == "add":
            name, _, value = value.partition(" ")
        self.filters.append((name, value))
        return f"+OK filter added. [{name}]=[{value}]"

    def _myevents(self, rest: str) -> str:
        words = rest.split()
        channel = self.sim.channel(words[0] if words else None)
        if channel is None:
            return "-ERR invalid uuid"
        if len(words) > 1 and words[1].lower() in ("plain", "json", "xml"):
            self.format = words[1].lower()
        self.my_uuid = channel.uuid
        self.events_on = self.all_events = True
        return "+OK Events Enabled"

    def wants(self, event: Event) -> bool:
        """mod_event_socket's event_handler decision for this connection."""
        if not self.events_on or not self.running:
            return False
        name = "CUSTOM" if event.subclass is not None else event.name
        send = self.all_events or (
            name in self.subscribed
            and (name != "CUSTOM" or event.subclass is None or event.subclass in self.custom)
        )
        if send and self.filters:
            send = False
            for filter_header, wanted in self.filters:
                value = event.get(filter_header)
                if value is None:
                    continue
                positive = True
                pattern = wanted
                while pattern[:1] in ("+", "-", " "):
                    positive = pattern[0] != "-" if pattern[0] in "+-" else positive
                    pattern = pattern[1:]
                if send and positive:
                    continue
                if not pattern:
                    continue
                if wanted.startswith("/"):
                    matched = _regex(pattern, value)
                else:
                    matched = value.lower() == pattern.lower()
                if matched:
                    if positive:
                        send = True
                    else:
                        send = False
                        break
        if send and self.my_uuid is not None:
            send = event.get("Unique-ID") == self.my_uuid
        return send

    def deliver(self, event: Event) -> None:
        if self.wants(event):
            self.outbox.append(event)
            if not self.busy:
                self._flush()

    def _flush(self) -> None:
        while self.outbox and not self.busy and self.running:
            event = self.outbox.pop(0)
            body = event.serialize(self.format)
            head = f"Content-Length: {len(body)}\nContent-Type: text/event-{self.format}\n\n"
            self._send(head.encode() + body)


_ALL_NAMES = set(EVENT_NAMES) - {"ALL"}


def _regex(pattern: str, value: str) -> bool:
    body = pattern[1:] if pattern.startswith("/") else pattern
    if "/" in body:
        body = body[: body.rindex("/")]
    try:
        return re.search(body, value) is not None
    except re.error:
        return False


class EventSocketFactory(Factory):
    """Connections to one simulator."""

    def __init__(self, sim: Simulator, password: str = "ClueCon") -> None:
        self.sim = sim
        self.api = ApiCommands(sim)
        self.password = password

    def buildProtocol(self, addr: Any) -> EventSocketProtocol:  # noqa: N802
        return EventSocketProtocol(self.sim, self.api, self.password)


class SimulatorService(Service):
    """
    The simulator (heartbeat, media) and its Event Socket listener, as one service.
    """

    log = Logger()

    def __init__(self, sim: Simulator, listen: str, reactor: Any, password: str) -> None:
        self.simulator = sim
        self.listen = listen
        self.factory = EventSocketFactory(sim, password)
        self.endpoint = serverFromString(reactor, listen)
        self._port: Any = None
        self._failure: Failure | None = None
        self._waiting: list[Deferred[Any]] = []

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self.simulator.start()
        d = self.endpoint.listen(self.factory)
        d.addCallbacks(self._listening, self._not_listening)

    def when_listening(self) -> Deferred[Any]:
        """Fires with the listening port once bound, or fails with why it cannot listen."""
        if self._port is not None:
            return succeed(self._port)
        if self._failure is not None:
            return fail(self._failure)
        d: Deferred[Any] = Deferred()
        self._waiting.append(d)
        return d

    def _listening(self, port: Any) -> None:
        self._port = port
        self.log.info("FreeSWITCH simulator listening on {address}", address=port.getHost())
        for d in self._drain():
            d.callback(port)

    def _not_listening(self, failure: Failure) -> None:
        self._failure = failure
        self.log.failure("The simulator cannot listen on {listen}", failure, listen=self.listen)
        for d in self._drain():
            d.errback(failure)

    def _drain(self) -> list[Deferred[Any]]:
        waiting, self._waiting = self._waiting, []
        return waiting

    def stopService(self) -> Deferred[None] | None:  # noqa: N802
        super().stopService()
        self.simulator.stop()
        if self._port is not None:
            port, self._port = self._port, None
            return port.stopListening()
        return None


def make_simulator_service(
    listen: str, reactor: Any, scenarios: Path | None = None, password: str = "ClueCon"
) -> SimulatorService:
    """
    An Event Socket server on C{listen} (a Twisted endpoint string) in front of a new
    simulator, its callees from the C{scenarios} file (or the built-in plan).

    @raise iradialer.config.ConfigError: the scenario file is unusable.
    """
    plan = load_scenarios(scenarios) if scenarios is not None else ScenarioPlan()
    base = scenarios.resolve().parent if scenarios is not None else None
    sim = Simulator(reactor, plan, sounds_dir=base)
    return SimulatorService(sim, listen, reactor, password)
