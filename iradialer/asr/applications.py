"""
ASR applications: where utterances go to be recognised.

An application is anything with C{recognize(utterance, call) -> Deferred[dict]} (the
L{AsrApplication} protocol): it gets one utterance (8 kHz 16-bit mono audio and its place in
the call) and fires with the recogniser's reply as a JSON object, or fails with
L{ApplicationError} (L{ApplicationTimeout} when it gave up waiting).  It must time out on its
own: the session waits for every reply before it reports C{asr_done}.

Applications are named in the server configuration (C{[asr.applications.NAME]}, whose
C{type} picks the class from L{APPLICATION_TYPES}); C{setasrparams} refers to them by name.
Built in: C{http} (L{HttpApplication}) and C{lex} (L{LexApplication}, Amazon Lex V2).  To
add one (a gRPC recogniser, ...): write a class with C{recognize}, a C{from_settings(settings,
http_client, clock)} factory, register it in L{APPLICATION_TYPES}, and accept its keys in
C{iradialer/config.py}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from iradialer.asr.segmenter import Utterance
from iradialer.aws import pack_header, sign_v4, unpack_header

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
        return _within(self._post(utterance, call), self.timeout, self.clock, self.url)

    async def _post(self, utterance: Utterance, call: CallInfo) -> dict[str, Any]:
        headers = {
            "Content-Type": "audio/wav",
            "X-Iradialer-Call-Uuid": call.call_uuid,
            "X-Iradialer-Tenant": call.tenant_id,
            "X-Iradialer-Utterance": str(utterance.number),
            "X-Iradialer-Duration-Ms": str(utterance.duration_ms),
        }
        response, body = await _send(self.http_client, self.url, utterance.wav(), headers, self.url)
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


class LexApplication:
    """
    Amazon Lex V2: each utterance to C{RecognizeUtterance} as 8 kHz 16-bit PCM, signed with
    AWS Signature Version 4 (no SDK).  The call's uuid is the Lex session, so one call's
    utterances are one conversation with the bot.

    The reply relayed is Lex's answer with its gzip + base64 headers decoded:
    C{input_transcript}, C{interpretations}, C{messages}, C{session_state},
    C{request_attributes} (those Lex sent) and C{session_id}.  An HTTP error is an
    L{ApplicationError} with Lex's error type and message; no answer within C{timeout}
    seconds is an L{ApplicationTimeout}.
    """

    #: What RecognizeUtterance takes for 8 kHz PCM (little-endian, as Utterance.samples).
    CONTENT_TYPE = (
        "audio/lpcm; sample-rate=8000; sample-size-bits=16; channel-count=1; is-big-endian=false"
    )
    #: The reply as text only: no speech is synthesized (nor paid for).
    RESPONSE_CONTENT_TYPE = "text/plain; charset=utf-8"
    _REPLY_HEADERS = {
        "x-amz-lex-input-transcript": "input_transcript",
        "x-amz-lex-interpretations": "interpretations",
        "x-amz-lex-messages": "messages",
        "x-amz-lex-session-state": "session_state",
        "x-amz-lex-request-attributes": "request_attributes",
    }

    def __init__(self, settings: Mapping[str, Any], http_client: Any, clock: IReactorTime) -> None:
        self.settings = settings
        self.timeout = float(settings.get("timeout", 10.0))
        self.http_client = http_client
        self.clock = clock
        base = (
            settings.get("endpoint") or f"https://runtime-v2-lex.{settings['region']}.amazonaws.com"
        )
        self.base = (
            f"{base.rstrip('/')}/bots/{settings['bot_id']}/botAliases/{settings['bot_alias_id']}"
            f"/botLocales/{settings['locale_id']}/sessions"
        )

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], http_client: Any, clock: IReactorTime
    ) -> LexApplication:
        return cls(settings, http_client, clock)

    def url(self, call: CallInfo) -> str:
        # A call uuid is hex digits and hyphens: nothing in the path needs escaping (which
        # Signature Version 4 would otherwise want done twice).
        if not re.fullmatch(r"[0-9A-Za-z-]{2,100}", call.call_uuid):
            raise ApplicationError(f"{call.call_uuid!r} cannot be a Lex session id")
        return f"{self.base}/{call.call_uuid}/utterance"

    def recognize(self, utterance: Utterance, call: CallInfo) -> Deferred[dict[str, Any]]:
        return _within(self._post(utterance, call), self.timeout, self.clock, "Amazon Lex")

    async def _post(self, utterance: Utterance, call: CallInfo) -> dict[str, Any]:
        url = self.url(call)
        body = np.asarray(utterance.samples, dtype="<i2").tobytes()
        headers = {
            "content-type": self.CONTENT_TYPE,
            "response-content-type": self.RESPONSE_CONTENT_TYPE,
            "x-amz-lex-request-attributes": pack_header(
                {
                    "iradialer_call_uuid": call.call_uuid,
                    "iradialer_tenant": call.tenant_id,
                    "iradialer_utterance": str(utterance.number),
                }
            ),
        }
        headers.update(
            sign_v4(
                "POST",
                url,
                headers,
                body,
                access_key=self.settings["access_key_id"],
                secret_key=self.settings["secret_access_key"],
                region=self.settings["region"],
                service="lex",
                now=datetime.fromtimestamp(self.clock.seconds(), UTC),
            )
        )
        response, content = await _send(self.http_client, url, body, headers, "Amazon Lex")
        if not 200 <= response.code < 300:
            raise ApplicationError(
                f"Amazon Lex answered HTTP {response.code}: {_aws_error(response, content)}"
            )
        reply: dict[str, Any] = {}
        for header, key in self._REPLY_HEADERS.items():
            value = response.headers.getRawHeaders(header)
            if value:
                try:
                    reply[key] = unpack_header(value[0])
                except ValueError as e:
                    raise ApplicationError(f"Amazon Lex sent an unreadable {header}: {e}") from None
        session = response.headers.getRawHeaders("x-amz-lex-session-id")
        if session:
            reply["session_id"] = session[0]
        return reply


async def _send(
    http_client: Any, url: str, data: bytes, headers: dict[str, str], who: str
) -> tuple[Any, bytes]:
    """
    POST C{data} and read the whole reply; a request that cannot be made or read is an
    L{ApplicationError} naming C{who} (cancelling, on a timeout, stays a cancellation).
    """
    try:
        response = await http_client.post(url, data=data, headers=headers)
        return response, await response.content()
    except CancelledError:
        raise
    except Exception as e:
        raise ApplicationError(f"{who}: {e.__class__.__name__}: {e}") from None


def _aws_error(response: Any, content: bytes) -> str:
    """AWS's error type and message, from its headers and JSON body, as far as given."""
    kind = (response.headers.getRawHeaders("x-amzn-errortype") or [""])[0].partition(":")[0]
    try:
        message = json.loads(content).get("message", "")
    except (ValueError, AttributeError):
        message = content[:200].decode("utf-8", "replace")
    return ": ".join(part for part in (kind, message) if part) or "no reason given"


def _within(work: Any, timeout: float, clock: IReactorTime, who: str) -> Deferred[dict[str, Any]]:
    """
    The result of coroutine C{work}, cancelled (its request aborted) and failed with
    L{ApplicationTimeout} when it takes more than C{timeout} seconds on C{clock}.
    """
    d: Deferred[dict[str, Any]] = Deferred.fromCoroutine(work)
    expired = []

    def expire() -> None:
        expired.append(True)
        d.cancel()  # aborts the request; whatever failure that makes, it is a timeout

    timer = clock.callLater(timeout, expire)

    def settle(result: Any) -> Any:
        if timer.active():
            timer.cancel()
        if expired:
            raise ApplicationTimeout(f"{who} did not answer within {timeout:g} s")
        return result

    d.addBoth(settle)
    return d


ApplicationFactory = Callable[[Mapping[str, Any], Any, IReactorTime], AsrApplication]

#: C{type} in C{[asr.applications.NAME]} -> factory(settings, http_client, clock).
APPLICATION_TYPES: dict[str, ApplicationFactory] = {
    "http": HttpApplication.from_settings,
    "lex": LexApplication.from_settings,
}


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
