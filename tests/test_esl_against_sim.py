"""
The Event Socket client and the node pool against the simulator over real TCP sockets on
127.0.0.1: the client code call control uses, talking to the simulator exactly as it
would talk to FreeSWITCH.  Where the two disagreed, the captures in
C{tests/fixtures/esl/} decided which side was wrong (regression tests live with that
side's own tests); here the two must simply work together.

The simulator runs in this process on the real reactor (one standalone process at the
end, as load tests run it).  Nothing sleeps: every test waits on Deferreds (replies,
events, datagrams) with timeouts.  Callees come from a scenario file with short rings and
from the built-in plan (docs/simulator.md).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import DatagramProtocol, ProcessProtocol
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site

from iradialer.config import NodeConfig
from iradialer.freeswitch import Node, NodeDown, NodePool, NoNodeAvailable
from iradialer.protocols import fscommand
from iradialer.protocols.esl import (
    READ_SIZE,
    AuthenticationFailed,
    ChannelGone,
    CommandError,
    ConnectionClosed,
    Event,
    EventSocketClient,
)
from iradialer.sim import make_simulator_service
from tests.test_sim_audio import write_wav

TIMEOUT = 10.0
GATEWAY = "sofia/gateway/sim"

# Fast callees for the tests that need an answered call; the built-in plan (docs/simulator.md)
# answers every other number.
SCENARIOS = """
[[scenario]]
match = "^1777000"
ring_ms = 50

[[scenario]]
match = "^1777100"
ring_ms = 50
dtmf = [ { after_prompt_ms = 100, digits = "42#" } ]

[[scenario]]
match = "^1777200"
ring_ms = 50
dtmf = [ { after_prompt_ms = 200, digits = "5" } ]
"""


class Heard:
    """
    Listener of an L{EventSocketClient} (and of a L{NodePool}): keeps every event, lets a
    test wait for one.  Waiters resume in the next reactor turn, after the client or pool
    has finished handling what they waited for (a call is released after its listener
    heard CHANNEL_HANGUP_COMPLETE).
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lost: list[Failure] = []
        self.pool_calls: list[tuple[Any, ...]] = []
        self._waiting: list[tuple[Callable[[Event], bool], Deferred[Event]]] = []
        self._lost_waiting: list[Deferred[BaseException]] = []
        self._pool_waiting: list[tuple[str, Deferred[tuple[Any, ...]]]] = []

    def event_received(self, *args: Any) -> None:
        """C{(event)} from a client, C{(node, event)} from a pool."""
        event: Event = args[-1]
        self.events.append(event)
        for entry in list(self._waiting):
            predicate, d = entry
            if predicate(event):
                self._waiting.remove(entry)
                reactor.callLater(0, d.callback, event)

    def connection_lost(self, reason: Failure) -> None:
        self.lost.append(reason)
        waiting, self._lost_waiting = self._lost_waiting, []
        for d in waiting:
            d.callback(reason.value)

    def node_up(self, node: Node, live_channels: list[dict[str, Any]]) -> None:
        self._pool_call("up", node.name, sorted(row["uuid"] for row in live_channels))

    def node_down(self, node: Node) -> None:
        self._pool_call("down", node.name)

    def calls_vanished(self, node: Node, call_uuids: list[str]) -> None:
        self._pool_call("vanished", node.name, call_uuids)

    def _pool_call(self, *what: Any) -> None:
        self.pool_calls.append(what)
        for entry in list(self._pool_waiting):
            if entry[0] == what[0]:
                self._pool_waiting.remove(entry)
                reactor.callLater(0, entry[1].callback, what)

    def wait(self, predicate: Callable[[Event], bool], *, since: int = 0) -> Deferred[Event]:
        """The first event from index C{since} on that satisfies C{predicate}."""
        for event in self.events[since:]:
            if predicate(event):
                return defer.succeed(event)
        d: Deferred[Event] = Deferred()
        self._waiting.append((predicate, d))
        return d.addTimeout(TIMEOUT, reactor)

    def wait_for(self, name: str, uuid: str | None = None, **headers: str) -> Deferred[Event]:
        def matches(event: Event) -> bool:
            wanted = name in (event.name, event.subclass)
            return (
                wanted
                and (uuid is None or event.uuid == uuid)
                and all(event.get(k.replace("_", "-")) == v for k, v in headers.items())
            )

        return self.wait(matches)

    def when_lost(self) -> Deferred[BaseException]:
        """Fires with why the connection ended."""
        if self.lost:
            return defer.succeed(self.lost[0].value)
        d: Deferred[BaseException] = Deferred()
        self._lost_waiting.append(d)
        return d.addTimeout(TIMEOUT, reactor)

    def when_pool(self, what: str, *, after: int = 0) -> Deferred[tuple[Any, ...]]:
        for call in self.pool_calls[after:]:
            if call[0] == what:
                return defer.succeed(call)
        d: Deferred[tuple[Any, ...]] = Deferred()
        self._pool_waiting.append((what, d))
        return d.addTimeout(TIMEOUT, reactor)

    def names(self, uuid: str) -> list[str]:
        return [e.name if e.name != "CUSTOM" else e.subclass for e in self.events if e.uuid == uuid]


class Simulator:
    """A simulator listening on an ephemeral TCP port of 127.0.0.1, in this process."""

    def __init__(self, scenarios: Path) -> None:
        self.service = make_simulator_service("tcp:0:interface=127.0.0.1", reactor, scenarios)
        self.sim = self.service.simulator
        self.port = 0

    async def start(self) -> Simulator:
        self.service.startService()
        listening = await self.service.when_listening()
        self.port = listening.getHost().port
        return self

    async def stop(self) -> None:
        await defer.maybeDeferred(self.service.stopService)

    def drop_connections(self) -> None:
        """The Event Socket connections end from the server side (as at a restart)."""
        for listener in list(self.sim.listeners):
            listener.transport.abortConnection()

    async def connect(
        self, password: str = "ClueCon", **kwargs: Any
    ) -> tuple[EventSocketClient, Heard]:
        heard = Heard()
        client = EventSocketClient(heard, password, **kwargs)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=TIMEOUT)
        await connectProtocol(endpoint, client)
        return client, heard

    async def session(
        self, events: tuple[str, ...] = ("ALL",), **kwargs: Any
    ) -> tuple[EventSocketClient, Heard]:
        """An authenticated connection subscribed to C{events} (JSON)."""
        client, heard = await self.connect(**kwargs)
        await client.when_authenticated()
        assert await client.subscribe(list(events)) == "+OK event listener enabled json"
        return client, heard


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    path = tmp_path / "scenarios.toml"
    path.write_text(SCENARIOS)
    return path


@pytest_twisted.async_yield_fixture
async def fs(scenarios: Path):
    simulator = await Simulator(scenarios).start()
    try:
        yield simulator
    finally:
        simulator.drop_connections()
        await simulator.stop()


def new_uuid() -> str:
    return str(uuid4())


def originate(call_uuid: str, number: str, timeout_s: int = 30, **kwargs: Any) -> str:
    return fscommand.originate(
        call_uuid=call_uuid, gateway=GATEWAY, destination=number, timeout_s=timeout_s, **kwargs
    )


async def answered_call(
    client: EventSocketClient, heard: Heard, number: str = "17770000001"
) -> str:
    """Place a call with bgapi and wait until it is parked."""
    call = new_uuid()
    assert await client.bgapi(originate(call, number)) == f"+OK {call}\n"
    await heard.wait_for("CHANNEL_PARK", call)
    return call


async def close(client: EventSocketClient) -> None:
    if client.is_open:
        assert await client.exit() == "+OK bye"


# -- connection, replies, errors ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_authentication_accepted_and_refused(fs):
    """
    The right password is accepted; a wrong one fails when_authenticated with
    AuthenticationFailed carrying FreeSWITCH's text, and the connection ends.
    """
    client, _ = await fs.connect()
    await client.when_authenticated()
    assert client.authenticated
    await close(client)
    wrong, heard = await fs.connect(password="nope")
    with pytest.raises(AuthenticationFailed) as caught:
        await wrong.when_authenticated()
    assert caught.value.text == "-ERR invalid"
    await heard.when_lost()
    assert not wrong.is_open


@pytest_twisted.ensureDeferred
async def test_client_reads_a_backlog_of_events_in_large_bites(fs):
    """
    On a real connection the client takes up to READ_SIZE (1 MiB) per turn of the reactor,
    not Twisted's 64 KiB (a dozen JSON events): a busy reactor must not fall seconds behind
    FreeSWITCH, with command replies waiting behind the events.
    """
    client, _ = await fs.connect()
    await client.when_authenticated()
    assert client.transport.bufferSize == READ_SIZE == 1024 * 1024
    await close(client)


@pytest_twisted.ensureDeferred
async def test_api_replies_in_fifo_order_with_errors(fs):
    """
    Pipelined api commands each get their own reply; -ERR and -USAGE replies fail with
    FreeSWITCH's text; an unknown Event Socket command fails with -ERR command not found.
    """
    client, _ = await fs.session()
    ghost = new_uuid()
    replies = [
        client.api("status"),
        client.api(fscommand.uuid_exists(ghost)),
        client.api(fscommand.uuid_kill(ghost)),
        client.api("originate"),
        client.api("bogus_cmd"),
        client.api(fscommand.SHOW_CHANNELS),
        client.command("bogus_command"),
        client.execute(ghost, "playback", fscommand.silence_stream(100)),
    ]
    results = await defer.DeferredList(replies, consumeErrors=True)
    values = [r if ok else r.value for ok, r in results]
    assert values[0].startswith("UP ") and "FreeSWITCH (Version 1.11.3" in values[0]
    assert values[1] == "false"
    assert values[2].text == "-ERR No such channel!"
    assert values[3].text.startswith("-USAGE: <call url> <exten>")
    assert values[4].text == "-ERR bogus_cmd Command not found!"
    assert values[5] == '{"row_count": 0}\n'
    assert values[6].text == "-ERR command not found"
    assert values[7].text == f"-ERR invalid session id [{ghost}]"
    assert all(isinstance(v, CommandError) for i, v in enumerate(values) if i in (2, 3, 4, 6, 7))
    await close(client)


@pytest_twisted.ensureDeferred
async def test_exit_sends_the_disconnect_notice_and_fails_what_follows(fs):
    """
    exit is answered +OK bye; FreeSWITCH then sends its disconnect notice and closes: the
    listener hears the loss and later commands fail with ConnectionClosed naming it.
    """
    client, heard = await fs.session()
    assert await client.exit() == "+OK bye"
    await heard.when_lost()
    with pytest.raises(ConnectionClosed, match="Disconnected, goodbye"):
        await client.api("status")


@pytest_twisted.ensureDeferred
async def test_subscription_and_filter_choose_the_events(fs):
    """
    Only the subscribed events arrive; a Unique-ID filter keeps one call's events (and,
    as in FreeSWITCH, drops events without that header).
    """
    client, heard = await fs.session(("CHANNEL_ANSWER", "CHANNEL_PARK", "BACKGROUND_JOB"))
    first = await answered_call(client, heard)
    assert {e.name for e in heard.events} == {"CHANNEL_ANSWER", "CHANNEL_PARK", "BACKGROUND_JOB"}
    watcher, watched = await fs.session(("CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_HANGUP"))
    second = new_uuid()
    reply = await watcher.filter("Unique-ID", second)
    assert reply == f"+OK filter added. [Unique-ID]=[{second}]"
    job = client.bgapi(originate(second, "17770000002"))
    assert await job == f"+OK {second}\n"
    await watched.wait_for("CHANNEL_PARK", second)
    await client.api(fscommand.uuid_kill(first))
    await heard.wait(lambda e: e.name == "CHANNEL_PARK" and e.uuid == second)
    await client.api(fscommand.uuid_kill(second))
    await watched.wait_for("CHANNEL_HANGUP", second)
    assert {e.uuid for e in watched.events} == {second}
    await close(client)
    await close(watcher)


@pytest_twisted.ensureDeferred
async def test_plain_and_json_events_carry_the_same_values(fs):
    """
    Two connections, one with event plain ALL and one with JSON: every event of a call
    (UTF-8 text to speak, URL-unsafe characters, a # key) reaches the client with the same
    headers and values either way; the one exception is a value that itself holds %XX,
    which FreeSWITCH's plain encoding leaves as it is (switch_url_encode), so JSON is the
    lossless format and the one the pool subscribes to.
    """
    plain, plain_heard = await fs.connect()
    await plain.when_authenticated()
    assert await plain.command("event plain ALL") == "+OK event listener enabled plain"
    client, heard = await fs.session()
    call = await answered_call(client, heard)
    text = "Grüße 你好 #&+;<"
    await client.execute(call, "speak", fscommand.speak("flite", "slt", text))
    assert await client.api(fscommand.uuid_setvar(call, "coded", "x%41y")) == "+OK\n"
    assert await client.api(f"uuid_recv_dtmf {call} #") == f"+OK {call} received DTMF #.\n"
    await client.api(fscommand.uuid_kill(call))
    await heard.wait_for("CHANNEL_DESTROY", call)
    await plain_heard.wait_for("CHANNEL_DESTROY", call)
    assert [e.sequence for e in plain_heard.events] == [e.sequence for e in heard.events]
    for as_json, as_plain in zip(heard.events, plain_heard.events):
        json_items = as_json.items()
        if as_json.get("variable_coded") == "x%41y":
            assert as_plain["variable_coded"] == "xAy"
            json_items = [(k, "xAy" if k == "variable_coded" else v) for k, v in json_items]
        if as_json.name == "API":
            continue
        assert as_plain.items() == json_items, as_json.name
        assert as_plain.body == as_json.body
    executed = next(e for e in plain_heard.events if e.get("Application") == "speak")
    assert executed["Application-Data"] == "flite|slt|" + text
    assert next(e for e in plain_heard.events if e.name == "DTMF")["DTMF-Digit"] == "#"
    await close(client)
    await close(plain)


# -- originate outcomes ---------------------------------------------------------------------

# number ending -> (BACKGROUND_JOB error, Hangup-Cause, Q.850, sip_term_status, disposition,
#                   rang first)
FAILURES = {
    "0008": ("-ERR USER_BUSY", "USER_BUSY", "17", "486", "recv_refuse", False),
    "0009": ("-ERR NO_ANSWER", "NO_ANSWER", "19", None, "send_cancel", True),
    "0010": ("-ERR UNALLOCATED_NUMBER", "UNALLOCATED_NUMBER", "1", "404", "recv_refuse", False),
    "0011": ("-ERR CALL_REJECTED", "CALL_REJECTED", "21", "603", "recv_refuse", True),
}


@pytest_twisted.ensureDeferred
async def test_bgapi_originate_every_outcome_of_the_built_in_plan(fs):
    """
    bgapi originate to the built-in plan's numbers, all at once, each with a Job-UUID we
    chose: the answered call rings, answers and fires its job with +OK <uuid>; busy, no
    answer (originate_timeout), unallocated and reject fail their job with FreeSWITCH's
    -ERR cause after the call's CHANNEL_HANGUP_COMPLETE, which carries the hangup cause,
    its Q.850 number and the SIP status as the sip_* captures show; a down gateway fails
    with no channel at all.  Killing the answered call gives NORMAL_CLEARING (16) with
    billsec and the call-quality variables.
    """
    jobs = [new_uuid() for _ in range(6)]
    client, heard = await fs.session(new_uuid=iter(jobs).__next__)
    calls = {ending: new_uuid() for ending in ("0001", *FAILURES, "0012")}
    started = {
        ending: client.bgapi(
            originate(call, "1555123" + ending, timeout_s=1 if ending == "0009" else 30)
        )
        for ending, call in calls.items()
    }
    seen_at_job: dict[str, list[str]] = {}

    def note(failure: Failure, ending: str) -> Failure:
        seen_at_job[ending] = heard.names(calls[ending])
        return failure

    for ending, d in started.items():
        d.addErrback(note, ending)
    results = dict(
        zip(started, await defer.DeferredList(list(started.values()), consumeErrors=True))
    )
    for job in jobs:
        done = await heard.wait(lambda e, j=job: e.name == "BACKGROUND_JOB" and e["Job-UUID"] == j)
        assert done["Job-Command"] == "originate"

    ok, answered = results["0001"]
    assert ok and answered == f"+OK {calls['0001']}\n"
    names = heard.names(calls["0001"])
    assert names.index("CHANNEL_PROGRESS") < names.index("CHANNEL_ANSWER")
    answer = await heard.wait_for("CHANNEL_ANSWER", calls["0001"])
    assert answer["Answer-State"] == "answered"

    for ending, (error, cause, q850, sip, disposition, rang) in FAILURES.items():
        ok, failure = results[ending]
        assert not ok and failure.check(CommandError), ending
        assert failure.value.text == error
        done = await heard.wait_for("CHANNEL_HANGUP_COMPLETE", calls[ending])
        assert "CHANNEL_HANGUP_COMPLETE" in seen_at_job[ending], "job fired before the hangup"
        assert done["Hangup-Cause"] == cause
        assert done["variable_hangup_cause_q850"] == q850
        assert done.get("variable_sip_term_status") == sip
        assert done.get("variable_proto_specific_hangup_cause") == (sip and f"sip:{sip}")
        assert done["variable_sip_hangup_disposition"] == disposition
        assert ("CHANNEL_PROGRESS" in heard.names(calls[ending])) == rang
        assert "CHANNEL_ANSWER" not in heard.names(calls[ending])
    assert results["0009"][1].value.text == "-ERR NO_ANSWER"
    no_answer = await heard.wait_for("CHANNEL_HANGUP_COMPLETE", calls["0009"])
    assert no_answer["variable_sip_invite_failure_status"] == "487"

    ok, down = results["0012"]
    assert not ok and down.value.text == "-ERR GATEWAY_DOWN"
    assert heard.names(calls["0012"]) == []

    assert await client.api(fscommand.uuid_kill(calls["0001"])) == "+OK\n"
    done = await heard.wait_for("CHANNEL_HANGUP_COMPLETE", calls["0001"])
    assert done["Hangup-Cause"] == "NORMAL_CLEARING"
    assert done["variable_hangup_cause_q850"] == "16"
    assert done["variable_sip_hangup_disposition"] == "send_bye"
    assert "variable_sip_term_status" not in done
    assert done["variable_billsec"].isdigit()
    assert done["variable_rtp_audio_in_mos"] == "4.50"
    assert done["variable_rtp_audio_in_quality_percentage"] == "100.00"
    await close(client)


# -- applications ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_playback_speak_and_uuid_break(fs):
    """
    execute fires with the CHANNEL_EXECUTE_COMPLETE of its own run: a tone plays whole
    (PLAYBACK_START, PLAYBACK_STOP done, FILE PLAYED); speak completes with _none_ and no
    playback events; uuid_break stops a long playback with Playback-Status break.
    """
    client, heard = await fs.session()
    call = await answered_call(client, heard)
    tone = fscommand.tone_stream(100, 0, 1000)
    played = await client.execute(call, "playback", fscommand.playback(tone))
    assert (played["Application"], played["Application-Data"]) == ("playback", tone)
    assert played["Application-Response"] == "FILE PLAYED"
    stop = await heard.wait_for("PLAYBACK_STOP", call)
    assert (stop["Playback-File-Path"], stop["Playback-Status"]) == (tone, "done")

    spoken = await client.execute(call, "speak", fscommand.speak("flite", "slt", "Hi there"))
    assert spoken["Application-Response"] == "_none_"
    assert spoken["Application-Data"] == "flite|slt|Hi there"

    since = len(heard.events)
    long = client.execute(call, "playback", fscommand.silence_stream(30_000))
    await heard.wait(lambda e: e.name == "PLAYBACK_START" and e.uuid == call, since=since)
    assert await client.api(fscommand.uuid_break(call)) == "+OK\n"
    broken = await long
    assert broken["Application-Response"] == "FILE PLAYED"
    stop = await heard.wait(lambda e: e.name == "PLAYBACK_STOP" and e.uuid == call, since=since)
    assert stop["Playback-Status"] == "break"
    await client.api(fscommand.uuid_kill(call))
    await close(client)


@pytest_twisted.ensureDeferred
async def test_a_key_in_playback_terminators_stops_the_playback(fs):
    """
    uuid_setvar playback_terminators (what stop_on_key sets) and uuid_getvar read back;
    the callee's key press (RFC 2833, 200 ms into the playback) breaks the playback and
    is reported in playback_terminator_used.
    """
    client, heard = await fs.session()
    call = await answered_call(client, heard, "17772000001")
    setvar = fscommand.uuid_setvar(call, "playback_terminators", "0123456789*#")
    assert await client.api(setvar) == "+OK\n"
    getvar = fscommand.uuid_getvar(call, "playback_terminators")
    assert await client.api(getvar) == "0123456789*#"
    done = await client.execute(call, "playback", fscommand.silence_stream(30_000))
    assert done["variable_playback_terminator_used"] == "5"
    dtmf = await heard.wait_for("DTMF", call)
    assert (dtmf["DTMF-Digit"], dtmf["DTMF-Source"]) == ("5", "RTP")
    stop = await heard.wait_for("PLAYBACK_STOP", call)
    assert stop["Playback-Status"] == "break"
    await client.api(fscommand.uuid_kill(call))
    await close(client)


@pytest_twisted.ensureDeferred
async def test_queued_application_fails_with_channel_gone_at_hangup(fs):
    """
    With an event-locked playback running, a second execute waits in the channel's queue;
    uuid_kill ends the running one (PLAYBACK ERROR, as in sip_remote_bye) and the queued
    one fails with ChannelGone carrying the CHANNEL_HANGUP_COMPLETE.
    """
    client, heard = await fs.session()
    call = await answered_call(client, heard)
    running = client.execute(call, "playback", fscommand.silence_stream(30_000), event_lock=True)
    queued = client.execute(call, "playback", fscommand.tone_stream(100, 0, 440))
    await heard.wait_for("PLAYBACK_START", call)
    assert await client.api(fscommand.uuid_kill(call, "NORMAL_CLEARING")) == "+OK\n"
    first = await running
    assert first["Application-Response"] == "PLAYBACK ERROR"
    with pytest.raises(ChannelGone) as caught:
        await queued
    assert caught.value.event.name == "CHANNEL_HANGUP_COMPLETE"
    assert caught.value.event["Hangup-Cause"] == "NORMAL_CLEARING"
    await close(client)


@pytest_twisted.ensureDeferred
async def test_sendmsg_hangup_and_uuid_send_dtmf(fs):
    """
    uuid_send_dtmf answers with FreeSWITCH's text and the far end gets the digits (no DTMF
    event on our leg: it fires on the receiving leg); sendmsg hangup ends the call with
    the cause given.
    """
    client, heard = await fs.session()
    call = await answered_call(client, heard)
    reply = await client.api(fscommand.uuid_send_dtmf(call, "123#"))
    assert reply == f"+OK {call} sent DTMF 123#.\n"
    assert fs.sim.channel(call).dtmf_sent == ["123#"]
    assert await client.hangup(call, "USER_BUSY") == "+OK"
    done = await heard.wait_for("CHANNEL_HANGUP_COMPLETE", call)
    assert done["Hangup-Cause"] == "USER_BUSY"
    assert done["variable_hangup_cause_q850"] == "17"
    assert "DTMF" not in heard.names(call)
    await close(client)


# -- media ------------------------------------------------------------------------------------


class Datagrams(DatagramProtocol):
    """Our UDP receiver: keeps datagrams, fires a Deferred when enough have come."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self._waiting: list[tuple[int, Deferred[None]]] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        self.received.append((datagram, addr))
        for entry in list(self._waiting):
            if len(self.received) >= entry[0]:
                self._waiting.remove(entry)
                entry[1].callback(None)

    def until(self, count: int) -> Deferred[None]:
        """Fires once C{count} datagrams in all have arrived."""
        if len(self.received) >= count:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append((count, d))
        return d.addTimeout(TIMEOUT, reactor)


def free_udp_port() -> int:
    """A port nobody uses now, for the FreeSWITCH side of a unicast stream."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_unicast_streams_until_a_playback_and_again_after_a_re_park(fs):
    """
    unicast sends the callee's audio as 320-byte L16 datagrams from the FreeSWITCH-side
    port to our UDP socket, and takes what we send back; a playback on the leg ends the
    stream (unicast_case3); after uuid_transfer <uuid> park inline (CHANNEL_PARK) a new
    unicast streams again (unicast_more), 160-byte G.711 with flags native.
    """
    client, heard = await fs.session()
    call = await answered_call(client, heard)
    ours = Datagrams()
    udp = reactor.listenUDP(0, ours, interface="127.0.0.1")
    try:
        remote = udp.getHost().port
        fs_port = free_udp_port()
        assert await client.unicast(call, "127.0.0.1", fs_port, "127.0.0.1", remote) == "+OK"
        await ours.until(10)
        assert {len(data) for data, _ in ours.received} == {320}
        assert {addr for _, addr in ours.received} == {("127.0.0.1", fs_port)}

        recorded: Deferred[None] = Deferred()
        media = fs.sim.media
        record = media.record

        def recording(channel: Any, datagram: bytes) -> None:
            record(channel, datagram)
            if not recorded.called:
                recorded.callback(None)

        media.record = recording
        udp.write(b"\x10\x00" * 160, ("127.0.0.1", fs_port))
        await recorded.addTimeout(TIMEOUT, reactor)
        assert fs.sim.written_back(call) == b"\x10\x00" * 160

        await client.execute(call, "playback", fscommand.tone_stream(60, 0, 1000))
        assert media.streaming(call) is None

        assert await client.api(fscommand.uuid_park(call)) == "+OK\n"
        since = len(heard.events)
        await heard.wait(lambda e: e.name == "CHANNEL_PARK" and e.uuid == call, since=since)
        count = len(ours.received)
        native_port = free_udp_port()
        native = await client.unicast(
            call, "127.0.0.1", native_port, "127.0.0.1", remote, flags="native"
        )
        assert native == "+OK"
        await ours.until(count + 5)
        assert {len(data) for data, _ in ours.received[count:]} == {160}
        assert {addr for _, addr in ours.received[count:]} == {("127.0.0.1", native_port)}
        await client.api(fscommand.uuid_kill(call))
    finally:
        await udp.stopListening()
    await close(client)


# -- conferences ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_conference_by_transfer_and_sendmsg_member_ops_kick_hup_and_back_to_park(fs):
    """
    Call A enters by uuid_transfer '<conf>,park' inline, call B by sendmsg execute
    conference; every member command with a uuid= target answers +OK <action> <member
    id> and fires its conference::maintenance action; json_list lists both; -ERR texts
    for a stranger and an unknown conference.  kick sends A on to its inline park; hup
    after A re-enters does the same; uuid_transfer park inline takes B out (its execute
    completes), and the empty conference is destroyed.
    """
    client, heard = await fs.session()
    a = await answered_call(client, heard)
    b = await answered_call(client, heard, "17770000002")
    name = fscommand.conference_name(new_uuid())
    room = fscommand.conference(name)
    assert await client.api(fscommand.uuid_transfer_to_conference(a, room)) == "+OK\n"
    created = await heard.wait_for("conference::maintenance", Action="conference-create")
    assert created["Conference-Name"] == name
    added = await heard.wait_for("conference::maintenance", a, Action="add-member")
    a_id = added["Member-ID"]
    b_in = client.execute(b, "conference", room)
    b_added = await heard.wait_for("conference::maintenance", b, Action="add-member")
    assert b_added["Member-ID"] != a_id

    for action in ("mute", "unmute", "deaf", "undeaf", "hold", "unhold"):
        reply = await client.api(fscommand.conference_member(name, action, a))
        assert reply == f"+OK {action} {a_id}\n"
        done = await heard.wait_for("conference::maintenance", a, Action=f"{action}-member")
        assert done["Member-ID"] == a_id
    listing = await client.api(fscommand.conference_json_list(name))
    assert {m["uuid"] for m in json.loads(listing)[0]["members"]} == {a, b}
    stranger = client.api(fscommand.conference_member(name, "mute", new_uuid()))
    with pytest.raises(CommandError, match="-ERR Non-Existant member"):
        await stranger
    nowhere = client.api(fscommand.conference_json_list("CONF-nowhere"))
    with pytest.raises(CommandError, match="-ERR Conference CONF-nowhere not found"):
        await nowhere

    since = len(heard.events)
    assert await client.api(fscommand.conference_member(name, "kick", a)) == f"+OK kicked {a_id}\n"
    await heard.wait_for("conference::maintenance", a, Action="kick-member")
    await heard.wait(lambda e: e.name == "CHANNEL_PARK" and e.uuid == a, since=since)
    assert await client.api(fscommand.uuid_transfer_to_conference(a, room)) == "+OK\n"
    since = len(heard.events)
    again = await heard.wait(lambda e: e.get("Action") == "add-member" and e.uuid == a, since=since)
    assert again["Member-ID"] == a_id
    assert await client.api(fscommand.conference_member(name, "hup", a)) == f"+OK hup {a_id}\n"
    await heard.wait_for("conference::maintenance", a, Action="hup-member")
    await heard.wait(lambda e: e.name == "CHANNEL_PARK" and e.uuid == a, since=since)

    since = len(heard.events)
    assert await client.api(fscommand.uuid_park(b)) == "+OK\n"
    left = await b_in
    assert left["Application"] == "conference"
    await heard.wait(lambda e: e.name == "CHANNEL_PARK" and e.uuid == b, since=since)
    await heard.wait_for("conference::maintenance", Action="conference-destroy")
    assert not fs.sim.conferences.rooms
    for call in (a, b):
        await client.api(fscommand.uuid_kill(call))
    await close(client)


# -- the node pool ------------------------------------------------------------------------------


class Gate:
    """
    A client endpoint whose connections wait while the gate is shut, so a test decides
    when a reconnection happens instead of racing it.
    """

    def __init__(self, port: int) -> None:
        self.endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=TIMEOUT)
        self.shut = False
        self._held: list[tuple[Any, Deferred[Any]]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        if not self.shut:
            return self.endpoint.connect(factory)
        d: Deferred[Any] = Deferred(lambda d: self._held.remove((factory, d)))
        self._held.append((factory, d))
        return d

    def open(self) -> None:
        self.shut = False
        held, self._held = self._held, []
        for factory, d in held:
            self.endpoint.connect(factory).chainDeferred(d)


def pool_of(
    heard: Heard, *ports: int, max_sessions: int = 1000, **kwargs: Any
) -> tuple[NodePool, dict[str, Gate]]:
    configs = [
        NodeConfig(f"fs{i}", "127.0.0.1", port, "ClueCon", max_sessions=max_sessions)
        for i, port in enumerate(ports, 1)
    ]
    gates = {config.name: Gate(config.port) for config in configs}
    kwargs.setdefault("retry_policy", lambda attempt: 0.05)
    pool = NodePool(configs, reactor, heard, connect=lambda c: gates[c.name], **kwargs)
    pool.startService()
    return pool, gates


async def place(pool: NodePool, heard: Heard, number: str = "17770000001") -> tuple[str, Node]:
    """What call control does: choose a node, claim the call, originate with bgapi."""
    node = pool.choose_node()
    call = new_uuid()
    pool.claim(call, node)
    assert await node.bgapi(originate(call, number)) == f"+OK {call}\n"
    await heard.wait_for("CHANNEL_PARK", call)
    return call, node


@pytest_twisted.ensureDeferred
async def test_pool_reconnects_resubscribes_and_reconciles(fs):
    """
    The pool's handshake against the simulator: node_up with the live channels of show
    channels as json; HEARTBEATs keep the node's health; when the connection drops the
    node goes down and its calls stay owned; a call that ended meanwhile is reported
    vanished after the reconnection (and released), the live one stays owned, and its
    events flow again on the new subscription.
    """
    before, before_heard = await fs.session()
    early = await answered_call(before, before_heard)
    heard = Heard()
    pool, gates = pool_of(heard, fs.port)
    try:
        up = await heard.when_pool("up")
        assert up == ("up", "fs1", [early])
        node = pool.node("fs1")
        pool.claim(early, node, adopted=True)
        fs.sim.heartbeat()
        beat = await heard.wait_for("HEARTBEAT")
        assert node.last_heartbeat is not None
        assert node.heartbeat["Session-Count"] == beat["Session-Count"] == "1"
        kept, _ = await place(pool, heard)
        assert pool.node_for(kept) is node and node.calls == {early, kept}

        gates["fs1"].shut = True
        calls_before = len(heard.pool_calls)
        fs.drop_connections()
        await heard.when_pool("down", after=calls_before)
        with pytest.raises(NodeDown):
            await node.api("status")
        meanwhile, meanwhile_heard = await fs.session()
        assert await meanwhile.api(fscommand.uuid_kill(early)) == "+OK\n"
        await meanwhile_heard.wait_for("CHANNEL_HANGUP_COMPLETE", early)
        await close(meanwhile)
        assert pool.node_for(early) is node

        gates["fs1"].open()
        up = await heard.when_pool("up", after=calls_before)
        assert up == ("up", "fs1", [kept])
        vanished = await heard.when_pool("vanished", after=calls_before)
        assert vanished == ("vanished", "fs1", [early])
        assert pool.node_for(early) is None and node.calls == {kept}
        assert node.status()["connects"] == 2

        assert await node.api(fscommand.uuid_kill(kept)) == "+OK\n"
        await heard.wait_for("CHANNEL_HANGUP_COMPLETE", kept)
        assert pool.node_for(kept) is None
    finally:
        await pool.stopService()


@pytest_twisted.ensureDeferred
async def test_pool_marks_a_node_without_heartbeats_down(fs):
    """
    A node whose HEARTBEATs stop is marked down after heartbeat_timeout and reconnected;
    each HEARTBEAT the simulator sends puts the deadline off.
    """
    heard = Heard()
    pool, _ = pool_of(heard, fs.port, heartbeat_timeout=0.5)
    try:
        await heard.when_pool("up")
        node = pool.node("fs1")
        fs.sim.heartbeat()
        await heard.wait_for("HEARTBEAT")
        assert node.connected
        down = await heard.when_pool("down")
        assert down == ("down", "fs1")
        assert reactor.seconds() - node.last_heartbeat >= 0.5  # type: ignore[operator]
        await heard.when_pool("up", after=len(heard.pool_calls))
        assert node.status()["connects"] == 2
    finally:
        await pool.stopService()


@pytest_twisted.ensureDeferred
async def test_pool_spreads_calls_over_simulators_and_skips_a_dead_one(fs, scenarios):
    """
    Two simulators, one node each: new calls alternate between them and each call's node
    is known; at max_sessions the pool refuses; once a simulator is gone its node is
    down and every new call goes to the other.
    """
    other = await Simulator(scenarios).start()
    heard = Heard()
    pool, _ = pool_of(heard, fs.port, other.port, max_sessions=2)
    try:
        await heard.when_pool("up")
        if len([c for c in heard.pool_calls if c[0] == "up"]) < 2:
            await heard.when_pool("up", after=1)
        placed = [await place(pool, heard) for _ in range(4)]
        owners = [node.name for _, node in placed]
        assert sorted(owners) == ["fs1", "fs1", "fs2", "fs2"]
        assert owners[0] != owners[1]
        for call, node in placed:
            assert pool.node_for(call) is node
            simulator = fs if node.name == "fs1" else other
            assert simulator.sim.channel(call) is not None
        with pytest.raises(NoNodeAvailable, match="max_sessions"):
            pool.choose_node()
        for call, node in placed:
            assert await node.api(fscommand.uuid_kill(call)) == "+OK\n"
            await heard.wait_for("CHANNEL_HANGUP_COMPLETE", call)
        count = len(heard.pool_calls)
        await other.stop()
        other.drop_connections()
        assert await heard.when_pool("down", after=count) == ("down", "fs2")
        assert {pool.choose_node().name for _ in range(3)} == {"fs1"}
    finally:
        await pool.stopService()
        await other.stop()


# -- play_and_get_digits ------------------------------------------------------------------------


def digits_arg(prompt: str, regex: str = "", tries: int = 1, timeout_ms: int = 1000) -> str:
    return fscommand.play_and_get_digits(
        min_digits=1,
        max_digits=5,
        tries=tries,
        timeout_ms=timeout_ms,
        terminators="#",
        prompt=prompt,
        invalid_prompt=fscommand.silence_stream(50),
        var_name="my_digits",
        regex=regex,
    )


@pytest_twisted.ensureDeferred
async def test_play_and_get_digits_results_come_from_their_own_completion(fs):
    """
    Each play_and_get_digits run fires with its own CHANNEL_EXECUTE_COMPLETE, so stale
    variables never pass for a result (the play_and_get_digits capture): the callee keys
    42# after the prompt starts -> my_digits 42, read_result success, terminator #; the
    next run's regex refuses 42 -> read_result success but my_digits unset and
    my_digits_invalid 42, although that run's CHANNEL_EXECUTE still carried my_digits 42;
    a callee who keys nothing -> read_result failure.
    """
    client, heard = await fs.session()
    prompt = fscommand.tone_stream(300, 0, 800)
    silent = await answered_call(client, heard, "17770000003")
    waited = client.execute(silent, "play_and_get_digits", digits_arg(prompt))
    keyer = await answered_call(client, heard, "17771000001")
    first = await client.execute(keyer, "play_and_get_digits", digits_arg(prompt, r"\d+"))
    assert first["variable_my_digits"] == "42"
    assert first["variable_read_result"] == "success"
    assert first["variable_read_terminator_used"] == "#"
    assert first["Application-Response"] == "_none_"
    keys = [e["DTMF-Digit"] for e in heard.events if e.name == "DTMF" and e.uuid == keyer]
    assert keys == ["4", "2", "#"]

    second = await client.execute(keyer, "play_and_get_digits", digits_arg(prompt, r"^9\d+$"))
    assert second["variable_read_result"] == "success"
    assert "variable_my_digits" not in second
    assert second["variable_my_digits_invalid"] == "42"
    start = await heard.wait(
        lambda e: (
            e.name == "CHANNEL_EXECUTE" and e.get("Application-UUID") == second["Application-UUID"]
        )
    )
    assert start["variable_my_digits"] == "42"

    nothing = await waited
    assert nothing["variable_read_result"] == "failure"
    assert "variable_my_digits" not in nothing
    for call in (keyer, silent):
        await client.api(fscommand.uuid_kill(call))
    await close(client)


class Recordings(Resource):
    """Our web server's recordings: a path's WAV bytes, 404 for the rest."""

    isLeaf = True

    def __init__(self, files: dict[bytes, bytes]) -> None:
        super().__init__()
        self.files = files

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        body = self.files.get(request.path)
        if body is None:
            request.setResponseCode(404)
            return b"no such recording"
        request.setHeader(b"content-type", b"audio/wav")
        return body


@pytest_twisted.ensureDeferred
async def test_prompts_by_tts_and_by_url(fs, tmp_path):
    """
    The prompts call control builds: say_prompt(text, "flite", "slt") plays as the tts://
    file it builds, url_source's http_cache:// recording is fetched from our web server
    and plays as a file; the callee answers each prompt (42#), and a recording the server
    does not have is FILE NOT FOUND.
    """
    wav = write_wav(tmp_path / "prompt.wav", seconds=0.3).read_bytes()
    site = Site(Recordings({b"/prompt.wav": wav}))
    web = reactor.listenTCP(0, site, interface="127.0.0.1")
    base = f"http://127.0.0.1:{web.getHost().port}"
    try:
        client, heard = await fs.session()
        call = await answered_call(client, heard, "17771000001")
        said = fscommand.say_prompt("Your code: then hash", "flite", "slt")
        recording = fscommand.url_source(base + "/prompt.wav")
        for prompt in (said, recording):
            since = len(heard.events)
            done = await client.execute(call, "play_and_get_digits", digits_arg(prompt))
            assert done["variable_my_digits"] == "42"
            start = await heard.wait(lambda e: e.name == "PLAYBACK_START", since=since)
            assert start["Playback-File-Path"] == prompt
        missing = fscommand.playback(fscommand.url_source(base + "/missing.wav"))
        played = await client.execute(call, "playback", missing)
        assert played["Application-Response"] == "FILE NOT FOUND"
        await client.api(fscommand.uuid_kill(call))
        await close(client)
    finally:
        await web.stopListening()


# -- the simulator in a process of its own ----------------------------------------------------


class Standalone(ProcessProtocol):
    """C{python -m iradialer.sim}: the port it reports once listening, and its end."""

    def __init__(self) -> None:
        self.output = b""
        self.listening: Deferred[int] = Deferred()
        self.ended: Deferred[BaseException] = Deferred()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.output += data
        found = re.search(rb"simulator listening on .*?port=(\d+)", self.output)
        if found and not self.listening.called:
            self.listening.callback(int(found[1]))

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.output += data

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        if not self.listening.called:
            self.listening.errback(RuntimeError(self.output.decode(errors="replace")))
        self.ended.callback(reason.value)


@pytest_twisted.ensureDeferred
async def test_standalone_simulator_process(scenarios):
    """
    python -m iradialer.sim on an ephemeral port, as load tests run it: the pool connects,
    a call is placed and answered, its audio streams to our UDP socket, uuid_kill ends
    it, and SIGTERM stops the process cleanly.
    """
    standalone = Standalone()
    argv = [sys.executable, "-m", "iradialer.sim", "--listen", "tcp:0:interface=127.0.0.1"]
    argv += ["--scenarios", str(scenarios)]
    process = reactor.spawnProcess(
        standalone, sys.executable, argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    heard = Heard()
    pool: NodePool | None = None
    ours = Datagrams()
    udp = reactor.listenUDP(0, ours, interface="127.0.0.1")
    try:
        port = await standalone.listening.addTimeout(30, reactor)
        pool, _ = pool_of(heard, port)
        await heard.when_pool("up")
        call, node = await place(pool, heard)
        fs_port = free_udp_port()
        remote = udp.getHost().port
        assert await node.unicast(call, "127.0.0.1", fs_port, "127.0.0.1", remote) == "+OK"
        await ours.until(25)
        assert {len(data) for data, _ in ours.received} == {320}
        assert await node.api(fscommand.uuid_kill(call)) == "+OK\n"
        done = await heard.wait_for("CHANNEL_HANGUP_COMPLETE", call)
        assert done["Hangup-Cause"] == "NORMAL_CLEARING"
        process.signalProcess("TERM")
        ended = await standalone.ended.addTimeout(30, reactor)
        assert isinstance(ended, ProcessDone), standalone.output.decode(errors="replace")
    finally:
        if pool is not None:
            await pool.stopService()
        await udp.stopListening()
        if not standalone.ended.called:
            process.signalProcess("KILL")
            await standalone.ended
