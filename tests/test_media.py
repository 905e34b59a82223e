"""
The media service: ticking the CPA engine over the UDP streams on an injected clock.
"""

from __future__ import annotations

import socket
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock

from iradialer.config import MediaConfig
from iradialer.cpa.config import CpaConfig
from iradialer.cpa.engine import Detection
from iradialer.media import RECEIVE_BUFFER, MediaService
from iradialer.metrics import Metrics
from tests.conftest import FIXTURES

SOURCE = ("127.0.0.1", 30000)
CALL = "8f0c1c2e-6a0e-4b8e-9a57-2d4f1b8e4c11"


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))


class FakePort:
    def __init__(self, port: int) -> None:
        self.port = port
        self.listening = True

    def stopListening(self) -> None:  # noqa: N802
        self.listening = False

    def getHost(self) -> Any:  # noqa: N802
        return type("Host", (), {"host": "127.0.0.1", "port": self.port})()


class FakeUdpReactor:
    def __init__(self) -> None:
        self.transport = FakeTransport()

    def listenUDP(self, port: int, protocol: DatagramProtocol, interface: str = "") -> FakePort:  # noqa: N802
        protocol.makeConnection(self.transport)
        return FakePort(port or 9999)


class Listener:
    def __init__(self) -> None:
        self.detections: list[tuple[str, Detection]] = []
        self.done: list[tuple[str, int, str]] = []
        self.waiting: dict[str, defer.Deferred[Detection]] = {}

    def cpa_detection(self, call_uuid: str, detection: Detection) -> None:
        self.detections.append((call_uuid, detection))
        waiter = self.waiting.pop(detection.event, None)
        if waiter is not None:
            waiter.callback(detection)

    def cpa_done(self, call_uuid: str, ms: int, reason: str) -> None:
        self.done.append((call_uuid, ms, reason))

    def events(self) -> list[str]:
        return [d.event for _, d in self.detections]


def media_config(ports: tuple[int, int] = (30000, 30009), port: int = 9000) -> MediaConfig:
    return MediaConfig(listen="127.0.0.1", port=port, freeswitch_ports=ports, files_dir=Path("."))


@pytest.fixture
def service() -> tuple[MediaService, Clock, FakeUdpReactor]:
    clock = Clock()
    fake = FakeUdpReactor()
    svc = MediaService(media_config(), fake, clock=clock)
    svc.startService()
    yield svc, clock, fake
    svc.stopService()


def datagrams(name: str) -> list[bytes]:
    data = (FIXTURES / "esl" / name).read_bytes()
    return [data[i : i + 320] for i in range(0, len(data), 320)]


def play(
    svc: MediaService, clock: Clock, packets: list[bytes], source: tuple[str, int] = SOURCE
) -> None:
    """One datagram per 20 ms tick, as FreeSWITCH sends them."""
    for d in packets:
        svc.receiver.datagramReceived(d, source)
        clock.advance(0.02)


def test_cpa_on_the_real_capture(service: tuple[MediaService, Clock, FakeUdpReactor]) -> None:
    """
    The case 3 capture (comfort noise, then a 1500 Hz tone) gives BP at the tone's onset in ms
    since the stream opened -- 1700 ms, as the offline tool finds in the same audio -- then AM
    (a beep before any decision).
    """
    svc, clock, _ = service
    listener = Listener()
    svc.open_stream(CALL, SOURCE, CpaConfig(), listener)
    play(svc, clock, datagrams("unicast_case3_parked_then_tones_L16_8k.raw"))
    bp = next(d for _, d in listener.detections if d.event == "BP")
    assert abs(bp.ms - 1700) <= 20
    assert abs(bp.extras["frequency"] - 1500) < 2
    assert listener.events()[:2] == ["BP", "AM"]
    assert svc.status()["frames_analysed"] == 200


def test_gap_invents_nothing_and_restamps(
    service: tuple[MediaService, Clock, FakeUdpReactor],
) -> None:
    """
    10 frames, 2 s without datagrams (a playback on the leg), 5 frames: the consumer gets 15
    frames; those after the pause carry the time they arrived.
    """
    svc, clock, _ = service
    got: list[int] = []
    stream = svc.open_stream(CALL, SOURCE, None, Listener())
    stream.add_consumer(lambda frame, ms: got.append(ms))
    play(svc, clock, [b"\0" * 320] * 10)
    clock.advance(2.0)
    play(svc, clock, [b"\0" * 320] * 5)
    assert len(got) == 15
    assert got[:10] == list(range(0, 200, 20))
    assert 2150 <= got[10] <= 2250
    assert got[11] - got[10] == 20


def test_a_later_stream_of_the_call_keeps_time_zero(
    service: tuple[MediaService, Clock, FakeUdpReactor],
) -> None:
    """
    After a re-park the call's new stream (another FreeSWITCH-side port) reports ms since the
    first stream opened, i.e. since answer.
    """
    svc, clock, _ = service
    first = svc.open_stream(CALL, SOURCE, None, Listener())
    clock.advance(5.0)
    first.close()
    got: list[int] = []
    second = svc.open_stream(CALL, ("127.0.0.1", 30001), None, Listener())
    second.add_consumer(lambda frame, ms: got.append(ms))
    play(svc, clock, [b"\0" * 320], source=("127.0.0.1", 30001))
    assert 4950 <= got[0] <= 5020


def test_total_timeout_without_audio(service: tuple[MediaService, Clock, FakeUdpReactor]) -> None:
    """
    A stream that never sends still ends: DT, then cpa_done with reason total_timeout.
    """
    svc, clock, _ = service
    listener = Listener()
    svc.open_stream(CALL, SOURCE, CpaConfig.from_params({"total_timeout": 1000}), listener)
    clock.pump([0.02] * 60)
    assert listener.events() == ["DT"]
    assert listener.done == [(CALL, listener.detections[0][1].ms, "total_timeout")]
    assert 1000 <= listener.done[0][1] <= 1040


def test_break_event_ends_analysis(service: tuple[MediaService, Clock, FakeUdpReactor]) -> None:
    """
    break_events BP: cpa_done right after BP, nothing after it.
    """
    svc, clock, _ = service
    listener = Listener()
    svc.open_stream(CALL, SOURCE, CpaConfig.from_params({"break_events": "BP"}), listener)
    play(svc, clock, datagrams("unicast_case1_tone1004_L16_8k.raw"))
    assert listener.events() == ["BP"]
    assert listener.done[0][2] == "BP"


def test_send_audio_goes_out_one_frame_per_tick(
    service: tuple[MediaService, Clock, FakeUdpReactor],
) -> None:
    """
    50 ms of welcome beep leaves as three 320-byte raw frames, one per tick, to the
    FreeSWITCH-side port; the last is padded with silence.
    """
    svc, clock, fake = service
    stream = svc.open_stream(CALL, SOURCE, None, Listener())
    beep = (np.sin(np.arange(400) / 3) * 5000).astype("<i2")
    stream.send_audio(beep.tobytes())
    clock.advance(0.02)
    assert len(fake.transport.written) == 1
    clock.pump([0.02] * 5)
    sent = fake.transport.written
    assert [len(d) for d, _ in sent] == [320, 320, 320]
    assert all(addr == SOURCE for _, addr in sent)
    out = np.frombuffer(b"".join(d for d, _ in sent), dtype="<i2")
    assert np.array_equal(out[:400], beep)
    assert not out[400:].any()


def test_ports(service: tuple[MediaService, Clock, FakeUdpReactor]) -> None:
    """
    FreeSWITCH-side ports come from the range, round robin, never two streams on one, and
    running out is an error.
    """
    clock = Clock()
    svc = MediaService(media_config(ports=(31000, 31002)), FakeUdpReactor(), clock=clock)
    ports = [svc.allocate_port() for _ in range(3)]
    assert sorted(ports) == [31000, 31001, 31002]
    with pytest.raises(RuntimeError):
        svc.allocate_port()
    svc.release_port(31001)
    assert svc.allocate_port() == 31001


def test_logs_voice_and_packets(
    tmp_path: Path, service: tuple[MediaService, Clock, FakeUdpReactor]
) -> None:
    """
    log_voice writes the analysed audio as a WAV; rtp_log has one line per datagram.
    """
    svc, clock, _ = service
    stream = svc.open_stream(
        CALL,
        SOURCE,
        CpaConfig(),
        Listener(),
        log_voice=tmp_path / "v.wav",
        rtp_log=tmp_path / "r.log",
    )
    packets = datagrams("unicast_case2_helloworld_L16_8k.raw")[:25]
    play(svc, clock, packets)
    stream.close()
    with wave.open(str(tmp_path / "v.wav")) as w:
        assert (w.getframerate(), w.getnframes()) == (8000, 25 * 160)
        assert w.readframes(25 * 160) == b"".join(packets)
    lines = (tmp_path / "r.log").read_text().splitlines()
    assert len(lines) == 25 and "status=ok" in lines[0] and "size=320" in lines[0]


def test_a_failing_listener_does_not_stop_the_tick(
    service: tuple[MediaService, Clock, FakeUdpReactor],
) -> None:
    """
    A listener that raises is logged and counted; other streams keep being analysed.
    """
    svc, clock, _ = service

    class Broken(Listener):
        def cpa_detection(self, call_uuid: str, detection: Detection) -> None:
            raise RuntimeError("boom")

    good = Listener()
    svc.open_stream("broken", ("127.0.0.1", 30005), CpaConfig(), Broken())
    svc.open_stream(CALL, SOURCE, CpaConfig(), good)
    for d in datagrams("unicast_case1_tone1004_L16_8k.raw")[:20]:
        svc.receiver.datagramReceived(d, ("127.0.0.1", 30005))
        svc.receiver.datagramReceived(d, SOURCE)
        clock.advance(0.02)
    assert "BP" in good.events()
    assert svc.status()["listener_errors"] >= 1


def test_status(service: tuple[MediaService, Clock, FakeUdpReactor]) -> None:
    """
    status() reports streams, tick times and packet counters, including garbage.
    """
    svc, clock, _ = service
    svc.open_stream(CALL, SOURCE, CpaConfig(), Listener(), media_format="l16")
    svc.receiver.datagramReceived(b"\0" * 321, SOURCE)
    svc.receiver.datagramReceived(b"\0" * 320, ("10.1.1.1", 4))
    clock.advance(0.02)
    status = svc.status()
    assert status["streams"] == 1 and status["cpa_streams"] == 1
    assert status["packets"]["malformed"] == 1
    assert status["packets"]["unknown_source"] == 1
    assert status["tick_ms"]["last"] is not None


@pytest_twisted.ensureDeferred
async def test_end_to_end_on_a_real_socket() -> None:
    """
    The service on 127.0.0.1 port 0 with the real reactor: the captured 1004 Hz tone sent
    from a FreeSWITCH-side UDP port is reported as BP.
    """
    svc = MediaService(media_config(port=0), reactor)
    svc.startService()
    client = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
    try:
        listener = Listener()
        found: defer.Deferred[Detection] = defer.Deferred()
        listener.waiting["BP"] = found
        source = ("127.0.0.1", client.getHost().port)
        svc.open_stream(CALL, source, CpaConfig(), listener)
        for d in datagrams("unicast_case1_tone1004_L16_8k.raw")[:15]:
            client.write(d, svc.address)
        bp = await found
        assert abs(bp.extras["frequency"] - 1004) < 2
    finally:
        await client.stopListening()
        await svc.stopService()


def test_metrics() -> None:
    """
    With the server's Metrics: tick times observed, analysed streams gauged, dropped datagrams
    counted by reason (each once) when metrics are scraped.
    """
    clock = Clock()
    metrics = Metrics()
    svc = MediaService(media_config(), FakeUdpReactor(), clock=clock, metrics=metrics)
    svc.startService()
    try:
        svc.open_stream(CALL, SOURCE, CpaConfig(), Listener(), media_format="l16")
        svc.receiver.datagramReceived(b"\0" * 321, SOURCE)
        svc.receiver.datagramReceived(b"\0" * 320, ("10.1.1.1", 4))
        clock.pump([0.02] * 3)
        metrics.refresh()
        metrics.refresh()
        value = metrics.registry.get_sample_value
        assert value("iradialer_cpa_streams") == 1
        assert value("iradialer_cpa_tick_seconds_count") == 3
        assert value("iradialer_media_packets_dropped_total", {"reason": "malformed"}) == 1
        assert value("iradialer_media_packets_dropped_total", {"reason": "unknown_source"}) == 1
    finally:
        svc.stopService()


@pytest_twisted.ensureDeferred
async def test_datagrams_lost_to_a_full_receive_buffer_are_counted() -> None:
    """
    The media port asks for a large receive buffer, and datagrams the kernel still drops
    because the reactor did not read them in time (here: it cannot, while this test sends)
    are counted in the status and the drop metric, not lost silently.
    """
    metrics = Metrics()
    svc = MediaService(media_config(port=0), reactor, metrics=metrics)
    svc.startService()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        granted = svc._port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with open("/proc/sys/net/core/rmem_max") as f:
            assert granted >= min(RECEIVE_BUFFER, 2 * int(f.read()))
        assert svc.status()["receive_buffer_drops"] == 0
        for _ in range(4 * granted // 320):
            sender.sendto(b"\0" * 320, svc.address)
        drops = svc.status()["receive_buffer_drops"]
        assert drops > 0
        metrics.refresh()
        value = metrics.registry.get_sample_value
        assert value("iradialer_media_packets_dropped_total", {"reason": "receive_buffer"}) == drops
    finally:
        sender.close()
        await svc.stopService()
