"""
The C{unicast} call-command, as FreeSWITCH does it: while the channel sits in C{park}, the
callee's audio leaves from C{local-ip:local-port} to C{remote-ip:remote-port} as real-time
20 ms datagrams (raw L16, 320 bytes; G.711 mu-law, 160 bytes, with C{flags: native}), and
whatever arrives on the local port is what the caller plays into the call (kept for
inspection).  A playback on the leg or leaving park ends the stream; it comes back only after
a re-park and a new C{unicast} (the unicast_more capture).

One timer per 20 ms tick serves every stream; a stream sends as many frames as its clock
says are due, so a late tick catches up instead of drifting.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from iradialer.sim.audio import CNG_FRAME, callee_audio, ulaw

if TYPE_CHECKING:
    from iradialer.sim.channels import Channel, PrivateCommand
    from iradialer.sim.simulator import Simulator

FRAME_SECONDS = 0.02
MAX_CATCH_UP = 10  # frames; a stall longer than 200 ms drops audio rather than bursting
KEEP_FINISHED = 200  # recordings of ended calls kept for inspection


class UnicastStream(DatagramProtocol):
    """One channel's stream, bound to its FreeSWITCH-side port."""

    def __init__(
        self,
        engine: MediaEngine,
        channel: Channel,
        remote: tuple[str, int],
        native: bool,
        started: float,
        first_frame: int,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.remote = remote
        self.native = native
        self.started = started
        self.first_frame = first_frame
        self.sent = 0
        self.audio = callee_audio(channel.scenario.audio)
        self.port: Any = None
        self._sendto: Any = self._write

    def due(self, now: float) -> int:
        return int((now - self.started) / FRAME_SECONDS + 1e-6) + 1

    def bound(self, port: Any) -> None:
        """
        Bound to C{port}.  Frames go straight to its socket when it has one: Twisted's
        C{write} re-checks the address on every datagram, a cost 500 calls cannot afford.
        """
        self.port = port
        sock = getattr(port, "socket", None)
        self._sendto = sock.sendto if sock is not None else self._write

    def _write(self, frame: bytes, remote: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.write(frame, remote)

    def send_due(self, now: float) -> int:
        due = self.due(now)
        if due - self.sent > MAX_CATCH_UP:
            self.engine.dropped += due - self.sent - MAX_CATCH_UP
            self.sent = due - MAX_CATCH_UP
        count = 0
        frame_at = self.audio.frame
        while self.sent < due:
            frame = frame_at(self.first_frame + self.sent)
            if self.native:
                frame = b"\xff" * 160 if frame == CNG_FRAME else ulaw(frame)
            try:
                self._sendto(frame, self.remote)
            except OSError:
                self.engine.dropped += 1  # FreeSWITCH does not retry a datagram either
            self.sent += 1
            count += 1
        return count

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802
        self.engine.record(self.channel, datagram)


class MediaEngine:
    log = Logger()

    def __init__(self, sim: Simulator, reactor: Any, record_seconds: float) -> None:
        self.sim = sim
        self.reactor = reactor
        self.record_limit = int(record_seconds * 16000)
        self.streams: dict[str, UnicastStream] = {}
        self.heard: dict[str, bytearray] = {}
        self.finished: OrderedDict[str, bytes] = OrderedDict()
        self.dropped = 0
        self.frames_sent = 0
        self._ticker: LoopingCall | None = None

    def activate(self, channel: Channel, command: PrivateCommand) -> None:
        """C{call-command: unicast}, processed when the channel dequeues it."""
        from iradialer.sim.apps import Park

        top = channel.top()
        if not isinstance(top, Park) or not top.unicast_usable:
            self.log.info(
                "Channel {uuid}: unicast accepted but not streaming (as FreeSWITCH: only a "
                "park that has not played anything streams; re-park first)",
                uuid=channel.uuid,
            )
            return
        if (command.get("transport") or "udp").lower() != "udp":
            self.log.warn("Channel {uuid}: only udp unicast is simulated", uuid=channel.uuid)
            return
        self.stop(channel)
        local_ip = command.get("local-ip") or "127.0.0.1"
        local_port = _port(command.get("local-port"), 8025)
        remote = (command.get("remote-ip") or "127.0.0.1", _port(command.get("remote-port"), 8026))
        native = "native" in (command.get("flags") or "").lower()
        now = self.sim.clock.seconds()
        answered = channel.stamps.get("answer", now)
        stream = UnicastStream(
            self, channel, remote, native, now, int(round((now - answered) / FRAME_SECONDS))
        )
        try:
            stream.bound(self.reactor.listenUDP(local_port, stream, interface=local_ip))
        except CannotListenError as e:
            self.log.error(
                "Channel {uuid}: unicast cannot bind {ip}:{port}: {error}",
                uuid=channel.uuid,
                ip=local_ip,
                port=local_port,
                error=str(e),
            )
            return
        self.streams[channel.uuid] = stream
        self.heard.setdefault(channel.uuid, bytearray())
        self.frames_sent += stream.send_due(now)
        if self._ticker is None or not self._ticker.running:
            self._ticker = LoopingCall(self.tick)
            self._ticker.clock = self.reactor
            self._ticker.start(FRAME_SECONDS, now=False)

    def tick(self) -> None:
        now = self.sim.clock.seconds()
        sent = 0
        for stream in list(self.streams.values()):
            sent += stream.send_due(now)
        self.frames_sent += sent
        if not self.streams and self._ticker is not None and self._ticker.running:
            self._ticker.stop()

    def stop(self, channel: Channel) -> None:
        stream = self.streams.pop(channel.uuid, None)
        if stream is not None and stream.port is not None:
            stream.port.stopListening()
        if not channel.alive and channel.uuid in self.heard:
            self.finished[channel.uuid] = bytes(self.heard.pop(channel.uuid))
            while len(self.finished) > KEEP_FINISHED:
                self.finished.popitem(last=False)

    def stop_all(self) -> None:
        for stream in list(self.streams.values()):
            self.stop(stream.channel)
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()

    def record(self, channel: Channel, datagram: bytes) -> None:
        buffer = self.heard.setdefault(channel.uuid, bytearray())
        room = self.record_limit - len(buffer)
        if room > 0:
            buffer += datagram[:room]

    def written_back(self, uuid: str) -> bytes:
        """Audio the caller sent to the call's FreeSWITCH-side port(s), as received."""
        if uuid in self.heard:
            return bytes(self.heard[uuid])
        return self.finished.get(uuid, b"")

    def streaming(self, uuid: str) -> UnicastStream | None:
        return self.streams.get(uuid)


def _port(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
