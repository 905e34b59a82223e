"""
Faults, end to end: the Event Socket connection drops, FreeSWITCH restarts, iradialer is
killed, the webhook receiver goes away, the media port and the API are flooded.  Each test
checks what a customer would see (webhook events, API answers, licenses in the status) and
that nothing is lost, invented or left stuck.

The suite runs short forms; C{make soak} (C{IRADIALER_SOAK=1}) runs the same tests with
longer outages and more calls.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.task import deferLater

from iradialer.api.site import MAX_BODY_BYTES
from tests.faults import (
    ADMIN,
    SCENARIOS,
    SOAK,
    TOKEN,
    Receiver,
    ServerProcess,
    Simulator,
    Stack,
    assert_complete_and_ordered,
    free_port,
    get,
    post,
    server_config,
    stack_fixture,
    wait_for,
)

GATEWAY = "sofia/gateway/sim"

stack = stack_fixture()
# At most 5 of the tenant's calls being delivered at once: fewer than the calls waiting.
narrow = stack_fixture(webhooks="tenant_concurrency = 5\n")

ANSWERED = ["originate", "started", "ringing", "answered", "hangup", "call_quality"]


@pytest_twisted.ensureDeferred
async def test_event_socket_drops_mid_call_and_comes_back(stack: Stack):
    """
    The Event Socket connection drops with two calls up and stays down (no answer to a
    reconnection) while one callee hangs up.  Meanwhile the API answers dropcall with a 503
    (not a 500), and getdetails from memory.  Once FreeSWITCH is reachable again the call
    that ended unseen gets exactly one hangup, marked cause_observed false, and its license
    back; the other is still controllable: dropcall works and its hangup is observed.  Each
    call's events are exactly those of its life, in order, none missing or invented.
    """
    assert stack.proxy is not None and stack.simulator is not None
    gone = await stack.make_call("15550000001")
    kept = await stack.make_call("15550000001")
    for call in (gone, kept):
        await stack.wait_for(call, "answered")
    assert await stack.licenses_used() == 2

    down = stack.next_node_down()
    stack.proxy.hold()
    stack.proxy.cut()
    stack.simulator.hang_up(gone)
    await down
    code, body = await stack.post("dropcall", {"call_uuid": kept})
    assert code == 503, body
    assert "not reachable" in body["message"]
    code, body = await stack.post(
        "getdetails", {"call_uuid": kept, "event_url": stack.receiver.url}
    )
    assert code == 200 and body["details"]["state"] == "answered"

    up = stack.next_node_up()
    stack.proxy.release()
    await up
    hangup = await stack.wait_for(gone, "hangup")
    assert hangup["cause_observed"] is False
    assert "could not see FreeSWITCH" in hangup["status"]
    await stack.wait_for(gone, "call_quality")
    assert await stack.licenses_used() == 1

    code, body = await stack.post("dropcall", {"call_uuid": kept})
    assert code == 200, body
    dropped = await stack.wait_for(kept, "hangup")
    assert dropped["reason_code"] == "NORMAL_CLEARING" and "cause_observed" not in dropped
    await stack.wait_for(kept, "call_quality")
    assert assert_complete_and_ordered(stack.recording, gone) == ANSWERED
    names = assert_complete_and_ordered(stack.recording, kept)
    assert names == ANSWERED[:4] + ["get_details"] + ANSWERED[4:]
    assert await stack.licenses_used() == 0


async def restart_freeswitch(stack: Stack, crash: bool) -> tuple[str, str]:
    """
    An answered and a ringing call, then FreeSWITCH stops (cleanly or by crashing) and a
    new one (a new simulator: no channels, a new Core-UUID) takes its address.
    """
    assert stack.proxy is not None and stack.simulator is not None
    answered = await stack.make_call("15550000001")
    ringing = await stack.make_call("15550000009", dial_timeout=60)
    await stack.wait_for(answered, "answered")
    await stack.wait_for(ringing, "ringing")
    assert await stack.licenses_used() == 2
    old = stack.simulator
    stack.simulator = await Simulator(stack.scenarios).start(up_for=0)
    down, up = stack.next_node_down(), stack.next_node_up()
    if crash:
        await old.crash()
    else:
        await old.stop()
    stack.proxy.upstream_port = stack.simulator.port
    await down
    await up
    return answered, ringing


@pytest_twisted.ensureDeferred
async def test_freeswitch_shuts_down_cleanly_and_comes_back(stack: Stack):
    """
    FreeSWITCH shuts down with calls up (it hangs them up with SYSTEM_SHUTDOWN) and comes
    back: each call ends with one hangup carrying that cause, licenses and the node's
    sessions are released, and new calls go through the new FreeSWITCH.
    """
    answered, ringing = await restart_freeswitch(stack, crash=False)
    for call in (answered, ringing):
        hangup = await stack.wait_for(call, "hangup")
        assert hangup["reason_code"] == "SYSTEM_SHUTDOWN", hangup
        assert "cause_observed" not in hangup
        await stack.wait_for(call, "call_quality")
        assert_complete_and_ordered(stack.recording, call)
    assert await stack.licenses_used() == 0
    assert stack.pool.node("fs1").status()["sessions"] == 0
    after = await stack.make_call("15550000001")
    await stack.wait_for(after, "answered")
    assert await stack.licenses_used() == 1


@pytest_twisted.ensureDeferred
async def test_freeswitch_crashes_and_restarts(stack: Stack):
    """
    FreeSWITCH dies without a word and a new one starts: once iradialer reconnects, each
    of the old calls ends with one hangup whose status says FreeSWITCH restarted
    (cause_observed false: nobody saw the cause), and licenses are released.
    """
    answered, ringing = await restart_freeswitch(stack, crash=True)
    for call in (answered, ringing):
        hangup = await stack.wait_for(call, "hangup")
        assert hangup["cause_observed"] is False
        assert "restarted" in hangup["status"], hangup
        await stack.wait_for(call, "call_quality")
        assert_complete_and_ordered(stack.recording, call)
    assert await stack.licenses_used() == 0
    assert stack.pool.node("fs1").status()["sessions"] == 0
    after = await stack.make_call("15550000001")
    await stack.wait_for(after, "answered")


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_iradialer_killed_with_calls_up_and_events_queued(tmp_path: Path):
    """
    iradialer (twistd, a process of its own) is killed with SIGKILL while three calls are
    answered, one rings, and the receiver has refused every event so far.  While it is
    dead one callee hangs up.  Started again on the same store it re-adopts the live calls
    from FreeSWITCH (getdetails and dropcall work on them), counts their licenses again,
    reports the call that ended unseen with one hangup (cause_observed false), and delivers
    every queued event, each call's in order.
    """
    scenarios = tmp_path / "scenarios.toml"
    scenarios.write_text(SCENARIOS)
    simulator = await Simulator(scenarios).start()
    receiver = Receiver()
    receiver.recording.policy = lambda n: 503
    await receiver.up()
    (tmp_path / "sounds").mkdir()
    api = free_port()
    config = tmp_path / "iradialer.toml"
    config.write_text(server_config(tmp_path, simulator.port, api=f"tcp:{api}"))
    base = f"http://127.0.0.1:{api}"
    server = ServerProcess(config, tmp_path / "server.log")
    second: ServerProcess | None = None
    try:
        up = server.line("FreeSWITCH fs1 up")
        server.start()
        await up
        answered = simulator.count("CHANNEL_ANSWER", 3)
        ringing = simulator.count("CHANNEL_PROGRESS", 4)
        calls = []
        for to in ["15550000001"] * 3 + ["15550000009"]:
            code, body = await post(
                base,
                "makecall",
                {
                    "gateway": GATEWAY,
                    "to": to,
                    "from": "15559990000",
                    "event_url": receiver.url,
                    "dial_timeout": 60,
                },
            )
            assert code == 200, body
            calls.append(body["call_uuid"])
        gone, kept, dropped, rings = calls
        await answered
        await ringing
        code, status = await get(base, "status", ADMIN)
        assert status["licenses"]["used"] == 4
        assert status["webhooks"]["outbox_depth"] >= 4
        assert receiver.recording.accepted() == []

        assert await server.kill() == signal.SIGKILL
        simulator.hang_up(gone)
        receiver.recording.policy = lambda n: 200
        second = ServerProcess(config, tmp_path / "server.log")
        up = second.line("FreeSWITCH fs1 up")
        second.start()
        await up

        hangup = await wait_for(receiver.recording, gone, "hangup")
        assert hangup["cause_observed"] is False
        code, status = await get(base, "status", ADMIN)
        assert status["licenses"]["used"] == 3
        code, body = await post(base, "getdetails", {"call_uuid": kept, "event_url": receiver.url})
        assert code == 200 and body["details"]["state"] == "answered", body
        code, body = await post(base, "getdetails", {"call_uuid": rings, "event_url": receiver.url})
        assert code == 200 and body["details"]["state"] == "ringing", body
        for call in (kept, dropped, rings):
            code, body = await post(base, "dropcall", {"call_uuid": call})
            assert code == 200, body
        for call in calls:
            await wait_for(receiver.recording, call, "call_quality")
            names = assert_complete_and_ordered(receiver.recording, call)
            assert names[0] == "originate", names
        for call in (kept, rings):
            await wait_for(receiver.recording, call, "get_details")
        code, status = await get(base, "status", ADMIN)
        assert status["licenses"]["used"] == 0
        assert status["webhooks"]["dead_letters"] == 0
    finally:
        for process in (server, second):
            if process is not None and process.process is not None:
                await process.stop()
        await simulator.stop()
        await receiver.down()


@pytest_twisted.ensureDeferred
async def test_webhook_receiver_down_then_slow(narrow: Stack):
    """
    The receiver is down (connections refused) while calls come and go, for a few seconds
    here and 60 s in the soak, then answers slowly.  Meanwhile the events wait on disk, not
    in memory (the streams held are bounded by tenant_concurrency, 5 here, however many
    calls wait), and afterwards every event of every call arrives, each call's in order,
    none dead.
    """
    stack = narrow
    calls = 300 if SOAK else 20
    outage = 60.0 if SOAK else 3.0
    assert stack.simulator is not None
    await stack.receiver.down()
    ended = stack.simulator.count("CHANNEL_HANGUP_COMPLETE", calls)
    placed = [
        await stack.make_call("15550000008" if i % 2 else "15550000003") for i in range(calls)
    ]
    await ended
    await deferLater(reactor, outage)
    held = stack.webhooks.status()
    assert held["outbox_depth"] >= calls * 4
    assert held["streams_delivering"] <= stack.webhooks.settings.tenant_concurrency
    assert held["dead_letters"] == 0

    stack.receiver.slow(0.1)
    await stack.receiver.up()
    for i, call in enumerate(placed):
        await stack.wait_for(call, "call_quality", timeout=60.0 if not SOAK else 600.0)
        names = assert_complete_and_ordered(stack.recording, call)
        if i % 2:
            assert names == ["originate", "started", "hangup", "call_quality"], names
        else:
            assert names == ANSWERED, names
    assert stack.webhooks.status()["dead_letters"] == 0


FLOOD = """
import os, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + seconds
sent = 0
while time.monotonic() < end:
    try:
        sock.sendto(os.urandom(1 + sent % 1400), ("127.0.0.1", port))
        sent += 1
    except OSError:
        pass
print(sent, flush=True)
"""


class Flooder(ProcessProtocol):
    """A process sending random datagrams to a port for a while; C{sent} once it is done."""

    def __init__(self) -> None:
        self.output = b""
        self.done: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.output += data

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        self.done.callback(int(self.output or b"0"))


async def raw_http(base: str, data: bytes) -> bytes:
    """Send bytes to the API's port as they are; the head of what comes back."""
    host, port = base.removeprefix("http://").split(":")
    received: Deferred[bytes] = Deferred()

    class Raw(Protocol):
        answer = b""

        def connectionMade(self) -> None:  # noqa: N802
            self.transport.write(data)

        def dataReceived(self, chunk: bytes) -> None:  # noqa: N802
            self.answer += chunk
            if b"\r\n\r\n" in self.answer and not received.called:
                received.callback(self.answer)
                self.transport.loseConnection()

        def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
            if not received.called:
                received.callback(self.answer)

    await connectProtocol(TCP4ClientEndpoint(reactor, host, int(port)), Raw())
    return await received.addTimeout(30, reactor)


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_floods_on_the_media_port_and_the_api(stack: Stack):
    """
    While a process floods the UDP media port with random datagrams and the API gets
    garbage (not HTTP), wrong tokens, unknown routes, broken JSON and oversized bodies: each
    bad datagram and request is dropped and counted (status, metrics), calls placed in the
    middle of it still get their CPA decisions (a person LV, a voicemail AM), and the API
    still serves them.
    """
    seconds = 30.0 if SOAK else 4.0
    code, _ = await stack.post(
        "setcpaparams",
        {
            "request_name": "set_cpa_params",
            "tenant_id": "acme",
            "config_name": "amd",
            "analysis": "amd",
            "break_events": "LV,AM",
        },
    )
    assert code == 200
    flooder = Flooder()
    reactor.spawnProcess(
        flooder,
        sys.executable,
        [sys.executable, "-c", FLOOD, str(stack.media.address[1]), str(seconds)],
        env=os.environ,
    )
    person = await stack.make_call("15550000001", enable_cpa="yes", config_name="amd")
    machine = await stack.make_call("15550000002", enable_cpa="yes", config_name="amd")

    garbage = [
        ensureDeferred(raw_http(stack.base, os.urandom(200).replace(b"\n", b"") + b"\r\n\r\n"))
        for _ in range(20)
    ]
    bad = [
        ("getdetails", {"call_uuid": person}, "wrong-token-xx"),
        ("nosuchroute", {}, TOKEN),
        ("dropcall", b"{not json", TOKEN),
        ("playtext", b'{"text": "' + b"x" * (2 << 20) + b'"}', TOKEN),
    ]
    refused = [ensureDeferred(stack.post(*request)) for request in bad * 10]
    for answer in await DeferredList(garbage, fireOnOneErrback=True, consumeErrors=True):
        assert answer[1].startswith(b"HTTP/1.1 400 Bad Request"), answer
    codes = sorted({code for code, _ in (r[1] for r in await DeferredList(refused))})
    assert codes == [400, 401, 404, 413], codes

    found = await stack.wait_for(person, "cpa_detection")
    assert found["event_data"] == "LV", found
    found = await stack.wait_for(machine, "cpa_detection")
    assert found["event_data"] == "AM", found
    code, body = await stack.post(
        "getdetails", {"call_uuid": person, "event_url": stack.receiver.url}
    )
    assert code == 200, body

    sent = await flooder.done
    assert sent > 1000
    # The flooder has stopped, but the socket's receive buffer may still hold its datagrams:
    # compare the counters once the reactor has read them all.
    counted = None
    while True:
        code, status = await stack.get("status", token=ADMIN)
        packets = status["cpa"]["packets"]
        if packets["unknown_source"] == counted:
            break
        counted = packets["unknown_source"]
        await deferLater(reactor, 0.3)
    assert packets["unknown_source"] + (status["cpa"]["receive_buffer_drops"] or 0) >= sent
    scrape = await treq.get(f"{stack.base}/metrics", headers={"Authorization": [f"Bearer {ADMIN}"]})
    metrics = (await scrape.content()).decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    dropped = ("iradialer_media_packets_dropped_total", (("reason", "unknown_source"),))
    assert samples[dropped] == packets["unknown_source"]
    assert "iradialer_api_malformed_requests_total 20.0" in metrics
    for status_code in ("400", "401", "404", "413"):
        assert f'status="{status_code}"' in metrics, status_code


@pytest_twisted.ensureDeferred
async def test_oversized_bodies_are_refused_without_being_kept(stack: Stack):
    """
    A body over MAX_BODY_BYTES, announced by Content-Length or sent chunked without one,
    is read and dropped and the request answered 413, before any authentication or parsing;
    a body just under the limit is read as usual.
    """
    chunk = b"x" * 4096
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    answer = await raw_http(
        stack.base,
        b"POST /api/dropcall HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
    )
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    code, body = await stack.post("dropcall", b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}")
    assert (code, body["statusCode"]) == (413, 413)
    code, body = await stack.post("dropcall", b"{" + b" " * (MAX_BODY_BYTES - 100) + b"}")
    assert (code, body["message"]) == (400, "'call_uuid' is a required property")
