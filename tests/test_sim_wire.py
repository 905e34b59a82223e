"""
FreeSWITCH's text conventions as the simulator writes them, checked against the captures.
"""

from __future__ import annotations

import json

import pytest

from iradialer.sim.testing import parse_frames
from iradialer.sim.wire import (
    Event,
    cause_name,
    cause_q850,
    cjson_pretty,
    event_type,
    separate_string,
    str2cause,
    url_encode,
)
from tests.conftest import FIXTURES

ESL = FIXTURES / "esl"


@pytest.mark.parametrize(
    "raw, encoded",
    [
        (
            "{origination_uuid=533d}loopback/9196 &park()",
            "%7Borigination_uuid%3D533d%7Dloopback/9196%20%26park()",
        ),
        (
            "tone_stream://%(100,100,941,1209);%(100,100,941,1477) aleg",
            "tone_stream%3A//%25(100,100,941,1209)%3B%25(100,100,941,1477)%20aleg",
        ),
        (
            "1.11.3-dev+git~20260821T141014Z~cc93a683ca~64bit",
            "1.11.3-dev%2Bgit~20260821T141014Z~cc93a683ca~64bit",
        ),
        ('"Outbound Call" <9664>', "%22Outbound%20Call%22%20%3C9664%3E"),
        ("#", "%23"),
        ("*", "*"),
        ("%2F already", "%2F%20already"),
        ("fd00::2", "fd00%3A%3A2"),
    ],
)
def test_url_encode_matches_plain_events(raw, encoded):
    """Plain event values are URL-encoded like switch_url_encode (the dtmf_plain notes' list)."""
    assert url_encode(raw) == encoded


def test_url_encode_reproduces_a_captured_plain_event():
    """Every value of a captured plain event re-encodes to the exact bytes on the wire."""
    data = (ESL / "dtmf_plain.recv.raw").read_bytes()
    frames, _ = parse_frames(data)
    checked = 0
    for frame in frames:
        if frame.content_type != "text/event-plain":
            continue
        head = frame.body.decode().partition("\n\n")[0]
        for line, (name, value) in zip(head.split("\n"), frame.event_pairs):
            assert line == f"{name}: {url_encode(value) or '_undef_'}"
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    "text, delim, limit, tokens",
    [
        (
            "c04b 'conference:CONF-x@default,park' inline",
            " ",
            5,
            ["c04b", "conference:CONF-x@default,park", "inline"],
        ),
        (
            r"1 5 2 5000 # tone silence my_digits \d+",
            " ",
            11,
            ["1", "5", "2", "5000", "#", "tone", "silence", "my_digits", r"\d+"],
        ),
        ("a=b=c", "=", 2, ["a", "b=c"]),
        ("a,,b,", ",", 10, ["a", "", "b"]),
        ("  a   b  ", " ", 10, ["a", "b"]),
        ("a b c d", " ", 2, ["a", "b c d"]),
        (
            "origination_uuid=x,sip_h_X-Tag='a,b'",
            ",",
            10,
            ["origination_uuid=x", "sip_h_X-Tag=a,b"],
        ),
        ("^^:a:b", ",", 10, ["a", "b"]),
    ],
)
def test_separate_string(text, delim, limit, tokens):
    """Arguments split like switch_separate_string: quotes group, the last token takes the rest."""
    assert separate_string(text, delim, limit) == tokens


def test_event_serializations():
    """Plain events end with a blank line or a body; JSON keeps duplicate keys and _body."""
    event = Event("BACKGROUND_JOB", body="+OK x\n")
    event.extend([("Job-UUID", "j"), ("Hangup-Cause", "A"), ("Hangup-Cause", "A"), ("Empty", "")])
    assert (
        event.plain()
        == b"Job-UUID: j\nHangup-Cause: A\nHangup-Cause: A\nContent-Length: 6\n\n+OK x\n"
    )
    assert event.json() == (
        b'{"Job-UUID":"j","Hangup-Cause":"A","Hangup-Cause":"A",'
        b'"Content-Length":"6","_body":"+OK x\\n"}'
    )
    bare = Event("X")
    bare.add("A", "b c")
    assert bare.plain() == b"A: b%20c\n\n"
    assert bare.plain(encode=False) == b"A: [b c]\n\n"
    assert bare.xml() == b"<event>\n  <headers>\n    <A>b%20c</A>\n  </headers>\n</event>\n"


def test_cjson_pretty_matches_the_captured_json_list():
    """conference json_list is cJSON_Print output: the capture re-prints byte for byte."""
    text = (ESL / "conference_lifecycle.json_list.json").read_text()
    assert cjson_pretty(json.loads(text)) == text


def test_event_names_and_causes():
    """Subscription keywords and hangup causes use FreeSWITCH's tables."""
    assert event_type("channel_answer") == "CHANNEL_ANSWER"
    assert event_type("SWITCH_EVENT_DTMF") == "DTMF"
    assert event_type("NO_SUCH_EVENT") is None
    assert str2cause("user_busy") == 17
    assert str2cause("21") == 21
    assert str2cause("nonsense") == 16
    assert cause_name(19) == "NO_ANSWER"
    assert cause_q850(809) == 16
