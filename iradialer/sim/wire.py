"""
FreeSWITCH's text conventions, as the simulator must reproduce them byte for byte.

Pure functions and small values only (no Twisted): the argument splitter every API command
uses, the URL encoding of plain events, events themselves with their plain, JSON and XML
forms, cJSON's pretty printer (conference json_list), and the hangup-cause table.  Each one
follows the behaviour of the FreeSWITCH source the captures in C{tests/fixtures/esl} came
from (1.11.3-dev); the comments say which part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring

# switch_utils.h SWITCH_URL_UNSAFE, plus every byte outside ' '..'~'.
_URL_UNSAFE = set(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_HEX = b"0123456789ABCDEF"


def url_encode(value: str) -> str:
    """
    Encode C{value} the way plain events and C{uuid_dump} do: unsafe bytes become C{%XX},
    except a C{%} that already starts an upper-case hex escape.
    """
    raw = value.encode("utf-8", "surrogateescape")
    out = bytearray()
    n = len(raw)
    for i, byte in enumerate(raw):
        if byte == 0x25 and i + 2 < n and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
            out.append(byte)
        elif byte < 0x20 or byte > 0x7E or byte in _URL_UNSAFE:
            out += b"%" + bytes((_HEX[byte >> 4], _HEX[byte & 15]))
        else:
            out.append(byte)
    return out.decode("ascii")


def _unescape(char: str) -> str:
    return {"n": "\n", "r": "\r", "t": "\t", "s": " "}.get(char, char)


def _cleanup(token: str, delim: str | None) -> str:
    """
    Strip leading/trailing blanks, single quotes and backslash escapes from one token, as
    switch_utils.c cleanup_separated_string does.
    """
    token = token.lstrip(" ")
    out: list[str] = []
    end = 0
    inside = False
    i = 0
    while i < len(token):
        char = token[i]
        if char == "\\" and i + 1 < len(token):
            nxt = token[i + 1]
            if nxt in ("'", '"', "\\") or (delim and nxt == delim) or _unescape(nxt) != nxt:
                out.append(_unescape(nxt) if nxt not in ("'", '"', "\\", delim) else nxt)
                end = len(out)
                i += 2
                continue
        if char == "'" and (inside or "'" in token[i + 1 :]):
            inside = not inside
            if inside:
                end = len(out)
        else:
            out.append(char)
            if char != " " or inside:
                end = len(out)
        i += 1
    return "".join(out[:end])


def separate_string(text: str, delim: str = " ", limit: int = 1024) -> list[str]:
    """
    Split C{text} like C{switch_separate_string}: single quotes group, a backslash escapes
    the next character, at most C{limit} tokens (the last one keeps the rest of the text),
    and C{^^X} at the start chooses C{X} as the delimiter.
    """
    if text.startswith("^^") and len(text) > 3:
        delim, text = text[2], text[3:]
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n and len(tokens) < limit:
        start = i
        if len(tokens) == limit - 1:
            tokens.append(text[start:])
            break
        if delim == " ":
            while i < n and text[i] == " ":
                i += 1
        inside = False
        while i < n:
            char = text[i]
            if char == "\\":
                i += 2
                continue
            if char == "'" and (delim == " " or inside or "'" in text[i + 1 :]):
                inside = not inside
            elif char == delim and not inside:
                break
            i += 1
        tokens.append(text[start:i])
        i += 1
        if delim == " ":
            while i < n and text[i] == " ":
                i += 1
    return [_cleanup(t, None if delim == " " else delim) for t in tokens]


# switch_event.c EVENT_NAMES, in enum order; "ALL" last.
EVENT_NAMES = (
    "CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_ANSWER "
    "CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD "
    "CHANNEL_UNHOLD CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA "
    "CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK CHANNEL_APPLICATION CHANNEL_ORIGINATE "
    "CHANNEL_UUID API LOG INBOUND_CHAN OUTBOUND_CHAN STARTUP SHUTDOWN PUBLISH UNPUBLISH TALK "
    "NOTALK SESSION_CRASH MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE PRESENCE_IN NOTIFY_IN "
    "PRESENCE_OUT PRESENCE_PROBE MESSAGE_WAITING MESSAGE_QUERY ROSTER CODEC BACKGROUND_JOB "
    "DETECTED_SPEECH DETECTED_TONE PRIVATE_COMMAND HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE "
    "EXE_SCHEDULE RE_SCHEDULE RELOADXML NOTIFY PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE "
    "RECV_MESSAGE REQUEST_PARAMS CHANNEL_DATA GENERAL COMMAND SESSION_HEARTBEAT "
    "CLIENT_DISCONNECTED SERVER_DISCONNECTED SEND_INFO RECV_INFO RECV_RTCP_MESSAGE "
    "SEND_RTCP_MESSAGE CALL_SECURE NAT RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP "
    "CALL_UPDATE FAILURE SOCKET_DATA MEDIA_BUG_START MEDIA_BUG_STOP CONFERENCE_DATA_QUERY "
    "CONFERENCE_DATA CALL_SETUP_REQ CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE TEXT "
    "SHUTDOWN_REQUESTED CERT_RELOAD ALL"
).split()


def event_type(name: str) -> str | None:
    """
    The canonical event name for a subscription keyword (case-insensitive, an optional
    C{SWITCH_EVENT_} prefix), or None when FreeSWITCH knows no such event.
    """
    upper = name.upper()
    if len(upper) > 13 and upper[13:] in EVENT_NAMES:
        return upper[13:]
    return upper if upper in EVENT_NAMES else None


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header C{name} (names compare case-insensitively, as FreeSWITCH's)."""
    lower = name.lower()
    for key, value in headers:
        if key.lower() == lower:
            return value
    return None


@dataclass
class Event:
    """
    One event: ordered headers (names may repeat, as in FreeSWITCH) and an optional body.
    """

    name: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None
    subclass: str | None = None
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def add(self, name: str, value: object) -> None:
        """Add a header at the bottom; empty or None values are dropped, like FreeSWITCH."""
        if value is None:
            return
        text = str(value)
        if text:
            self.headers.append((name, text))

    def extend(self, pairs: Iterable[tuple[str, object]]) -> None:
        for name, value in pairs:
            self.add(name, value)

    def get(self, name: str) -> str | None:
        return header(self.headers, name)

    def get_all(self, name: str) -> Iterator[str]:
        lower = name.lower()
        return (value for key, value in self.headers if key.lower() == lower)

    def plain(self, encode: bool = True) -> bytes:
        """
        C{switch_event_serialize}: C{Name: value} lines, values URL-encoded (or bracketed
        when C{encode} is false, as C{uuid_dump <uuid> plain}), then the body.
        """
        key = f"plain{encode}"
        if key not in self._cache:
            lines = []
            for name, value in self.headers:
                shown = url_encode(value) if encode else f"[{value}]"
                lines.append(f"{name}: {shown or '_undef_'}\n")
            if self.body:
                lines.append(f"Content-Length: {len(self.body.encode())}\n\n{self.body}")
            else:
                lines.append("\n")
            self._cache[key] = "".join(lines).encode("utf-8", "surrogateescape")
        return self._cache[key]

    def json(self) -> bytes:
        """C{switch_event_serialize_json}: one compact object, duplicate keys kept."""
        if "json" not in self._cache:
            pairs = list(self.headers)
            if self.body is not None:
                pairs.append(("Content-Length", str(len(self.body.encode()))))
                pairs.append(("_body", self.body))
            text = "{" + ",".join(f"{_jstr(k)}:{_jstr(v)}" for k, v in pairs) + "}"
            self._cache["json"] = text.encode("utf-8", "surrogateescape")
        return self._cache["json"]

    def xml(self) -> bytes:
        """C{switch_event_xmlize} as written by C{switch_xml_toxml}."""
        if "xml" not in self._cache:
            parts = ["<event>\n  <headers>\n"]
            for name, value in self.headers:
                parts.append(f"    <{name}>{url_encode(value)}</{name}>\n")
            parts.append("  </headers>\n")
            if self.body:
                parts.append(f"  <body>{_xml_escape(self.body)}</body>\n")
            parts.append("</event>\n")
            self._cache["xml"] = "".join(parts).encode("utf-8", "surrogateescape")
        return self._cache["xml"]

    def serialize(self, fmt: str) -> bytes:
        return {"plain": self.plain, "json": self.json, "xml": self.xml}[fmt]()


# One JSON string, as json.dumps(value, ensure_ascii=False) writes it (that is what it calls),
# without building an encoder for each of the hundred-odd headers of every event.
_jstr = encode_basestring


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cjson_pretty(value: object, depth: int = 0) -> str:
    """
    C{cJSON_Print}: tabs for indentation, C{":\\t"} between key and value, C{", "} between
    array items, each nesting one tab deeper (the form of C{conference <name> json_list}).
    """
    if isinstance(value, dict):
        if not value:
            return "{\n" + "\t" * depth + "}"
        pad = "\t" * (depth + 1)
        items = [f"{pad}{_jstr(k)}:\t{cjson_pretty(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "\t" * depth + "}"
    if isinstance(value, list):
        return "[" + ", ".join(cjson_pretty(v, depth + 1) for v in value) + "]"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return _jstr(value)
    return json.dumps(value)


# switch_channel.c CAUSE_CHART with the numbers of switch_types.h.
CAUSES: dict[str, int] = {
    "NONE": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6,
    "CALL_AWARDED_DELIVERED": 7,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "REDIRECTION_TO_NEW_DESTINATION": 23,
    "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "PRE_EMPTED": 45,
    "FACILITY_NOT_SUBSCRIBED": 50,
    "OUTGOING_CALL_BARRED": 52,
    "INCOMING_CALL_BARRED": 54,
    "BEARERCAPABILITY_NOTAUTH": 57,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "SERVICE_UNAVAILABLE": 63,
    "BEARERCAPABILITY_NOTIMPL": 65,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "SERVICE_NOT_IMPLEMENTED": 79,
    "INVALID_CALL_REFERENCE": 81,
    "INCOMPATIBLE_DESTINATION": 88,
    "INVALID_MSG_UNSPECIFIED": 95,
    "MANDATORY_IE_MISSING": 96,
    "MESSAGE_TYPE_NONEXIST": 97,
    "WRONG_MESSAGE": 98,
    "IE_NONEXIST": 99,
    "INVALID_IE_CONTENTS": 100,
    "WRONG_CALL_STATE": 101,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "MANDATORY_IE_LENGTH_ERROR": 103,
    "PROTOCOL_ERROR": 111,
    "INTERWORKING": 127,
    "SUCCESS": 142,
    "ORIGINATOR_CANCEL": 487,
    "CRASH": 700,
    "SYSTEM_SHUTDOWN": 701,
    "LOSE_RACE": 702,
    "MANAGER_REQUEST": 703,
    "BLIND_TRANSFER": 800,
    "ATTENDED_TRANSFER": 801,
    "ALLOTTED_TIMEOUT": 802,
    "USER_CHALLENGE": 803,
    "MEDIA_TIMEOUT": 804,
    "PICKED_OFF": 805,
    "USER_NOT_REGISTERED": 806,
    "PROGRESS_TIMEOUT": 807,
    "INVALID_GATEWAY": 808,
    "GATEWAY_DOWN": 809,
    "INVALID_URL": 810,
    "INVALID_PROFILE": 811,
    "NO_PICKUP": 812,
    "SRTP_READ_ERROR": 813,
    "BOWOUT": 814,
    "BUSY_EVERYWHERE": 815,
    "DECLINE": 816,
    "DOES_NOT_EXIST_ANYWHERE": 817,
    "NOT_ACCEPTABLE": 818,
    "UNWANTED": 819,
    "NO_IDENTITY": 820,
    "BAD_IDENTITY_INFO": 821,
}
_CAUSE_NAMES = {number: name for name, number in CAUSES.items()}


def cause_name(cause: int) -> str:
    return _CAUSE_NAMES.get(cause, "UNKNOWN")


def str2cause(text: str | None) -> int:
    """C{switch_channel_str2cause}: a number, a name (any case), else NORMAL_CLEARING."""
    if not text:
        return CAUSES["NORMAL_CLEARING"]
    if text[0].isdigit():
        digits = ""
        for char in text:
            if not char.isdigit():
                break
            digits += char
        return int(digits)
    return CAUSES.get(text.upper(), CAUSES["NORMAL_CLEARING"])


def cause_q850(cause: int) -> int:
    """Causes beyond Q.850's range are reported as 16 in C{hangup_cause_q850}."""
    return cause if cause <= CAUSES["INTERWORKING"] else CAUSES["NORMAL_CLEARING"]
