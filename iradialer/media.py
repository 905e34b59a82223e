"""
The C{media} service: the UDP port call audio arrives on, and the CPA engine ticking over it.

Every 20 ms (on the injected clock) the service takes the complete frames each stream has
received (one a tick, or more to catch up when more than two wait), runs the CPA engine once
over all of them, hands each frame to the stream's consumers
(ASR), writes C{log_voice} files, reports detections to each stream's listener and sends one
frame of queued outgoing audio per stream (the welcome beep) back to the FreeSWITCH-side port.

Times are milliseconds since answer.  Call control opens a call's first stream right after
answer, so that moment is the call's time zero; a later stream of the same call (after a
re-park) keeps it.  A stream that stops sending (FreeSWITCH pauses it during a playback) gets
no invented audio: its next frames are stamped with the time they arrive.
"""

from __future__ import annotations

import os
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from iradialer.config import MediaConfig
from iradialer.cpa.config import CpaConfig
from iradialer.cpa.engine import CpaEngine, Detection, Done, Outcome
from iradialer.cpa.frontend import FRAME, FRAME_MS
from iradialer.cpa.wav import WavWriter
from iradialer.metrics import Metrics
from iradialer.protocols.rtp import Address, AudioSender, MediaReceiver, StreamInput

TICK = FRAME_MS / 1000
#: A stream whose frames arrive this much later than their predecessors' times was paused.
GAP_MS = 60
#: Calls whose answer time is remembered for later streams (the oldest are forgotten).
REMEMBERED_CALLS = 100_000
#: Receiver counters that are datagrams dropped, as iradialer_media_packets_dropped reasons.
DROP_REASONS = ("malformed", "unsupported", "duplicates", "late", "unknown_source")
#: The UDP receive buffer asked for: about half a second of 1,000 streams, so that a busy
#: moment of the reactor loses no audio.  Linux grants at most net.core.rmem_max.
RECEIVE_BUFFER = 8 * 1024 * 1024

Consumer = Callable[[np.ndarray, int], None]
#: One 20 ms frame: int16 samples, or a raw L16 datagram not converted yet.
Frame = np.ndarray | bytes


class StreamListener(Protocol):
    def cpa_detection(self, call_uuid: str, detection: Detection) -> None: ...

    def cpa_done(self, call_uuid: str, ms: int, reason: str) -> None: ...


class MediaStream:
    """
    The audio of one call from one FreeSWITCH-side port.  Made by L{MediaService.open_stream}.
    """

    def __init__(
        self,
        service: MediaService,
        call_uuid: str,
        source: Address,
        input: StreamInput,
        listener: StreamListener,
        slot: int | None,
        voice: WavWriter | None,
        rtp_log: IO[str] | None,
        zero: float,
    ) -> None:
        self.call_uuid = call_uuid
        #: The call's time zero (its answer), on the service's clock.
        self.zero = zero
        self.source = source
        self.input = input
        self.listener = listener
        self.slot = slot
        self.closed = False
        self._service = service
        self._consumers: list[Consumer] = []
        self._voice = voice
        self._rtp_log = rtp_log
        self._sender = AudioSender(input)
        self._outgoing: deque[np.ndarray] = deque()
        self._backlog: deque[tuple[Frame, int]] = deque()
        self._next_ms: int | None = None
        self.frames = 0

    def send_audio(self, pcm: bytes) -> None:
        """
        Queue s16le 8 kHz audio for the far end; it goes out one 20 ms frame per tick, the last
        frame padded with silence.
        """
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        padded = np.zeros(-(-len(samples) // FRAME) * FRAME, dtype=np.int16)
        padded[: len(samples)] = samples
        self._outgoing.extend(padded.reshape(-1, FRAME))

    def add_consumer(self, consumer: Consumer) -> None:
        """
        C{consumer(frame, ms)} gets every 20 ms frame (int16, 160 samples) from now on.
        """
        self._consumers.append(consumer)

    def close(self) -> None:
        self._service._close(self)

    def _stamp(self, count: int, now_ms: int) -> range:
        """
        The times of C{count} frames that arrived by C{now_ms}: following the previous frames,
        unless they come late enough to follow a pause.
        """
        earliest = now_ms - FRAME_MS * count
        if self._next_ms is None or earliest - self._next_ms > GAP_MS:
            self._next_ms = max(earliest, 0)
        first = self._next_ms
        self._next_ms += FRAME_MS * count
        return range(first, self._next_ms, FRAME_MS)

    def _log_packet(self, info: dict[str, Any]) -> None:
        if self._rtp_log is not None:
            ms = self._service.ms_since_answer(self.call_uuid)
            fields = " ".join(f"{k}={v}" for k, v in info.items())
            self._rtp_log.write(f"{ms} {fields}\n")


class MediaService(Service):
    log = Logger()

    def __init__(
        self,
        config: MediaConfig,
        reactor: Any,
        clock: IReactorTime | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._dropped_reported = dict.fromkeys((*DROP_REASONS, "receive_buffer"), 0)
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.receiver = MediaReceiver()
        self.engine = CpaEngine()
        self._streams: dict[Address, MediaStream] = {}
        self._answered: OrderedDict[str, float] = OrderedDict()
        self._ports: set[int] = set()
        self._next_port = config.freeswitch_ports[0]
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._port: Any = None
        self._socket_inode: int | None = None
        self._tick_seconds: deque[float] = deque(maxlen=500)
        self._frames_analysed = 0
        self._engine_steps = 0
        self._listener_errors = 0
        if metrics is not None:
            # Summing every stream's counters is too dear for each 20 ms tick.
            metrics.before_scrape(self._count_drops)

    # -- service --------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._port = self.reactor.listenUDP(
            self.config.port, self.receiver, interface=self.config.listen
        )
        self._socket_inode = _enlarge_receive_buffer(self._port)
        self._loop.start(TICK, now=False)

    def stopService(self) -> Any:  # noqa: N802
        if self._loop.running:
            self._loop.stop()
        for stream in list(self._streams.values()):
            stream.close()
        port, self._port = self._port, None
        super().stopService()
        if port is not None:
            return port.stopListening()
        return None

    @property
    def address(self) -> Address:
        """
        Where the receiver listens (the port is real once the service runs, even for port 0).
        """
        host = self._port.getHost()
        return (host.host, host.port)

    # -- ports and streams ----------------------------------------------------------------

    def allocate_port(self) -> int:
        """
        A FreeSWITCH-side port (from C{freeswitch_ports}) no stream uses; round robin, so a
        port just released is not reused at once (late datagrams from the old call).
        """
        low, high = self.config.freeswitch_ports
        size = high - low + 1
        for _ in range(size):
            port = self._next_port
            self._next_port = low + (port - low + 1) % size
            if port not in self._ports:
                self._ports.add(port)
                return port
        raise RuntimeError(f"all {size} FreeSWITCH-side ports ({low}-{high}) are in use")

    def release_port(self, port: int) -> None:
        self._ports.discard(port)

    def ms_since_answer(self, call_uuid: str) -> int:
        answered = self._answered.get(call_uuid)
        if answered is None:
            return 0
        return _ms(self.clock.seconds(), answered)

    def open_stream(
        self,
        call_uuid: str,
        source: Address,
        cpa: CpaConfig | None,
        listener: StreamListener,
        log_voice: Path | None = None,
        rtp_log: Path | None = None,
        media_format: str = "auto",
    ) -> MediaStream:
        """
        Start taking the audio FreeSWITCH sends from C{source} (its address and the
        FreeSWITCH-side port) for C{call_uuid}; analyse it with C{cpa} unless None.
        C{media_format} is "auto" (raw L16 or RTP, told apart by the first datagram), or
        "l16", "pcmu", "pcma" (raw, e.g. C{unicast} with C{flags: native}), "rtp".
        """
        source = (str(source[0]), int(source[1]))
        if source in self._streams:
            self._streams[source].close()
        if call_uuid not in self._answered:
            self._answered[call_uuid] = self.clock.seconds()
            while len(self._answered) > REMEMBERED_CALLS:
                self._answered.popitem(last=False)
        voice = WavWriter(log_voice) if log_voice is not None else None
        log_file = open(rtp_log, "a", encoding="utf-8") if rtp_log is not None else None  # noqa: SIM115
        slot = self.engine.open(cpa) if cpa is not None else None
        stream_input = StreamInput(media_format=media_format)
        stream = MediaStream(
            self,
            call_uuid,
            source,
            stream_input,
            listener,
            slot,
            voice,
            log_file,
            self._answered[call_uuid],
        )
        if log_file is not None:
            stream_input.packet_log = stream._log_packet
        self._streams[source] = stream
        self.receiver.add_source(source, stream_input)
        self.log.debug(
            "Media stream for {call} from {source} (CPA {cpa})",
            call=call_uuid,
            source=source,
            cpa=cpa is not None,
        )
        return stream

    def forget_call(self, call_uuid: str) -> None:
        """
        The call ended: its time zero is no longer needed.
        """
        self._answered.pop(call_uuid, None)

    def _close(self, stream: MediaStream) -> None:
        if stream.closed:
            return
        stream.closed = True
        if self._streams.get(stream.source) is stream:
            del self._streams[stream.source]
            self.receiver.remove_source(stream.source)
        if stream.slot is not None:
            self.engine.close(stream.slot)
        if stream._voice is not None:
            stream._voice.close()
        if stream._rtp_log is not None:
            stream._rtp_log.close()

    # -- the tick -------------------------------------------------------------------------

    def _tick(self) -> None:
        started = time.perf_counter()
        now = self.clock.seconds()
        streams = list(self._streams.values())
        by_slot: dict[int, MediaStream] = {}
        batches: list[tuple[MediaStream, list[tuple[Frame, int]]]] = []
        for stream in streams:
            frames: Sequence[Frame] | np.ndarray = stream.input.raw_frames()
            if not frames:
                frames = stream.input.frames()
            backlog = stream._backlog
            if len(frames):
                backlog.extend(zip(frames, stream._stamp(len(frames), _ms(now, stream.zero))))
            if backlog:
                # One frame a tick, keeping a second for the next one: streams whose frames
                # straddle the tick would otherwise split every tick into two engine steps.
                take = 1 if len(backlog) <= 2 else len(backlog) - 1
                batches.append((stream, [backlog.popleft() for _ in range(take)]))
            if stream.slot is not None:
                by_slot[stream.slot] = stream
        outcomes: list[Outcome] = []
        depth = max((len(taken) for _, taken in batches), default=0)
        for i in range(depth):
            rows = [(s, taken[i]) for s, taken in batches if i < len(taken)]
            audio = _as_array([frame for _, (frame, _) in rows])
            analysed = [n for n, (s, _) in enumerate(rows) if s.slot is not None]
            if analysed:
                outcomes += self.engine.step(
                    [slot for s, _ in rows if (slot := s.slot) is not None],
                    audio if len(analysed) == len(rows) else audio[analysed],
                    [rows[n][1][1] for n in analysed],
                )
                self._frames_analysed += len(analysed)
                self._engine_steps += 1
            for n, (stream, (_, stamp)) in enumerate(rows):
                stream.frames += 1
                if stream._consumers or stream._voice is not None:
                    self._deliver_frame(stream, audio[n], stamp)
        outcomes += self.engine.expire(list(by_slot), [_ms(now, s.zero) for s in by_slot.values()])
        for slot, what in outcomes:
            reported = by_slot.get(slot)
            if reported is not None:
                self._report(reported, what)
        for stream in streams:
            if stream._outgoing and not stream.closed:
                self.receiver.send(stream._sender.encode(stream._outgoing.popleft()), stream.source)
        elapsed = time.perf_counter() - started
        self._tick_seconds.append(elapsed)
        if self.metrics is not None:
            self._update_metrics(elapsed, len(by_slot))

    def _update_metrics(self, elapsed: float, cpa_streams: int) -> None:
        assert self.metrics is not None
        self.metrics.cpa_tick_seconds.observe(elapsed)
        self.metrics.cpa_streams.set(cpa_streams)

    def _count_drops(self) -> None:
        assert self.metrics is not None
        counters = dict(self.receiver.counters(), receive_buffer=self.kernel_drops() or 0)
        for reason in self._dropped_reported:
            new = counters[reason] - self._dropped_reported[reason]
            if new > 0:
                self.metrics.media_packets_dropped.labels(reason).inc(new)
                self._dropped_reported[reason] = counters[reason]

    def _deliver_frame(self, stream: MediaStream, frame: np.ndarray, ms: int) -> None:
        if stream.closed:
            return
        if stream._voice is not None:
            stream._voice.write(frame)
        for consumer in list(stream._consumers):
            try:
                consumer(frame, ms)
            except Exception:
                self._listener_errors += 1
                self.log.failure("Audio consumer of {call} failed", call=stream.call_uuid)

    def _report(self, stream: MediaStream, what: Detection | Done) -> None:
        try:
            if isinstance(what, Done):
                stream.listener.cpa_done(stream.call_uuid, what.ms, what.reason)
            else:
                stream.listener.cpa_detection(stream.call_uuid, what)
        except Exception:
            self._listener_errors += 1
            self.log.failure("CPA listener of {call} failed", call=stream.call_uuid)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        ticks = list(self._tick_seconds)
        return {
            "listen": f"{self.config.listen}:{self.config.port}",
            "streams": len(self._streams),
            "cpa_streams": sum(1 for s in self._streams.values() if s.slot is not None),
            "freeswitch_ports_in_use": len(self._ports),
            "frames_analysed": self._frames_analysed,
            "engine_steps": self._engine_steps,
            "tick_ms": {
                "last": round(ticks[-1] * 1000, 3) if ticks else None,
                "mean": round(float(np.mean(ticks)) * 1000, 3) if ticks else None,
                "max": round(max(ticks) * 1000, 3) if ticks else None,
            },
            "packets": self.receiver.counters(),
            "receive_buffer_drops": self.kernel_drops(),
            "listener_errors": self._listener_errors,
        }

    def kernel_drops(self) -> int | None:
        """
        Datagrams the kernel dropped because the receive buffer was full (the reactor was
        too busy to read them), from Linux's /proc/net/udp; None where that is not known.
        """
        if self._socket_inode is None:
            return None
        return _udp_drops(self._socket_inode)


def _ms(now: float, zero: float) -> int:
    return int(round((now - zero) * 1000))


def _enlarge_receive_buffer(port: Any) -> int | None:
    """
    Ask for L{RECEIVE_BUFFER} bytes of receive buffer on the UDP port's socket (warning when
    the kernel grants less); its inode, to find its drop counter, when it is a real socket.
    """
    sock = getattr(port, "socket", None)
    if not isinstance(sock, socket.socket):
        return None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if granted < RECEIVE_BUFFER:  # Linux reports twice what it granted, for its bookkeeping
        MediaService.log.warn(
            "The media port's receive buffer is {granted} bytes, not the {wanted} asked for:"
            " raise net.core.rmem_max (sysctl) so that a busy moment loses no call audio",
            granted=granted,
            wanted=RECEIVE_BUFFER,
        )
    return os.fstat(sock.fileno()).st_ino


def _udp_drops(inode: int) -> int | None:
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == str(inode):
                        return int(fields[-1])
        except (OSError, ValueError, StopIteration):
            continue
    return None


def _as_array(frames: list[Frame]) -> np.ndarray:
    """
    Frames as one (n, 160) int16 array; raw datagrams (the usual case) in one conversion.
    """
    if all(type(f) is bytes for f in frames):
        return np.frombuffer(b"".join(frames), dtype="<i2").astype(np.int16).reshape(-1, FRAME)  # type: ignore[arg-type]
    return np.stack(
        [np.frombuffer(f, dtype="<i2").astype(np.int16) if type(f) is bytes else f for f in frames]
    )
