"""
One FreeSWITCH node: a reconnecting Event Socket connection, its health, and the calls
it carries.

Each connection goes through a handshake before the node counts as connected:
authenticate, subscribe to the events call control needs, list the live channels
(C{show channels as json}).  Only then does the pool's listener hear C{node_up} with
those channels, then the events that arrived during the handshake, then which of the
node's calls vanished while nobody was looking.  A node whose C{HEARTBEAT} stops
(FreeSWITCH sends one every 20 s by default) is marked down and its connection dropped;
L{ClientService} reconnects with backoff.

C{ClientService}'s C{prepareConnection} is not used for the handshake: in Twisted 26.10 a
connection lost while it is pending raises C{NoTransition} inside C{ClientService}.  The
handshake runs on the connected protocol instead, and its failures feed the retry policy.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.config import NodeConfig
from iradialer.protocols import fscommand
from iradialer.protocols.esl import CommandError, ConnectionClosed, Event, EventSocketClient

if TYPE_CHECKING:
    from iradialer.freeswitch.pool import NodePool

# Duplicates seen on the wire arrive up to ~1.5 s apart (avmd::stop in the captures).
_REMEMBERED_SEQUENCES = 16384
# Start times (now minus uptime) of one FreeSWITCH run differ by the delay of the replies.
_SAME_START = 5.0
_UPTIME_PART = re.compile(r"(\d+) (year|day|hour|minute|second|millisecond|microsecond)s?\b")
_UNIT_SECONDS = {
    "year": 365 * 86400.0,
    "day": 86400.0,
    "hour": 3600.0,
    "minute": 60.0,
    "second": 1.0,
    "millisecond": 0.001,
    "microsecond": 0.000001,
}


class NodeDown(Exception):
    """
    The node has no usable connection right now.
    """


class Node:
    """
    One FreeSWITCH.  C{api}, C{bgapi}, C{execute}, C{hangup} and C{unicast} go to the live
    connection (see L{EventSocketClient}) and fail at once with L{NodeDown} when there is
    none.

    @ivar name: the configured name.
    @ivar connected: authenticated, subscribed and reconciled: usable for calls.
    @ivar calls: the call UUIDs this node owns (kept by the pool).
    """

    log = Logger()

    def __init__(
        self,
        config: NodeConfig,
        pool: NodePool,
        clock: IReactorTime,
        endpoint: IStreamClientEndpoint,
        *,
        events: Sequence[str],
        heartbeat_timeout: float,
        handshake_timeout: float,
        retry_policy: Callable[[int], float],
    ) -> None:
        self.name = config.name
        self.config = config
        self.connected = False
        self.calls: set[str] = set()
        self.last_heartbeat: float | None = None
        self.heartbeat: dict[str, str] = {}
        self.connects = 0
        #: When FreeSWITCH started, by our clock (from C{status} at each connection).
        self.started_at: float | None = None
        #: FreeSWITCH restarted between the last connection and this one.
        self.restarted = False
        self.restarts = 0
        self._pool = pool
        self._clock = clock
        self._events = list(events)
        self._heartbeat_timeout = heartbeat_timeout
        self._handshake_timeout = handshake_timeout
        self._retry_policy = retry_policy
        self._handshake_failures = 0
        self._client: EventSocketClient | None = None
        self._timer: IDelayedCall | None = None
        self._backlog: list[Event] = []
        self._starts: deque[float] = deque()
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self.service = ClientService(
            endpoint, _NodeFactory(self), retryPolicy=self._retry_delay, clock=clock
        )
        self.service.setName(config.name)

    # -- commands --------------------------------------------------------------------

    def api(self, command: str) -> Deferred[str]:
        client = self._usable()
        if client is None:
            return fail(NodeDown(self.name))
        d = client.api(command)
        if self._pool.metrics is not None:
            histogram = self._pool.metrics.esl_command_seconds.labels(
                self.name, command.split(" ", 1)[0]
            )
            started = self._clock.seconds()

            def timed(result: Any) -> Any:
                histogram.observe(self._clock.seconds() - started)
                return result

            d.addBoth(timed)
        return d

    def bgapi(self, command: str) -> Deferred[str]:
        client = self._usable()
        return fail(NodeDown(self.name)) if client is None else client.bgapi(command)

    def execute(
        self, uuid: str, app: str, arg: str = "", event_lock: bool = False
    ) -> Deferred[Event]:
        client = self._usable()
        if client is None:
            return fail(NodeDown(self.name))
        return client.execute(uuid, app, arg, event_lock)

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> Deferred[str]:
        client = self._usable()
        return fail(NodeDown(self.name)) if client is None else client.hangup(uuid, cause)

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
        client = self._usable()
        if client is None:
            return fail(NodeDown(self.name))
        return client.unicast(uuid, local_ip, local_port, remote_ip, remote_port, transport, flags)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        metrics = self._pool.metrics
        if metrics is not None:
            metrics.esl_connected.labels(self.name).set(1 if connected else 0)
            if connected:
                metrics.esl_connects.labels(self.name).inc()

    def _usable(self) -> EventSocketClient | None:
        return self._client if self.connected else None

    # -- load ------------------------------------------------------------------------

    def record_start(self, now: float) -> None:
        self.recent_starts(now)
        self._starts.append(now)

    def recent_starts(self, now: float) -> int:
        """
        Calls started on this node in the last second.
        """
        while self._starts and self._starts[0] <= now - 1.0:
            self._starts.popleft()
        return len(self._starts)

    def next_start_in(self, now: float) -> float:
        """
        Seconds until the CPS window lets one more call start.
        """
        if self.recent_starts(now) < self.config.cps:
            return 0.0
        return max(0.0, self._starts[-self.config.cps] + 1.0 - now)

    def status(self) -> dict[str, Any]:
        now = self._clock.seconds()
        return {
            "name": self.name,
            "host": self.config.host,
            "port": self.config.port,
            "connected": self.connected,
            "sessions": len(self.calls),
            "max_sessions": self.config.max_sessions,
            "cps": self.recent_starts(now),
            "max_cps": self.config.cps,
            "last_heartbeat": self.last_heartbeat,
            "connects": self.connects,
            "restarts": self.restarts,
            "freeswitch": dict(self.heartbeat),
        }

    # -- connection lifecycle --------------------------------------------------------

    def _retry_delay(self, attempt: int) -> float:
        return self._retry_policy(attempt + self._handshake_failures)

    def _connecting(self, client: EventSocketClient) -> None:
        self._client = client
        self._seen.clear()
        self._seen_order.clear()
        self._backlog = []
        self._set_timer(self._handshake_timeout, self._handshake_too_slow, client)
        handshake = Deferred.fromCoroutine(self._handshake(client))
        handshake.addErrback(self._handshake_failed, client)

    async def _handshake(self, client: EventSocketClient) -> None:
        await client.when_authenticated()
        await client.subscribe(self._events)
        status = client.api(fscommand.STATUS).addErrback(lambda _: "")  # uptime unknown
        listing = await client.api(fscommand.SHOW_CHANNELS)
        uptime = _uptime(await status)
        if client is self._client:
            self._note_start(uptime)
            self._reconcile(listing, client)

    def _note_start(self, uptime: float | None) -> None:
        """
        When FreeSWITCH started (by our clock, from its uptime), and whether that is since
        the last connection: a restart, which ended every call it had.
        """
        if uptime is None:
            self.restarted = False
            return
        started = self._clock.seconds() - uptime
        self.restarted = self.started_at is not None and started > self.started_at + _SAME_START
        if self.restarted:
            self.restarts += 1
            self.log.warn(
                "FreeSWITCH {node} restarted while disconnected (up {uptime:.0f} s)",
                node=self.name,
                uptime=uptime,
            )
        if self.started_at is None or self.restarted:
            self.started_at = started

    def _reconcile(self, listing: str, client: EventSocketClient) -> None:
        rows = [row for row in json.loads(listing).get("rows") or () if isinstance(row, dict)]
        live = {row.get("uuid") for row in rows}
        self._handshake_failures = 0
        self.connects += 1
        self._set_connected(True)
        self._set_timer(self._heartbeat_timeout, self._heartbeat_missed, client)
        self.log.info(
            "FreeSWITCH {node} up: {channels} live channel(s), {calls} call(s) of ours",
            node=self.name,
            channels=len(rows),
            calls=len(self.calls),
        )
        listener = self._pool.listener
        _call_safely(self.log, listener.node_up, self, rows)
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            if client is not self._client or not self.connected:
                return
            self._deliver(event)
        vanished = sorted(uuid for uuid in self.calls if uuid not in live)
        if vanished:
            self.log.warn(
                "FreeSWITCH {node}: {count} call(s) ended while disconnected",
                node=self.name,
                count=len(vanished),
            )
            _call_safely(self.log, listener.calls_vanished, self, vanished)
            for uuid in vanished:
                self._pool.release(uuid)

    def _handshake_failed(self, failure: Failure, client: EventSocketClient) -> None:
        if client is not self._client:
            return
        self._handshake_failures += 1
        self._cancel_timer()
        if failure.check(ConnectionClosed, CommandError):
            self.log.warn(
                "FreeSWITCH {node}: handshake failed: {why}",
                node=self.name,
                why=failure.getErrorMessage(),
            )
        else:
            self.log.failure("FreeSWITCH {node}: handshake failed", failure, node=self.name)
        _drop(client)

    def _handshake_too_slow(self, client: EventSocketClient) -> None:
        self._timer = None
        self.log.warn(
            "FreeSWITCH {node}: no handshake within {seconds} s, reconnecting",
            node=self.name,
            seconds=self._handshake_timeout,
        )
        _drop(client)

    def _heartbeat_missed(self, client: EventSocketClient) -> None:
        self._timer = None
        self.log.warn(
            "FreeSWITCH {node}: no HEARTBEAT for {seconds} s, marking it down",
            node=self.name,
            seconds=self._heartbeat_timeout,
        )
        self._down()
        _drop(client)

    def _lost(self, client: EventSocketClient, reason: Failure) -> None:
        if client is not self._client:
            return
        self._client = None
        self._cancel_timer()
        self._backlog = []
        if self.connected:
            self.log.warn(
                "FreeSWITCH {node} connection lost: {why}",
                node=self.name,
                why=reason.getErrorMessage(),
            )
            self._down()

    def _down(self) -> None:
        if self.connected:
            self._set_connected(False)
            _call_safely(self.log, self._pool.listener.node_down, self)

    def _set_timer(
        self, seconds: float, call: Callable[[EventSocketClient], None], client: EventSocketClient
    ) -> None:
        self._cancel_timer()
        self._timer = self._clock.callLater(seconds, call, client)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def stop(self) -> None:
        self._cancel_timer()

    # -- events ----------------------------------------------------------------------

    def _event(self, client: EventSocketClient, event: Event) -> None:
        if client is not self._client:
            return
        sequence = event.sequence
        if sequence is not None:
            if sequence in self._seen:
                self.log.debug("Dropping a repeated {event!r}", event=event)
                return
            self._seen.add(sequence)
            self._seen_order.append(sequence)
            if len(self._seen_order) > _REMEMBERED_SEQUENCES:
                self._seen.discard(self._seen_order.popleft())
        if event.name == "HEARTBEAT":
            self.last_heartbeat = self._clock.seconds()
            self.heartbeat = {
                key: event.get(key, "")
                for key in ("Core-UUID", "Session-Count", "Max-Sessions", "Idle-CPU", "Up-Time")
            }
            if self.connected and self._timer is not None and self._timer.active():
                self._timer.reset(self._heartbeat_timeout)
        elif event.name == "CHANNEL_UUID":
            old = event.get("Old-Unique-ID")
            if old and event.uuid:
                self._pool._renamed(self, old, event.uuid)
        if self.connected:
            self._deliver(event)
        else:
            self._backlog.append(event)

    def _deliver(self, event: Event) -> None:
        _call_safely(self.log, self._pool.listener.event_received, self, event)
        if event.name == "CHANNEL_HANGUP_COMPLETE" and event.uuid in self.calls:
            self._pool.release(event.uuid)

    def __repr__(self) -> str:
        state = "up" if self.connected else "down"
        return f"<Node {self.name} {self.config.host}:{self.config.port} {state}>"


class _Link:
    """
    The listener of one connection: ties its callbacks to the connection they came from,
    so a stale connection can never speak for the node.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.client: EventSocketClient | None = None

    def event_received(self, event: Event) -> None:
        assert self.client is not None
        self.node._event(self.client, event)

    def connection_lost(self, reason: Failure) -> None:
        assert self.client is not None
        self.node._lost(self.client, reason)


class _NodeFactory(Factory):
    def __init__(self, node: Node) -> None:
        self.node = node

    def buildProtocol(self, addr: IAddress | None) -> EventSocketClient:
        link = _Link(self.node)
        client = EventSocketClient(link, self.node.config.password)
        link.client = client
        self.node._connecting(client)
        return client


def _drop(client: EventSocketClient) -> None:
    """
    Close a connection now, without waiting for unsent data: FreeSWITCH is not listening.
    """
    if client.is_open and client.transport is not None:
        getattr(client.transport, "abortConnection", client.transport.loseConnection)()


def _call_safely(log: Logger, function: Callable[..., object], *args: object) -> None:
    try:
        function(*args)
    except Exception:
        log.failure("FreeSWITCH listener failed in {function}", function=function.__qualname__)


def _uptime(status: str) -> float | None:
    """
    Seconds from C{status}' first line (C{UP 0 years, 0 days, 1 hour, ... microseconds}).
    """
    first = status.partition("\n")[0]
    parts = _UPTIME_PART.findall(first)
    if not first.startswith("UP") or not parts:
        return None
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts)
