"""
ASR applications: where utterances go to be recognised.

An application is anything with C{recognize(utterance, call) -> Deferred[dict]} (the
L{AsrApplication} protocol): it gets one utterance (8 kHz 16-bit mono audio and its place in
the call) and fires with the recogniser's reply as a JSON object, or fails with
L{ApplicationError} (L{ApplicationTimeout} when it gave up waiting).  It must time out on its
own: the session waits for every reply before it reports C{asr_done}.

Applications are named in the server configuration (C{[asr.applications.NAME]}, whose
C{type} picks the class from L{APPLICATION_TYPES}); C{setasrparams} refers to them by name.
Built in: C{http} (L{HttpApplication}).  To add one (Amazon Lex, a gRPC recogniser, ...):
write a class with C{recognize}, a C{from_settings(settings, http_client, clock)} factory,
register it in L{APPLICATION_TYPES}, and accept its keys in C{iradialer/config.py}.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from iradialer.asr.segmenter import Utterance

#: Replies larger than this are refused (a recogniser's JSON is a few kilobytes).
MAX_REPLY_BYTES = 1 << 20


@dataclass(frozen=True)
class CallInfo:
    """What an application may know of the call an utterance comes from."""

    call_uuid: str
    tenant_id: str
    config_name: str = ""


class ApplicationError(Exception):
    """The application could not recognise an utterance; the message says why."""


class ApplicationTimeout(ApplicationError):
    """The application did not answer within its timeout."""


class AsrApplication(Protocol):
    def recognize(self, utterance: Utterance, call: CallInfo) -> Deferred[dict[str, Any]]: ...


class HttpApplication:
    """
    POSTs each utterance as C{audio/wav} to C{url} and relays the JSON object it answers.

    Headers name the call: C{X-Iradialer-Call-Uuid}, C{X-Iradialer-Tenant},
    C{X-Iradialer-Utterance} (1, 2, ... within the session), C{X-Iradialer-Duration-Ms}
    (the speech, without pre- and post-roll).  A reply other than 2xx with a JSON object, or
    none within C{timeout} seconds (on C{clock}), is an L{ApplicationError}.

    @param http_client: a treq-like client (C{treq}, C{treq.testing.StubTreq},
        C{treq.client.HTTPClient}).
    """

    log = Logger()

    def __init__(self, url: str, timeout: float, http_client: Any, clock: IReactorTime) -> None:
        self.url = url
        self.timeout = timeout
        self.http_client = http_client
        self.clock = clock

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], http_client: Any, clock: IReactorTime
    ) -> HttpApplication:
        return cls(settings["url"], float(settings.get("timeout", 10.0)), http_client, clock)

    def recognize(self, utterance: Utterance, call: CallInfo) -> Deferred[dict[str, Any]]:
        d = Deferred.fromCoroutine(self._post(utterance, call))
        expired = []

        def expire() -> None:
            expired.append(True)
            d.cancel()  # aborts the request; whatever failure that makes, it is a timeout

        timer = self.clock.callLater(self.timeout, expire)

        def settle(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            if expired:
                raise ApplicationTimeout(f"{self.url} did not answer within {self.timeout:g} s")
            return result

        d.addBoth(settle)
        return d

    async def _post(self, utterance: Utterance, call: CallInfo) -> dict[str, Any]:
        headers = {
            "Content-Type": "audio/wav",
            "X-Iradialer-Call-Uuid": call.call_uuid,
            "X-Iradialer-Tenant": call.tenant_id,
            "X-Iradialer-Utterance": str(utterance.number),
            "X-Iradialer-Duration-Ms": str(utterance.duration_ms),
        }
        try:
            response = await self.http_client.post(self.url, data=utterance.wav(), headers=headers)
            body = await response.content()
        except CancelledError:
            raise
        except Exception as e:
            raise ApplicationError(f"{self.url}: {e.__class__.__name__}: {e}") from None
        if not 200 <= response.code < 300:
            raise ApplicationError(f"{self.url} answered HTTP {response.code}")
        if len(body) > MAX_REPLY_BYTES:
            raise ApplicationError(f"{self.url} answered more than {MAX_REPLY_BYTES} bytes")
        try:
            reply = json.loads(body)
        except ValueError:
            raise ApplicationError(f"{self.url} did not answer JSON") from None
        if not isinstance(reply, dict):
            raise ApplicationError(f"{self.url} answered JSON that is not an object")
        return reply


ApplicationFactory = Callable[[Mapping[str, Any], Any, IReactorTime], AsrApplication]

#: C{type} in C{[asr.applications.NAME]} -> factory(settings, http_client, clock).
APPLICATION_TYPES: dict[str, ApplicationFactory] = {"http": HttpApplication.from_settings}


def build_applications(
    configured: Mapping[str, Mapping[str, Any]], http_client: Any, clock: IReactorTime
) -> dict[str, AsrApplication]:
    """
    One application per C{[asr.applications.NAME]} (C{Config.asr_applications}).
    """
    return {
        name: APPLICATION_TYPES[settings["type"]](settings, http_client, clock)
        for name, settings in configured.items()
    }
