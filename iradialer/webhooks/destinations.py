"""
Where webhooks may go: C{http}/C{https} URLs whose host resolves only to public addresses,
unless the tenant is allowed private ones (C{allow_private_webhooks}).

Refusing loopback, link-local and private destinations keeps a tenant from using the server
to reach the machine's own services or its internal network (server-side request forgery).
The check runs when an C{event_url} is given and again before each delivery attempt, since
DNS answers change.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IHostnameResolver, IReactorTime, IResolutionReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from iradialer.domain.errors import DialerError, Status

MAX_URL_LENGTH = 2048
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _refuse(message: str) -> DialerError:
    return DialerError(Status.INVALID_REQUEST, message)


def url_host(url: object) -> str:
    """
    The host of a well-formed C{http}/C{https} URL.

    @raise DialerError: (128) the URL is malformed, of another scheme, or carries credentials.
    """
    if not isinstance(url, str) or not url:
        raise _refuse("event_url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"event_url is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii():
        raise _refuse(
            "event_url must be ASCII: percent-encode the path, write the host in punycode"
        )
    if _SPACE_OR_CONTROL.search(url):
        raise _refuse("event_url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise _refuse(f"event_url {url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise _refuse(f"event_url must be an http or https URL, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise _refuse(f"event_url {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise _refuse("event_url must not carry credentials")
    return parts.hostname


def address_refusal(address: str) -> str | None:
    """
    Why C{address} is not a public destination (C{"loopback"}, C{"private"}, ...), or
    C{None} when it is one.
    """
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


@implementer(IResolutionReceiver)
class _Collect:
    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.done: Deferred[list[str]] = Deferred()

    def resolutionBegan(self, resolutionInProgress: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


class DestinationPolicy:
    """
    Checks destinations, remembering each host's verdict for C{cache_seconds} (at most
    C{cache_size} hosts) so that deliveries do not resolve a name per event.

    @param resolver: an L{IHostnameResolver}; by default the reactor's C{nameResolver}
        (looked up on first use).
    """

    def __init__(
        self,
        clock: IReactorTime,
        resolver: IHostnameResolver | None = None,
        timeout: float = 10.0,
        cache_seconds: float = 60.0,
        cache_size: int = 1024,
    ) -> None:
        self._clock = clock
        self._resolver = resolver
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._verdicts: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def check(self, url: str, allow_private: bool) -> Deferred[None]:
        """
        Fire with C{None} when C{url} may be used; fail with L{DialerError} (128) saying why
        not.
        """
        try:
            host = url_host(url)
        except DialerError:
            return fail()
        if allow_private:
            return succeed(None)
        if _ip_literal(host):
            reason = address_refusal(host)
            return succeed(None) if reason is None else fail(_refuse(_refusal(host, host, reason)))
        cached = self._verdicts.get(host)
        if cached is not None and cached[0] > self._clock.seconds():
            return succeed(None) if cached[1] is None else fail(_refuse(cached[1]))
        d: Deferred[Any] = self._resolve(host)
        d.addCallbacks(self._judge, self._unresolved, callbackArgs=(host,), errbackArgs=(host,))
        return d

    def _resolve(self, host: str) -> Deferred[list[str]]:
        resolver = self._resolver
        if resolver is None:
            resolver = self._resolver = self._clock.nameResolver  # type: ignore[attr-defined]
        collect = _Collect()
        resolver.resolveHostName(collect, host, 0)
        return collect.done.addTimeout(self._timeout, self._clock)

    def _judge(self, addresses: list[str], host: str) -> None:
        verdict: str | None = None
        if not addresses:
            verdict = f"event_url host {host} does not resolve"
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                verdict = _refusal(host, address, reason)
                break
        self._verdicts[host] = (self._clock.seconds() + self._cache_seconds, verdict)
        self._verdicts.move_to_end(host)
        while len(self._verdicts) > self._cache_size:
            self._verdicts.popitem(last=False)
        if verdict is not None:
            raise _refuse(verdict)

    def _unresolved(self, failure: Failure, host: str) -> None:
        raise _refuse(f"event_url host {host} could not be resolved: {failure.getErrorMessage()}")


def _refusal(host: str, address: str, reason: str) -> str:
    where = host if host == address else f"{host} ({address})"
    return (
        f"event_url {where} is a {reason} address; this tenant may only send webhooks "
        "to public addresses (allow_private_webhooks)"
    )
