"""
The unicast call-command: real-time 20 ms frames of the callee's audio from the
FreeSWITCH-side port, audio written back recorded, and FreeSWITCH's quirks (unicast_case3,
unicast_more): the stream ends with a playback on the leg or leaving park and comes back only
after a re-park and a new unicast.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol

from iradialer.sim.audio import CNG_FRAME, builtin_audio
from iradialer.sim.server import make_simulator_service
from iradialer.sim.testing import Harness, parse_frames

SCENARIOS = """
[[scenario]]
match = "0001$"
ring_ms = 500
audio = "human"

[[scenario]]
match = "0006$"
ring_ms = 0
audio = "silence"
"""


def unicast(local_port: int, remote_port: int = 17001, flags: str = "") -> str:
    extra = f"flags: {flags}\n" if flags else ""
    return (
        f"sendmsg u1\ncall-command: unicast\nlocal-ip: 127.0.0.1\nlocal-port: {local_port}\n"
        f"remote-ip: 127.0.0.1\nremote-port: {remote_port}\ntransport: udp\n{extra}\n"
    )


def call(number: str = "5550001"):
    h = Harness(SCENARIOS)
    c = h.connect(authenticate=True, events="json ALL")
    c.command(f"bgapi originate {{origination_uuid=u1}}sofia/gateway/sim/{number} &park()")
    h.run_for(0.5)
    return h, c


def port(h, number):
    return next(p for p in h.reactor.udp_ports if p.port == number)


def test_stream_is_the_callee_audio_in_real_time():
    """
    After unicast: 320-byte frames, 50 a second, from local-port to remote, the callee's
    audio.
    """
    h, c = call()
    h.run_for(0.3)
    c.send(unicast(17000))
    ours = port(h, 17000)
    assert ours.interface == "127.0.0.1"
    h.run_for(1.0)
    assert len(ours.sent) == 51
    assert {addr for _, addr in ours.sent} == {("127.0.0.1", 17001)}
    assert {len(data) for data, _ in ours.sent} == {320}
    audio = builtin_audio("human")
    first = round(0.3 / 0.02)
    assert [data for data, _ in ours.sent] == [audio.frame(first + i) for i in range(51)]


def test_silent_callee_sends_comfort_noise_frames():
    """A callee sending nothing: FreeSWITCH's 0xFF comfort-noise frames (unicast_case3)."""
    h, c = call("5550006")
    c.send(unicast(17002))
    h.run_for(0.2)
    assert {data for data, _ in port(h, 17002).sent} == {CNG_FRAME}


def test_native_flag_sends_mu_law():
    """flags: native on the PCMU leg: 160-byte G.711 frames."""
    h, c = call()
    c.send(unicast(17003, flags="native"))
    h.run_for(0.2)
    assert {len(data) for data, _ in port(h, 17003).sent} == {160}


def test_audio_written_back_is_recorded():
    """Datagrams sent to the FreeSWITCH-side port are kept as what the caller played."""
    h, c = call()
    c.send(unicast(17004))
    ours = port(h, 17004)
    ours.receive(b"\x01\x00" * 160)
    ours.receive(b"\x02\x00" * 160)
    assert h.sim.media.written_back("u1") == b"\x01\x00" * 160 + b"\x02\x00" * 160
    c.command("api uuid_kill u1")
    h.run_for(0.1)
    assert not ours.listening
    assert h.sim.media.written_back("u1") == b"\x01\x00" * 160 + b"\x02\x00" * 160


def test_playback_ends_the_stream_until_repark():
    """
    A playback on the leg stops the stream; unicast again does nothing; re-park + unicast
    works.
    """
    h, c = call()
    c.send(unicast(17010))
    h.run_for(0.5)
    first = port(h, 17010)
    c.command("api uuid_broadcast u1 tone_stream://%(500,0,700) aleg")
    h.run_for(2.0)
    assert not first.listening
    sent_before = len(first.sent)
    c.send(unicast(17012))
    h.run_for(1.0)
    assert len(first.sent) == sent_before
    assert [p.port for p in h.reactor.udp_ports] == [17010]
    c.command("api uuid_transfer u1 park inline")
    c.send(unicast(17014))
    h.run_for(1.0)
    assert len(port(h, 17014).sent) == 51


def test_leaving_park_for_a_conference_ends_the_stream():
    """Entering a conference leaves park: the stream stops."""
    h, c = call()
    c.send(unicast(17020))
    h.run_for(0.2)
    c.command("api uuid_transfer u1 'conference:CONF-m@default,park' inline")
    h.run_for(0.2)
    ours = port(h, 17020)
    assert not ours.listening
    count = len(ours.sent)
    h.run_for(0.5)
    assert len(ours.sent) == count


def test_late_tick_catches_up():
    """A late timer sends the frames that are due, so the audio keeps its length."""
    h, c = call()
    c.send(unicast(17030))
    h.reactor.advance(0.1)
    h.reactor.advance(0.0)
    assert len(port(h, 17030).sent) == 6


class Collect(DatagramProtocol):
    def __init__(self, wanted: int) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.wanted = wanted
        self.done: defer.Deferred[None] = defer.Deferred()

    def datagramReceived(self, data, addr):  # noqa: N802
        self.received.append((data, addr))
        if len(self.received) == self.wanted:
            self.done.callback(None)


class RawClient(Protocol):
    """A bare Event Socket client: bytes out, frames in."""

    def __init__(self) -> None:
        self.buffer = b""
        self.frames: list = []
        self.waiting: list[tuple[int, defer.Deferred]] = []

    def dataReceived(self, data):  # noqa: N802
        self.buffer += data
        frames, self.buffer = parse_frames(self.buffer)
        self.frames += frames
        for count, d in list(self.waiting):
            if len(self.frames) >= count:
                self.waiting.remove((count, d))
                d.callback(self.frames[:count])

    def until(self, count: int) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        if len(self.frames) >= count:
            d.callback(self.frames[:count])
        else:
            self.waiting.append((count, d))
        return d


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_real_sockets_stream_and_write_back():
    """
    Over real 127.0.0.1 sockets: an Event Socket connection places a call, unicast streams
    320-byte datagrams to our UDP port, and a datagram we send back is recorded.
    """
    service = make_simulator_service("tcp:0:interface=127.0.0.1", reactor, None)
    service.startService()
    try:
        listening = await service.when_listening()
        tcp_port = listening.getHost().port
        collector = Collect(wanted=25)
        udp = reactor.listenUDP(0, collector, interface="127.0.0.1")
        client = await TCP4ClientEndpoint(reactor, "127.0.0.1", tcp_port).connect(
            Factory.forProtocol(RawClient)
        )
        client.transport.write(b"auth ClueCon\n\n")
        await client.until(2)
        number = "15550000001"
        client.transport.write(
            f"api originate {{origination_uuid=u1}}sofia/gateway/sim/{number} &park()\n\n".encode()
        )
        frames = await client.until(3)
        assert frames[2].text == "+OK u1\n"
        remote_port = udp.getHost().port
        client.transport.write(
            (
                "sendmsg u1\ncall-command: unicast\nlocal-ip: 127.0.0.1\nlocal-port: 0\n"
                f"remote-ip: 127.0.0.1\nremote-port: {remote_port}\ntransport: udp\n\n"
            ).encode()
        )
        await collector.done
        assert {len(data) for data, _ in collector.received} == {320}
        stream = service.simulator.media.streaming("u1")
        heard: defer.Deferred[None] = defer.Deferred()
        original = stream.datagramReceived

        def received(data, addr):
            original(data, addr)
            heard.callback(None)

        stream.datagramReceived = received
        collector.transport.write(b"\x10\x00" * 160, collector.received[0][1])
        await heard
        assert service.simulator.media.written_back("u1") == b"\x10\x00" * 160
        client.transport.loseConnection()
        await udp.stopListening()
    finally:
        await defer.maybeDeferred(service.stopService)
