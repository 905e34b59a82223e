"""
Crash safety: a process running the real store and webhook service is killed with SIGKILL
while events are queued and some are in flight; a new process on the same store delivers
every event, each call's in order.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.web.server import Site

from tests.webhook_receiver import RecordingReceiver, collapse_repeats

DRIVER = Path(__file__).resolve().parent / "webhook_driver.py"
CALLS = 25
EVENTS = 8


class Driver(ProcessProtocol):
    """The driver process: its output lines, and Deferreds for the lines awaited."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.output = b""
        self.errors = b""
        self._waiting: dict[str, Deferred[str]] = {}
        self.ended: Deferred[int | None] = Deferred()

    def wait_for(self, prefix: str) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        for line in self.lines:
            if line.startswith(prefix):
                d.callback(line)
                return d
        self._waiting[prefix] = d
        return d.addTimeout(60, reactor)

    def outReceived(self, data: bytes) -> None:
        self.output += data
        *complete, self.output = self.output.split(b"\n")
        for raw in complete:
            line = raw.decode()
            self.lines.append(line)
            for prefix in list(self._waiting):
                if line.startswith(prefix):
                    self._waiting.pop(prefix).callback(line)

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def processEnded(self, reason) -> None:
        self.ended.callback(getattr(reason.value, "signal", None))


def spawn(*args: str) -> tuple[Driver, object]:
    driver = Driver()
    process = reactor.spawnProcess(
        driver,
        sys.executable,
        [sys.executable, str(DRIVER), *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return driver, process


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_sigkill_with_events_queued_loses_nothing(tmp_path):
    """
    The first process queues 200 events (25 calls x 8); the receiver accepts 40 requests and
    then leaves the rest unanswered; the process is killed (SIGKILL) with most events queued
    and some in flight.  A second process on the same store file delivers all 200, every
    call's in sequence order (an event whose 2xx was lost with the process may repeat, right
    after itself), and its outbox ends empty.
    """
    receiver = RecordingReceiver(lambda n: 200 if n < 40 else None)
    port = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/hook"
    store = tmp_path / "store.sqlite"
    second = None
    try:
        first, process = spawn(str(store), url, "--calls", str(CALLS), "--events", str(EVENTS))
        assert await first.wait_for("queued") == f"queued {CALLS * EVENTS}", first.errors
        await receiver.when(
            lambda: len(receiver.accepted()) == 40 and len(receiver.arrivals) > 40
        ).addTimeout(60, reactor)
        process.signalProcess("KILL")
        assert await first.ended == signal.SIGKILL
        left = sqlite3.connect(store).execute("SELECT COUNT(*) FROM webhook_outbox").fetchone()
        assert 0 < left[0] <= CALLS * EVENTS - 40 + 8

        receiver.policy = lambda n: 200
        second, process = spawn(str(store), url)
        await second.wait_for("empty")
        assert receiver.accepted_ids() == {e["event_id"] for e in receiver.accepted()}
        assert len(receiver.accepted_ids()) == CALLS * EVENTS
        expected = list(range(1, EVENTS + 1))
        for call, sequences in receiver.per_call().items():
            assert collapse_repeats(sequences) == expected, call
        for event in receiver.accepted():
            assert event["n"] == event["sequence"] - 1
        process.signalProcess("TERM")
        await second.ended
        conn = sqlite3.connect(store)
        assert conn.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM webhook_dead_letters").fetchone() == (0,)
    finally:
        if second is not None and not second.ended.called:
            process.signalProcess("KILL")
            await second.ended
        await port.stopListening()
