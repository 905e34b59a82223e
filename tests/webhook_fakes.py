"""
Deterministic surroundings for the webhook service: a recording receiver served in memory
(treq.testing's RequestTraversalAgent, the agent behind StubTreq), a fixed DNS, a
ManualStore and a task.Clock, pumped by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from random import Random
from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from iradialer.config import TenantConfig, WebhookConfig
from iradialer.domain.tenants import TenantDirectory
from iradialer.metrics import Metrics
from iradialer.store import ManualStore
from iradialer.webhooks import WebhookService

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z

ACME = TenantConfig(
    id="acme",
    token="acme-token-1",
    licenses=10,
    gateways=("sofia/gateway/sim",),
    webhook_secrets=("acme-secret",),
    fallback_url="http://hooks.example.com/fallback",
)
GLOBEX = TenantConfig(
    id="globex",
    token="globex-token-1",
    licenses=10,
    gateways=("sofia/gateway/sim",),
    webhook_secrets=("globex-new", "globex-old"),
    allow_private_webhooks=True,
)

SETTINGS = WebhookConfig(
    timeout=10.0,
    attempts=5,
    backoff_initial=2.0,
    backoff_multiplier=4.0,
    backoff_max=300.0,
    jitter=0.0,
    concurrency=10,
    tenant_concurrency=5,
)

DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "dual.example.com": ["93.184.216.34", "2606:2800:220:1::1"],
    "internal.example.com": ["10.1.2.3"],
    "sneaky.example.com": ["93.184.216.34", "127.0.0.1"],
    "nowhere.example.com": [],
}


@dataclass
class Received:
    path: str
    headers: Any
    body: bytes
    at: float
    code: int | None = None

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    def header(self, name: str) -> str:
        return self.headers.getRawHeaders(name)[0]


class Receiver(Resource):
    """
    Records every POST; C{answer(received)} gives the status code, or C{None} to leave the
    request hanging until L{release}.
    """

    isLeaf = True

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.requests: list[Received] = []
        self.answer: Callable[[Received], int | None] = lambda received: 200
        self.hanging: list[tuple[Request, Received]] = []

    def render_POST(self, request: Request) -> Any:
        received = Received(
            path=request.path.decode(),
            headers=request.requestHeaders,
            body=request.content.read(),
            at=self.clock.seconds(),
        )
        self.requests.append(received)
        code = self.answer(received)
        if code is None:
            entry = (request, received)
            self.hanging.append(entry)
            request.notifyFinish().addErrback(lambda _: self.hanging.remove(entry))
            return NOT_DONE_YET
        received.code = code
        request.setResponseCode(code)
        if 300 <= code < 400:
            request.setHeader(b"location", b"http://127.0.0.1/elsewhere")
        return b"" if code < 300 else b"receiver says no"

    def release(self, code: int = 200) -> None:
        hanging, self.hanging = self.hanging, []
        for request, received in hanging:
            received.code = code
            request.setResponseCode(code)
            request.finish()

    def accepted(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [r.event for r in self.requests if r.code == 200 and r.path == path]


@implementer(IHostnameResolver)
class FakeResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> IResolutionReceiver:
        self.lookups.append(hostName)
        resolutionReceiver.resolutionBegan(None)
        for address in self.table.get(hostName, []):
            kind = IPv6Address if ":" in address else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", address, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolutionReceiver


class Harness:
    """
    A webhook service with everything around it in memory; L{pump} runs the store's work
    and the HTTP exchanges until nothing moves.
    """

    def __init__(
        self,
        settings: WebhookConfig = SETTINGS,
        tenants: Iterable[TenantConfig] = (ACME, GLOBEX),
        store: ManualStore | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if clock is None:
            clock = Clock()
            clock.advance(START)
        self.clock = clock
        self.store = store or ManualStore()
        self.receiver = Receiver(self.clock)
        self.agent = RequestTraversalAgent(self.receiver)
        self.resolver = FakeResolver(dict(DNS))
        self.directory = TenantDirectory(tenants, "admin-token-1")
        self.service = WebhookService(
            self.store,
            self.directory,
            self.clock,
            self.agent,
            settings,
            resolver=self.resolver,
            random=Random(1),
            metrics=metrics,
        )

    def start(self) -> Harness:
        self.service.startService()
        self.pump()
        return self

    def pump(self) -> None:
        while True:
            ran = self.store.flush()
            self.agent.flush()
            ran += self.store.flush()
            if not ran:
                return

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pump()

    def send(
        self,
        call: str | None,
        event: str = "answered",
        tenant: str = "acme",
        url: str = "http://hooks.example.com/hook",
        **fields: Any,
    ) -> list[Any]:
        """
        Queue one event; the returned list gets the event (or the failure) once committed.
        """
        result: list[Any] = []
        d = self.service.send(tenant, call, url, event, f"{event} status", **fields)
        d.addBoth(result.append)
        return result

    def emit(self, call: str | None, **kwargs: Any) -> Any:
        """
        Queue one event and pump; return the event (or the failure).
        """
        result = self.send(call, **kwargs)
        self.pump()
        return result[0]

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.store.conn.execute(query, args).fetchall()


def hmac_hex(secret: str, timestamp: str, body: bytes) -> str:
    signed = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
