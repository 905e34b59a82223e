"""
The Klein application: authentication, JSON in and out, and the contract's error bodies.

State lives on a L{DialerAPI} instance; its collaborators are passed in, so tests build one
with fakes and drive it through C{treq.testing.StubTreq(api.app.resource())}.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from iradialer.api import dashboard, schemas
from iradialer.config import Config, ConfigError, TenantConfig
from iradialer.domain.errors import DialerError, Status
from iradialer.domain.tenants import LicenseLedger, Principal, TenantDirectory
from iradialer.freeswitch.node import NodeDown
from iradialer.protocols.esl import ConnectionClosed
from iradialer.status import CallRecorder, StatusBoard

#: Seconds a client is told to wait (Retry-After) when FreeSWITCH cannot be reached.
RETRY_WHEN_UNREACHABLE = 2.0


class ApiError(Exception):
    """
    An error answered with the contract's body; C{status_code} is the Appendix B number.
    """

    def __init__(self, http_status: int, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.status_code = status_code


def error_body(http_status: int, message: str, status_code: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "statusCode": http_status,
        "error": HTTPStatus(http_status).phrase,
        "message": message,
    }
    if status_code is not None:
        body["status_code"] = status_code
    return body


def write_json(request: IRequest, http_status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(http_status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def ok(**fields: Any) -> dict[str, Any]:
    return {"statusCode": 200, "message": "OK", **fields}


def read_json_object(request: IRequest) -> dict[str, Any]:
    """
    The request body as a JSON object, or the contract's 400 with status_code 134.
    """
    raw = request.content.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Incorrectly formed json request", Status.MALFORMED_JSON) from None
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "Incorrectly formed json request: the body must be a JSON object",
            Status.MALFORMED_JSON,
        )
    return body


class DialerAPI:
    """
    The HTTP API of the seed and the contract.

    @param directory: who a token belongs to.
    @param ledger: licenses in use.
    @param clock: for uptime.
    @param current_config: the configuration in force (it changes on reload).
    @param reload: re-read the configuration file; raises L{ConfigError}.
    @param status_board: what C{/api/status} reports (one of its own when not given).
    """

    app = Klein()
    log = Logger()

    def __init__(
        self,
        *,
        directory: TenantDirectory,
        ledger: LicenseLedger,
        clock: IReactorTime,
        current_config: Callable[[], Config],
        reload: Callable[[], object],
        dialer: Any = None,
        status_board: StatusBoard | None = None,
    ) -> None:
        self.directory = directory
        self.ledger = ledger
        self.clock = clock
        self.current_config = current_config
        self._reload = reload
        self.dialer = dialer
        self.status_board = status_board or StatusBoard(
            directory=directory,
            ledger=ledger,
            clock=clock,
            current_config=current_config,
            recorder=CallRecorder(),
        )

    def resource(self):
        return self.app.resource()

    # -- authentication -------------------------------------------------------------------

    def authenticate(self, request: IRequest, allow_basic: bool = False) -> Principal:
        """
        The principal of a C{Bearer} token, or (for browsers) of HTTP Basic credentials whose
        password is the token.
        """
        raw = request.getHeader(b"authorization")
        if raw is None:
            raise ApiError(401, "missing authorization header")
        scheme, _, credentials = raw.decode("latin-1").strip().partition(" ")
        token: str | None = None
        if scheme.lower() == "bearer":
            token = credentials.strip()
        elif scheme.lower() == "basic" and allow_basic:
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            token = decoded.partition(":")[2]
        principal = self.directory.authenticate(token) if token else None
        if principal is None:
            raise ApiError(401, "invalid auth token")
        return principal

    def tenant_of(self, request: IRequest) -> TenantConfig:
        """The tenant a call-control request acts for (the admin token has none)."""
        principal = self.authenticate(request)
        if principal.tenant is None:
            raise ApiError(403, "the admin token acts for no tenant; use a tenant's token")
        return principal.tenant

    async def _call_control(self, request: IRequest, name: str) -> bytes:
        tenant = self.tenant_of(request)
        body = schemas.validate(name, read_json_object(request))
        if self.dialer is None:
            raise ApiError(503, "call control is not running on this server")
        try:
            result = await OPERATIONS[name](self.dialer, tenant, body)
        except (NodeDown, ConnectionClosed) as e:
            # FreeSWITCH is out of reach for now (reconnection and reconciliation follow):
            # nothing was done, or nobody knows; either way the client may try again.
            raise DialerError(
                Status.DIAL_FAILED,
                f"The call's FreeSWITCH node is not reachable now ({e}); try again",
                503,
                retry_after=RETRY_WHEN_UNREACHABLE,
            ) from None
        return write_json(request, 200, ok(**result))

    # -- errors ---------------------------------------------------------------------------

    @app.handle_errors(ApiError)
    def _api_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, ApiError)
        return write_json(
            request,
            error.http_status,
            error_body(error.http_status, error.message, error.status_code),
        )

    @app.handle_errors(DialerError)
    def _dialer_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, DialerError)
        if error.retry_after is not None:
            seconds = max(1, math.ceil(error.retry_after))  # whole seconds, never 0
            request.setHeader(b"retry-after", str(seconds).encode("ascii"))
        return write_json(
            request, error.http_status, error_body(error.http_status, error.message, error.status)
        )

    @app.handle_errors(NotFound)
    def _not_found(self, request: IRequest, failure: Failure) -> bytes:
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")
        return write_json(request, 404, error_body(404, f"Route {method}:{path} not found"))

    @app.handle_errors(MethodNotAllowed)
    def _method_not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        assert isinstance(error, MethodNotAllowed)
        allowed = error.valid_methods or []
        request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
        return write_json(request, 405, error_body(405, "Method not allowed"))

    @app.handle_errors(Exception)
    def _bug(self, request: IRequest, failure: Failure) -> bytes:
        self.log.failure(
            "Unexpected error answering {method} {path}",
            failure,
            method=request.method,
            path=request.path,
        )
        return write_json(request, 500, error_body(500, "Internal error; it has been logged"))

    # -- server status ------------------------------------------------------------------

    @app.route("/api/status", methods=["GET"])
    def status(self, request: IRequest) -> bytes:
        """
        JSON for programs; for a browser the dashboard (issue 8), which also takes HTTP Basic
        credentials.  See L{iradialer.status} and L{iradialer.api.dashboard}.
        """
        request.setHeader(b"vary", b"Accept, Authorization")
        browser = dashboard.wants_html(request)
        try:
            principal = self.authenticate(request, allow_basic=True)
        except ApiError:
            if browser:
                dashboard.challenge(request)
            raise
        if browser:
            return dashboard.page(request)
        return write_json(request, 200, ok(**self.status_board.snapshot(principal)))

    @app.route("/api/license", methods=["GET"])
    def license(self, request: IRequest) -> bytes:
        """
        For load-balancer health checks: 200 while this server can use licenses, else 400.
        """
        state = self.status_board.license_state()
        if state.usable:
            return write_json(request, 200, ok(licenses=state.licenses))
        assert state.reason is not None
        return write_json(request, 400, error_body(400, state.reason, state.status))

    @app.route("/api/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest) -> bytes:
        self.authenticate(request)
        return write_json(request, 200, schemas.openapi())

    for _name in [n for n, e in schemas.ENDPOINTS.items() if e.method == "POST" and n != "reload"]:

        def _handler(self: DialerAPI, request: IRequest, _name: str = _name) -> Any:
            return self._call_control(request, _name)

        _handler.__name__ = f"post_{_name}"
        app.route(f"/api/{_name}", methods=["POST"], endpoint=_handler.__name__)(_handler)
    del _name, _handler

    @app.route("/api/reload", methods=["POST"])
    def reload(self, request: IRequest) -> bytes:
        principal = self.authenticate(request)
        if not principal.is_admin:
            raise ApiError(403, "only the admin token may reload the configuration")
        try:
            self._reload()
        except ConfigError as e:
            raise ApiError(400, f"configuration not reloaded: {e}", Status.INVALID_REQUEST) from e
        return write_json(request, 200, ok(tenants=sorted(t.id for t in self.directory)))


def _member(action: str) -> Callable[..., Any]:
    return lambda dialer, tenant, body: dialer.conferences.member_action(tenant, action, body)


def _play(kind: str) -> Callable[..., Any]:
    return lambda dialer, tenant, body: dialer.playbacks.play(tenant, kind, body)


# Each call-control endpoint and the dialer operation it runs (with the validated body).
OPERATIONS: dict[str, Callable[[Any, TenantConfig, dict[str, Any]], Any]] = {
    "setcpaparams": lambda d, t, b: d.analysis.set_params(t, b),
    "makecall": lambda d, t, b: d.make_call(t, b),
    "bridgecall": lambda d, t, b: d.conferences.bridge(t, b),
    "playfile": _play("file"),
    "playtext": _play("tts"),
    "playurl": _play("url"),
    "stopplay": lambda d, t, b: d.playbacks.stop(t, b),
    "dropcall": lambda d, t, b: d.drop(t, b),
    "mute": _member("mute"),
    "unmute": _member("unmute"),
    "deaf": _member("deaf"),
    "undeaf": _member("undeaf"),
    "hold": _member("hold"),
    "unhold": _member("unhold"),
    "getdetails": lambda d, t, b: d.details(t, b),
    "getsimpledtmf": lambda d, t, b: d.digits.simple(t, b),
    "getvaliddtmf": lambda d, t, b: d.digits.valid(t, b),
    "parkcall": lambda d, t, b: d.conferences.park(t, b),
    "multiconf": lambda d, t, b: d.conferences.multiconf(t, b),
    "senddtmf": lambda d, t, b: d.digits.send(t, b),
    "setasrparams": lambda d, t, b: d.asr.set_params(t, b),
    "startasr": lambda d, t, b: d.asr.start(t, b),
    "stopasr": lambda d, t, b: d.asr.stop(t, b),
}
