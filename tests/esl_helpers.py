"""
Helpers for the Event Socket tests: the captures, frames built the way FreeSWITCH builds
them, and a transport that reports its own closing.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from iradialer.protocols.esl import Event, Frame, FrameParser
from tests.conftest import FIXTURES

CAPTURES = FIXTURES / "esl"
RECEIVED = sorted(CAPTURES.glob("*.recv.raw"))


def parse(chunks: list[bytes]) -> list[Frame]:
    parser = FrameParser()
    frames: list[Frame] = []
    for chunk in chunks:
        parser.feed(chunk)
        frames.extend(parser.frames())
    return frames


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


def frame_bytes(headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """
    A frame as mod_event_socket writes one (Content-Length counted in bytes).
    """
    lines = [f"{name}: {value}" for name, value in headers]
    if body:
        lines.insert(0, f"Content-Length: {len(body)}")
    return ("\n".join(lines) + "\n\n").encode() + body


_UNSAFE = set('\r\n #%&+:;<=>?@[\\]^`{|}"')


def url_encode(value: str) -> str:
    """
    C{switch_url_encode}: every byte outside printable ASCII and every unsafe character as
    C{%XX}, except a C{%} already followed by two hex digits.
    """
    raw = value.encode()
    out = []
    for i, byte in enumerate(raw):
        c = chr(byte)
        hexdigits = "0123456789ABCDEF"
        kept_percent = (
            c == "%"
            and len(raw) - i > 2
            and chr(raw[i + 1]) in hexdigits
            and chr(raw[i + 2]) in hexdigits
        )
        if not kept_percent and (byte < 32 or byte > 126 or c in _UNSAFE):
            out.append(f"%{byte:02X}")
        else:
            out.append(c)
    return "".join(out)


def plain_event(headers: list[tuple[str, str]], body: str | None = None) -> bytes:
    """
    A C{text/event-plain} frame as C{switch_event_serialize} writes it.
    """
    text = "".join(f"{name}: {url_encode(value) or '_undef_'}\n" for name, value in headers)
    if body:
        data = body.encode()
        event = (text + f"Content-Length: {len(data)}\n\n").encode() + data
    else:
        event = (text + "\n").encode()
    return frame_bytes([("Content-Type", "text/event-plain")], event)


def json_event(headers: list[tuple[str, object]], body: str | None = None) -> bytes:
    """
    A C{text/event-json} frame as C{switch_event_serialize_json} writes it (repeated
    names stay repeated).
    """
    items = [
        f"{json.dumps(name)}:{json.dumps(value, ensure_ascii=False)}" for name, value in headers
    ]
    if body is not None:
        items.append(f'"Content-Length":"{len(body.encode())}"')
        items.append(f'"_body":{json.dumps(body, ensure_ascii=False)}')
    data = ("{" + ",".join(items) + "}").encode()
    return frame_bytes([("Content-Type", "text/event-json")], data)


def reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api_response(text: str) -> bytes:
    data = text.encode()
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


AUTH_REQUEST = b"Content-Type: auth/request\n\n"
ACCEPTED = reply("+OK accepted")


def event(name: str, headers: dict[str, str] | None = None, body: str | None = None) -> bytes:
    """
    A small JSON event frame.
    """
    return json_event([("Event-Name", name), *(headers or {}).items()], body)


class Listener:
    """
    Records what an L{EventSocketClient} reports.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lost: list[Failure] = []

    def event_received(self, event: Event) -> None:
        self.events.append(event)

    def connection_lost(self, reason: Failure) -> None:
        self.lost.append(reason)


class ClosingTransport(StringTransport):
    """
    A L{StringTransport} whose C{loseConnection}/C{abortConnection} end the connection at
    once, as a real one does a moment later.
    """

    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None
        self.aborted = False

    def loseConnection(self) -> None:
        self._end(ConnectionDone("closed"))

    def abortConnection(self) -> None:
        self.aborted = True
        self._end(ConnectionDone("aborted"))

    def _end(self, error: Exception) -> None:
        if self.protocol is not None and not self.disconnecting:
            self.disconnecting = True
            self.protocol.connectionLost(Failure(error))


def connected(protocol: Any, transport: ClosingTransport | None = None) -> ClosingTransport:
    transport = transport or ClosingTransport()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return transport
