"""
The real store and webhook service in a process of their own, for the crash test (and to
try delivery by hand):

    python tests/webhook_driver.py STORE URL [--calls N --events M]

With C{--calls}, queues N*M events (event n of every call, then n+1...) for URL and prints
C{queued <count>} once all are committed.  Then it delivers what the store holds, printing
C{empty} whenever the outbox becomes empty, until it is stopped (SIGTERM) or killed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twisted.internet.defer import DeferredList
from twisted.internet.task import LoopingCall

from iradialer.config import TenantConfig, WebhookConfig
from iradialer.domain.tenants import TenantDirectory
from iradialer.store import Store
from iradialer.webhooks import WebhookService

SETTINGS = WebhookConfig(
    timeout=2.0,
    attempts=1000,
    backoff_initial=0.05,
    backoff_multiplier=2.0,
    backoff_max=0.25,
    jitter=0.2,
    concurrency=8,
    tenant_concurrency=8,
)
TENANT = TenantConfig(
    id="acme",
    token="acme-token-1",
    licenses=10,
    gateways=(),
    webhook_secrets=("acme-secret",),
    allow_private_webhooks=True,
)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("url")
    parser.add_argument("--calls", type=int, default=0)
    parser.add_argument("--events", type=int, default=0)
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    store = Store(args.store, reactor=reactor)
    service = WebhookService(
        store, TenantDirectory([TENANT], "admin-token-1"), reactor, settings=SETTINGS
    )
    store.startService()
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.addSystemEventTrigger("before", "shutdown", store.stopService)

    if args.calls:
        sends = [
            service.send("acme", f"call-{c}", args.url, "progress", "step", n=n)
            for n in range(args.events)
            for c in range(args.calls)
        ]
        queued = DeferredList(sends, fireOnOneErrback=True, consumeErrors=True)
        queued.addCallback(lambda _: say(f"queued {len(sends)}"))

    was_empty = [True]

    def report_empty() -> None:
        empty = service.status()["outbox_depth"] == 0 and not service.status()["in_flight"]
        if empty and not was_empty[0]:
            say("empty")
        was_empty[0] = empty

    LoopingCall(report_empty).start(0.05)
    say("started")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
