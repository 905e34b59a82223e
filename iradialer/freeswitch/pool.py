"""
The FreeSWITCH node pool: every configured node, which node owns which call, and the
choice of node for a new call.

Call control asks L{NodePool.choose_node} for a node, L{NodePool.claim}s the call UUID it
chose for it before originating, and hears everything back through its
L{FreeSwitchListener}.  A call stays owned until its C{CHANNEL_HANGUP_COMPLETE} has been
delivered, until it vanished across a reconnection, or until call control releases it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.application.internet import backoffPolicy
from twisted.application.service import MultiService
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger

from iradialer.config import NodeConfig
from iradialer.freeswitch.node import Node
from iradialer.metrics import Metrics
from iradialer.protocols.esl import Event

EVENTS = (
    "CHANNEL_CREATE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_UUID",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "DTMF",
    "BACKGROUND_JOB",
    "HEARTBEAT",
    "CUSTOM",
    "conference::maintenance",
)


class NoNodeAvailable(Exception):
    """
    No node can take a new call now.

    @ivar retry_after: seconds until a node's CPS window opens, when that is all that
        stands in the way; else C{None} (every node down or full).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class FreeSwitchListener(Protocol):
    """
    What the pool reports to (implemented by call control).  Calls come in this order on
    each (re)connection: C{node_up}, the events that arrived during the handshake,
    C{calls_vanished}; then events as they come, until C{node_down}.
    """

    def event_received(self, node: Node, event: Event) -> None:
        """
        One event (repeats with the same C{Event-Sequence} already dropped).
        """

    def node_up(self, node: Node, live_channels: list[dict[str, Any]]) -> None:
        """
        The node is usable; C{live_channels} are the rows of C{show channels as json}
        (C{uuid}, C{name}, C{state}, C{callstate}, ...).  Calls the pool already owns stay
        owned; a live call call control knows but the pool does not (after iradialer
        restarted) is re-adopted with C{claim(uuid, node, adopted=True)}.
        """

    def node_down(self, node: Node) -> None:
        """
        The node is unusable until its next C{node_up}; its calls stay owned by it.
        """

    def calls_vanished(self, node: Node, call_uuids: list[str]) -> None:
        """
        Calls of this node that no longer exist after a reconnection: they ended while
        nobody could see (call control reports them with a hangup marked
        C{cause_observed: false}).  The pool releases them after this returns.
        """


class NodePool(MultiService):
    """
    One reconnecting connection per node (a child service named after the node).
    """

    log = Logger()

    def __init__(
        self,
        nodes: Sequence[NodeConfig],
        reactor: Any,
        listener: FreeSwitchListener,
        connect: Callable[[NodeConfig], IStreamClientEndpoint] | None = None,
        *,
        events: Sequence[str] = EVENTS,
        heartbeat_timeout: float = 60.0,
        handshake_timeout: float = 10.0,
        retry_policy: Callable[[int], float] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__()
        self.listener = listener
        self.metrics = metrics
        self._clock: IReactorTime = reactor
        if connect is None:

            def connect(config: NodeConfig) -> IStreamClientEndpoint:
                return HostnameEndpoint(reactor, config.host, config.port, timeout=10)

        policy = retry_policy or backoffPolicy(initialDelay=1.0, maxDelay=30.0)
        self.nodes = [
            Node(
                config,
                self,
                reactor,
                connect(config),
                events=events,
                heartbeat_timeout=heartbeat_timeout,
                handshake_timeout=handshake_timeout,
                retry_policy=policy,
            )
            for config in nodes
        ]
        for node in self.nodes:
            node.service.setServiceParent(self)
        self._owners: dict[str, Node] = {}
        self._turn = 0

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def choose_node(self) -> Node:
        """
        The connected node with the lowest load (share of C{max_sessions} in use, then
        share of its CPS used in the last second), in turn among equals.

        @raise NoNodeAvailable: every node is down or at one of its caps.
        """
        now = self._clock.seconds()
        count = len(self.nodes)
        best: Node | None = None
        best_load: tuple[float, float] = (0.0, 0.0)
        up = 0
        waits: list[float] = []
        for i in range(count):
            node = self.nodes[(self._turn + i) % count]
            if not node.connected:
                continue
            up += 1
            if len(node.calls) >= node.config.max_sessions:
                continue
            starts = node.recent_starts(now)
            if starts >= node.config.cps:
                waits.append(node.next_start_in(now))
                continue
            load = (len(node.calls) / node.config.max_sessions, starts / node.config.cps)
            if best is None or load < best_load:
                best, best_load = node, load
        if best is None:
            if not up:
                raise NoNodeAvailable("no FreeSWITCH node is connected")
            if waits:
                raise NoNodeAvailable("every FreeSWITCH node is at its CPS limit", min(waits))
            raise NoNodeAvailable("every FreeSWITCH node is at max_sessions")
        self._turn = (self._turn + 1) % count
        return best

    def node_for(self, call_uuid: str) -> Node | None:
        return self._owners.get(call_uuid)

    def claim(self, call_uuid: str, node: Node, adopted: bool = False) -> None:
        """
        From now on C{node} owns the call.  A new call (not C{adopted} after a restart)
        counts against the node's CPS.
        """
        owner = self._owners.get(call_uuid)
        if owner is node:
            return
        if owner is not None:
            raise ValueError(f"call {call_uuid} belongs to node {owner.name}")
        self._owners[call_uuid] = node
        node.calls.add(call_uuid)
        if not adopted:
            node.record_start(self._clock.seconds())

    def release(self, call_uuid: str) -> None:
        node = self._owners.pop(call_uuid, None)
        if node is not None:
            node.calls.discard(call_uuid)

    def _renamed(self, node: Node, old: str, new: str) -> None:
        """
        C{CHANNEL_UUID}: FreeSWITCH renamed a channel; its owner follows.
        """
        if self._owners.get(old) is node:
            del self._owners[old]
            node.calls.discard(old)
            self._owners[new] = node
            node.calls.add(new)

    def status(self) -> list[dict[str, Any]]:
        return [node.status() for node in self.nodes]

    def stopService(self) -> Any:
        for node in self.nodes:
            node.stop()
        return super().stopService()
