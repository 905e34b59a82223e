#!/usr/bin/env python3
"""
Webhook delivery throughput and latency, side by side with a bare treq POST loop.

    .venv/bin/python scripts/bench_webhooks.py [--events 20000] [--calls 500] [--rate 2000]
        [--seconds 10]

A receiver runs in a process of its own on 127.0.0.1 (a minimal HTTP/1.1 keep-alive
responder answering 204), and measures, for every POST, the time from the event's
C{timestamp} (set when the sender created it) to its arrival, and whether each call's
sequence numbers arrive in order.  Four runs, in one process, against the same receiver:

 - burst: all events at once; events/s is the sustained delivery rate until the last one
   arrived (for iradialer: until the outbox is empty);
 - paced: C{--rate} events/s for C{--seconds}, spread over C{--calls} calls; the latency
   percentiles are enqueue-to-delivered at that load.

iradialer runs with the real store (a file in a temporary directory, WAL, synchronous=FULL)
and the default [webhooks] settings; the bare loop uses the same treq client setup with
C{tenant_concurrency} requests at a time in the burst.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall, deferLater, react
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from iradialer.config import TenantConfig, WebhookConfig
from iradialer.domain.tenants import TenantDirectory
from iradialer.store import Store
from iradialer.webhooks import WebhookService
from iradialer.webhooks.http import BytesProducer, pooled_agent, read_response

# -- the receiver (its own process) --------------------------------------------------------


def run_receiver() -> None:
    from twisted.internet import reactor

    latencies: list[float] = []
    last_sequence: dict[str, int] = {}
    out_of_order = [0]

    def record(body: bytes) -> None:
        now = time.time()
        event = json.loads(body)
        stamp = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        latencies.append(now - stamp.replace(tzinfo=UTC).timestamp())
        key = event["call_uuid"]
        if event["sequence"] <= last_sequence.get(key, 0):
            out_of_order[0] += 1
        last_sequence[key] = event["sequence"]

    def stats() -> bytes:
        summary = {"count": len(latencies), "out_of_order": out_of_order[0], "ms": latencies[:]}
        latencies[:] = []
        last_sequence.clear()
        out_of_order[0] = 0
        return json.dumps(summary).encode()

    class Responder(Protocol):
        def connectionMade(self) -> None:
            self.buffer = b""

        def dataReceived(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                length = 0
                for line in head.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                if head.startswith(b"get /stats"):
                    reply = stats()
                    self.transport.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply)
                    )
                else:
                    record(body)
                    self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    port = reactor.listenTCP(0, Factory.forProtocol(Responder), interface="127.0.0.1")
    sys.stdout.write(f"{port.getHost().port}\n")
    sys.stdout.flush()
    reactor.run()


# -- the senders ---------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def event_body(call: int, sequence: int) -> bytes:
    """An event like the service's, for the bare loops."""
    stamp = datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds")
    return json.dumps(
        {
            "event": "progress",
            "status": "step",
            "call_uuid": f"call-{call}",
            "tenant_id": "bench",
            "event_id": f"{call}-{sequence}",
            "sequence": sequence,
            "timestamp": stamp.replace("+00:00", "Z"),
            "n": sequence,
        },
        separators=(",", ":"),
    ).encode()


class BareLoop:
    """
    POSTs each event once (no store, no retry, no signature), C{width} requests at a time.
    In a burst each call's events go one after another; paced, every event is posted as
    soon as there is room, so one call's events may overtake each other.
    """

    def __init__(self, post: Callable[[bytes], Deferred[Any]], width: int) -> None:
        self.post = post
        self.semaphore = DeferredSemaphore(width)
        self.sequences: dict[int, int] = defaultdict(int)
        self.outstanding = 0

    def emit(self, call: int) -> Deferred[Any]:
        self.sequences[call] += 1
        self.outstanding += 1
        d = self.semaphore.run(self.post, event_body(call, self.sequences[call]))
        d.addBoth(self._done)
        return d

    def _done(self, result: object) -> None:
        self.outstanding -= 1

    async def burst(self, events: int, calls: int) -> None:
        async def one_call(call: int) -> None:
            for _ in range(events // calls):
                await self.emit(call)

        await gatherResults([Deferred.fromCoroutine(one_call(c)) for c in range(calls)])

    def idle(self) -> bool:
        return self.outstanding == 0


class Iradialer:
    """Events through the webhook service (store, ordering, signing, retries)."""

    def __init__(self, service: WebhookService, url: str) -> None:
        self.service = service
        self.url = url
        self.target = 0

    def emit(self, call: int) -> None:
        self.target += 1
        self.service.send("bench", f"call-{call}", self.url, "progress", "step", n=self.target)

    async def burst(self, events: int, calls: int) -> None:
        for _ in range(events // calls):
            for call in range(calls):
                self.emit(call)

    def idle(self) -> bool:
        return self.service.delivered >= self.target and self.service.outbox_depth == 0


def treq_post(client: HTTPClient, url: str) -> Callable[[bytes], Deferred[Any]]:
    def post(body: bytes) -> Deferred[Any]:
        d = client.post(url, data=body, headers={"Content-Type": "application/json"})
        return d.addCallback(lambda response: response.content())

    return post


def agent_post(agent: Agent, url: str) -> Callable[[bytes], Deferred[Any]]:
    headers = Headers({b"Content-Type": [b"application/json"]})
    target = url.encode("ascii")

    def post(body: bytes) -> Deferred[Any]:
        d = agent.request(b"POST", target, headers, BytesProducer(body))
        return d.addCallback(read_response)

    return post


async def paced(reactor: Any, emit: Callable[[int], Any], rate: int, seconds: float, calls: int):
    """Call C{emit(call)} C{rate} times a second for C{seconds}, calls in turn."""
    total = int(rate * seconds)
    sent = [0]
    start = time.perf_counter()

    def step() -> None:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent[0] < due:
            emit(sent[0] % calls)
            sent[0] += 1
        if sent[0] >= total:
            loop.stop()

    loop = LoopingCall(step)
    loop.clock = reactor
    await loop.start(0.005)


async def until(reactor: Any, condition: Callable[[], bool], timeout: float = 600.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out waiting for deliveries")
        await deferLater(reactor, 0.002, lambda: None)


class Receiver:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--receiver"], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.base = f"http://127.0.0.1:{int(self.process.stdout.readline())}"
        self.url = self.base + "/hook"

    async def stats(self, client: HTTPClient) -> dict[str, Any]:
        response = await client.get(self.base + "/stats")
        return json.loads(await response.content())  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


async def measure(
    reactor: Any,
    args: argparse.Namespace,
    name: str,
    sender: BareLoop | Iradialer,
    paced_run: bool,
    receiver: Receiver,
    client: HTTPClient,
    store: Store | None = None,
) -> dict[str, Any]:
    """
    Send a burst or a paced run, wait until every event was delivered, and collect the
    figures: rate from first event to last delivery, latencies and order seen by the
    receiver, CPU of this process per event.
    """
    cpu, start = process_cpu(), time.perf_counter()
    jobs = (store.transactions, store.jobs) if store else (0, 0)
    if paced_run:
        await paced(reactor, sender.emit, args.rate, args.seconds, args.calls)
    else:
        await sender.burst(args.events, args.calls)
    await until(reactor, sender.idle)
    elapsed, cpu = time.perf_counter() - start, process_cpu() - cpu
    stats = await receiver.stats(client)
    count = stats["count"]
    return {
        "name": f"{name}, {args.rate}/s" if paced_run else f"{name}, burst",
        "rate": count / elapsed,
        "ms": sorted(x * 1000 for x in stats["ms"]),
        "count": count,
        "out_of_order": stats["out_of_order"],
        "cpu_ms": cpu / max(count, 1) * 1000,
        "store": (store.transactions - jobs[0], store.jobs - jobs[1]) if store else None,
    }


async def bench(reactor: Any, args: argparse.Namespace) -> None:
    receiver = Receiver()
    settings = WebhookConfig()
    rows = []
    try:
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = settings.tenant_concurrency
        pool.retryAutomatically = False
        client = HTTPClient(Agent(reactor, pool=pool))
        await receiver.stats(client)
        agent, agent_pool = pooled_agent(reactor, settings.tenant_concurrency, settings.timeout)
        for name, post in (
            ("bare treq", treq_post(client, receiver.url)),
            ("bare Agent", agent_post(agent, receiver.url)),
        ):
            for paced_run in (False, True):
                loop = BareLoop(post, settings.tenant_concurrency)
                rows.append(await measure(reactor, args, name, loop, paced_run, receiver, client))

        with tempfile.TemporaryDirectory() as directory:
            store = Store(Path(directory) / "bench.sqlite", reactor=reactor)
            tenant = TenantConfig(
                id="bench",
                token="bench-token-1",
                licenses=1,
                gateways=(),
                webhook_secrets=("bench-secret",),
                allow_private_webhooks=True,
            )
            service = WebhookService(
                store, TenantDirectory([tenant], "admin-token-1"), reactor, settings=settings
            )
            store.startService()
            service.startService()
            try:
                sender = Iradialer(service, receiver.url)
                for paced_run in (False, True):
                    rows.append(
                        await measure(
                            reactor, args, "iradialer", sender, paced_run, receiver, client, store
                        )
                    )
            finally:
                await service.stopService()
                await store.stopService()
        await pool.closeCachedConnections()
        await agent_pool.closeCachedConnections()
    finally:
        receiver.stop()
    report(rows, args)


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"webhook benchmark: burst = {args.events} events of {args.calls} calls at once; "
        f"paced = {args.rate}/s for {args.seconds:g} s over {args.calls} calls"
    )
    print(
        f"{'':22} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'events':>7} "
        f"{'misordered':>10} {'cpu ms/ev':>9}  store txns/jobs"
    )
    for row in rows:
        ms = row["ms"]
        store = f"{row['store'][0]}/{row['store'][1]}" if row["store"] else "-"
        print(
            f"{row['name']:22} {row['rate']:9.0f} {percentile(ms, 0.5):8.1f} "
            f"{percentile(ms, 0.99):8.1f} {(ms[-1] if ms else float('nan')):8.1f} "
            f"{row['count']:7d} {row['out_of_order']:10d} {row['cpu_ms']:9.3f}  {store}"
        )
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
        f"{os.getloadavg()[0]:.2f}; latency = event timestamp to arrival at the receiver "
        "(burst latencies are queueing: everything is sent at once)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.receiver:
        run_receiver()
        return
    react(lambda reactor: ensureDeferred(bench(reactor, args)))


if __name__ == "__main__":
    main()
