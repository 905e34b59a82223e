"""
The Event Socket server side: framing, authentication, command replies and event delivery,
byte for byte where the captures are deterministic.
"""

from __future__ import annotations

import pytest

from iradialer.sim.testing import Harness, client_packets
from tests.conftest import FIXTURES

ESL = FIXTURES / "esl"
DISCONNECT = (
    b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
    b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
)


def test_greeting_and_auth():
    """A connection is greeted with auth/request; the right password is +OK accepted."""
    h = Harness()
    c = h.connect()
    c.command("auth ClueCon")
    assert c.transport.value() == (
        b"Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n"
    )


def test_wrong_password_disconnects():
    """A wrong password gets -ERR invalid, the disconnect notice, and the connection closes."""
    c = Harness().connect()
    c.command("auth nope")
    assert c.transport.value().endswith(
        b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n" + DISCONNECT
    )
    assert c.closed


def test_commands_before_auth_are_ignored():
    """Until authenticated, commands other than auth/exit get no reply at all."""
    c = Harness().connect()
    c.frames()
    c.command("api status")
    assert c.frames() == []
    c.command("auth ClueCon")
    assert [f.text for f in c.frames()] == ["+OK accepted"]


def test_exit_says_bye_and_disconnects():
    """exit: +OK bye, then the disconnect notice, then the socket closes."""
    c = Harness().connect(authenticate=True)
    c.command("exit")
    assert c.transport.value().endswith(
        b"Content-Type: command/reply\nReply-Text: +OK bye\n\n" + DISCONNECT
    )
    assert c.closed


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_framing_is_independent_of_chunk_size(chunk):
    """The same client bytes give the same replies whatever the TCP segmentation."""
    sent = b"".join(p for p in client_packets((ESL / "misc_replies.sent.raw").read_bytes())[:15])
    h = Harness()
    c = h.connect()
    for i in range(0, len(sent), chunk):
        c.send(sent[i : i + chunk])
    texts = [f.text.split(" ")[0] for f in c.frames()]
    assert texts[:3] == ["", "+OK", "+OK"]
    assert len(texts) == 16


def test_misc_replies_byte_for_byte():
    """The reply texts of misc_replies, exactly (random Job-UUIDs aside)."""
    h = Harness()
    c = h.connect(authenticate=True)
    expected = [
        (
            "event json CHANNEL_ANSWER",
            b"Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n",
        ),
        (
            "filter Unique-ID 11111111-2222-3333-4444-555555555555",
            b"Content-Type: command/reply\nReply-Text: +OK filter added. "
            b"[Unique-ID]=[11111111-2222-3333-4444-555555555555]\n\n",
        ),
        (
            "filter delete Unique-ID 11111111-2222-3333-4444-555555555555",
            b"Content-Type: command/reply\nReply-Text: +OK filter deleted. "
            b"[Unique-ID][11111111-2222-3333-4444-555555555555]\n\n",
        ),
        (
            "nixevent CHANNEL_ANSWER",
            b"Content-Type: command/reply\nReply-Text: +OK events nixed\n\n",
        ),
        (
            "noevents",
            b"Content-Type: command/reply\nReply-Text: +OK no longer listening for events\n\n",
        ),
        (
            "sendmsg 11111111-2222-3333-4444-555555555555\ncall-command: hangup\n"
            "hangup-cause: NORMAL_CLEARING",
            b"Content-Type: command/reply\nReply-Text: -ERR invalid session id "
            b"[11111111-2222-3333-4444-555555555555]\n\n",
        ),
        (
            "api bogus_cmd",
            b"Content-Type: api/response\nContent-Length: 34\n\n"
            b"-ERR bogus_cmd Command not found!\n",
        ),
        (
            "api originate",
            b"Content-Type: api/response\nContent-Length: 125\n\n-USAGE: <call url> "
            b"<exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] "
            b"[<cid_num>] [<timeout_sec>]\n",
        ),
        (
            "api uuid_broadcast 11111111-2222-3333-4444-555555555555 "
            "tone_stream://%(100,0,440) aleg",
            b"Content-Type: api/response\nContent-Length: 18\n\n-ERR invalid uuid\n",
        ),
        ("linger", b"Content-Type: command/reply\nReply-Text: -ERR not controlling a session\n\n"),
        (
            "nolinger",
            b"Content-Type: command/reply\nReply-Text: -ERR not controlling a session\n\n",
        ),
        ("log 3", b"Content-Type: command/reply\nReply-Text: +OK log level 3 [3]\n\n"),
        ("nolog", b"Content-Type: command/reply\nReply-Text: +OK no longer logging\n\n"),
        ("bogus_command", b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n"),
        (
            "api uuid_kill 00000000-0000-0000-0000-000000000000",
            b"Content-Type: api/response\nContent-Length: 22\n\n-ERR No such channel!\n",
        ),
        (
            "api uuid_exists 00000000-0000-0000-0000-000000000000",
            b"Content-Type: api/response\nContent-Length: 5\n\nfalse",
        ),
        (
            "api originate error/user_busy &park()",
            b"Content-Type: api/response\nContent-Length: 15\n\n-ERR USER_BUSY\n",
        ),
    ]
    for command, reply in expected:
        before = len(c.transport.value())
        c.command(command)
        assert c.transport.value()[before:] == reply, command


def test_bgapi_replies_then_reports_a_background_job():
    """bgapi: +OK Job-UUID (the client's own Job-UUID header is used), then BACKGROUND_JOB."""
    h = Harness()
    c = h.connect(authenticate=True, events="plain BACKGROUND_JOB")
    c.send("bgapi status\nJob-UUID: 0cf22b71-f737-4226-8e86-13ed31195e58\n\n")
    reply, job = c.frames()
    assert reply.headers == {
        "Content-Type": "command/reply",
        "Reply-Text": "+OK Job-UUID: 0cf22b71-f737-4226-8e86-13ed31195e58",
        "Job-UUID": "0cf22b71-f737-4226-8e86-13ed31195e58",
    }
    assert job.name == "BACKGROUND_JOB"
    assert job.event["Job-UUID"] == "0cf22b71-f737-4226-8e86-13ed31195e58"
    assert job.event["Job-Command"] == "status"
    assert job.event["_body"].startswith("UP 0 years, 0 days")


def test_blocking_api_holds_back_events_until_its_reply():
    """A blocking api originate: its events reach that connection only after the reply."""
    h = Harness("[[scenario]]\nmatch='5550001$'\nring_ms=1500\n")
    c = h.connect(authenticate=True, events="json ALL")
    other = h.connect(authenticate=True, events="json ALL")
    c.command("api originate {origination_uuid=u1}sofia/gateway/sim/5550001 &park()")
    assert c.frames() == []
    assert [f.name for f in other.frames()][:3] == ["API", "CHANNEL_OUTGOING", "CHANNEL_STATE"]
    h.run_for(1.5)
    frames = c.frames()
    assert frames[0].content_type == "api/response"
    assert frames[0].text == "+OK u1\n"
    names = [f.name for f in frames[1:]]
    assert names[:4] == ["API", "CHANNEL_OUTGOING", "CHANNEL_STATE", "CHANNEL_CREATE"]
    assert "CHANNEL_ANSWER" in names


def test_subscriptions_formats_and_filters():
    """Only subscribed events arrive, in the chosen format, through the connection's filters."""
    h = Harness("[[scenario]]\nmatch='.'\nring_ms=0\n")
    c = h.connect(authenticate=True)
    c.command("event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE")
    c.command("filter Unique-ID u2")
    c.frames()
    c.command("api originate {origination_uuid=u1}sofia/gateway/sim/5550001 &park()")
    c.command("api originate {origination_uuid=u2}sofia/gateway/sim/5550002 &park()")
    h.run_for(0.1)
    events = [f for f in c.frames() if f.event]
    assert [(f.content_type, f.name, f.event["Unique-ID"]) for f in events] == [
        ("text/event-plain", "CHANNEL_ANSWER", "u2")
    ]
    c.command("event json CHANNEL_HANGUP")
    c.command("nixevent CHANNEL_ANSWER")
    c.command("api uuid_kill u2")
    h.run_for(0.1)
    names = [(f.content_type, f.name) for f in c.frames() if f.event]
    assert names == [
        ("text/event-json", "CHANNEL_HANGUP"),
        ("text/event-json", "CHANNEL_HANGUP_COMPLETE"),
    ]
    c.command("noevents")
    c.command("api uuid_kill u1")
    h.run_for(0.1)
    assert [f.event for f in c.frames() if f.event] == []


def test_custom_subclass_subscription():
    """CUSTOM conference::maintenance events arrive only with their subclass subscribed."""
    h = Harness("[[scenario]]\nmatch='.'\nring_ms=0\n")
    only_custom = h.connect(authenticate=True, events="json CUSTOM conference::maintenance")
    other_custom = h.connect(authenticate=True, events="json CUSTOM avmd::beep")
    c = h.connect(authenticate=True)
    c.command("api originate {origination_uuid=u1}sofia/gateway/sim/5550001 &park()")
    h.run_for(0.1)
    c.command("api uuid_transfer u1 'conference:CONF-1@default,park' inline")
    h.run_for(0.1)
    actions = [f.event["Action"] for f in only_custom.frames() if f.event]
    assert actions[:3] == ["conference-create", "play-file", "add-member"]
    assert [f for f in other_custom.frames() if f.event] == []


def test_heartbeat_every_twenty_seconds():
    """HEARTBEAT (with RE_SCHEDULE) fires every 20 s once the simulator runs."""
    h = Harness()
    h.sim.start()
    c = h.connect(authenticate=True, events="plain HEARTBEAT RE_SCHEDULE")
    h.reactor.advance(19.9)
    assert c.frames() == []
    h.reactor.advance(0.1)
    beats = c.frames()
    assert [f.name for f in beats] == ["HEARTBEAT", "RE_SCHEDULE"]
    assert beats[0].event["Event-Info"] == "System Ready"
    assert beats[0].event["Up-Time"].startswith("0 years, 0 days, 0 hours, 0 minutes, 20 seconds")
    h.reactor.advance(20)
    assert [f.name for f in c.frames()] == ["HEARTBEAT", "RE_SCHEDULE"]
    h.sim.stop()


def test_event_sequence_and_standard_headers():
    """Every event carries Core-UUID, dates and a sequence number that always increases."""
    h = Harness("[[scenario]]\nmatch='.'\nring_ms=0\n")
    c = h.connect(authenticate=True, events="json ALL")
    c.command("api originate {origination_uuid=u1}sofia/gateway/sim/5550001 &park()")
    h.run_for(0.1)
    events = [f.event for f in c.frames() if f.event]
    sequences = [int(e["Event-Sequence"]) for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    for event in events:
        assert event["Core-UUID"] == h.sim.core_uuid
        assert event["Event-Date-Timestamp"].isdigit()
        assert list(event)[:2] in (["Event-Name", "Core-UUID"],)
