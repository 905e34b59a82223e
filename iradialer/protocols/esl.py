"""
The FreeSWITCH Event Socket, client side (inbound mode): bytes in, replies and events out.

A frame is a block of C{Name: value} lines ended by a blank line, then C{Content-Length}
bytes of body when that header is present.  FreeSWITCH sends C{auth/request} on connect,
exactly one C{command/reply} or C{api/response} per command, in the order the commands
were sent, and events (C{text/event-json}, C{text/event-plain}) and log lines
(C{log/data}) in between; C{text/disconnect-notice} before it closes and
C{text/rude-rejection} when its ACL refuses us.  C{tests/fixtures/esl/} holds real
captures; this module agrees with every one of them.

Commands return L{Deferred}s: C{api} is answered in FIFO order; C{bgapi} carries a
C{Job-UUID} we choose and is answered by the C{BACKGROUND_JOB} event with that id; an
application run with C{sendmsg} carries an C{Event-UUID} we choose, which FreeSWITCH
reports back as C{Application-UUID} of the C{CHANNEL_EXECUTE_COMPLETE} of that very run.
Events are handed to the listener synchronously, in arrival order, after the command
they answer (if any) has fired.

No reactor here: the protocol is driven by C{dataReceived}, and tests feed it bytes.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from typing import Protocol as TypingProtocol
from urllib.parse import unquote
from uuid import uuid4

import orjson
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.protocols import fscommand

MAX_HEADER_BYTES = 64 * 1024
# What FreeSWITCH itself accepts from a client (mod_event_socket MAX_CONTENT_LENGTH);
# ample for "show channels as json" with thousands of channels.
MAX_BODY_BYTES = 16 * 1024 * 1024
# Bytes taken from the socket per turn of the reactor.  Twisted's 64 KiB is about a dozen
# JSON events: a reactor also busy with call audio and webhooks then falls seconds behind
# a FreeSWITCH carrying a thousand calls, and command replies wait behind the events.
READ_SIZE = 1024 * 1024


class ProtocolError(Exception):
    """
    The byte stream is not Event Socket framing (or a frame exceeds the size limits).
    """


class CommandError(Exception):
    """
    FreeSWITCH answered C{-ERR ...} or C{-USAGE: ...}.

    @ivar text: FreeSWITCH's text without the trailing newline, e.g.
        C{"-ERR No such channel!"}.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(text)

    @property
    def no_such_channel(self) -> bool:
        """
        The command named a channel FreeSWITCH no longer has (C{sendmsg}'s C{-ERR invalid
        session id [...]}, the C{uuid_*} commands' C{-ERR No such channel!}): the call ended
        in the meantime and its hangup events are on their way.
        """
        lowered = self.text.lower()
        return "invalid session id" in lowered or "no such channel" in lowered


class AuthenticationFailed(CommandError):
    """
    FreeSWITCH refused the password.
    """


class ConnectionClosed(Exception):
    """
    The connection closed before the command was answered; whether FreeSWITCH acted on
    it is unknown.
    """


class ChannelGone(Exception):
    """
    The channel hung up before the application sent with C{sendmsg} completed (it was
    still queued, so FreeSWITCH will never report it).

    @ivar event: the C{CHANNEL_HANGUP_COMPLETE} event.
    """

    def __init__(self, event: Event) -> None:
        self.event = event
        super().__init__(f"channel {event.uuid} hung up ({event.get('Hangup-Cause')})")


class Frame:
    """
    One Event Socket message: its headers (as sent, not URL-decoded: FreeSWITCH does not
    encode them) and its body bytes.
    """

    __slots__ = ("headers", "body")

    def __init__(self, headers: dict[str, str], body: bytes = b"") -> None:
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self.headers == other.headers and self.body == other.body

    def __repr__(self) -> str:
        return f"<Frame {self.content_type} {len(self.body)} bytes>"


class FrameParser:
    """
    Incremental framing: L{feed} bytes as they come, iterate L{frames} for what is
    complete.  Content-Length counts bytes, so a multi-byte character split across reads
    is decoded only once its frame is whole.  A header block longer than
    C{max_header_bytes} or a body longer than C{max_body_bytes} is a L{ProtocolError}
    rather than memory growing without bound.
    """

    def __init__(
        self, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._scan_from = 0
        self._headers: dict[str, str] | None = None
        self._body_length = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def frames(self) -> Iterator[Frame]:
        buffer = self._buffer
        while True:
            headers = self._headers
            if headers is None:
                while buffer.startswith(b"\n"):
                    del buffer[:1]
                end = buffer.find(b"\n\n", self._scan_from)
                if end < 0:
                    if len(buffer) > self.max_header_bytes:
                        raise ProtocolError(
                            f"no end of headers within {self.max_header_bytes} bytes"
                        )
                    self._scan_from = max(0, len(buffer) - 1)
                    return
                if end > self.max_header_bytes:
                    raise ProtocolError(f"header block of {end} bytes")
                usual = _USUAL_HEADERS.fullmatch(buffer, 0, end)
                if usual is not None:
                    length = usual[1].decode()
                    headers = {"Content-Length": length, "Content-Type": usual[2].decode()}
                else:
                    headers = _frame_headers(bytes(buffer[:end]))
                    length = headers.get("Content-Length")
                del buffer[: end + 2]
                self._scan_from = 0
                if length is None:
                    yield Frame(headers)
                    continue
                if not length.isdigit():
                    raise ProtocolError(f"Content-Length {length!r}")
                self._body_length = int(length)
                if self._body_length > self.max_body_bytes:
                    raise ProtocolError(
                        f"Content-Length {self._body_length} over the limit of "
                        f"{self.max_body_bytes}"
                    )
                self._headers = headers
            size = self._body_length
            if len(buffer) < size:
                return
            body = bytes(buffer[:size])
            del buffer[:size]
            self._headers = None
            yield Frame(headers, body)


# How mod_event_socket heads every event frame; other frames take the general path.
_USUAL_HEADERS = re.compile(rb"Content-Length: ([0-9]{1,12})\nContent-Type: ([!-~]{1,100})")


def _frame_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError(f"header line without a colon: {line[:80]!r}")
        headers.setdefault(name, value.lstrip(" \t"))
    return headers


_JSON_PAIRS = json.JSONDecoder(object_pairs_hook=list)

HeaderValue = str | list[str]


class Event:
    """
    One FreeSWITCH event, from JSON or plain framing; both give the same values.

    Header names may repeat (C{CHANNEL_HANGUP_COMPLETE} carries C{Hangup-Cause} twice; a
    C{PRIVATE_COMMAND} carries the C{Event-Name} and C{Event-Sequence} of the C{sendmsg}
    it echoes before its own): L{__getitem__} gives the first value, L{get_all} every
    value.  L{name} and L{sequence} are the last C{Event-Name}/C{Event-Sequence}, which
    FreeSWITCH adds when it fires the event.  Array headers (JSON lists; C{ARRAY::a|:b} in
    plain) count as several values.  An empty value is C{""} in JSON and C{_undef_} in
    plain: kept as sent.

    @ivar name: C{Event-Name}.
    @ivar subclass: C{Event-Subclass} (CUSTOM events), else C{None}.
    @ivar uuid: C{Unique-ID}, else C{None}.
    @ivar body: the event's body (C{_body} in JSON), else C{None}.
    """

    __slots__ = ("name", "subclass", "uuid", "body", "_headers", "_pairs", "_repeats")

    def __init__(self, pairs: list[tuple[str, HeaderValue]], body: str | None = None) -> None:
        self._setup(dict(reversed(pairs)), pairs, body)

    def _setup(
        self,
        headers: dict[str, HeaderValue],
        pairs: list[tuple[str, HeaderValue]] | None,
        body: str | None,
    ) -> None:
        """
        C{pairs} is C{None} when it would only repeat C{headers} (no name twice).
        """
        self._headers = headers
        self._pairs = pairs
        self._repeats = pairs is not None and len(headers) != len(pairs)
        self.body = body
        name = headers.get("Event-Name", "")
        self.name = self._last("Event-Name") if self._repeats or type(name) is not str else name
        subclass = headers.get("Event-Subclass")
        self.subclass = subclass if subclass is None else _first(subclass)
        uuid = headers.get("Unique-ID")
        self.uuid = uuid if uuid is None else _first(uuid)

    @classmethod
    def from_json(cls, data: bytes) -> Event:
        """
        Parse the body of a C{text/event-json} frame.

        FreeSWITCH writes each header as C{"name":value} with no spaces, so a body with as
        many C{":} as keys repeats no name and the plain dict is the whole event.  Strings
        also hold C{":} when they start with a colon (C{"FreeSWITCH-IPv6":"::1"} on a host
        without IPv6, in every event) or contain one; counted in the decoded strings, those
        account for the rest exactly unless a name is repeated.  Otherwise the body is read
        again keeping every pair.

        @raise ValueError: not a JSON object of string or list-of-string values.
        """
        headers = orjson.loads(data)
        if not isinstance(headers, dict):
            raise ValueError("event JSON is not an object")
        pairs = None
        colons = data.count(b'":')
        if colons != len(headers) and colons != len(headers) + _colons_in_strings(headers):
            pairs = _JSON_PAIRS.decode(data.decode("utf-8"))
            headers = dict(reversed(pairs))
        body = headers.pop("_body", None)
        if body is not None:
            if not isinstance(body, str):
                raise ValueError("event _body is not a string")
            if pairs is not None:
                pairs = [(name, value) for name, value in pairs if name != "_body"]
        event = cls.__new__(cls)
        event._setup(headers, pairs, body)
        return event

    @classmethod
    def from_plain(cls, data: bytes) -> Event:
        """
        Parse the body of a C{text/event-plain} frame: C{Name: value} lines, each value
        URL-decoded on its own (as UTF-8, C{+} left alone), then a blank line, then
        C{Content-Length} bytes of event body when the event has one.
        """
        head, _, rest = data.partition(b"\n\n")
        pairs: list[tuple[str, HeaderValue]] = []
        length = None
        for line in head.decode("utf-8", "replace").split("\n"):
            name, _, raw = line.partition(":")
            value = raw.lstrip(" ")
            if "%" in value:
                value = unquote(value, errors="replace")
            if value.startswith("ARRAY::"):
                pairs.append((name, value[7:].split("|:")))
            else:
                pairs.append((name, value))
            if name == "Content-Length":
                length = value
        body = None
        if length is not None and length.isdigit():
            body = rest[: int(length)].decode("utf-8", "replace")
        return cls(pairs, body)

    def __getitem__(self, header: str) -> str:
        return _first(self._headers[header])

    def get(self, header: str, default: Any = None) -> Any:
        value = self._headers.get(header)
        return default if value is None else _first(value)

    def get_all(self, header: str) -> list[str]:
        if self._pairs is None:
            value = self._headers.get(header)
            pairs = [] if value is None else [(header, value)]
        else:
            pairs = self._pairs
        values: list[str] = []
        for name, value in pairs:
            if name == header:
                values.extend([value] if isinstance(value, str) else map(str, value))
        return values

    def __contains__(self, header: object) -> bool:
        return header in self._headers

    def items(self) -> list[tuple[str, HeaderValue]]:
        """
        Every header as received, in order, repeats included.
        """
        return list(self._headers.items() if self._pairs is None else self._pairs)

    @property
    def sequence(self) -> int | None:
        value = self._last("Event-Sequence")
        return int(value) if value.isdigit() else None

    def _last(self, header: str) -> str:
        if not self._repeats or self._pairs is None:
            return self.get(header, "")
        for name, value in reversed(self._pairs):
            if name == header:
                return _first(value)
        return ""

    def __repr__(self) -> str:
        subclass = f" {self.subclass}" if self.subclass else ""
        return f"<Event {self.name}{subclass} {self.uuid or ''} seq={self.sequence}>"


def _colons_in_strings(headers: dict[str, Any]) -> int:
    """
    How many C{":} the JSON text of C{headers}' names and string values holds inside or at
    the start of those strings (a quote is written C{\\"}, which keeps the C{":}).
    """
    values = []
    for value in headers.values():
        if type(value) is str:
            values.append(value)
        elif type(value) is list and all(type(item) is str for item in value):
            values.append('"'.join(value))
        else:
            return -1  # not an event's shape: let the careful reading decide
    return ('"' + '"'.join(headers) + '"' + '"'.join(values)).count('":')


def _first(value: HeaderValue) -> str:
    if type(value) is str:
        return value
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


def event_from_frame(frame: Frame) -> Event:
    """
    The event carried by a C{text/event-json} or C{text/event-plain} frame.
    """
    if frame.content_type == "text/event-json":
        return Event.from_json(frame.body)
    if frame.content_type == "text/event-plain":
        return Event.from_plain(frame.body)
    raise ValueError(f"not an event frame: {frame.content_type!r}")


def _is_error(text: str) -> bool:
    return text.startswith(("-ERR", "-USAGE"))


class EventSocketListener(TypingProtocol):
    """
    What an L{EventSocketClient} reports to.
    """

    def event_received(self, event: Event) -> None:
        """
        One event, in arrival order; called synchronously from C{dataReceived}.
        """

    def connection_lost(self, reason: Failure) -> None:
        """
        The connection is gone; every pending command has already failed.
        """


class _Pending:
    """
    A command waiting for its reply: C{kind} says how to read the reply.
    """

    __slots__ = ("kind", "deferred", "key")

    def __init__(self, kind: str, deferred: Deferred[Any] | None, key: str = "") -> None:
        self.kind = kind
        self.deferred = deferred
        self.key = key


class EventSocketClient(Protocol):
    """
    One inbound Event Socket connection: authenticates with C{password} when FreeSWITCH
    asks, then carries commands and delivers events to C{listener}.

    Values are checked before anything is sent (L{fscommand.UnsafeValue} is raised
    synchronously); everything after that is reported through the returned L{Deferred}.
    """

    log = Logger()

    def __init__(
        self,
        listener: EventSocketListener,
        password: str,
        *,
        new_uuid: Callable[[], str] = lambda: str(uuid4()),
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.listener = listener
        self._password = fscommand.command_line("auth " + password)[5:]
        self._new_uuid = new_uuid
        self._parser = FrameParser(max_header_bytes, max_body_bytes)
        self._replies: deque[_Pending] = deque()
        self._jobs: dict[str, Deferred[str]] = {}
        self._executes: dict[str, tuple[str, Deferred[Event]]] = {}
        self._executes_by_channel: dict[str, set[str]] = {}
        self._auth_waiters: list[Deferred[None]] = []
        self.authenticated = False
        self._auth_error: Exception | None = None
        self._closing_because: str | None = None
        self._closing_notice: str | None = None
        self._lost: Failure | None = None

    def connectionMade(self) -> None:
        if hasattr(self.transport, "bufferSize"):  # a TCP connection, not a test transport
            self.transport.bufferSize = READ_SIZE  # type: ignore[union-attr]

    @property
    def is_open(self) -> bool:
        """
        Connected and not closing.
        """
        return self.transport is not None and self._lost is None and not self._closing_because

    # -- commands --------------------------------------------------------------------

    def when_authenticated(self) -> Deferred[None]:
        """
        Fires once FreeSWITCH has accepted the password; fails with
        L{AuthenticationFailed}, or L{ConnectionClosed} once the connection is closing.
        """
        if self._auth_error is not None:
            return fail(self._auth_error)
        if not self.is_open and self.transport is not None:
            return fail(self._closed_error())
        if self.authenticated:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._auth_waiters.append(d)
        return d

    def api(self, command: str) -> Deferred[str]:
        """
        Run an API command and wait for its output (e.g. C{"+OK\\n"}); C{-ERR}/C{-USAGE}
        output fails with L{CommandError}.  FreeSWITCH holds back events on this
        connection while a blocking C{api} runs: long commands go through L{bgapi}.
        """
        return self._command("api", ["api " + command])

    def bgapi(self, command: str) -> Deferred[str]:
        """
        Run an API command in the background; fires with the body of its
        C{BACKGROUND_JOB} event (e.g. C{"+OK <uuid>\\n"}), or fails with L{CommandError}.
        """
        job = self._new_uuid()
        return self._command("bgapi", ["bgapi " + command, "Job-UUID: " + job], job)

    def execute(
        self, uuid: str, app: str, arg: str = "", event_lock: bool = False
    ) -> Deferred[Event]:
        """
        Run C{app} on the channel (C{sendmsg} C{execute}); fires with the
        C{CHANNEL_EXECUTE_COMPLETE} of this run (matched on C{Application-UUID}, so stale
        channel variables of earlier runs are never mistaken for its result).  Fails with
        L{CommandError} if FreeSWITCH refuses it, L{ChannelGone} if the channel hangs up
        before it runs.  C{arg} comes from an L{fscommand} builder.
        """
        event_uuid = self._new_uuid()
        lines = [
            "sendmsg " + fscommand.uuid(uuid),
            "call-command: execute",
            "execute-app-name: " + fscommand.application_name(app),
        ]
        if arg:
            lines.append("execute-app-arg: " + fscommand.header_value("execute-app-arg", arg))
        lines.append("event-uuid: " + event_uuid)
        if event_lock:
            lines.append("event-lock: true")
        return self._command("execute", lines, event_uuid, channel=uuid)

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> Deferred[str]:
        lines = [
            "sendmsg " + fscommand.uuid(uuid),
            "call-command: hangup",
            "hangup-cause: " + fscommand.hangup_cause(cause),
        ]
        return self._command("command", lines)

    def unicast(
        self,
        uuid: str,
        local_ip: str,
        local_port: int,
        remote_ip: str,
        remote_port: int,
        transport: str = "udp",
        flags: str | None = None,
    ) -> Deferred[str]:
        """
        Stream the channel's audio to C{remote_ip:remote_port} from FreeSWITCH's
        C{local_ip:local_port} (and play what comes back); L16 unless C{flags="native"}.
        """
        lines = ["sendmsg " + fscommand.uuid(uuid), "call-command: unicast"]
        headers = fscommand.unicast_addresses(
            local_ip, local_port, remote_ip, remote_port, transport
        )
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if flags is not None:
            lines.append("flags: " + fscommand.unicast_flags(flags))
        return self._command("command", lines)

    def subscribe(self, events: Sequence[str]) -> Deferred[str]:
        """
        C{event json <events>}: JSON events from now on (C{CUSTOM} then subclasses).
        """
        return self._command("command", [fscommand.event_subscription(events)])

    def filter(self, header: str, value: str, delete: bool = False) -> Deferred[str]:
        return self._command("command", [fscommand.event_filter(header, value, delete)])

    def command(self, line: str) -> Deferred[str]:
        """
        Any other Event Socket command (C{noevents}, C{nixevent ...}, C{log ...}); fires
        with its reply text.
        """
        return self._command("command", [line])

    def exit(self) -> Deferred[str]:
        """
        Ask FreeSWITCH to close the connection (C{+OK bye}, then a disconnect notice).
        """
        return self._command("command", ["exit"])

    def _command(
        self, kind: str, lines: list[str], key: str = "", channel: str = ""
    ) -> Deferred[Any]:
        fscommand.command_line(lines[0])
        for line in lines[1:]:
            fscommand.header_value("header", line)
        if not self.is_open:
            return fail(self._closed_error())
        d: Deferred[Any] = Deferred()
        if kind == "bgapi":
            self._jobs[key] = d
        elif kind == "execute":
            self._executes[key] = (channel, d)
            self._executes_by_channel.setdefault(channel, set()).add(key)
        self._replies.append(_Pending(kind, d, key))
        self._write(lines)
        return d

    def _write(self, lines: list[str]) -> None:
        assert self.transport is not None
        self.transport.write(("\n".join(lines) + "\n\n").encode("utf-8"))

    # -- incoming --------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._lost is not None or self._closing_because:
            return
        self._parser.feed(data)
        try:
            for frame in self._parser.frames():
                self._dispatch(frame)
                if self._closing_because:
                    return
        except ProtocolError as e:
            self.log.error("Event Socket framing broken, closing: {error}", error=str(e))
            self._close(f"protocol error: {e}")

    def _dispatch(self, frame: Frame) -> None:
        content_type = frame.headers.get("Content-Type")
        if content_type == "text/event-json" or content_type == "text/event-plain":
            self._event(frame)
        elif content_type == "command/reply":
            self._reply(frame.headers.get("Reply-Text", ""))
        elif content_type == "api/response":
            self._reply(frame.body.decode("utf-8", "replace"))
        elif content_type == "auth/request":
            self._replies.append(_Pending("auth", None))
            self._write(["auth " + self._password])
        elif content_type == "text/disconnect-notice":
            self._closing_notice = frame.body.decode("utf-8", "replace").strip()
            self.log.info("FreeSWITCH disconnects: {notice}", notice=self._closing_notice)
        elif content_type == "text/rude-rejection":
            text = frame.body.decode("utf-8", "replace").strip()
            self.log.error("FreeSWITCH refused the connection: {text}", text=text)
            self._close("rejected: " + text)
        elif content_type == "log/data":
            self.log.debug(
                "FreeSWITCH log: {text}", text=frame.body.decode("utf-8", "replace").rstrip()
            )
        else:
            self.log.warn("Ignoring Event Socket frame {type!r}", type=content_type)

    def _reply(self, text: str) -> None:
        if not self._replies:
            self.log.warn("Event Socket reply with no command waiting: {text!r}", text=text)
            return
        pending = self._replies.popleft()
        error = _is_error(text)
        if pending.kind == "auth":
            self._authenticated_as(text)
            return
        d = pending.deferred
        assert d is not None
        if pending.kind == "bgapi":
            if error and self._jobs.pop(pending.key, None) is not None:
                d.errback(CommandError(text.rstrip("\n")))
        elif pending.kind == "execute":
            if error and self._drop_execute(pending.key) is not None:
                d.errback(CommandError(text.rstrip("\n")))
        elif error:
            d.errback(CommandError(text.rstrip("\n")))
        else:
            d.callback(text)

    def _authenticated_as(self, text: str) -> None:
        waiters, self._auth_waiters = self._auth_waiters, []
        if text.startswith("+OK"):
            self.authenticated = True
            for d in waiters:
                d.callback(None)
            return
        self._auth_error = AuthenticationFailed(text)
        self.log.error("FreeSWITCH refused the Event Socket password: {text}", text=text)
        for d in waiters:
            d.errback(self._auth_error)
        self._close("authentication failed: " + text)

    def _event(self, frame: Frame) -> None:
        try:
            if frame.headers["Content-Type"] == "text/event-json":
                event = Event.from_json(frame.body)
            else:
                event = Event.from_plain(frame.body)
        except ValueError:
            self.log.failure("Dropping an event FreeSWITCH sent unreadable: {frame!r}", frame=frame)
            return
        self._correlate(event)
        try:
            self.listener.event_received(event)
        except Exception:
            self.log.failure("Event listener failed on {event!r}", event=event)

    def _correlate(self, event: Event) -> None:
        name = event.name
        if name == "BACKGROUND_JOB":
            job = self._jobs.pop(event.get("Job-UUID", ""), None)
            if job is not None:
                body = event.body or ""
                if _is_error(body):
                    job.errback(CommandError(body.rstrip("\n")))
                else:
                    job.callback(body)
        elif name == "CHANNEL_EXECUTE_COMPLETE":
            run = self._drop_execute(event.get("Application-UUID", ""))
            if run is not None:
                run.callback(event)
        elif name == "CHANNEL_HANGUP_COMPLETE" and event.uuid:
            for key in self._executes_by_channel.pop(event.uuid, set()):
                _, d = self._executes.pop(key)
                d.errback(ChannelGone(event))
        elif name == "CHANNEL_UUID" and event.uuid:
            keys = self._executes_by_channel.pop(event.get("Old-Unique-ID", ""), None)
            if keys:
                self._executes_by_channel.setdefault(event.uuid, set()).update(keys)
                for key in keys:
                    self._executes[key] = (event.uuid, self._executes[key][1])

    def _drop_execute(self, key: str) -> Deferred[Event] | None:
        run = self._executes.pop(key, None)
        if run is None:
            return None
        channel, d = run
        keys = self._executes_by_channel.get(channel, set())
        keys.discard(key)
        if not keys:
            self._executes_by_channel.pop(channel, None)
        return d

    # -- the end ---------------------------------------------------------------------

    def _close(self, why: str) -> None:
        self._closing_because = why
        if self.transport is not None:
            self.transport.loseConnection()

    def _closed_error(self) -> ConnectionClosed:
        why = self._closing_because or self._closing_notice
        if why is None and self._lost is not None:
            why = self._lost.getErrorMessage()
        return ConnectionClosed(why or "not connected")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = reason
        error = self._closed_error()
        replies, self._replies = self._replies, deque()
        jobs, self._jobs = self._jobs, {}
        executes, self._executes = self._executes, {}
        self._executes_by_channel = {}
        waiters, self._auth_waiters = self._auth_waiters, []
        for pending in replies:
            if pending.kind in ("api", "command") and pending.deferred is not None:
                pending.deferred.errback(error)
        for job in jobs.values():
            job.errback(error)
        for _, run in executes.values():
            run.errback(error)
        for waiter in waiters:
            waiter.errback(error)
        try:
            self.listener.connection_lost(reason)
        except Exception:
            self.log.failure("Event listener failed on connection loss")
