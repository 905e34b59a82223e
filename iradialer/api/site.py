"""
The HTTP site of the API: the Klein app, C{/metrics} for the administrator, and the timing
of every request for the C{iradialer_api_request_seconds} metric.

C{/metrics} is served on the API's own endpoint and needs the admin token
(C{Authorization: Bearer <admin_token>}, as Prometheus' C{authorization} scrape setting
sends it): the metrics carry tenant ids and call volumes, which nobody else may read.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from iradialer.api.app import ApiError, DialerAPI, error_body, write_json
from iradialer.domain.tenants import Principal
from iradialer.metrics import Metrics

METRICS_PATH = b"/metrics"
#: The largest request body read: ten times the largest valid request (a 4,000-character
#: text to speak); anything bigger is answered 413 without being kept.
MAX_BODY_BYTES = 64 * 1024
# The route label of a request for a path no route serves, so scans cannot grow the metric.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AdminOnlyMetrics(Resource):
    """
    The C{prometheus_client} Twisted resource, for the admin token only.  It first runs
    L{Metrics.refresh} here in the reactor thread; the library then renders the registry in
    a thread of the reactor's pool.
    """

    isLeaf = True

    def __init__(self, metrics: Metrics, authenticate: Any) -> None:
        super().__init__()
        self.metrics = metrics
        self._authenticate = authenticate
        # Imported here: the library's module imports (and so installs) the global reactor.
        from prometheus_client.twisted import MetricsResource

        self._exposition = MetricsResource(registry=metrics.registry)

    def render(self, request: IRequest) -> Any:
        try:
            principal: Principal = self._authenticate(request)
        except ApiError as e:
            return write_json(request, e.http_status, error_body(e.http_status, e.message))
        if not principal.is_admin:
            return write_json(
                request, 403, error_body(403, "only the admin token may read metrics")
            )
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return write_json(request, 405, error_body(405, "Method not allowed"))
        self.metrics.refresh()
        return self._exposition.render(request)


class _TooLarge(Resource):
    isLeaf = True

    def render(self, request: IRequest) -> bytes:
        request.setHeader(b"connection", b"close")
        return write_json(
            request, 413, error_body(413, f"request body over {MAX_BODY_BYTES} bytes")
        )


class ApiRequest(Request):
    """
    A request whose body is not kept beyond L{MAX_BODY_BYTES}: the rest of an oversized
    body is read and dropped, and the request is answered 413.
    """

    too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:  # noqa: N802
        if length is not None and length > MAX_BODY_BYTES:
            self.too_large = True
            self.content = io.BytesIO()  # stays empty
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        self._received += len(data)
        if not self.too_large and self._received > MAX_BODY_BYTES:  # chunked, no length
            self.too_large = True
            self.content = io.BytesIO()  # stays empty
        if not self.too_large:
            super().handleContentChunk(data)


class ApiSite(Site):
    """
    The site the API listens with: C{/metrics} beside the Klein app, every request timed,
    bodies over L{MAX_BODY_BYTES} refused, connections that do not speak HTTP counted.
    """

    requestFactory = ApiRequest

    def __init__(self, api: DialerAPI, metrics: Metrics, clock: IReactorTime) -> None:
        super().__init__(api.resource())
        self.displayTracebacks = False
        self.api = api
        self.metrics = metrics
        self.clock = clock
        self._metrics_resource = AdminOnlyMetrics(metrics, api.authenticate)
        self._routes = {rule.rule for rule in api.app.url_map.iter_rules()}
        self._routes.add(METRICS_PATH.decode())

    def buildProtocol(self, addr: Any) -> Any:  # noqa: N802
        protocol = super().buildProtocol(addr)
        channel = getattr(protocol, "_channel", None)
        refuse = getattr(channel, "_respondToBadRequestAndDisconnect", None)
        if refuse is not None:
            counter = self.metrics.api_malformed_requests

            def count_and_refuse() -> None:
                counter.inc()
                refuse()

            channel._respondToBadRequestAndDisconnect = count_and_refuse  # type: ignore[union-attr]
        return protocol

    def getResourceFor(self, request: Any) -> IResource:
        self._time(request)
        if getattr(request, "too_large", False):
            return _TooLarge()
        if request.path == METRICS_PATH:
            request.site = self  # as Site.getResourceFor does, without traversing the app
            request.sitepath = request.prepath[:]
            return self._metrics_resource
        return super().getResourceFor(request)

    def _time(self, request: Request) -> None:
        started = self.clock.seconds()
        path = request.path.decode("utf-8", "replace")
        route = path if path in self._routes else UNMATCHED
        method = request.method.decode("ascii", "replace")
        if method not in _METHODS:
            method = "other"

        def observe(result: object) -> None:
            self.metrics.api_request_seconds.labels(route, method, str(request.code)).observe(
                max(0.0, self.clock.seconds() - started)
            )

        request.notifyFinish().addBoth(observe)
