"""
The FreeSWITCH node pool: connecting, the handshake, reconnection with reconciliation,
the HEARTBEAT watchdog, call ownership and the choice of node.  FreeSWITCH is played by
the test through a fake endpoint; time is a task.Clock.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from iradialer.config import NodeConfig
from iradialer.freeswitch import (
    EVENTS,
    Node,
    NodeDown,
    NodePool,
    NoNodeAvailable,
)
from iradialer.freeswitch.node import _uptime
from iradialer.protocols.esl import ConnectionClosed, Event
from tests.esl_helpers import (
    ACCEPTED,
    AUTH_REQUEST,
    CAPTURES,
    ClosingTransport,
    api_response,
    event,
    parse,
    reply,
)

U = "689543d2-078f-47f4-889e-8d3892c3b2d0"
V = "e2d2ed27-acd4-4683-971d-b8dd42a737fa"
W = "00000000-0000-4000-8000-00000000000a"
SUBSCRIBE = ("event json " + " ".join(EVENTS) + "\n\n").encode()
HANDSHAKE_COMMANDS = b"api status\n\napi show channels as json\n\n"
UP_AN_HOUR = (
    "UP 0 years, 0 days, 1 hour, 0 minutes, 0 seconds, 0 milliseconds, 0 microseconds\n"
    "FreeSWITCH (Version 1.11.3-dev) is ready\n"
)


def channels(*uuids: str) -> str:
    if not uuids:
        return '{"row_count": 0}\n'
    rows = [
        {"uuid": u, "name": f"sofia/gateway/sim/{i}", "state": "CS_EXECUTE"}
        for i, u in enumerate(uuids)
    ]
    return json.dumps({"row_count": len(rows), "rows": rows})


class Recorder:
    """
    A FreeSwitchListener that writes down what it hears, and what the pool said about the
    call at that moment.
    """

    def __init__(self, pool_ref: list[NodePool]) -> None:
        self.heard: list[tuple[Any, ...]] = []
        self.pool_ref = pool_ref

    def event_received(self, node: Node, event: Event) -> None:
        owner = self.pool_ref[0].node_for(event.uuid) if event.uuid else None
        self.heard.append(("event", node.name, event.name, event.uuid, owner and owner.name))

    def node_up(self, node: Node, live_channels: list[dict[str, Any]]) -> None:
        self.heard.append(("up", node.name, [row["uuid"] for row in live_channels]))

    def node_down(self, node: Node) -> None:
        self.heard.append(("down", node.name))

    def calls_vanished(self, node: Node, call_uuids: list[str]) -> None:
        self.heard.append(("vanished", node.name, call_uuids))

    def names(self) -> list[str]:
        return [h[0] if h[0] != "event" else h[2] for h in self.heard]


class FakeEndpoint:
    """
    Connects at once (or refuses) and keeps each connection for the test to play
    FreeSWITCH on.
    """

    def __init__(self) -> None:
        self.connections: list[FreeSwitchSide] = []
        self.refuse = 0

    def connect(self, factory: Any) -> Deferred[Any]:
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError())
        protocol = factory.buildProtocol(None)
        transport = ClosingTransport()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.connections.append(FreeSwitchSide(protocol, transport))
        return succeed(protocol)

    @property
    def last(self) -> FreeSwitchSide:
        return self.connections[-1]


class FreeSwitchSide:
    def __init__(self, protocol: Any, transport: ClosingTransport) -> None:
        self.protocol = protocol
        self.transport = transport

    def expect(self, data: bytes) -> None:
        assert self.transport.value() == data
        self.transport.clear()

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def handshake(self, listing: str, *, events: bytes = b"", status: str = UP_AN_HOUR) -> None:
        """
        Play FreeSWITCH's side of the handshake; C{events} arrive before the listing.
        """
        self.send(AUTH_REQUEST)
        self.expect(b"auth ClueCon\n\n")
        self.send(ACCEPTED)
        self.expect(SUBSCRIBE)
        self.send(reply("+OK event listener enabled json"))
        self.expect(HANDSHAKE_COMMANDS)
        self.send(api_response(status) + events + api_response(listing))

    def drop(self) -> None:
        self.transport.loseConnection()

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


def node_config(name: str, max_sessions: int = 1000, cps: int = 30) -> NodeConfig:
    return NodeConfig(name, "127.0.0.1", 8021, "ClueCon", max_sessions, cps)


class Harness:
    def __init__(self, *configs: NodeConfig, **kwargs: Any) -> None:
        self.clock = Clock()
        self.endpoints = {c.name: FakeEndpoint() for c in configs}
        self.policy_attempts: list[int] = []
        pool_ref: list[NodePool] = []
        self.listener = Recorder(pool_ref)

        def policy(attempt: int) -> float:
            self.policy_attempts.append(attempt)
            return float(attempt)

        kwargs.setdefault("retry_policy", policy)
        self.pool = NodePool(
            configs,
            self.clock,
            self.listener,
            connect=lambda config: self.endpoints[config.name],
            **kwargs,
        )
        pool_ref.append(self.pool)
        self.pool.startService()

    def fs(self, name: str = "fs1") -> FreeSwitchSide:
        return self.endpoints[name].last

    def up(self, name: str = "fs1", *live: str) -> Node:
        self.fs(name).handshake(channels(*live))
        node = self.pool.node(name)
        assert node.connected
        return node


def outcome(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    return box[0] if box else None


# -- the handshake ---------------------------------------------------------------------


def test_connects_authenticates_subscribes_and_lists_channels():
    """
    On connect the node authenticates, subscribes to the events call control needs, lists
    live channels, and only then counts as connected and tells the listener.
    """
    h = Harness(node_config("fs1"))
    node = h.pool.node("fs1")
    fs = h.fs()
    assert not node.connected
    fs.send(AUTH_REQUEST)
    fs.expect(b"auth ClueCon\n\n")
    fs.send(ACCEPTED)
    fs.expect(SUBSCRIBE)
    assert b"CUSTOM conference::maintenance" in SUBSCRIBE
    fs.send(reply("+OK event listener enabled json"))
    fs.expect(HANDSHAKE_COMMANDS)
    fs.send(api_response(UP_AN_HOUR))
    assert not node.connected and h.listener.heard == []
    frames = parse([(CAPTURES / "basic_session.recv.raw").read_bytes()])
    listing = next(f.body for f in frames if f.body.startswith(b'{"row_count"')).decode()
    fs.send(api_response(listing))
    assert node.connected
    assert h.listener.heard == [("up", "fs1", [U, V])]
    status = h.pool.status()[0]
    assert status["connected"] and status["connects"] == 1
    assert (status["name"], status["host"], status["port"]) == ("fs1", "127.0.0.1", 8021)


def test_commands_fail_fast_while_the_node_is_not_usable():
    """
    Until the handshake is done, and after the connection is lost, every command fails at
    once with NodeDown; in between it goes to FreeSWITCH.
    """
    h = Harness(node_config("fs1"))
    node = h.pool.node("fs1")
    for call in (
        lambda: node.api("status"),
        lambda: node.bgapi("status"),
        lambda: node.execute(U, "park"),
        lambda: node.hangup(U),
        lambda: node.unicast(U, "127.0.0.1", 1, "127.0.0.1", 2),
    ):
        assert isinstance(outcome(call()).value, NodeDown)
    h.up()
    status = node.api("status")
    h.fs().expect(b"api status\n\n")
    h.fs().send(api_response("UP\n"))
    assert outcome(status) == "UP\n"
    pending = node.api("show calls")
    h.fs().drop()
    assert isinstance(outcome(pending).value, ConnectionClosed)
    assert isinstance(outcome(node.api("status")).value, NodeDown)


def test_events_of_the_handshake_come_after_node_up():
    """
    Events arriving while the channel list is awaited reach the listener right after
    node_up, in order; a call whose hangup is among them is not reported as vanished.
    """
    h = Harness(node_config("fs1"))
    h.up("fs1", U)
    h.pool.claim(U, h.pool.node("fs1"))
    h.pool.claim(W, h.pool.node("fs1"))
    h.fs().drop()
    h.clock.advance(10)
    early = event("CHANNEL_ANSWER", {"Unique-ID": U}) + event(
        "CHANNEL_HANGUP_COMPLETE", {"Unique-ID": W, "Hangup-Cause": "NORMAL_CLEARING"}
    )
    h.listener.heard.clear()
    h.fs().handshake(channels(U), events=early)
    assert h.listener.heard == [
        ("up", "fs1", [U]),
        ("event", "fs1", "CHANNEL_ANSWER", U, "fs1"),
        ("event", "fs1", "CHANNEL_HANGUP_COMPLETE", W, "fs1"),
    ]
    assert h.pool.node_for(W) is None


# -- reconnection ----------------------------------------------------------------------


def test_reconnect_resubscribes_and_reports_vanished_calls():
    """
    A lost connection marks the node down (its calls stay its own); the ClientService
    reconnects after the retry delay, the node authenticates and subscribes again, and
    the channel list decides: calls still there are kept, calls gone are reported
    vanished and released.
    """
    h = Harness(node_config("fs1"))
    node = h.up("fs1", U, V)
    h.pool.claim(U, node)
    h.pool.claim(W, node)
    first = h.fs()
    first.drop()
    assert not node.connected
    assert h.listener.heard[-1] == ("down", "fs1")
    assert h.pool.node_for(W) is node
    assert len(h.endpoints["fs1"].connections) == 1
    h.clock.advance(0.99)
    assert len(h.endpoints["fs1"].connections) == 1
    h.clock.advance(0.01)
    second = h.fs()
    assert second is not first
    second.handshake(channels(U, V))
    assert node.connected
    assert h.listener.heard[-2:] == [("up", "fs1", [U, V]), ("vanished", "fs1", [W])]
    assert h.pool.node_for(U) is node
    assert h.pool.node_for(W) is None
    assert node.calls == {U}
    assert node.status()["connects"] == 2


def test_freeswitch_restart_vanishes_every_call():
    """
    After a FreeSWITCH restart (no channels at all) every call of the node vanished, and
    the node knows it restarted: its status uptime began after the previous connection's.
    A reconnection to the same FreeSWITCH (its uptime grew with the clock) is no restart.
    """
    h = Harness(node_config("fs1"))
    node = h.up("fs1")
    assert not node.restarted and node.started_at == h.clock.seconds() - 3600
    for uuid in (U, V):
        h.pool.claim(uuid, node)
    h.fs().drop()
    h.clock.advance(1)
    h.fs().handshake(
        channels(), status=UP_AN_HOUR.replace("1 hour, 0 minutes, 0", "0 hours, 0 minutes, 1")
    )
    assert h.listener.heard[-1] == ("vanished", "fs1", [U, V])
    assert node.calls == set()
    assert node.restarted and node.status()["restarts"] == 1
    h.fs().drop()
    h.clock.advance(100)
    h.fs().handshake(
        channels(), status=UP_AN_HOUR.replace("1 hour, 0 minutes, 0", "0 hours, 1 minutes, 42")
    )
    assert not node.restarted and node.status()["restarts"] == 1


def test_status_uptime_is_read_as_freeswitch_writes_it():
    """
    The uptime of a real FreeSWITCH's status reply (basic_session capture), to the
    microsecond; an answer without one (an older or stranger FreeSWITCH) is unknown.
    """
    frames = parse([(CAPTURES / "basic_session.recv.raw").read_bytes()])
    status = next(f.body.decode() for f in frames if f.body.startswith(b"UP "))
    assert _uptime(status) == pytest.approx(2.321792)
    assert _uptime(UP_AN_HOUR) == 3600
    assert _uptime("UP\n") is None and _uptime("-ERR no\n") is None


def test_refused_connections_are_retried():
    """
    Refused connections are retried with growing delays until one succeeds (the dropped
    handshake before them counts as one failure).
    """
    h = Harness(node_config("fs1"))
    endpoint = h.endpoints["fs1"]
    h.fs().drop()
    endpoint.refuse = 2
    while len(endpoint.connections) < 2:
        h.clock.advance(h.policy_attempts[-1])
    assert h.policy_attempts == [2, 3, 4]
    h.up()


def test_failed_handshakes_back_off_and_never_report_up_or_down():
    """
    A refused password closes the connection; each failed handshake lengthens the next
    retry delay (the policy sees attempts plus failures); the node never came up, so
    call control hears neither node_up nor node_down.  Success resets the count.
    """
    h = Harness(node_config("fs1"))
    for failures in (1, 2, 3):
        fs = h.fs()
        fs.send(AUTH_REQUEST)
        fs.send(reply("-ERR invalid"))
        assert fs.closed
        assert h.policy_attempts[-1] == 1 + failures
        h.clock.advance(1 + failures)
    assert h.listener.heard == []
    node = h.up()
    node_fs = h.fs()
    node_fs.drop()
    assert h.policy_attempts[-1] == 1
    assert node.connected is False


def test_handshake_that_never_finishes_is_abandoned():
    """
    A peer that never asks for the password (not FreeSWITCH, or stuck) is dropped after
    the handshake timeout and retried.
    """
    h = Harness(node_config("fs1"), handshake_timeout=10.0)
    fs = h.fs()
    h.clock.advance(9.9)
    assert not fs.closed
    h.clock.advance(0.1)
    assert fs.closed and fs.transport.aborted
    h.clock.advance(2)
    assert len(h.endpoints["fs1"].connections) == 2


def test_heartbeat_watchdog_marks_a_silent_node_down():
    """
    HEARTBEATs keep the node up; when none comes for heartbeat_timeout seconds the node
    is marked down at once, its connection aborted, and a new one attempted.
    """
    h = Harness(node_config("fs1"), heartbeat_timeout=60.0)
    node = h.up()
    fs = h.fs()
    for _ in range(3):
        h.clock.advance(59)
        fs.send(event("HEARTBEAT", {"Session-Count": "3", "Idle-CPU": "97.5"}))
        assert node.connected
    assert node.last_heartbeat == h.clock.seconds()
    assert node.status()["freeswitch"]["Session-Count"] == "3"
    h.clock.advance(60)
    assert not node.connected
    assert fs.closed and fs.transport.aborted
    assert h.listener.heard[-1] == ("down", "fs1")
    assert h.listener.names().count("down") == 1
    h.clock.advance(1)
    assert len(h.endpoints["fs1"].connections) == 2


# -- events ----------------------------------------------------------------------------


def test_repeated_custom_events_reach_the_listener_once():
    """
    avmd's CUSTOM events arrive twice with one Event-Sequence on a parked channel (the
    real capture): the listener hears each once, the first copy.
    """
    h = Harness(node_config("fs1"))
    h.up()
    raw = (CAPTURES / "avmd_app_test.recv.raw").read_bytes()
    frames = [f for f in parse([raw]) if f.content_type == "text/event-json"]
    assert len(frames) == 12
    for frame in frames:
        h.fs().send(
            b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(frame.body) + frame.body
        )
    heard = [x for x in h.listener.heard if x[0] == "event"]
    assert len(heard) == 6
    assert [x[2] for x in heard] == ["CUSTOM"] * 6


def test_a_new_connection_forgets_old_sequences():
    """
    Event-Sequence restarts with FreeSWITCH: after reconnecting, a sequence number seen on
    the old connection is a new event.
    """
    h = Harness(node_config("fs1"))
    h.up()
    h.fs().send(event("HEARTBEAT", {"Event-Sequence": "5"}))
    h.fs().drop()
    h.clock.advance(1)
    h.up()
    h.fs().send(event("HEARTBEAT", {"Event-Sequence": "5"}))
    assert h.listener.names().count("HEARTBEAT") == 2


def test_channel_uuid_moves_ownership_before_the_listener_hears_it():
    """
    CHANNEL_UUID renames a channel: the call's owner follows to the new id before the
    event reaches the listener.
    """
    h = Harness(node_config("fs1"))
    node = h.up()
    h.pool.claim(W, node)
    h.fs().send(event("CHANNEL_UUID", {"Unique-ID": U, "Old-Unique-ID": W}))
    assert h.listener.heard[-1] == ("event", "fs1", "CHANNEL_UUID", U, "fs1")
    assert h.pool.node_for(U) is node and h.pool.node_for(W) is None
    assert node.calls == {U}


def test_hangup_complete_releases_the_call_after_the_listener_heard_it():
    """
    A call stays owned while the listener handles its CHANNEL_HANGUP_COMPLETE, and is
    released after.
    """
    h = Harness(node_config("fs1"))
    node = h.up()
    h.pool.claim(U, node)
    h.fs().send(event("CHANNEL_HANGUP_COMPLETE", {"Unique-ID": U, "Hangup-Cause": "USER_BUSY"}))
    assert h.listener.heard[-1] == ("event", "fs1", "CHANNEL_HANGUP_COMPLETE", U, "fs1")
    assert h.pool.node_for(U) is None and node.calls == set()


def test_listener_failures_do_not_break_the_node():
    """
    A listener that raises is logged; the node stays up and later events still arrive.
    """
    h = Harness(node_config("fs1"))

    def broken(*args: object) -> None:
        raise RuntimeError("call control bug")

    h.listener.node_up = broken
    node = h.up()
    assert node.connected
    h.fs().send(event("CHANNEL_CREATE", {"Unique-ID": U}))
    assert h.listener.names() == ["CHANNEL_CREATE"]


# -- choosing a node -------------------------------------------------------------------


def test_choose_skips_down_nodes_and_fails_when_all_are_down():
    """
    Only connected nodes are chosen; with none, NoNodeAvailable without a retry time.
    """
    h = Harness(node_config("fs1"), node_config("fs2"))
    with pytest.raises(NoNodeAvailable) as caught:
        h.pool.choose_node()
    assert caught.value.retry_after is None
    h.up("fs2")
    assert {h.pool.choose_node().name for _ in range(4)} == {"fs2"}
    h.up("fs1")
    h.fs("fs2").drop()
    assert {h.pool.choose_node().name for _ in range(4)} == {"fs1"}


def test_choose_balances_load():
    """
    New calls go to the least loaded node (share of max_sessions in use), in turn among
    equals, so calls spread evenly.
    """
    h = Harness(node_config("fs1"), node_config("fs2"), node_config("fs3", max_sessions=2000))
    for name in ("fs1", "fs2", "fs3"):
        h.up(name)
    counts = {"fs1": 0, "fs2": 0, "fs3": 0}
    for i in range(40):
        node = h.pool.choose_node()
        h.pool.claim(f"00000000-0000-4000-8000-{i:012d}", node, adopted=True)
        counts[node.name] += 1
    assert counts == {"fs1": 10, "fs2": 10, "fs3": 20}


def test_choose_respects_max_sessions():
    """
    A node at max_sessions is skipped; when all are, NoNodeAvailable says so.
    """
    h = Harness(node_config("fs1", max_sessions=1), node_config("fs2", max_sessions=1))
    h.up("fs1")
    h.up("fs2")
    h.pool.claim(U, h.pool.choose_node())
    h.pool.claim(V, h.pool.choose_node())
    assert {h.pool.node_for(U), h.pool.node_for(V)} == set(h.pool.nodes)
    with pytest.raises(NoNodeAvailable, match="max_sessions"):
        h.pool.choose_node()
    freed = h.pool.node_for(U)
    h.pool.release(U)
    assert h.pool.choose_node() is freed


def test_choose_respects_cps_and_says_when_to_retry():
    """
    Calls started in the last second count against the node's CPS; at the cap the pool
    says how long until a slot frees, and after that the node is chosen again.  Adopted
    calls do not count.
    """
    h = Harness(node_config("fs1", cps=2))
    node = h.up()
    h.pool.claim(W, node, adopted=True)
    h.pool.claim(U, h.pool.choose_node())
    h.clock.advance(0.25)
    h.pool.claim(V, h.pool.choose_node())
    with pytest.raises(NoNodeAvailable) as caught:
        h.pool.choose_node()
    assert caught.value.retry_after == pytest.approx(0.75)
    assert node.status()["cps"] == 2
    h.clock.advance(0.75)
    assert h.pool.choose_node() is node


def test_ownership_is_exclusive():
    """
    A call belongs to one node: claiming it for another is an error, for the same node a
    no-op; release is idempotent.
    """
    h = Harness(node_config("fs1"), node_config("fs2"))
    fs1, fs2 = h.pool.node("fs1"), h.pool.node("fs2")
    h.pool.claim(U, fs1)
    h.pool.claim(U, fs1)
    with pytest.raises(ValueError):
        h.pool.claim(U, fs2)
    assert h.pool.node_for(U) is fs1 and fs1.calls == {U}
    h.pool.release(U)
    h.pool.release(U)
    assert h.pool.node_for(U) is None


def test_stop_closes_connections_and_stops_reconnecting():
    """
    Stopping the pool closes every connection and makes no new ones.
    """
    h = Harness(node_config("fs1"), node_config("fs2"))
    h.up("fs1")
    fs1, fs2 = h.fs("fs1"), h.fs("fs2")
    h.pool.stopService()
    assert fs1.closed and fs2.closed
    h.clock.advance(100)
    assert len(h.endpoints["fs1"].connections) == 1
    assert len(h.endpoints["fs2"].connections) == 1
    assert not h.clock.getDelayedCalls()


def test_pool_is_a_service_with_a_child_per_node():
    """
    The pool is a MultiService whose children are named after the nodes.
    """
    h = Harness(node_config("fs1"), node_config("fs2"))
    assert [s.name for s in h.pool] == ["fs1", "fs2"]
    assert h.pool.node("fs2").name == "fs2"
    with pytest.raises(KeyError):
        h.pool.node("fs9")


def test_failure_reasons_are_kept():
    """
    ConnectionClosed failures name FreeSWITCH's reason (used in node logs).
    """
    h = Harness(node_config("fs1"))
    node = h.up()
    pending = node.api("status")
    h.fs().send(
        b"Content-Type: text/disconnect-notice\nContent-Length: 23\n\nDisconnected, goodbye.\n"
    )
    h.fs().drop()
    failure = outcome(pending)
    assert isinstance(failure, Failure) and "goodbye" in str(failure.value)


class TinyFreeSwitch(Protocol):
    """
    Just enough of mod_event_socket over a real socket: asks for the password, accepts
    the subscription (then sends a HEARTBEAT), lists one channel, answers api status.
    """

    def connectionMade(self) -> None:
        self.buffer = b""
        self.transport.write(AUTH_REQUEST)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            packet, self.buffer = self.buffer.split(b"\n\n", 1)
            command = packet.split(b"\n")[0]
            if command == b"auth ClueCon":
                self.transport.write(ACCEPTED)
            elif command.startswith(b"event json "):
                answer = reply("+OK event listener enabled json")
                self.transport.write(answer + event("HEARTBEAT", {"Event-Sequence": "1"}))
            elif command == b"api show channels as json":
                self.transport.write(api_response(channels(U)))
            elif command == b"api status":
                self.transport.write(api_response("UP\n"))


@pytest_twisted.ensureDeferred
async def test_end_to_end_over_tcp():
    """
    Over a real TCP connection on 127.0.0.1 (the default HostnameEndpoint), the pool
    authenticates, subscribes, lists channels, reports the node up with the events of the
    handshake after it, and carries an api command.
    """
    server = Factory.forProtocol(TinyFreeSwitch)
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(server)
    up: Deferred[None] = Deferred()
    pool_ref: list[NodePool] = []

    class Waiting(Recorder):
        def event_received(self, node: Node, event: Event) -> None:
            super().event_received(node, event)
            if event.name == "HEARTBEAT" and not up.called:
                up.callback(None)

    listener = Waiting(pool_ref)
    config = NodeConfig("fs1", "127.0.0.1", port.getHost().port, "ClueCon")
    pool = NodePool([config], reactor, listener)
    pool_ref.append(pool)
    pool.startService()
    try:
        await up.addTimeout(10, reactor)
        assert listener.heard[0] == ("up", "fs1", [U])
        assert listener.names() == ["up", "HEARTBEAT"]
        assert await pool.node("fs1").api("status") == "UP\n"
    finally:
        await pool.stopService()
        await port.stopListening()
