"""
The simulator driven with the client-side bytes of each real FreeSWITCH capture in
tests/fixtures/esl: the replies and the events of the originated legs must have the same
shape as FreeSWITCH's (content types, reply texts, event names in order, the headers
iradialer reads).

The simulator simulates the far end, not FreeSWITCH's local loopback legs, so commands aimed
at a loopback B leg (its uuid taken from C{other_loopback_leg_uuid}), B-leg events, and
modules the simulator does not have (C{uuid_record}, C{mod_avmd}, C{mod_vmd}, spandsp's
detectors) are listed below as known differences, each with its reason; everything else is
compared.  The detector captures (C{avmd_*}, C{isolate_*}, C{detect_avmd_vmd_dtmf}) exercise
only those modules and are not driven here; C{dtmf_json} is a passive second listener of the
C{dtmf_plain} run.
"""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from iradialer.sim.testing import Frame, Harness, client_packets, parse_frames
from tests.conftest import FIXTURES

ESL = FIXTURES / "esl"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ANSWER_AT_ONCE = "[[scenario]]\nmatch = '.'\nring_ms = 0\n"
NOT_COMPARED_EVENTS = {
    "API": "fired when a command starts; FreeSWITCH delivers it late from another thread",
    "HEARTBEAT": "timed by FreeSWITCH's uptime (every 20 s, tested on its own)",
    "RE_SCHEDULE": "follows HEARTBEAT",
    "RECORD_START": "uuid_record is not simulated",
    "RECORD_STOP": "uuid_record is not simulated",
    "MEDIA_BUG_START": "in the captures only from B-leg detectors or uuid_record",
    "MEDIA_BUG_STOP": "in the captures only from B-leg detectors or uuid_record",
}
B_LEG = "the simulator has no loopback B leg; the far end is the scenario"
# Headers iradialer reads, checked on every event that has them in the capture.
READ_HEADERS = (
    "Unique-ID Event-Sequence Event-Date-Timestamp Core-UUID Channel-State Channel-Call-State "
    "Answer-State Hangup-Cause Application Application-Data Application-UUID Application-Response "
    "Playback-Status Playback-File-Path DTMF-Digit DTMF-Duration DTMF-Source Action Member-ID "
    "Conference-Name Conference-Size Old-Unique-ID Job-UUID Job-Command Job-Command-Arg _body "
    "Original-Channel-Call-State Caller-Destination-Number Channel-Name variable_hangup_cause_q850 "
    "variable_sip_term_status variable_billsec variable_rtp_audio_in_mos "
    "variable_rtp_audio_in_quality_percentage variable_read_result variable_my_digits "
    "variable_my_digits_invalid variable_read_terminator_used variable_sip_hangup_disposition "
    "variable_sip_invite_failure_status variable_proto_specific_hangup_cause"
).split()


def write_wav(path: Path, seconds: float) -> Path:
    samples = (np.sin(np.arange(int(seconds * 8000)) * 0.3) * 5000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    return path


@dataclass
class Capture:
    name: str
    scenarios: str = ANSWER_AT_ONCE
    gap: float = 1.0
    gaps: dict[int, float] = field(default_factory=dict)
    replies_differ: dict[str, str] = field(default_factory=dict)
    events_differ: dict[str, str] = field(default_factory=dict)
    rewrite: dict[str, str] = field(default_factory=dict)
    files: dict[str, float] = field(default_factory=dict)
    member_ids_from: int = 1
    events_until: str | None = None


CAPTURES = [
    Capture(
        "basic_session",
        gap=0.5,
        replies_differ={
            r"^api show channels$": "one row per call: no loopback B leg",
            r"^api show channels as json$": "one row per call: no loopback B leg",
            r"^api show channels count$": "the failed loopback call is a parked human here",
            r"^api status$": "uptime differs",
        },
    ),
    Capture(
        "misc_replies",
        gap=0.5,
        scenarios="[[scenario]]\nmatch = '^1234$'\noutcome = 'gateway_down'\n" + ANSWER_AT_ONCE,
        replies_differ={
            r"127\.0\.0\.1:5999": "an unreachable SIP peer (503, NORMAL_TEMPORARY_FAILURE) is not "
            "one of the contract's outcomes; gateway_down stands in",
        },
    ),
    Capture(
        "event_json_ALL_cycle",
        gaps={2: 1.0, 3: 2.0, 4: 2.0},
        files={"/usr/share/asterisk/sounds/en/hello-world.wav": 1.404},
        replies_differ={r"uuid_dump": "channel data differ (ids, times)"},
    ),
    Capture(
        "event_plain_ALL_cycle",
        gaps={2: 1.0, 3: 2.0, 4: 2.0},
        files={"/usr/share/asterisk/sounds/en/hello-world.wav": 1.404},
        replies_differ={r"uuid_dump": "channel data differ (ids, times)"},
    ),
    Capture(
        "media_flite_wav",
        gaps={5: 3.2, 6: 4.4, 7: 16.7},
        files={"/usr/share/asterisk/sounds/en/tt-monkeys.wav": 16.18},
        replies_differ={r"other_loopback_leg_uuid": B_LEG, r"uuid_record": "not simulated"},
    ),
    Capture(
        "sip_answer",
        scenarios="[[scenario]]\nmatch = '1111$'\nring_ms = 20\n",
        gaps={2: 0.5, 3: 4.0},
        replies_differ={r"uuid_dump": "channel data differ (ids, times)"},
    ),
    Capture(
        "sip_busy486",
        scenarios="[[scenario]]\nmatch = '1111$'\noutcome = 'busy'\nring_ms = 300\n",
    ),
    Capture(
        "sip_noanswer",
        scenarios="[[scenario]]\nmatch = '1111$'\noutcome = 'no_answer'\n",
        gaps={2: 6.0},
    ),
    Capture(
        "sip_remote_bye",
        scenarios="[[scenario]]\nmatch = '1111$'\nring_ms = 20\nhangup_after_ms = 3000\n",
        gaps={2: 0.1, 3: 4.0},
    ),
    Capture(
        "conference_lifecycle",
        member_ids_from=3,
        replies_differ={r"other_loopback_leg_uuid": B_LEG},
    ),
    Capture(
        "play_and_get_digits",
        gaps={5: 0.7, 10: 11.5, 14: 0.7, 15: 1.5},
        rewrite={
            "uuid_send_dtmf 49af2110-bbdb-4a14-a0ca-59c53eb9f8ae": (
                "uuid_recv_dtmf 0a0474f6-6d4d-482f-973a-8cc1c782c82c"
            )
        },
        replies_differ={
            r"other_loopback_leg_uuid": B_LEG,
            r"start_dtmf|stop_dtmf": "in-band detection is not simulated (callee digits are "
            "RFC 2833)",
            r"uuid_broadcast 49af2110": B_LEG,
            r"^api uuid_getvar .* (my_digits|read_result)$": "run D relies on in-band DTMF",
            r"uuid_recv_dtmf": "the capture's digits came from the B leg (uuid_send_dtmf there); "
            "here the far end sends them (uuid_recv_dtmf, its own reply)",
        },
        events_until="start_dtmf",
    ),
    Capture(
        "dtmf_plain",
        rewrite={
            "uuid_send_dtmf bc3eadfb-5cc5-4569-8288-043fad86a4ee": (
                "uuid_recv_dtmf 79978836-cf13-4d45-b366-d703f2049084"
            )
        },
        replies_differ={
            r"other_loopback_leg_uuid": B_LEG,
            r"^sendmsg bc3eadfb": B_LEG,
            r"uuid_recv_dtmf": "the capture's digits came from the B leg (uuid_send_dtmf there); "
            "here the far end sends them (uuid_recv_dtmf, its own reply)",
        },
    ),
    Capture(
        "record_dump",
        replies_differ={
            r"other_loopback_leg_uuid": B_LEG,
            r"uuid_broadcast 55a7bf55": B_LEG,
            r"uuid_record": "not simulated",
            r"uuid_dump 1ebe2641-8d1c-407a-bef2-40c8e2dfd10a": "channel data differ (ids, times)",
        },
    ),
    Capture(
        "unicast_esl",
        gaps={15: 3.0},
        replies_differ={
            r"other_loopback_leg_uuid": B_LEG,
            r"uuid_record|uuid_broadcast 745416e9": B_LEG,
            r"read_codec|read_rate": "the simulated sofia leg negotiates PCMU only after answer; "
            "the capture's loopback legs run L16",
        },
    ),
    Capture(
        "unicast_more_esl",
        replies_differ={r"other_loopback_leg_uuid": B_LEG, r"uuid_record": B_LEG},
    ),
]


def sessions(packets: list[bytes]) -> list[list[bytes]]:
    """The client's connections: each ends with exit."""
    out: list[list[bytes]] = [[]]
    for packet in packets:
        out[-1].append(packet)
        if packet.startswith(b"exit"):
            out.append([])
    return [s for s in out if s]


def run(capture: Capture, tmp_path: Path) -> list[tuple[list[str], list[Frame]]]:
    """Feed the capture's client bytes; per connection, the commands and the frames received."""
    sent = (ESL / f"{capture.name}.sent.raw").read_text(encoding="utf-8", errors="surrogateescape")
    for path, seconds in capture.files.items():
        sent = sent.replace(path, str(write_wav(tmp_path / Path(path).name, seconds)))
    for old, new in capture.rewrite.items():
        sent = sent.replace(old, new)
    h = Harness(capture.scenarios)
    h.sim.conferences.next_id = capture.member_ids_from
    out = []
    index = 0
    for session in sessions(client_packets(sent.encode("utf-8", "surrogateescape"))):
        c = h.connect()
        commands = []
        for packet in session:
            commands.append(packet.decode().strip().replace("\n", " | "))
            c.send(packet)
            h.run_for(capture.gaps.get(index, capture.gap))
            index += 1
        out.append((commands, c.frames()))
    return out


def captured(capture: Capture) -> list[list[Frame]]:
    """The captured frames, per connection (each starts with auth/request)."""
    frames, _ = parse_frames((ESL / f"{capture.name}.recv.raw").read_bytes())
    connections: list[list[Frame]] = []
    for frame in frames:
        if frame.content_type == "auth/request":
            connections.append([])
        connections[-1].append(frame)
    return connections


def replies(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.content_type in ("command/reply", "api/response")]


def reply_shape(frame: Frame) -> str:
    text = UUID.sub("<uuid>", frame.text)
    if len(text) > 100:
        text = text[:12]
    return f"{frame.content_type} {text!r}"


def originated(commands: list[str]) -> set[str]:
    return {m for c in commands for m in re.findall(r"origination_uuid=([0-9a-f-]{36})", c)}


def event_key(frame: Frame) -> str:
    assert frame.event is not None
    return frame.event.get("Action") or frame.event["Event-Name"]


def event_shapes(frames: list[Frame], legs: set[str], capture: Capture) -> dict[str, list[tuple]]:
    """Per originated leg (and one list for events of no channel): what each event shows."""
    skip = set(NOT_COMPARED_EVENTS) | set(capture.events_differ)
    shapes: dict[str, list[tuple]] = {}
    for frame in frames:
        if frame.event is None or frame.event["Event-Name"] in skip:
            continue
        e = frame.event
        if capture.events_until and e.get("Application") == capture.events_until:
            break
        uuid = e.get("Unique-ID")
        if uuid is not None and uuid not in legs:
            continue
        shapes.setdefault(uuid or "-", []).append(
            (
                event_key(frame),
                e.get("Channel-State"),
                e.get("Answer-State"),
                e.get("Application"),
                e.get("Application-Response"),
                e.get("Playback-Status"),
                e.get("Hangup-Cause"),
                e.get("DTMF-Digit"),
            )
        )
    return shapes


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_replies_have_freeswitchs_shape(capture, tmp_path):
    """
    Each command gets the reply FreeSWITCH gave (content type and text), known differences
    aside.
    """
    compared = 0
    for (commands, ours), theirs in zip(run(capture, tmp_path), captured(capture), strict=True):
        mine = replies(ours)
        for i, (command, expected) in enumerate(zip(commands, replies(theirs))):
            if any(re.search(pattern, command) for pattern in capture.replies_differ):
                continue
            assert reply_shape(mine[i]) == reply_shape(expected), command
            compared += 1
    assert compared >= 3


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_events_have_freeswitchs_sequence(capture, tmp_path):
    """The originated legs' events (and conference/job events) come in FreeSWITCH's order."""
    runs = run(capture, tmp_path)
    legs = originated([c for commands, _ in runs for c in commands])
    theirs = event_shapes([f for frames in captured(capture) for f in frames], legs, capture)
    mine = event_shapes([f for _, frames in runs for f in frames], legs, capture)
    assert set(mine) == set(theirs)
    ended = b"text/disconnect-notice" in (ESL / f"{capture.name}.recv.raw").read_bytes()
    for key in theirs:
        # A capture cut off before the end shows only the start of what happened.
        got = mine[key] if ended else mine[key][: len(theirs[key])]
        assert got == theirs[key], key


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_events_carry_the_headers_iradialer_reads(capture, tmp_path):
    """Every header iradialer reads that FreeSWITCH sent on an event, the simulator sends too."""
    ours = [f for _, frames in run(capture, tmp_path) for f in frames]
    theirs = [f for frames in captured(capture) for f in frames if f.event]
    by_key: dict[str, list[dict[str, str]]] = {}
    for frame in theirs:
        by_key.setdefault(event_key(frame), []).append(frame.event or {})
    checked = 0
    for frame in ours:
        if frame.event is None or event_key(frame) not in by_key:
            continue
        for header in READ_HEADERS:
            if header.startswith("variable_") and event_key(frame) != "CHANNEL_HANGUP_COMPLETE":
                continue  # which variables a channel has depends on what it ran before
            if all(header in e for e in by_key[event_key(frame)]):
                assert header in frame.event, (event_key(frame), header)
                checked += 1
        assert frame.content_type == theirs[0].content_type
    assert checked > 0 or not theirs
