"""
The HTTP side of a delivery attempt: a Twisted L{Agent} over a persistent connection pool,
the request body, and reading the answer.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IConsumer, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseDone,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer


class AttemptFailed(Exception):
    """
    The receiver did not take the event.

    @ivar reason: for the failure metric: C{timeout}, C{connection}, C{refused} (the
        destination or the tenant), or C{http_3xx}/C{http_4xx}/C{http_5xx}.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def pooled_agent(
    reactor: Any, connections_per_host: int, connect_timeout: float
) -> tuple[Agent, HTTPConnectionPool]:
    """
    An agent keeping up to C{connections_per_host} idle connections to each receiver, that
    never retries a request by itself (a retry is the service's decision) and verifies
    HTTPS certificates; and its pool.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = connections_per_host
    pool.retryAutomatically = False
    agent = Agent.usingEndpointFactory(reactor, CachedEndpoints(reactor, connect_timeout), pool)
    return agent, pool


@implementer(IAgentEndpointFactory)
class CachedEndpoints:
    """
    TCP for C{http}, TLS for C{https}, as L{Agent} does, but one endpoint per destination
    kept (the Agent would build one per request, IDNA-encoding the host each time: a tenth
    of the CPU of a delivery).
    """

    def __init__(self, reactor: Any, connect_timeout: float, size: int = 1024) -> None:
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._policy = BrowserLikePolicyForHTTPS()
        self._size = size
        self._endpoints: OrderedDict[tuple[bytes, bytes, int], IStreamClientEndpoint] = (
            OrderedDict()
        )

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is not None:
            self._endpoints.move_to_end(key)
            return endpoint
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        endpoint = HostnameEndpoint(
            self._reactor, uri.host, uri.port, timeout=self._connect_timeout
        )
        if uri.scheme == b"https":
            creator = self._policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        self._endpoints[key] = endpoint
        while len(self._endpoints) > self._size:
            self._endpoints.popitem(last=False)
        return endpoint


def read_response(response: IResponse) -> Deferred[None]:
    """
    Succeed on a 2xx; otherwise fail with the status and the start of the body.  The body is
    read to the end either way (keeping at most 200 bytes), so the connection can be reused.
    """
    code = response.code
    body = _Body(keep=0 if 200 <= code < 300 else 200)
    response.deliverBody(body)
    if 200 <= code < 300:
        # The receiver took the event; a body cut short changes nothing.
        return body.done.addCallbacks(lambda _: None, lambda _: None)

    def failed(_: object) -> None:
        text = bytes(body.kept).decode("utf-8", "replace").strip()
        message = f"HTTP {code}" + (f": {text}" if text else "")
        raise AttemptFailed(message, f"http_{min(max(code // 100, 1), 5)}xx")

    return body.done.addBoth(failed)


class _Body(Protocol):
    """
    Reads a response body to its end, keeping its first C{keep} bytes.  Cancelling C{done}
    (a timeout) drops the connection.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.kept = bytearray()
        self.done: Deferred[None] = Deferred(self._cancel)

    def _cancel(self, _: Deferred[None]) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if len(self.kept) < self.keep:
            self.kept += data[: self.keep - len(self.kept)]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)


@implementer(IBodyProducer)
class BytesProducer:
    """
    A request body already in memory, written at once.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass
