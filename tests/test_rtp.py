"""
The UDP media input: FreeSWITCH unicast datagrams (the real captures) and RTP, fuzzed, and on
a real socket.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol

from iradialer.cpa.g711 import alaw_encode, ulaw_encode
from iradialer.protocols.rtp import (
    AudioSender,
    MalformedPacket,
    MediaReceiver,
    StreamInput,
    looks_like_rtp,
    parse_rtp,
)
from tests.conftest import FIXTURES

ESL = FIXTURES / "esl"


def rtp(
    seq: int, payload: bytes, pt: int = 0, ssrc: int = 0x1234, ts: int | None = None, **kw: int
) -> bytes:
    first = (
        0x80
        | (kw.get("cc", 0) & 0x0F)
        | (0x10 if "ext" in kw else 0)
        | (0x20 if "pad" in kw else 0)
    )
    timestamp = (ts if ts is not None else seq * 160) & 0xFFFFFFFF
    header = struct.pack("!BBHII", first, pt, seq & 0xFFFF, timestamp, ssrc)
    header += b"\0\0\0\1" * kw.get("cc", 0)
    if "ext" in kw:
        header += struct.pack("!HH", 0xBEDE, kw["ext"]) + b"\0" * 4 * kw["ext"]
    tail = b""
    if "pad" in kw:
        tail = b"\0" * (kw["pad"] - 1) + bytes([kw["pad"]])
    return header + payload + tail


def frame_bytes(value: int, n: int = 160) -> bytes:
    return ulaw_encode(np.full(n, value, dtype=np.int16)).tobytes()


def unicast_datagrams(name: str) -> list[bytes]:
    data = (ESL / name).read_bytes()
    return [data[i : i + 320] for i in range(0, len(data), 320)]


def test_real_unicast_capture_is_decoded_sample_for_sample() -> None:
    """
    The 320-byte datagrams FreeSWITCH sent (case 2, a WAV looping) come out as the same
    samples, in 20 ms frames; they are not mistaken for RTP.
    """
    stream = StreamInput()
    datagrams = unicast_datagrams("unicast_case2_helloworld_L16_8k.raw")
    for d in datagrams:
        stream.datagram(d)
    assert stream.kind == "l16"
    frames = stream.frames()
    expected = np.frombuffer(b"".join(datagrams), dtype="<i2")
    assert frames.shape == (len(datagrams), 160)
    assert np.array_equal(frames.reshape(-1), expected)
    assert stream.counters.malformed == 0


def test_comfort_noise_frames_are_samples_of_minus_one() -> None:
    """
    Case 3 starts with 0xFF runs: they are audio (the sample -1), not errors.
    """
    stream = StreamInput()
    for d in unicast_datagrams("unicast_case3_parked_then_tones_L16_8k.raw")[:10]:
        stream.datagram(d)
    assert np.all(stream.frames() == -1)


def test_native_pcmu_capture_matches_the_l16_capture() -> None:
    """
    Case 4 was captured twice, as L16 and with flags: native (160-byte PCMU): decoded with
    media_format "pcmu" they are the same audio.
    """
    native = (ESL / "unicast_case4_sip_pcmu_native.raw").read_bytes()
    l16 = np.frombuffer((ESL / "unicast_case4_sip_pcmu_default.raw").read_bytes(), dtype="<i2")
    stream = StreamInput(media_format="pcmu")
    for i in range(0, len(native), 160):
        stream.datagram(native[i : i + 160])
    assert np.array_equal(stream.frames().reshape(-1), l16)


def test_parse_rtp_strips_csrc_extension_and_padding() -> None:
    """
    CSRCs, a header extension and padding are removed from the payload.
    """
    payload = bytes(range(160))
    packet = parse_rtp(rtp(7, payload, pt=8, cc=2, ext=1, pad=4))
    assert packet.payload == payload
    assert (packet.payload_type, packet.sequence, packet.ssrc) == (8, 7, 0x1234)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00",
        b"\x40" + b"\0" * 171,
        rtp(1, b"", cc=15)[:20],
        rtp(1, b"x" * 10, pad=200)[:-1] + b"\xff",
        rtp(1, b"", ext=40)[:20],
    ],
)
def test_malformed_rtp(data: bytes) -> None:
    """
    Short packets, version 1, CSRCs or extensions past the end, impossible padding: rejected.
    """
    with pytest.raises(MalformedPacket):
        parse_rtp(data)


def test_raw_320_bytes_is_never_taken_for_rtp() -> None:
    """
    A raw L16 datagram that happens to start like an RTP header is still raw: 308 bytes of
    payload is not a whole number of 10 ms G.711 frames.
    """
    data = rtp(1, b"\0" * 308)
    assert len(data) == 320
    assert not looks_like_rtp(data)
    assert looks_like_rtp(rtp(1, b"\0" * 160))


def test_rtp_reorder_duplicates_late_and_loss() -> None:
    """
    Packets 0,2,1,1,3 come out as 0,1,2,3 (one duplicate dropped); packet 4 lost with 5-8 after
    it is concealed (the last audio at -6 dB); a packet older than what was played is late.
    """
    stream = StreamInput()
    for seq in (0, 2, 1, 1, 3):
        stream.datagram(rtp(seq, frame_bytes(1000 * (seq + 1))))
    out = stream.frames()
    assert [int(f[0]) for f in out] == pytest.approx([1000, 2000, 3000, 4000], rel=0.05)
    assert stream.counters.duplicates == 1
    for seq in (5, 6, 7, 8):
        stream.datagram(rtp(seq, frame_bytes(500)))
    out = stream.frames()
    assert len(out) == 5
    assert int(out[0][0]) == pytest.approx(2000, rel=0.05)
    assert stream.counters.lost == 1
    stream.datagram(rtp(2, frame_bytes(100)))
    assert stream.counters.late + stream.counters.duplicates == 2


def test_rtp_waits_for_a_reordered_packet() -> None:
    """
    A gap is not declared lost while fewer than max_reorder later packets have arrived.
    """
    stream = StreamInput(max_reorder=3)
    stream.datagram(rtp(10, frame_bytes(100)))
    for seq in (12, 13, 14):
        stream.datagram(rtp(seq, frame_bytes(100)))
    assert len(stream.frames()) == 1
    stream.datagram(rtp(11, frame_bytes(100)))
    assert len(stream.frames()) == 4
    assert stream.counters.lost == 0


def test_rtp_sequence_wraps_and_ssrc_change_restarts() -> None:
    """
    65535 is followed by 0; a new SSRC starts a new sequence (counted as a resync).
    """
    stream = StreamInput()
    for seq in (65534, 65535, 0, 1):
        stream.datagram(rtp(seq, frame_bytes(100)))
    assert len(stream.frames()) == 4
    stream.datagram(rtp(900, frame_bytes(100), ssrc=99))
    stream.datagram(rtp(901, frame_bytes(100), ssrc=99))
    assert len(stream.frames()) == 2
    assert stream.counters.resyncs == 1


def test_rtp_pcma_and_l16() -> None:
    """
    PCMA (8) and big-endian L16 on a dynamic payload type decode to the samples sent.
    """
    samples = (np.sin(np.arange(160) / 5) * 8000).astype(np.int16)
    a = StreamInput()
    a.datagram(rtp(1, alaw_encode(samples).tobytes(), pt=8))
    assert np.abs(a.frames()[0].astype(int) - samples).max() < 300
    b = StreamInput()
    b.datagram(rtp(1, samples.astype(">i2").tobytes(), pt=97))
    assert np.array_equal(b.frames()[0], samples)


def test_telephone_events_are_not_audio() -> None:
    """
    A 4-byte RFC 4733 event on a dynamic payload type is counted as unsupported, not decoded.
    """
    stream = StreamInput(media_format="rtp")
    stream.datagram(rtp(1, b"\x05\x0a\x00\xa0", pt=101))
    assert stream.counters.unsupported == 1
    assert len(stream.frames()) == 0


def test_odd_length_l16_is_malformed() -> None:
    """
    A raw datagram of odd length cannot be 16-bit PCM: counted, dropped, the stream goes on.
    """
    stream = StreamInput(media_format="l16")
    with pytest.raises(MalformedPacket):
        stream.datagram(b"\0" * 321)
    stream.datagram(b"\0" * 320)
    assert stream.counters.malformed == 1
    assert len(stream.frames()) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(min_size=0, max_size=400), max_size=30),
    st.sampled_from(["auto", "rtp", "l16"]),
)
def test_fuzzed_datagrams_never_break_the_receiver(
    datagrams: list[bytes], media_format: str
) -> None:
    """
    Any bytes from a known source: the receiver never raises, counts every datagram, and
    frames are always whole 160-sample int16 frames.
    """
    receiver = MediaReceiver()
    stream = StreamInput(media_format=media_format)
    receiver.add_source(("127.0.0.1", 5000), stream)
    for d in datagrams:
        receiver.datagramReceived(d, ("127.0.0.1", 5000))
    receiver.datagramReceived(b"junk", ("10.9.9.9", 1))
    frames = stream.frames()
    assert frames.dtype == np.int16 and frames.shape[1:] == (160,)
    assert stream.counters.packets == len(datagrams)
    assert receiver.unknown_source == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.just(320), st.integers(1, 400).map(lambda n: 2 * n)), min_size=1, max_size=40
    ),
    st.lists(st.integers(0, 40), max_size=5),
    st.sampled_from(["auto", "l16"]),
)
def test_raw_l16_samples_come_out_exactly_however_they_arrive(
    sizes: list[int], reads: list[int], media_format: str
) -> None:
    """
    Raw L16 datagrams of any even size (the usual 320 bytes take a shortcut), read at any
    moments as frames or, when they are all whole raw frames, as those datagrams: exactly the
    samples sent, in order, in whole frames.
    """

    def read(stream: StreamInput, raw_first: bool) -> np.ndarray:
        raw = stream.raw_frames() if raw_first else []
        if raw:
            return np.frombuffer(b"".join(raw), dtype="<i2").reshape(-1, 160)
        return stream.frames()

    stream = StreamInput(media_format=media_format)
    sent = np.arange(sum(sizes) // 2, dtype=np.int64).astype(np.int16)
    raw = sent.astype("<i2").tobytes()
    got: list[np.ndarray] = []
    offset = 0
    for i, size in enumerate(sizes):
        stream.datagram(raw[offset : offset + size])
        offset += size
        if i in reads:
            got.append(read(stream, raw_first=i % 2 == 0))
    got.append(read(stream, raw_first=True))
    got.append(stream.frames())
    frames = np.concatenate(got)
    assert frames.dtype == np.int16 and frames.shape[1:] == (160,)
    assert np.array_equal(frames.ravel(), sent[: len(frames) * 160])
    assert len(frames) == len(sent) // 160
    assert stream.counters.packets == len(sizes) and stream.counters.malformed == 0


@st.composite
def rtp_packets(draw: Any) -> bytes:
    """RTP with every header field drawn: sequence, SSRC, payload type and size, CSRCs,
    extensions and padding, some of them lying about their length."""
    kw: dict[str, int] = {}
    if draw(st.booleans()):
        kw["cc"] = draw(st.integers(0, 15))
    if draw(st.booleans()):
        kw["ext"] = draw(st.integers(0, 40))
    if draw(st.booleans()):
        kw["pad"] = draw(st.integers(1, 255))
    packet = rtp(
        draw(st.integers(0, 0xFFFF)),
        draw(st.sampled_from([b"", b"\x7f" * 80, b"\x7f" * 160, b"\0" * 320, b"\1" * 641])),
        pt=draw(st.sampled_from([0, 8, 9, 13, 96, 101, 127])),
        ssrc=draw(st.sampled_from([1, 2, 0xFFFFFFFF])),
        **kw,
    )
    cut = draw(st.integers(0, 3))
    return packet[: len(packet) - cut] if cut else packet


@settings(max_examples=300, deadline=None)
@given(st.lists(rtp_packets(), max_size=40))
def test_fuzzed_rtp_headers_never_break_a_stream(packets: list[bytes]) -> None:
    """
    RTP whose every header field is drawn (jumps, wraps, SSRC changes, codecs we do not
    decode, CSRC lists, extensions and padding that overrun the packet): the stream never
    raises anything but MalformedPacket (counted), and gives whole 160-sample int16 frames.
    """
    stream = StreamInput(media_format="rtp")
    for packet in packets:
        try:
            stream.datagram(packet)
        except MalformedPacket:
            pass
    frames = stream.frames()
    assert frames.dtype == np.int16 and frames.shape[1:] == (160,)
    counted = stream.counters
    assert counted.packets == len(packets)
    assert counted.malformed + counted.unsupported <= len(packets)


@settings(max_examples=200, deadline=None)
@given(st.permutations(list(range(8))), st.integers(0, 65535))
def test_any_reordering_within_the_window_is_undone(order: list[int], start: int) -> None:
    """
    Eight packets in any order whose displacement stays within the reorder window come out in
    sequence order with nothing lost.
    """
    if any(abs(pos - seq) > 3 for pos, seq in enumerate(order)):
        return
    stream = StreamInput(max_reorder=3)
    stream.datagram(rtp(start - 1, frame_bytes(0)))
    for seq in order:
        stream.datagram(rtp(start + seq, frame_bytes(100 * (seq + 1))))
    values = [int(f[0]) for f in stream.frames()[1:]]
    assert values == sorted(values)
    assert len(values) == 8
    assert stream.counters.lost == 0


def test_sender_writes_raw_or_rtp_like_the_source() -> None:
    """
    Audio back to a unicast source is raw s16le; to an RTP source it is RTP of the same
    payload type with increasing sequence numbers.
    """
    frame = np.arange(160, dtype=np.int16)
    raw = StreamInput()
    raw.datagram(b"\0" * 320)
    assert AudioSender(raw).encode(frame) == frame.astype("<i2").tobytes()
    source = StreamInput()
    source.datagram(rtp(1, frame_bytes(0), pt=8))
    sender = AudioSender(source)
    first, second = parse_rtp(sender.encode(frame)), parse_rtp(sender.encode(frame))
    assert first.payload_type == 8
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp - first.timestamp == 160


class _Sender(DatagramProtocol):
    def __init__(self) -> None:
        self.received: defer.Deferred[bytes] = defer.Deferred()

    def datagramReceived(self, data: bytes, addr: object) -> None:  # noqa: N802
        if not self.received.called:
            self.received.callback(data)


@pytest_twisted.ensureDeferred
async def test_real_udp_socket() -> None:
    """
    On 127.0.0.1 (port 0), datagrams from a registered source become frames and audio written
    back reaches that source; datagrams from another port are dropped as unknown.
    """
    receiver = MediaReceiver()
    port = reactor.listenUDP(0, receiver, interface="127.0.0.1")
    sender = _Sender()
    client = reactor.listenUDP(0, sender, interface="127.0.0.1")
    stranger = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
    try:
        stream = StreamInput()
        source = ("127.0.0.1", client.getHost().port)
        receiver.add_source(source, stream)
        target = ("127.0.0.1", port.getHost().port)
        datagrams = unicast_datagrams("unicast_case1_tone1004_L16_8k.raw")[:5]
        for d in datagrams:
            client.write(d, target)
        stranger.write(b"\0" * 320, target)
        receiver.send(b"\1\0" * 160, source)
        echoed = await sender.received
        assert echoed == b"\1\0" * 160
        while receiver.packets < 6:
            await _later()
        assert np.array_equal(
            stream.frames().reshape(-1), np.frombuffer(b"".join(datagrams), "<i2")
        )
        assert receiver.unknown_source == 1
    finally:
        await port.stopListening()
        await client.stopListening()
        await stranger.stopListening()


def _later() -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(0, d.callback, None)
    return d
