"""
Event Socket framing and event decoding, against every real capture in
C{tests/fixtures/esl/}: the same frames and values however the bytes are split.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iradialer.protocols import esl
from iradialer.protocols.esl import Event, Frame, FrameParser, ProtocolError, event_from_frame
from tests.esl_helpers import (
    CAPTURES,
    RECEIVED,
    api_response,
    bytewise,
    chunked,
    json_event,
    parse,
    plain_event,
)

# What each capture holds, counted independently of the parser (by the notes and by eye).
FRAME_COUNTS = {
    "avmd_app_test.recv.raw": 33,
    "avmd_test.recv.raw": 29,
    "basic_session.recv.raw": 28,
    "conference_lifecycle.recv.raw": 316,
    "detect_avmd_vmd_dtmf.recv.raw": 17,
    "dtmf_json.recv.raw": 82,
    "dtmf_plain.recv.raw": 91,
    "event_json_ALL_cycle.recv.raw": 72,
    "event_plain_ALL_cycle.recv.raw": 72,
    "isolate_avmd.recv.raw": 11,
    "isolate_coredtmf.recv.raw": 13,
    "isolate_dtmf.recv.raw": 13,
    "isolate_vmd.recv.raw": 12,
    "media_flite_wav.recv.raw": 27,
    "misc_replies.recv.raw": 24,
    "play_and_get_digits.recv.raw": 158,
    "record_dump.recv.raw": 104,
    "sip_answer.recv.raw": 43,
    "sip_busy486.recv.raw": 36,
    "sip_noanswer.recv.raw": 22,
    "sip_remote_bye.recv.raw": 39,
    "unicast_esl.recv.raw": 140,
    "unicast_more_esl.recv.raw": 15,
}

SMALL = [path for path in RECEIVED if path.stat().st_size <= 8192]


def whole(path: Path) -> list[Frame]:
    return parse([path.read_bytes()])


def events_of(frames: list[Frame]) -> list[Event]:
    return [event_from_frame(f) for f in frames if f.content_type.startswith("text/event-")]


def test_every_capture_is_counted():
    """
    The table of frame counts covers every capture, so none escapes the replay tests.
    """
    assert sorted(FRAME_COUNTS) == [path.name for path in RECEIVED]


@pytest.mark.parametrize("path", RECEIVED, ids=lambda p: p.name)
def test_capture_parses_into_its_frames(path):
    """
    Each capture parses completely (nothing left over) into the number of frames it holds,
    and every event frame decodes to an event with a name.
    """
    parser = FrameParser()
    parser.feed(path.read_bytes())
    frames = list(parser.frames())
    assert len(frames) == FRAME_COUNTS[path.name]
    assert not parser._buffer and parser._headers is None
    for event in events_of(frames):
        assert event.name
        assert event.sequence is not None


@pytest.mark.parametrize("path", RECEIVED, ids=lambda p: p.name)
def test_capture_fed_one_byte_at_a_time(path):
    """
    Fed one byte per read (so every byte boundary is a read boundary), each capture gives
    exactly the frames, and the events exactly the values, of a single read.
    """
    expected = whole(path)
    frames = parse(bytewise(path.read_bytes()))
    assert frames == expected
    assert [e.items() for e in events_of(frames)] == [e.items() for e in events_of(expected)]


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.name)
def test_small_capture_split_in_two_at_every_point(path):
    """
    Split into two reads at every possible point, a capture still gives the same frames.
    """
    data = path.read_bytes()
    expected = whole(path)
    for cut in range(len(data) + 1):
        assert parse([data[:cut], data[cut:]]) == expected, cut


@pytest.mark.parametrize("path", RECEIVED, ids=lambda p: p.name)
def test_capture_split_at_random_points(path):
    """
    Split at points hypothesis chooses, a capture gives the same frames and event values.
    (The property is nested: pytest-twisted cannot run a parametrized @given test.)
    """
    raw = path.read_bytes()
    expected = whole(path)
    expected_values = [e.items() for e in events_of(expected)]

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cuts=st.lists(st.integers(0, len(raw)), max_size=60))
    def split(cuts):
        frames = parse(chunked(raw, cuts))
        assert frames == expected
        assert [e.items() for e in events_of(frames)] == expected_values

    split()


@pytest.mark.parametrize("name", ["basic_session", "misc_replies"])
def test_frames_match_the_notes(name):
    """
    The notes of these runs print every frame received as a Python bytes literal; each is
    one frame of the capture, byte for byte, and for basic_session they are all of them.
    """
    notes = (CAPTURES / f"{name}.notes.txt").read_text()
    literals = [
        ast.literal_eval(m) for m in re.findall(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"", notes)
    ]
    noted = [frame for literal in literals if literal for frame in parse([literal])]
    received = whole(CAPTURES / f"{name}.recv.raw")
    assert all(frame in received for frame in noted)
    if name == "basic_session":
        key = repr
        assert sorted(noted, key=key) == sorted(received, key=key)


@pytest.mark.parametrize(
    "name",
    [
        "conference_lifecycle",
        "dtmf_json",
        "dtmf_plain",
        "event_json_ALL_cycle",
        "event_plain_ALL_cycle",
        "media_flite_wav",
        "play_and_get_digits",
        "record_dump",
        "sip_answer",
        "sip_busy486",
        "sip_noanswer",
        "sip_remote_bye",
        "detect_avmd_vmd_dtmf",
    ],
)
def test_event_names_match_the_notes(name):
    """
    The notes log one C{EV <name>} line per event received (media_flite_wav stops logging
    before its last event); the parser finds the same events in the same order, including
    C{PRIVATE_COMMAND}, whose first C{Event-Name} is the C{COMMAND} it echoes.
    """
    notes = (CAPTURES / f"{name}.notes.txt").read_text()
    noted = [
        m.group(1)
        for m in re.finditer(r"(?m)^\s+[0-9.]+ EV (\S+)", notes)
        if not m.group(1).startswith("<")
    ]
    names = [e.name for e in events_of(whole(CAPTURES / f"{name}.recv.raw"))]
    assert names[: len(noted)] == noted
    assert len(names) - len(noted) <= 1


@pytest.mark.parametrize("mode", ["json", "plain"])
def test_event_counts_of_the_cycle_match_the_notes(mode):
    """
    The 30 s C{event <mode> ALL} capture holds the events the notes count.
    """
    notes = (CAPTURES / f"event_{mode}_ALL_cycle.notes.txt").read_text()
    counts = ast.literal_eval(re.search(r"counts (\{.*\})", notes).group(1))
    events = events_of(whole(CAPTURES / f"event_{mode}_ALL_cycle.recv.raw"))
    assert Counter(e.name for e in events) == counts


def test_plain_and_json_give_the_same_values():
    """
    dtmf_plain and dtmf_json are two connections that saw the same 77 events, one in plain
    (URL-encoded values) and one in JSON: every header decodes to the same value.  The only
    differences are FreeSWITCH's own: an empty value is C{_undef_} in plain.
    """
    plain = {e.sequence: e for e in events_of(whole(CAPTURES / "dtmf_plain.recv.raw"))}
    in_json = {e.sequence: e for e in events_of(whole(CAPTURES / "dtmf_json.recv.raw"))}
    assert len(plain) == len(in_json) == 77
    assert plain.keys() == in_json.keys()
    for sequence, event in in_json.items():
        expected = [(k, v if v != "" else "_undef_") for k, v in event.items()]
        assert plain[sequence].items() == expected, sequence
        assert plain[sequence].body == event.body


def test_dtmf_digits_decode_in_both_framings():
    """
    C{#} arrives as C{%23} in plain and as is in JSON; both decode to the digits sent
    (C{1*#A}, C{*#}, then in-band C{*#}, then C{0#*}).
    """
    for name in ("dtmf_plain", "dtmf_json"):
        digits = [
            e["DTMF-Digit"]
            for e in events_of(whole(CAPTURES / f"{name}.recv.raw"))
            if e.name == "DTMF"
        ]
        assert "".join(digits) == "1*#A*#*#0#*"


def test_plain_values_are_decoded_one_by_one():
    """
    Each plain value is URL-decoded by itself: a decoded value may hold C{: } or a newline
    without disturbing the next header, and C{+} is not a space.
    """
    frame = plain_event(
        [
            ("Event-Name", "CUSTOM"),
            ("Event-Subclass", "x::y"),
            ("Odd", "a: b\nNot-A-Header: c"),
            ("Plus", "1+1 = 2%"),
            ("Empty", ""),
            ("Last", "z"),
        ]
    )
    (event,) = events_of(parse([frame]))
    assert event["Odd"] == "a: b\nNot-A-Header: c"
    assert "Not-A-Header" not in event
    assert event["Plus"] == "1+1 = 2%"
    assert event["Empty"] == "_undef_"
    assert event["Last"] == "z"
    assert event.subclass == "x::y"


def test_known_values_of_real_events():
    """
    Values read from the captures: URL-decoded plain values, the BACKGROUND_JOB body in
    both framings, repeated headers, arrays, CHANNEL_UUID's old id.
    """
    plain = events_of(whole(CAPTURES / "basic_session.recv.raw"))
    answer = plain[0]
    assert answer.name == "CHANNEL_ANSWER"
    assert answer.uuid == "689543d2-078f-47f4-889e-8d3892c3b2d0"
    assert answer["Caller-Callee-ID-Name"] == "Outbound Call"
    assert answer["Event-Date-GMT"] == "Fri, 27 Nov 2026 04:30:18 GMT"
    assert answer["FreeSWITCH-IPv6"] == "fd00::2"
    job = next(e for e in plain if e.name == "BACKGROUND_JOB")
    assert job.body == "+OK 533d4170-a5f8-47aa-b7bb-ee954dc27aa7\n"
    assert job["Job-Command-Arg"] == (
        "{origination_uuid=533d4170-a5f8-47aa-b7bb-ee954dc27aa7}loopback/9196 &park()"
    )
    hangup = next(e for e in plain if e.name == "CHANNEL_HANGUP_COMPLETE")
    assert hangup.get_all("Hangup-Cause") == ["NORMAL_CLEARING", "NORMAL_CLEARING"]

    cycle = events_of(whole(CAPTURES / "event_json_ALL_cycle.recv.raw"))
    renamed = next(e for e in cycle if e.name == "CHANNEL_UUID")
    assert renamed["Old-Unique-ID"] == "bb865cdd-1e44-4baf-a7ce-2c87d7badd28"
    assert renamed.uuid == "2a073336-48ca-4db9-a3bd-6509c6f7b059"
    job = next(e for e in cycle if e.name == "BACKGROUND_JOB")
    assert job.body == "+OK 2a073336-48ca-4db9-a3bd-6509c6f7b059\n"
    assert job["Content-Length"] == "41"
    echo = next(e for e in cycle if e.name == "PRIVATE_COMMAND")
    assert echo["Event-Name"] == "COMMAND"
    assert echo.get_all("Event-Name") == ["COMMAND", "PRIVATE_COMMAND"]
    assert echo.sequence == int(echo.get_all("Event-Sequence")[1])
    assert echo["execute-app-name"] == "playback"

    unicast = events_of(whole(CAPTURES / "unicast_esl.recv.raw"))
    matched = next(e for e in unicast if "variable_DP_MATCH" in e)
    assert matched.get_all("variable_DP_MATCH") == ["9197", "9197"]
    assert matched["variable_DP_MATCH"] == "9197"

    busy = events_of(whole(CAPTURES / "sip_busy486.recv.raw"))
    job = next(e for e in busy if e.name == "BACKGROUND_JOB")
    assert job.body == "-ERR USER_BUSY\n"
    assert job["Job-UUID"] == "73b3cc4e-6f8f-4dcb-880d-a52e9986231b"


def test_plain_arrays_read_like_json_arrays():
    """
    FreeSWITCH writes an array header as C{ARRAY::a|:b} in plain; it reads as two values,
    as the JSON list does.
    """
    (plain,) = events_of(parse([plain_event([("Event-Name", "X"), ("List", "ARRAY::a|:b c")])]))
    (in_json,) = events_of(parse([json_event([("Event-Name", "X"), ("List", ["a", "b c"])])]))
    assert plain.get_all("List") == in_json.get_all("List") == ["a", "b c"]
    assert plain["List"] == in_json["List"] == "a"


UTF8 = "Zoë Ångström — 日本語 🎉"


@pytest.mark.parametrize(
    "frame",
    [
        json_event([("Event-Name", "CHANNEL_CREATE"), ("Caller-Caller-ID-Name", UTF8)], body=UTF8),
        plain_event([("Event-Name", "CHANNEL_CREATE"), ("Caller-Caller-ID-Name", UTF8)], body=UTF8),
    ],
    ids=["json", "plain"],
)
def test_multibyte_utf8_split_at_every_byte(frame):
    """
    Content-Length counts bytes: a frame whose values and body hold two-, three- and
    four-byte UTF-8 characters decodes the same when split at every point, including in
    the middle of a character (plain values arrive percent-encoded byte by byte).
    """
    stream = frame + api_response(UTF8 + "\n") + frame
    for cut in range(len(stream) + 1):
        frames = parse([stream[:cut], stream[cut:]])
        assert len(frames) == 3
        first, last = events_of([frames[0]])[0], events_of([frames[2]])[0]
        for event in (first, last):
            assert event["Caller-Caller-ID-Name"] == UTF8
            assert event.body == UTF8
        assert frames[1].body.decode() == UTF8 + "\n"
    assert parse(bytewise(stream)) == parse([stream])


def test_headers_and_body_split_anywhere_with_hypothesis_text():
    """
    Any text in any header value and body survives JSON framing split at random points.
    """

    @settings(max_examples=200, deadline=None)
    @given(
        value=st.text(max_size=40),
        body=st.text(max_size=40),
        cuts=st.lists(st.integers(0, 400), max_size=8),
    )
    def check(value, body, cuts):
        frame = json_event([("Event-Name", "CUSTOM"), ("Value", value)], body=body)
        (event,) = events_of(parse(chunked(frame, [c for c in cuts if c <= len(frame)])))
        assert event["Value"] == value
        assert event.body == body

    check()


def test_json_values_that_look_like_keys():
    """
    A JSON value holding an escaped quote and a colon (which the fast check for repeated
    names counts as a key) still reads exactly, with repeats kept.
    """
    frame = json_event(
        [("Event-Name", "CUSTOM"), ("Said", 'he said "x": y'), ("Twice", "1"), ("Twice", "2")]
    )
    (event,) = events_of(parse([frame]))
    assert event["Said"] == 'he said "x": y'
    assert event.get_all("Twice") == ["1", "2"]
    (plain,) = events_of(parse([json_event([("Event-Name", "X"), ("Said", 'a\\":b')])]))
    assert plain["Said"] == 'a\\":b'
    assert plain.items() == [("Event-Name", "X"), ("Said", 'a\\":b')]


def test_a_value_starting_with_a_colon_is_read_in_one_pass(monkeypatch):
    """
    FreeSWITCH on a host without IPv6 sends C{"FreeSWITCH-IPv6":"::1"} in every event: such
    values (and quotes followed by a colon inside values) are accounted for without the
    careful second reading, which is kept for repeated names.
    """
    monkeypatch.setattr(esl, "_JSON_PAIRS", None)  # a second reading would fail here
    headers = [
        ("Event-Name", "HEARTBEAT"),
        ("FreeSWITCH-IPv6", "::1"),
        ("Said", 'he said "x": y'),
        (":odd", [":a", 'b":']),
    ]
    (event,) = events_of(parse([json_event(headers)]))
    assert event.items() == headers
    monkeypatch.undo()
    (repeated,) = events_of(parse([json_event([*headers, ("Said", "again")])]))
    assert repeated.get_all("Said") == ['he said "x": y', "again"]


def test_fuzzed_json_events_read_back_exactly():
    """
    Names and values made of colons, quotes, backslashes and commas, arrays, repeated names:
    every header reads back as sent, in order, repeats included.
    """
    text = st.text(alphabet=':"\\ab,{}[]é', max_size=6)
    value = st.one_of(text, st.lists(text, max_size=3))

    @settings(max_examples=300, deadline=None)
    @given(pairs=st.lists(st.tuples(text, value), min_size=1, max_size=8))
    def check(pairs):
        (event,) = events_of(parse([json_event([("Event-Name", "CUSTOM"), *pairs])]))
        assert event.items() == [("Event-Name", "CUSTOM"), *pairs]

    check()


def test_header_block_without_end_is_refused():
    """
    A header block that never ends (no blank line within the limit) is a protocol error,
    not an ever-growing buffer.
    """
    parser = FrameParser(max_header_bytes=1024)
    parser.feed(b"Content-Type: text/event-json\n" + b"X" * 2000)
    with pytest.raises(ProtocolError):
        list(parser.frames())


def test_oversized_body_is_refused_before_it_arrives():
    """
    A Content-Length over the limit is refused as soon as the headers are read.
    """
    parser = FrameParser(max_body_bytes=1000)
    parser.feed(b"Content-Type: api/response\nContent-Length: 1001\n\n")
    with pytest.raises(ProtocolError):
        list(parser.frames())


@pytest.mark.parametrize("length", [b"-1", b"12a", b"", b"0x10"])
def test_malformed_content_length_is_refused(length):
    """
    Content-Length must be decimal digits.
    """
    parser = FrameParser()
    parser.feed(b"Content-Type: api/response\nContent-Length: " + length + b"\n\n")
    with pytest.raises(ProtocolError):
        list(parser.frames())


def test_frames_parsed_before_an_error_are_kept():
    """
    Frames complete before the broken one are still delivered.
    """
    parser = FrameParser()
    parser.feed(api_response("+OK\n") + b"no colon here\n\n")
    frames = parser.frames()
    assert next(frames).body == b"+OK\n"
    with pytest.raises(ProtocolError):
        next(frames)


def test_frame_headers_are_not_url_decoded():
    """
    Frame headers are written raw by mod_event_socket, so C{%20} in a Reply-Text stays.
    """
    (frame,) = parse([b"Content-Type: command/reply\nReply-Text: -ERR a%20b\n\n"])
    assert frame.headers["Reply-Text"] == "-ERR a%20b"


def test_event_from_json_rejects_non_objects():
    """
    An event frame whose body is not a JSON object is refused with ValueError.
    """
    with pytest.raises(ValueError):
        Event.from_json(b'["Event-Name", "X"]')
    with pytest.raises(ValueError):
        Event.from_json(b'{"Event-Name": "X"')
