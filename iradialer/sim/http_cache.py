"""
C{http_cache://<url>}, as FreeSWITCH's mod_http_cache does it: the recording is fetched
with an HTTP GET (redirects followed, at most 10; an HTTP error status is a failure, as
curl's C{FAILONERROR}), kept by URL, and a second play of the same URL uses the copy.
While it downloads, the channel's application waits before PLAYBACK_START; a download
that fails is FILE NOT FOUND.

The simulator plays no caller audio, so only how long each recording plays is kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, RedirectAgent, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from iradialer.sim.audio import PlaybackError, wav_ms

KEEP = 1000  # recordings remembered
# mod_http_cache's defaults (connect-timeout, download-timeout), in seconds.
CONNECT_TIMEOUT = 300.0
DOWNLOAD_TIMEOUT = 300.0
MAX_BYTES = 64 * 1024 * 1024


class HttpCache:
    """
    @param reactor: what fetches (C{connectTCP}, C{callLater}).
    @param get: C{url -> Deferred[bytes]} in place of a real HTTP GET (tests).
    """

    def __init__(self, reactor: Any, get: Callable[[str], Deferred[bytes]] | None = None) -> None:
        self._reactor = reactor
        self._agent = RedirectAgent(Agent(reactor, connectTimeout=CONNECT_TIMEOUT), 10)
        self._get = get or self._http_get
        self.lengths: OrderedDict[str, int] = OrderedDict()
        self._downloading: dict[str, list[Deferred[int]]] = {}

    def length_ms(self, url: str) -> Deferred[int]:
        """
        How long the recording at C{url} plays (fetched once; callers asking meanwhile
        wait for the same download).  Fails with L{PlaybackError}.
        """
        if url in self.lengths:
            self.lengths.move_to_end(url)
            return succeed(self.lengths[url])
        d: Deferred[int] = Deferred()
        waiting = self._downloading.get(url)
        if waiting is not None:
            waiting.append(d)
            return d
        self._downloading[url] = [d]
        fetch: Deferred[int] = maybeDeferred(self._get, url).addCallback(wav_ms)
        fetch.addBoth(self._fetched, url)
        return d

    def _fetched(self, result: int | Failure, url: str) -> None:
        waiting = self._downloading.pop(url)
        if isinstance(result, Failure):
            problem = PlaybackError(f"{url}: {result.getErrorMessage() or result.value!r}")
            for d in waiting:
                d.errback(problem)
            return
        self.lengths[url] = result
        while len(self.lengths) > KEEP:
            self.lengths.popitem(last=False)
        for d in waiting:
            d.callback(result)

    def _http_get(self, url: str) -> Deferred[bytes]:
        headers = Headers({b"User-Agent": [b"freeswitch-http-cache/1.0"]})
        d = self._agent.request(b"GET", url.encode("ascii"), headers)
        d.addCallback(_body)
        return d.addTimeout(DOWNLOAD_TIMEOUT, self._reactor)


def _body(response: Any) -> Deferred[bytes]:
    """The body of a response with a success status (curl's FAILONERROR)."""
    if response.code >= 400:
        response.deliverBody(Protocol())
        raise PlaybackError(f"HTTP {response.code}")
    collector = _Collect()
    response.deliverBody(collector)
    return collector.done


class _Collect(Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: Deferred[bytes] = Deferred(lambda _: self._stop())

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.size += len(data)
        if self.size > MAX_BYTES:
            self._stop()
        elif not self.done.called:
            self.chunks.append(data)

    def _stop(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        if self.done.called:
            return
        if self.size > MAX_BYTES:
            self.done.errback(PlaybackError(f"larger than {MAX_BYTES} bytes"))
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)
