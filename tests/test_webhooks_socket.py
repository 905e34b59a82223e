"""
The webhook service end to end on real sockets (127.0.0.1, port 0) with the real store and
the real HTTP client (a Twisted Agent over a persistent connection pool): a receiver that
refuses connections for a while, then answers 503 for a while, then accepts gets every
event, each call's exactly in order, over a few reused connections.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import globalLogPublisher
from twisted.web.server import Site

from iradialer.domain.tenants import TenantDirectory
from iradialer.store import Store
from iradialer.webhooks import WebhookService
from tests.webhook_driver import SETTINGS, TENANT
from tests.webhook_receiver import RecordingReceiver

CALLS = 20
EVENTS = 10


def failed_attempts(count: int) -> Deferred[None]:
    """Fire once the webhook service has logged C{count} failed attempts."""
    seen: list[dict] = []
    d: Deferred[None] = Deferred()

    def observe(event: dict) -> None:
        if "attempt" in event and event.get("log_namespace", "").startswith("iradialer.webhooks"):
            seen.append(event)
            if len(seen) == count:
                globalLogPublisher.removeObserver(observe)
                d.callback(None)

    globalLogPublisher.addObserver(observe)
    return d


@pytest_twisted.ensureDeferred
async def test_refusing_then_accepting_receiver_gets_every_event_in_order(tmp_path):
    """
    Connections are refused at first, then the first 30 requests get 503, then 200: all
    200 events of 20 concurrent calls arrive, and each call's accepted events are exactly
    sequence 1..10 in order (posted never out of order either).  The 230 requests share at
    most tenant_concurrency connections.
    """
    receiver = RecordingReceiver(lambda n: 503 if n < 30 else 200)
    site = Site(receiver)
    connections = []
    build = site.buildProtocol
    site.buildProtocol = lambda address: connections.append(address) or build(address)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    number = port.getHost().port
    await port.stopListening()

    store = Store(tmp_path / "store.sqlite", reactor=reactor)
    store.startService()
    service = WebhookService(
        store, TenantDirectory([TENANT], "admin-token-1"), reactor, settings=SETTINGS
    )
    service.startService()
    refused = failed_attempts(20)
    port = None
    try:
        url = f"http://127.0.0.1:{number}/hook"
        sends = [
            service.send("acme", f"call-{c}", url, "progress", "step", n=n)
            for n in range(EVENTS)
            for c in range(CALLS)
        ]
        await DeferredList(sends, fireOnOneErrback=True, consumeErrors=True)
        await refused.addTimeout(30, reactor)
        assert receiver.arrivals == []
        port = reactor.listenTCP(number, site, interface="127.0.0.1")
        await receiver.when(lambda: len(receiver.accepted_ids()) == CALLS * EVENTS).addTimeout(
            60, reactor
        )
        expected = list(range(1, EVENTS + 1))
        assert receiver.per_call() == {f"call-{c}": expected for c in range(CALLS)}
        for call, posted in receiver.per_call(accepted_only=False).items():
            assert posted == sorted(posted), call
        assert len([a for a in receiver.arrivals if a.code == 503]) == 30
        assert len(receiver.arrivals) == 230 and len(connections) <= SETTINGS.tenant_concurrency
        status = service.status()
        assert status["failures"] >= 50 and status["dead_letters"] == 0
    finally:
        await service.stopService()
        await store.stopService()
        if port is not None:
            await port.stopListening()
