"""
The Event Socket client protocol: commands and their replies, events, the end of a
connection.  Every real session in C{tests/fixtures/esl/} is replayed through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from iradialer.protocols import fscommand
from iradialer.protocols.esl import (
    AuthenticationFailed,
    ChannelGone,
    CommandError,
    ConnectionClosed,
    Event,
    EventSocketClient,
    event_from_frame,
)
from tests.esl_helpers import (
    ACCEPTED,
    AUTH_REQUEST,
    CAPTURES,
    RECEIVED,
    Listener,
    api_response,
    bytewise,
    chunked,
    connected,
    event,
    frame_bytes,
    parse,
    reply,
)
from tests.freeswitch_model import read_packets

U = "689543d2-078f-47f4-889e-8d3892c3b2d0"
V = "e2d2ed27-acd4-4683-971d-b8dd42a737fa"


class Outcome:
    """
    What a Deferred came to (never left unhandled).
    """

    def __init__(self, d: Deferred[Any]) -> None:
        self.result: Any = None
        self.failure: Failure | None = None
        self.done = False
        d.addCallbacks(self._ok, self._failed)

    def _ok(self, result: Any) -> None:
        self.done, self.result = True, result

    def _failed(self, failure: Failure) -> None:
        self.done, self.failure = True, failure

    def error(self) -> BaseException:
        assert self.failure is not None, self.result
        return self.failure.value


def authenticated(**kwargs: Any) -> tuple[EventSocketClient, Listener, Any]:
    listener = Listener()
    client = EventSocketClient(listener, "ClueCon", **kwargs)
    transport = connected(client)
    client.dataReceived(AUTH_REQUEST)
    assert transport.value() == b"auth ClueCon\n\n"
    client.dataReceived(ACCEPTED)
    transport.clear()
    return client, listener, transport


def uuids(*values: str) -> Callable[[], str]:
    it = iter(values)
    return lambda: next(it)


# -- authentication -------------------------------------------------------------------


def test_authenticates_when_asked():
    """
    The password goes out when FreeSWITCH sends auth/request, and when_authenticated
    fires on +OK accepted (also for a caller that asks afterwards).
    """
    listener = Listener()
    client = EventSocketClient(listener, "ClueCon")
    transport = connected(client)
    ready = Outcome(client.when_authenticated())
    assert transport.value() == b""
    client.dataReceived(AUTH_REQUEST)
    assert transport.value() == b"auth ClueCon\n\n"
    assert not ready.done
    client.dataReceived(ACCEPTED)
    assert ready.done and ready.failure is None
    assert Outcome(client.when_authenticated()).done


def test_wrong_password_fails_and_closes():
    """
    -ERR invalid fails when_authenticated with AuthenticationFailed and closes the
    connection; commands sent meanwhile fail with ConnectionClosed.
    """
    listener = Listener()
    client = EventSocketClient(listener, "wrong")
    transport = connected(client)
    ready = Outcome(client.when_authenticated())
    client.dataReceived(AUTH_REQUEST)
    status = Outcome(client.api("status"))
    client.dataReceived(reply("-ERR invalid"))
    assert isinstance(ready.error(), AuthenticationFailed)
    assert ready.error().text == "-ERR invalid"
    assert transport.disconnecting
    assert isinstance(status.error(), ConnectionClosed)
    assert isinstance(Outcome(client.when_authenticated()).error(), AuthenticationFailed)
    assert listener.lost


def test_password_with_a_line_break_is_refused():
    """
    A password holding a newline would smuggle a second command: refused at construction.
    """
    with pytest.raises(fscommand.UnsafeValue):
        EventSocketClient(Listener(), "ClueCon\n\napi system rm")


# -- commands and replies -------------------------------------------------------------


def test_api_replies_match_in_fifo_order_under_interleaved_events():
    """
    Replies answer commands in the order sent, whatever events come in between; events
    reach the listener in arrival order.
    """
    client, listener, transport = authenticated()
    status = Outcome(client.api("status"))
    exists = Outcome(client.api(fscommand.uuid_exists(U)))
    kill = Outcome(client.api(fscommand.uuid_kill(U)))
    assert transport.value() == (
        b"api status\n\napi uuid_exists "
        + U.encode()
        + b"\n\napi uuid_kill "
        + U.encode()
        + b"\n\n"
    )
    client.dataReceived(event("CHANNEL_ANSWER", {"Unique-ID": U}) + api_response("UP 0 years\n"))
    assert status.result == "UP 0 years\n" and not exists.done
    client.dataReceived(
        event("HEARTBEAT")
        + api_response("true")
        + event("CHANNEL_HANGUP", {"Unique-ID": U})
        + api_response("-ERR No such channel!\n")
    )
    assert exists.result == "true"
    assert kill.error().text == "-ERR No such channel!"
    assert [e.name for e in listener.events] == ["CHANNEL_ANSWER", "HEARTBEAT", "CHANNEL_HANGUP"]


@settings(max_examples=150, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["api", "command"]), min_size=1, max_size=8),
    events_before=st.lists(st.integers(0, 3), min_size=8, max_size=8),
    cuts=st.lists(st.integers(0, 3000), max_size=20),
)
def test_fifo_holds_for_any_interleaving_and_split(kinds, events_before, cuts):
    """
    For any mix of api commands and plain commands, any number of events before each
    reply and any split of the stream, reply i goes to command i and the events arrive
    in order.
    """
    client, listener, _ = authenticated()
    outcomes = []
    stream = b""
    sent_events = 0
    for i, kind in enumerate(kinds):
        if kind == "api":
            outcomes.append(Outcome(client.api(f"echo {i}")))
        else:
            outcomes.append(Outcome(client.command(f"nixevent E{i}")))
        for _ in range(events_before[i]):
            stream += event("CUSTOM", {"Event-Subclass": "x::y", "N": str(sent_events)})
            sent_events += 1
        stream += api_response(f"{i}\n") if kind == "api" else reply(f"+OK {i}")
    for chunk in chunked(stream, [c for c in cuts if c <= len(stream)]):
        client.dataReceived(chunk)
    for i, (kind, outcome) in enumerate(zip(kinds, outcomes)):
        assert outcome.result == (f"{i}\n" if kind == "api" else f"+OK {i}")
    assert [e["N"] for e in listener.events] == [str(n) for n in range(sent_events)]


def test_usage_and_command_reply_errors():
    """
    -USAGE output and -ERR command replies fail with CommandError carrying the text.
    """
    client, _, _ = authenticated()
    usage = Outcome(client.api("originate"))
    bogus = Outcome(client.command("bogus_command"))
    client.dataReceived(
        api_response("-USAGE: <call url> <exten>\n") + reply("-ERR command not found")
    )
    assert usage.error().text == "-USAGE: <call url> <exten>"
    assert bogus.error().text == "-ERR command not found"


def test_log_lines_do_not_take_a_reply():
    """
    log/data frames are not replies: the pending command still gets its own.
    """
    client, listener, _ = authenticated()
    status = Outcome(client.api("status"))
    log = frame_bytes([("Content-Type", "log/data"), ("Log-Level", "7")], b"[DEBUG] x\n")
    client.dataReceived(log + api_response("+OK\n"))
    assert status.result == "+OK\n"
    assert listener.events == []


def test_unknown_frames_are_ignored():
    """
    A frame type we never asked for (text/event-xml) is logged and skipped; it takes no
    reply and no event.
    """
    client, listener, _ = authenticated()
    status = Outcome(client.api("status"))
    xml = frame_bytes([("Content-Type", "text/event-xml")], b"<event/>")
    with capturedLogs() as logs:
        client.dataReceived(xml + api_response("UP"))
    assert status.result == "UP" and listener.events == []
    assert any("Ignoring" in (e.get("log_format") or "") for e in logs)


def test_reply_without_a_command_is_ignored():
    """
    A reply nobody waits for is logged and dropped; the connection stays usable.
    """
    client, _, _ = authenticated()
    with capturedLogs() as logs:
        client.dataReceived(reply("+OK stray"))
    assert any("no command waiting" in (e.get("log_format") or "") for e in logs)
    status = Outcome(client.api("status"))
    client.dataReceived(api_response("ok"))
    assert status.result == "ok"


# -- bgapi ------------------------------------------------------------------------------


def test_bgapi_fires_with_its_background_job_when_jobs_race():
    """
    Each bgapi carries a Job-UUID we chose and fires with the BACKGROUND_JOB of that id,
    whatever order the jobs finish in and whatever events come between; a job fires
    before the listener sees its BACKGROUND_JOB.
    """
    client, listener, transport = authenticated(new_uuid=uuids("job-a", "job-b"))
    job_a = client.bgapi("originate {x=1}loopback/1 &park()")
    job_b = client.bgapi("status")
    assert transport.value() == (
        b"bgapi originate {x=1}loopback/1 &park()\nJob-UUID: job-a\n\n"
        b"bgapi status\nJob-UUID: job-b\n\n"
    )
    seen_when_b_fired: list[str] = []
    job_b.addCallback(
        lambda body: seen_when_b_fired.extend(e.name for e in listener.events) or body
    )
    a, b = Outcome(job_a), Outcome(job_b)
    client.dataReceived(
        reply("+OK Job-UUID: job-a")
        + event("CHANNEL_CREATE", {"Unique-ID": U})
        + reply("+OK Job-UUID: job-b")
    )
    assert not a.done and not b.done
    client.dataReceived(
        event("BACKGROUND_JOB", {"Job-UUID": "job-b", "Job-Command": "status"}, body="UP\n")
    )
    assert b.result == "UP\n" and not a.done
    assert seen_when_b_fired == ["CHANNEL_CREATE"]
    client.dataReceived(
        event("CHANNEL_HANGUP_COMPLETE", {"Unique-ID": U, "Hangup-Cause": "USER_BUSY"})
        + event("BACKGROUND_JOB", {"Job-UUID": "job-a"}, body="-ERR USER_BUSY\n")
    )
    assert a.error().text == "-ERR USER_BUSY"
    assert [e.name for e in listener.events] == [
        "CHANNEL_CREATE",
        "BACKGROUND_JOB",
        "CHANNEL_HANGUP_COMPLETE",
        "BACKGROUND_JOB",
    ]


def test_bgapi_job_event_before_its_reply():
    """
    Should the BACKGROUND_JOB overtake the command reply, the job still fires once.
    """
    client, _, _ = authenticated(new_uuid=uuids("job-a"))
    job = Outcome(client.bgapi("status"))
    client.dataReceived(event("BACKGROUND_JOB", {"Job-UUID": "job-a"}, body="+OK done\n"))
    assert job.result == "+OK done\n"
    client.dataReceived(reply("+OK Job-UUID: job-a"))
    assert job.result == "+OK done\n"


def test_bgapi_refused_outright():
    """
    A bgapi refused in its reply fails at once and its job is forgotten.
    """
    client, _, _ = authenticated(new_uuid=uuids("job-a"))
    job = Outcome(client.bgapi("status"))
    client.dataReceived(reply("-ERR permission denied"))
    assert job.error().text == "-ERR permission denied"
    client.dataReceived(event("BACKGROUND_JOB", {"Job-UUID": "job-a"}, body="+OK\n"))


# -- sendmsg ----------------------------------------------------------------------------


def test_execute_sends_our_event_uuid_and_waits_for_its_completion():
    """
    execute sends sendmsg with an Event-UUID we chose and fires with the
    CHANNEL_EXECUTE_COMPLETE whose Application-UUID is that id, not with an earlier run's.
    """
    client, listener, transport = authenticated(new_uuid=uuids("app-1"))
    arg = fscommand.speak("flite", "kal", "This is the kal voice, sent with sendmsg.")
    run = Outcome(client.execute(U, "speak", arg, event_lock=True))
    assert (
        transport.value()
        == (
            f"sendmsg {U}\ncall-command: execute\nexecute-app-name: speak\n"
            f"execute-app-arg: {arg}\nevent-uuid: app-1\nevent-lock: true\n\n"
        ).encode()
    )
    client.dataReceived(reply("+OK"))
    assert not run.done
    stale = {"Unique-ID": U, "Application": "speak", "Application-UUID": "app-0"}
    client.dataReceived(event("CHANNEL_EXECUTE_COMPLETE", stale))
    assert not run.done
    done = {"Unique-ID": U, "Application": "speak", "Application-UUID": "app-1"}
    client.dataReceived(event("CHANNEL_EXECUTE_COMPLETE", done))
    assert run.result["Application-UUID"] == "app-1"
    assert len(listener.events) == 2


def test_execute_refused_for_an_unknown_channel():
    """
    sendmsg to a channel that does not exist fails with FreeSWITCH's text.
    """
    client, _, _ = authenticated()
    run = Outcome(client.execute(U, "playback", "silence_stream://100"))
    client.dataReceived(reply(f"-ERR invalid session id [{U}]"))
    assert run.error().text == f"-ERR invalid session id [{U}]"
    assert run.error().no_such_channel


def test_no_such_channel_is_only_a_missing_channel():
    """The uuid_* commands' wording for a missing channel counts too; other refusals do not."""
    assert CommandError("-ERR No such channel!").no_such_channel
    assert not CommandError("-ERR GATEWAY_DOWN").no_such_channel
    assert not CommandError("-USAGE: <uuid> <var>").no_such_channel


def test_execute_fails_when_the_channel_hangs_up_first():
    """
    A queued application never runs once its channel hangs up: CHANNEL_HANGUP_COMPLETE
    fails it with ChannelGone (other channels' runs wait on), also after the channel was
    renamed by CHANNEL_UUID.
    """
    client, _, _ = authenticated(new_uuid=uuids("app-1", "app-2"))
    old = "00000000-0000-4000-8000-000000000001"
    mine = Outcome(client.execute(old, "playback", "silence_stream://100"))
    other = Outcome(client.execute(V, "playback", "silence_stream://100"))
    client.dataReceived(reply("+OK") + reply("+OK"))
    client.dataReceived(event("CHANNEL_UUID", {"Unique-ID": U, "Old-Unique-ID": old}))
    client.dataReceived(
        event("CHANNEL_HANGUP_COMPLETE", {"Unique-ID": U, "Hangup-Cause": "NORMAL_CLEARING"})
    )
    assert isinstance(mine.error(), ChannelGone)
    assert mine.error().event.uuid == U
    assert not other.done


def test_hangup_and_unicast_are_sendmsg_call_commands():
    """
    hangup and unicast send the call-commands as captured from a real session and fire
    with the reply.
    """
    client, _, transport = authenticated()
    hangup = Outcome(client.hangup(U, "NORMAL_CLEARING"))
    unicast = Outcome(client.unicast(U, "127.0.0.1", 17000, "127.0.0.1", 17001))
    native = Outcome(client.unicast(U, "127.0.0.1", 17008, "127.0.0.1", 17001, flags="native"))
    assert (
        transport.value()
        == (
            f"sendmsg {U}\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING\n\n"
            f"sendmsg {U}\ncall-command: unicast\nlocal-ip: 127.0.0.1\nlocal-port: 17000\n"
            f"remote-ip: 127.0.0.1\nremote-port: 17001\ntransport: udp\n\n"
            f"sendmsg {U}\ncall-command: unicast\nlocal-ip: 127.0.0.1\nlocal-port: 17008\n"
            f"remote-ip: 127.0.0.1\nremote-port: 17001\ntransport: udp\nflags: native\n\n"
        ).encode()
    )
    captured = (CAPTURES / "unicast_esl.sent.raw").read_bytes()
    assert (
        b"call-command: unicast\nlocal-ip: 127.0.0.1\nlocal-port: 17000\nremote-ip: 127.0.0.1\n"
        in captured
    )
    client.dataReceived(reply("+OK") + reply("+OK") + reply("-ERR invalid session id [x]"))
    assert hangup.result == "+OK" and unicast.result == "+OK"
    assert native.error().text == "-ERR invalid session id [x]"


def test_subscribe_filter_exit():
    """
    subscribe sends event json with the names, filter the header and value, exit exit.
    """
    client, _, transport = authenticated()
    subscribed = Outcome(client.subscribe(["CHANNEL_ANSWER", "CUSTOM", "conference::maintenance"]))
    filtered = Outcome(client.filter("Unique-ID", U))
    bye = Outcome(client.exit())
    assert transport.value() == (
        b"event json CHANNEL_ANSWER CUSTOM conference::maintenance\n\n"
        b"filter Unique-ID " + U.encode() + b"\n\nexit\n\n"
    )
    client.dataReceived(
        reply("+OK event listener enabled json")
        + reply(f"+OK filter added. [Unique-ID]=[{U}]")
        + reply("+OK bye")
    )
    assert subscribed.result == "+OK event listener enabled json"
    assert filtered.result.startswith("+OK filter added")
    assert bye.result == "+OK bye"


# -- injection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attempt",
    [
        lambda c: c.api("status\n\napi system rm -rf /"),
        lambda c: c.api("status\rexit"),
        lambda c: c.api("bgapi unload mod_event_socket"),
        lambda c: c.api("reload MOD_EVENT_SOCKET"),
        lambda c: c.bgapi("status\n\nexit"),
        lambda c: c.execute(U, "playback", "/x.wav\nexecute-app-name: system"),
        lambda c: c.execute(U, "playback", "/x.wav\r\n\napi system x"),
        lambda c: c.execute(U, "system\nx", ""),
        lambda c: c.execute(U + "\nhangup-cause: x", "playback", "/x.wav"),
        lambda c: c.execute("not-a-uuid", "playback", "/x.wav"),
        lambda c: c.execute(U, "playback", " leading space is stripped by FreeSWITCH"),
        lambda c: c.hangup(U, "NORMAL_CLEARING\nx: y"),
        lambda c: c.unicast(U, "127.0.0.1\nflags: native", 1, "127.0.0.1", 2),
        lambda c: c.unicast(U, "127.0.0.1", 0, "127.0.0.1", 2),
        lambda c: c.unicast(U, "127.0.0.1", 1, "127.0.0.1", 2, transport="sctp"),
        lambda c: c.subscribe(["CHANNEL_ANSWER\n\napi x"]),
        lambda c: c.filter("Unique-ID", "x\n\napi x"),
        lambda c: c.command("noevents\n\napi system x"),
    ],
)
def test_injection_attempts_are_refused_before_anything_is_sent(attempt):
    """
    Line breaks, bad names and the unload trick are refused with UnsafeValue (a
    ValueError) and nothing reaches the wire.
    """
    client, _, transport = authenticated()
    with pytest.raises(fscommand.UnsafeValue) as caught:
        attempt(client)
    assert isinstance(caught.value, ValueError)
    assert transport.value() == b""


# -- the end of a connection --------------------------------------------------------------


def test_disconnect_fails_every_pending_command():
    """
    When the connection ends every pending command fails with ConnectionClosed (api,
    plain commands, bgapi waiting for its job, execute waiting for completion, auth
    waiters), the reason names FreeSWITCH's notice, and later commands fail at once.
    """
    client, listener, transport = authenticated(new_uuid=uuids("job-1", "app-1"))
    api = Outcome(client.api("status"))
    job = Outcome(client.bgapi("status"))
    run = Outcome(client.execute(U, "playback", "silence_stream://100"))
    command = Outcome(client.command("noevents"))
    client.dataReceived(api_response("UP\n") + reply("+OK Job-UUID: job-1") + reply("+OK"))
    assert api.result == "UP\n"
    notice = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    client.dataReceived(frame_bytes([("Content-Type", "text/disconnect-notice")], notice))
    transport.loseConnection()
    for outcome in (job, run, command):
        assert isinstance(outcome.error(), ConnectionClosed)
        assert "Disconnected, goodbye." in str(outcome.error())
    assert len(listener.lost) == 1
    assert isinstance(Outcome(client.api("status")).error(), ConnectionClosed)
    assert isinstance(Outcome(client.when_authenticated()).error(), Exception)


def test_connection_lost_before_authentication():
    """
    A connection lost before FreeSWITCH asked for the password fails when_authenticated.
    """
    listener = Listener()
    client = EventSocketClient(listener, "ClueCon")
    connected(client)
    ready = Outcome(client.when_authenticated())
    client.connectionLost(Failure(ConnectionDone()))
    assert isinstance(ready.error(), ConnectionClosed)


def test_rude_rejection_closes():
    """
    FreeSWITCH's ACL refusal closes the connection; pending commands name the reason.
    """
    listener = Listener()
    client = EventSocketClient(listener, "ClueCon")
    transport = connected(client)
    ready = Outcome(client.when_authenticated())
    body = b"Access Denied, go away.\n"
    client.dataReceived(frame_bytes([("Content-Type", "text/rude-rejection")], body))
    assert transport.disconnecting
    assert "Access Denied" in str(ready.error())


def test_broken_framing_closes_the_connection():
    """
    A frame over the size limit closes the connection instead of buffering; pending
    commands fail naming the protocol error, frames before it still count.
    """
    listener = Listener()
    client = EventSocketClient(listener, "ClueCon", max_body_bytes=100)
    transport = connected(client)
    client.dataReceived(AUTH_REQUEST + ACCEPTED)
    status = Outcome(client.api("status"))
    big = b"Content-Type: api/response\nContent-Length: 101\n\n"
    client.dataReceived(event("HEARTBEAT") + big + b"x" * 101)
    assert [e.name for e in listener.events] == ["HEARTBEAT"]
    assert transport.disconnecting
    assert "protocol error" in str(status.error())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.sampled_from(
                [
                    event("HEARTBEAT"),
                    reply("+OK"),
                    api_response("+OK\n"),
                    b"Content-Type: text/event-json\nContent-Length: 5\n\n[1,2]",
                    b"Content-Type: text/event-plain\nContent-Length: 9\n\n%zz: %%\n\n",
                    b'Content-Type: text/event-json\nContent-Length: 3\n\n{"',
                    b"Content-Length: 99999999999\n\n",
                    b"\n\n\n",
                ]
            ),
        ),
        max_size=25,
    )
)
def test_any_bytes_from_freeswitch_never_escape_the_client(chunks: list[bytes]) -> None:
    """
    Whatever arrives (random bytes, broken frames, events that are not objects, huge
    lengths, mixed with real frames), dataReceived never raises: the client delivers what
    it can read and, at the first thing it cannot, closes the connection and fails every
    pending command with ConnectionClosed.
    """
    client, listener, transport = authenticated()
    pending = [Outcome(client.api("status")), Outcome(client.bgapi("status"))]
    for chunk in chunks:
        client.dataReceived(chunk)
    assert all(isinstance(e, Event) for e in listener.events)
    if transport.disconnecting:
        client.connectionLost(Failure(ConnectionDone()))
        for outcome in pending:
            assert outcome.done
            if outcome.failure is not None:
                assert isinstance(outcome.error(), (ConnectionClosed, CommandError))
    else:
        for outcome in pending:
            if outcome.failure is not None:
                assert isinstance(outcome.error(), CommandError)


def test_listener_failure_does_not_break_the_connection():
    """
    An exception in the listener is logged; the next event and replies still flow.
    """

    class Broken(Listener):
        def event_received(self, event: Event) -> None:
            super().event_received(event)
            if event.name == "HEARTBEAT":
                raise RuntimeError("listener bug")

    listener = Broken()
    client = EventSocketClient(listener, "ClueCon")
    connected(client)
    client.dataReceived(AUTH_REQUEST + ACCEPTED)
    status = Outcome(client.api("status"))
    with capturedLogs() as logs:
        client.dataReceived(event("HEARTBEAT") + event("CHANNEL_CREATE") + api_response("UP"))
    assert [e.name for e in listener.events] == ["HEARTBEAT", "CHANNEL_CREATE"]
    assert status.result == "UP"
    assert any("log_failure" in e for e in logs)


# -- replay of every real session ----------------------------------------------------------


class Session:
    """
    One Event Socket session of a capture: what was sent (as packets) and the bytes
    received from the end of authentication on.
    """

    def __init__(self, packets: list[tuple[str, list[tuple[str, str]]]], received: bytes) -> None:
        self.packets = packets
        frames = parse([received])
        assert frames[0].content_type == "auth/request"
        assert frames[1].headers["Reply-Text"] == "+OK accepted"
        first_two = len(AUTH_REQUEST) + len(ACCEPTED)
        assert received[:first_two] == AUTH_REQUEST + ACCEPTED
        self.rest = received[first_two:]
        self.frames = frames[2:]


def sessions(name: str) -> list[Session]:
    sent = read_packets((CAPTURES / f"{name}.sent.raw").read_bytes())
    received = (CAPTURES / f"{name}.recv.raw").read_bytes()
    parts = received.split(AUTH_REQUEST)[1:]
    groups: list[list[tuple[str, list[tuple[str, str]]]]] = []
    for packet in sent:
        if packet[0].startswith("auth "):
            groups.append([])
        else:
            groups[-1].append(packet)
    assert len(groups) == len(parts)
    return [Session(g, AUTH_REQUEST + p) for g, p in zip(groups, parts)]


REPLIES = ("command/reply", "api/response")


def expected_outcomes(session: Session) -> tuple[list[Any], list[str]]:
    """
    Worked out from the frames alone, without the client: reply i belongs to command i;
    a bgapi's job id is the one its reply names; an execute is identified by the first
    later CHANNEL_EXECUTE of that application and argument on that channel.
    """
    replies = [(i, f) for i, f in enumerate(session.frames) if f.content_type in REPLIES]
    events = [
        (i, event_from_frame(f))
        for i, f in enumerate(session.frames)
        if f.content_type.startswith("text/event-")
    ]
    used: set[str] = set()
    expected: list[Any] = []
    new_uuids: list[str] = []
    for n, (command, headers) in enumerate(session.packets):
        fields = dict(headers)
        if n >= len(replies):
            expected.append(ConnectionClosed)
            if command.startswith("bgapi") or fields.get("call-command") == "execute":
                new_uuids.append(f"00000000-0000-4000-8000-{n:012d}")
            continue
        position, frame = replies[n]
        text = (
            frame.headers.get("Reply-Text")
            if frame.content_type == "command/reply"
            else frame.body.decode()
        )
        error = text.startswith(("-ERR", "-USAGE"))
        if command.startswith("bgapi "):
            job = fields.get("Job-UUID") or frame.headers["Job-UUID"]
            new_uuids.append(job)
            done = [e for _, e in events if e.name == "BACKGROUND_JOB" and e["Job-UUID"] == job]
            if error:
                expected.append(("error", text.rstrip("\n")))
            elif done:
                body = done[0].body
                is_error = body.startswith(("-ERR", "-USAGE"))
                expected.append(("error", body.rstrip("\n")) if is_error else body)
            else:
                expected.append(ConnectionClosed)
        elif fields.get("call-command") == "execute":
            channel = command.split(" ", 1)[1]
            app, arg = fields["execute-app-name"], fields.get("execute-app-arg", "")
            runs = [
                e
                for i, e in events
                if i > position
                and e.name == "CHANNEL_EXECUTE"
                and e.uuid == channel
                and e["Application"] == app
                and e.get("Application-Data", "") == arg
                and e["Application-UUID"] not in used
            ]
            app_uuid = runs[0]["Application-UUID"] if runs else f"00000000-0000-4000-8000-{n:012d}"
            used.add(app_uuid)
            new_uuids.append(app_uuid)
            completes = [
                e
                for _, e in events
                if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application-UUID") == app_uuid
            ]
            if error:
                expected.append(("error", text))
            elif completes:
                expected.append(("event", app_uuid))
            elif any(
                e.name == "CHANNEL_HANGUP_COMPLETE" and e.uuid == channel
                for i, e in events
                if i > position
            ):
                expected.append(ChannelGone)
            else:
                expected.append(ConnectionClosed)
        else:
            expected.append(("error", text.rstrip("\n")) if error else text)
    return expected, new_uuids


def issue(client: EventSocketClient, command: str, headers: list[tuple[str, str]]) -> Deferred[Any]:
    """
    The client call that sends this captured packet.
    """
    fields = dict(headers)
    word, _, rest = command.partition(" ")
    if word == "api":
        return client.api(rest)
    if word == "bgapi":
        return client.bgapi(rest)
    if command.startswith("event json "):
        return client.subscribe(rest.split(" ")[1:])
    if word == "filter":
        delete = rest.startswith("delete ")
        header, _, value = rest.removeprefix("delete ").partition(" ")
        return client.filter(header, value, delete)
    if word == "exit":
        return client.exit()
    if word == "sendmsg":
        kind = fields["call-command"]
        if kind == "execute":
            return client.execute(
                rest,
                fields["execute-app-name"],
                fields.get("execute-app-arg", ""),
                event_lock=fields.get("event-lock") == "true",
            )
        if kind == "hangup":
            return client.hangup(rest, fields["hangup-cause"])
        assert kind == "unicast"
        return client.unicast(
            rest,
            fields["local-ip"],
            int(fields["local-port"]),
            fields["remote-ip"],
            int(fields["remote-port"]),
            fields["transport"],
            fields.get("flags"),
        )
    return client.command(command)


@pytest.mark.parametrize("path", RECEIVED, ids=lambda p: p.name.removesuffix(".recv.raw"))
@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_replay_of_a_real_session(path, split):
    """
    Each captured session replayed through the client, with the same commands issued
    through its API: it writes what the real client wrote (plus the Job-UUID/Event-UUID it
    chooses where the capture let FreeSWITCH choose), every reply, job and completion
    reaches the command it belongs to, every event reaches the listener in order, and
    whatever is left pending fails with ConnectionClosed when the connection ends.
    """
    name = path.name.removesuffix(".recv.raw")
    for session in sessions(name):
        expected, new_uuids = expected_outcomes(session)
        listener = Listener()
        client = EventSocketClient(listener, "ClueCon", new_uuid=uuids(*new_uuids))
        transport = connected(client)
        client.dataReceived(AUTH_REQUEST + ACCEPTED)
        transport.clear()
        outcomes = [Outcome(issue(client, c, h)) for c, h in session.packets]
        written = read_packets(transport.value())
        assert len(written) == len(session.packets)
        for ours, theirs in zip(written, session.packets):
            added = {"event-uuid", "Job-UUID"} - {name for name, _ in theirs[1]}
            assert (ours[0], [h for h in ours[1] if h[0] not in added]) == theirs
        for chunk in bytewise(session.rest) if split == "bytewise" else [session.rest]:
            client.dataReceived(chunk)
        transport.loseConnection()
        events = [f for f in session.frames if f.content_type.startswith("text/event-")]
        assert [e.items() for e in listener.events] == [event_from_frame(f).items() for f in events]
        for outcome, want in zip(outcomes, expected, strict=True):
            assert outcome.done
            if want in (ConnectionClosed, ChannelGone):
                assert isinstance(outcome.error(), want)
            elif isinstance(want, tuple) and want[0] == "error":
                assert isinstance(outcome.error(), CommandError)
                assert outcome.error().text == want[1]
            elif isinstance(want, tuple) and want[0] == "event":
                assert outcome.result["Application-UUID"] == want[1]
            else:
                assert outcome.result == want


def test_replay_shows_stale_variables_are_not_trusted():
    """
    play_and_get_digits ran four times on one channel; each execute fires with its own
    completion: digits 123; a failure with the earlier run's digits gone; a regex miss
    (read_result success, but only my_digits_invalid set); 123 again in-band.  The
    CHANNEL_EXECUTE of the second run still carried read_result=success from the first.
    """
    session = sessions("play_and_get_digits")[0]
    expected, new_uuids = expected_outcomes(session)
    client = EventSocketClient(Listener(), "ClueCon", new_uuid=uuids(*new_uuids))
    transport = connected(client)
    client.dataReceived(AUTH_REQUEST + ACCEPTED)
    runs = []
    for command, headers in session.packets:
        d = Outcome(issue(client, command, headers))
        if dict(headers).get("execute-app-name") == "play_and_get_digits":
            runs.append(d)
    client.dataReceived(session.rest)
    transport.loseConnection()
    results = [run.result for run in runs]
    assert [r.get("variable_my_digits") for r in results] == ["123", None, None, "123"]
    assert [r.get("variable_read_result") for r in results] == [
        "success",
        "failure",
        "success",
        "success",
    ]
    assert results[2]["variable_my_digits_invalid"] == "123"
    second_start = next(
        e
        for e in (
            event_from_frame(f) for f in session.frames if f.content_type == "text/event-json"
        )
        if e.name == "CHANNEL_EXECUTE"
        and e.get("Application-UUID") == results[1]["Application-UUID"]
    )
    assert second_start["variable_read_result"] == "success"


def test_bgapi_job_of_a_busy_call_arrives_after_its_hangup():
    """
    In the real busy call, BACKGROUND_JOB (-ERR USER_BUSY) comes after
    CHANNEL_HANGUP_COMPLETE: by the time the job fails, the listener has seen the hangup.
    """
    session = sessions("sip_busy486")[0]
    _, new_uuids = expected_outcomes(session)
    listener = Listener()
    client = EventSocketClient(listener, "ClueCon", new_uuid=uuids(*new_uuids))
    connected(client)
    client.dataReceived(AUTH_REQUEST + ACCEPTED)
    seen: list[tuple[str, str | None]] = []
    for command, headers in session.packets:
        d = issue(client, command, headers)
        if command.startswith("bgapi"):
            d.addErrback(
                lambda f: (
                    seen.extend((e.name, e.uuid) for e in listener.events) or f.trap(CommandError)
                )
            )
        else:
            Outcome(d)
    client.dataReceived(session.rest)
    assert ("CHANNEL_HANGUP_COMPLETE", "e764a93a-78c0-4f3f-b0a1-77296e556ffa") in seen
