"""
Call audio over UDP: FreeSWITCH C{unicast} datagrams and RTP (RFC 3550), demultiplexed by the
sender's address.

FreeSWITCH's C{unicast} sends raw 16-bit little-endian PCM, 320 bytes (20 ms at 8 kHz) per
datagram, from one FreeSWITCH-side port per call; silence comes as runs of C{0xFF} bytes (the
sample -1).  With C{flags: native} the payload is the call's codec instead (160-byte PCMU).
Media forks send RTP: PCMU (0), PCMA (8) or L16 (big-endian, 8 kHz mono, on a dynamic payload
type).  Each source is a L{StreamInput}, which turns datagrams into a FIFO of 20 ms frames:
RTP is put back in sequence order (reordered packets wait for up to C{max_reorder} later
ones), duplicates and late packets are dropped, and a lost packet is concealed by repeating the
last audio at -6 dB per lost packet (silence from the fourth).  A pause in the datagrams is
not loss: nothing is invented for it.

Nothing here is fatal: a datagram that cannot be parsed is counted and dropped.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from iradialer.cpa.g711 import (
    ALAW_DECODE,
    ULAW_DECODE,
    alaw_encode,
    ulaw_encode,
)

FRAME = 160
#: Largest datagram accepted (a 60 ms L16 packet plus headers fits easily).
MAX_DATAGRAM = 2048
PCMU, PCMA = 0, 8
#: Dynamic payload types taken as L16/8000 mono when the payload is audio-sized.
DYNAMIC = range(96, 128)
#: A jump this far ahead in sequence numbers is a new stream, not a loss.
MAX_SEQUENCE_JUMP = 1000
FORMATS = ("auto", "l16", "pcmu", "pcma", "rtp")

Address = tuple[str, int]


class MalformedPacket(ValueError):
    pass


class UnsupportedPayload(ValueError):
    pass


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    """
    One RTP packet (RFC 3550 section 5.1), with CSRCs, header extension and padding removed.

    @raise MalformedPacket: not a well-formed version 2 packet.
    """
    if len(data) < 12:
        raise MalformedPacket("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
    if first >> 6 != 2:
        raise MalformedPacket("RTP version is not 2")
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise MalformedPacket("truncated header extension")
        (words,) = struct.unpack("!H", data[offset + 2 : offset + 4])
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:
        if end == 0 or data[-1] == 0:
            raise MalformedPacket("bad padding")
        end -= data[-1]
    if offset > end:
        raise MalformedPacket("header longer than the packet")
    return RtpPacket(
        second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, data[offset:end]
    )


def looks_like_rtp(data: bytes) -> bool:
    """
    Whether a datagram is plausibly RTP carrying 10-40 ms of 8 kHz audio.  Raw 320-byte L16
    never is: as RTP it would carry 308 bytes, not a whole number of 10 ms frames.
    """
    try:
        packet = parse_rtp(data)
    except MalformedPacket:
        return False
    size = len(packet.payload)
    if packet.payload_type in (PCMU, PCMA):
        return size in (80, 160, 240, 320)
    if packet.payload_type in DYNAMIC:
        return size in (160, 320, 480, 640)
    return False


def decode_payload(payload_type: int, payload: bytes) -> np.ndarray:
    if payload_type == PCMU:
        return ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]
    if payload_type == PCMA:
        return ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]
    if payload_type in DYNAMIC and len(payload) >= 40 and len(payload) % 2 == 0:
        return np.frombuffer(payload, dtype=">i2").astype(np.int16)
    raise UnsupportedPayload(f"payload type {payload_type} ({len(payload)} bytes)")


@dataclass
class Counters:
    packets: int = 0
    bytes: int = 0
    malformed: int = 0
    unsupported: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0
    resyncs: int = 0

    def add(self, other: Counters) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


PacketLog = Callable[[dict[str, Any]], None]


@dataclass
class StreamInput:
    """
    The audio of one source: datagrams in, 20 ms frames (int16, 160 samples) out.
    """

    media_format: str = "auto"
    max_reorder: int = 3
    packet_log: PacketLog | None = None
    counters: Counters = field(default_factory=Counters)
    #: "l16", "pcmu", "pcma" (raw datagrams) or "rtp", once known.
    kind: str | None = None
    payload_type: int | None = None
    #: Received audio not yet taken as frames: int16 arrays, or raw L16 datagrams (bytes).
    _samples: list[np.ndarray | bytes] = field(default_factory=list)
    _pending: int = 0
    _expected: int | None = None
    _ssrc: int | None = None
    _buffer: dict[int, np.ndarray] = field(default_factory=dict)
    _played: deque[int] = field(default_factory=lambda: deque(maxlen=64))
    _last: np.ndarray | None = None
    _concealed_run: int = 0

    def __post_init__(self) -> None:
        if self.media_format not in FORMATS:
            raise ValueError(f"media_format must be one of {FORMATS}")
        if self.media_format != "auto":
            self.kind = self.media_format

    def datagram(self, data: bytes) -> None:
        """
        Take one datagram.

        @raise MalformedPacket: it is not audio of this stream's kind (counted already).
        """
        self.counters.packets += 1
        self.counters.bytes += len(data)
        if self.kind == "l16" and len(data) == 320 and self.packet_log is None:
            self._samples.append(data)  # the usual unicast datagram: converted in frames()
            self._pending += FRAME
            return
        try:
            if not data or len(data) > MAX_DATAGRAM:
                raise MalformedPacket(f"{len(data)}-byte datagram")
            if self.kind is None:
                self.kind = "rtp" if looks_like_rtp(data) else "l16"
            if self.kind == "rtp":
                self._rtp(data)
            else:
                self._raw(data)
        except MalformedPacket as e:
            self.counters.malformed += 1
            self._log(size=len(data), status="malformed", reason=str(e))
            raise
        except UnsupportedPayload as e:
            self.counters.unsupported += 1
            self._log(size=len(data), status="unsupported", reason=str(e))

    def _raw(self, data: bytes) -> None:
        if self.kind == "l16":
            if len(data) % 2:
                raise MalformedPacket("odd length for 16-bit PCM")
            samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        else:
            samples = decode_payload(PCMU if self.kind == "pcmu" else PCMA, data)
        self._push(samples)
        self._log(size=len(data), status="ok")

    def _rtp(self, data: bytes) -> None:
        packet = parse_rtp(data)
        samples = decode_payload(packet.payload_type, packet.payload)
        self.payload_type = packet.payload_type
        info = {
            "size": len(data),
            "seq": packet.sequence,
            "ts": packet.timestamp,
            "pt": packet.payload_type,
            "ssrc": packet.ssrc,
        }
        if packet.ssrc != self._ssrc or self._expected is None:
            if self._ssrc is not None:
                self.counters.resyncs += 1
            self._ssrc = packet.ssrc
            self._restart(packet.sequence)
        expected = self._expected
        assert expected is not None
        ahead = (packet.sequence - expected) & 0xFFFF
        if ahead >= 0x8000:
            if packet.sequence in self._played:
                self.counters.duplicates += 1
                self._log(status="duplicate", **info)
            else:
                self.counters.late += 1
                self._log(status="late", **info)
            return
        if ahead > MAX_SEQUENCE_JUMP:
            self.counters.resyncs += 1
            self._restart(packet.sequence)
            expected, ahead = packet.sequence, 0
        key = expected + ahead
        if key in self._buffer:
            self.counters.duplicates += 1
            self._log(status="duplicate", **info)
            return
        self._buffer[key] = samples
        self._log(status="ok", **info)
        self._drain()

    def _restart(self, sequence: int) -> None:
        self._buffer.clear()
        self._expected = sequence

    def _drain(self) -> None:
        assert self._expected is not None
        while self._buffer:
            samples = self._buffer.pop(self._expected, None)
            if samples is None:
                if len(self._buffer) <= self.max_reorder:
                    return
                samples = self._conceal(len(next(iter(self._buffer.values()))))
                self.counters.lost += 1
                self._log(status="lost", seq=self._expected & 0xFFFF)
            else:
                self._concealed_run = 0
                self._last = samples
            self._played.append(self._expected & 0xFFFF)
            self._push(samples)
            self._expected += 1

    def _conceal(self, length: int) -> np.ndarray:
        self._concealed_run += 1
        if self._last is None or self._concealed_run > 3:
            return np.zeros(length, dtype=np.int16)
        gain = 0.5**self._concealed_run
        repeated = np.resize(self._last, length).astype(np.float64) * gain
        return repeated.astype(np.int16)

    def _push(self, samples: np.ndarray) -> None:
        if len(samples):
            self._samples.append(samples)
            self._pending += len(samples)

    def raw_frames(self) -> list[bytes]:
        """
        When everything received since the last read is whole 320-byte raw L16 datagrams
        (the usual unicast stream), those datagrams, one frame each, taken without numpy;
        else nothing (read L{frames} instead).
        """
        samples = self._samples
        if not samples or self._pending != FRAME * len(samples):
            return []
        for part in samples:
            if type(part) is not bytes:
                return []
        self._samples = []
        self._pending = 0
        return samples  # type: ignore[return-value]

    def frames(self) -> np.ndarray:
        """
        The complete 20 ms frames received so far, as a (n, 160) int16 array; the remainder
        stays for the next call.
        """
        n = self._pending // FRAME
        if n == 0:
            return np.zeros((0, FRAME), dtype=np.int16)
        parts: list[np.ndarray] = []
        raw: list[bytes] = []
        for part in self._samples:
            if type(part) is bytes:
                raw.append(part)
                continue
            if raw:
                parts.append(_l16(raw))
                raw = []
            parts.append(part)  # type: ignore[arg-type]
        if raw:
            parts.append(_l16(raw))
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        rest = joined[n * FRAME :]
        self._samples = [rest] if len(rest) else []
        self._pending = len(rest)
        return joined[: n * FRAME].reshape(n, FRAME)

    def _log(self, **info: Any) -> None:
        if self.packet_log is not None:
            kind = self.kind or "?"
            self.packet_log({"kind": kind, **info})


def _l16(datagrams: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(datagrams), dtype="<i2").astype(np.int16)


class AudioSender:
    """
    Encodes 20 ms frames for the far end in the format the stream came in: raw L16 (or the
    raw codec) for C{unicast}, RTP with our own SSRC for RTP sources.
    """

    def __init__(self, stream: StreamInput) -> None:
        self.stream = stream
        self._sequence = int.from_bytes(os.urandom(2), "big")
        self._timestamp = int.from_bytes(os.urandom(4), "big")
        self._ssrc = int.from_bytes(os.urandom(4), "big")

    def encode(self, frame: np.ndarray) -> bytes:
        kind = self.stream.kind or "l16"
        samples = np.asarray(frame, dtype=np.int16)
        if kind == "l16":
            return samples.astype("<i2").tobytes()
        if kind == "pcmu":
            return ulaw_encode(samples).tobytes()
        if kind == "pcma":
            return alaw_encode(samples).tobytes()
        payload_type = self.stream.payload_type if self.stream.payload_type is not None else PCMU
        if payload_type == PCMU:
            payload = ulaw_encode(samples).tobytes()
        elif payload_type == PCMA:
            payload = alaw_encode(samples).tobytes()
        else:
            payload = samples.astype(">i2").tobytes()
        header = struct.pack(
            "!BBHII", 0x80, payload_type & 0x7F, self._sequence, self._timestamp, self._ssrc
        )
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (self._timestamp + len(samples)) & 0xFFFFFFFF
        return header + payload


class MediaReceiver(DatagramProtocol):
    """
    One UDP port for the audio of every call.  Sources are registered with L{add_source};
    datagrams from anywhere else are counted and dropped.
    """

    log = Logger()

    def __init__(self) -> None:
        self._sources: dict[Address, StreamInput] = {}
        self.unknown_source = 0
        self.malformed = 0
        self.packets = 0
        self.closed = Counters()

    def add_source(self, address: Address, stream: StreamInput) -> None:
        self._sources[_normal(address)] = stream

    def remove_source(self, address: Address) -> None:
        stream = self._sources.pop(_normal(address), None)
        if stream is not None:
            self.closed.add(stream.counters)

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802 (Twisted's name)
        self.packets += 1
        stream = self._sources.get(addr) or self._sources.get(_normal(addr))
        if stream is None:
            self.unknown_source += 1
            return
        try:
            stream.datagram(data)
        except MalformedPacket:
            self.malformed += 1

    def send(self, data: bytes, address: Address) -> None:
        if self.transport is not None:
            self.transport.write(data, _normal(address))

    def counters(self) -> dict[str, int]:
        total = Counters()
        total.add(self.closed)
        for stream in self._sources.values():
            total.add(stream.counters)
        return {
            **total.as_dict(),
            "datagrams": self.packets,
            "unknown_source": self.unknown_source,
        }


def _normal(address: Any) -> Address:
    return (str(address[0]), int(address[1]))
