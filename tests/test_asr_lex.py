"""
The C{lex} ASR application: Amazon Lex V2 RecognizeUtterance, checked against a local
stand-in that reads the request as Lex would (path, content types, body, AWS Signature
Version 4 over what arrived) and answers with Lex's gzip + base64 headers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from iradialer.asr.applications import (
    ApplicationError,
    ApplicationTimeout,
    LexApplication,
    build_applications,
)
from iradialer.asr.segmenter import Utterance
from iradialer.aws import pack_header, sign_v4, unpack_header
from tests.asr_helpers import CALL

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
SETTINGS = {
    "type": "lex",
    "region": "eu-west-2",
    "bot_id": "BOT0123456",
    "bot_alias_id": "TSTALIASID",
    "locale_id": "en_GB",
    "access_key_id": "AKIDEXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "endpoint": None,
    "timeout": 4.0,
}
PATH = (
    f"/bots/BOT0123456/botAliases/TSTALIASID/botLocales/en_GB/sessions/{CALL.call_uuid}/utterance"
)


class FakeLex(Resource):
    """Answers RecognizeUtterance; keeps what it received and whether the signature held."""

    isLeaf = True

    def __init__(self, code: int = 200, headers: dict[str, str] | None = None, body=b""):
        super().__init__()
        self.code = code
        self.headers = headers if headers is not None else reply_headers()
        self.body = body
        self.hold = False
        self.seen: list[dict] = []

    def render_POST(self, request):
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        body = request.content.read()
        url = f"https://{headers['host']}{request.uri.decode()}"
        signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
        again = sign_v4(
            "POST",
            url,
            {name: headers[name] for name in signed if name not in ("host", "x-amz-date")},
            body,
            access_key=SETTINGS["access_key_id"],
            secret_key=SETTINGS["secret_access_key"],
            region="eu-west-2",
            service="lex",
            now=datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
        )
        self.seen.append(
            {
                "path": request.path.decode(),
                "headers": headers,
                "body": body,
                "signed": signed,
                "signature_valid": again["Authorization"] == headers["authorization"],
            }
        )
        if self.hold:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return self.body


def reply_headers() -> dict[str, str]:
    return {
        "x-amz-lex-input-transcript": pack_header("book a table for two"),
        "x-amz-lex-interpretations": pack_header(
            [{"intent": {"name": "BookTable", "state": "InProgress"}, "nluConfidence": 0.91}]
        ),
        "x-amz-lex-messages": pack_header([{"content": "For what time?"}]),
        "x-amz-lex-session-state": pack_header({"dialogAction": {"type": "ElicitSlot"}}),
        "x-amz-lex-session-id": CALL.call_uuid,
        "content-type": "text/plain; charset=utf-8",
    }


def utterance() -> Utterance:
    samples = (np.sin(np.arange(4000) / 3) * 3000).astype("<i2")
    return Utterance(number=3, start_ms=1000, end_ms=1400, samples=samples)


def lex(resource: FakeLex, clock: Clock | None = None) -> LexApplication:
    if clock is None:
        clock = Clock()
        clock.advance(NOW.timestamp())
    return LexApplication(SETTINGS, StubTreq(resource), clock)


@pytest_twisted.ensureDeferred
async def test_utterance_goes_to_recognize_utterance_signed_and_the_reply_is_decoded():
    """
    POST to the bot's session (the call uuid) in the region's runtime endpoint, the samples
    as 8 kHz little-endian PCM, text wanted back, the call named in request attributes, a
    Signature Version 4 (service lex) that holds over what arrived; Lex's gzip + base64
    headers come back as plain JSON.
    """
    resource = FakeLex()
    reply = await lex(resource).recognize(utterance(), CALL)
    (seen,) = resource.seen
    assert seen["path"] == PATH
    assert seen["headers"]["host"] == "runtime-v2-lex.eu-west-2.amazonaws.com"
    assert seen["headers"]["content-type"] == (
        "audio/lpcm; sample-rate=8000; sample-size-bits=16; channel-count=1; is-big-endian=false"
    )
    assert seen["headers"]["response-content-type"] == "text/plain; charset=utf-8"
    assert seen["body"] == utterance().samples.astype("<i2").tobytes()
    assert unpack_header(seen["headers"]["x-amz-lex-request-attributes"]) == {
        "iradialer_call_uuid": CALL.call_uuid,
        "iradialer_tenant": "acme",
        "iradialer_utterance": "3",
    }
    assert seen["headers"]["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/eu-west-2/lex/aws4_request, "
    )
    assert {"content-type", "host", "x-amz-date", "x-amz-lex-request-attributes"} <= set(
        seen["signed"]
    )
    assert seen["signature_valid"]
    assert reply == {
        "input_transcript": "book a table for two",
        "interpretations": [
            {"intent": {"name": "BookTable", "state": "InProgress"}, "nluConfidence": 0.91}
        ],
        "messages": [{"content": "For what time?"}],
        "session_state": {"dialogAction": {"type": "ElicitSlot"}},
        "session_id": CALL.call_uuid,
    }


@pytest.mark.parametrize(
    "code, headers, body, message",
    [
        (
            400,
            {"x-amzn-errortype": "ResourceNotFoundException:http://internal.amazon.com/"},
            b'{"message": "Bot BOT0123456 not found"}',
            "HTTP 400: ResourceNotFoundException: Bot BOT0123456 not found",
        ),
        (503, {}, b"Service Unavailable", "HTTP 503: Service Unavailable"),
        (200, {"x-amz-lex-messages": "not base64!"}, b"", "unreadable x-amz-lex-messages"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_refusals_and_unreadable_replies_are_application_errors(code, headers, body, message):
    """Lex's error type and message are kept; a header that is not gzip + base64 is refused."""
    with pytest.raises(ApplicationError, match=message):
        await lex(FakeLex(code, headers, body)).recognize(utterance(), CALL)


def test_no_answer_within_the_timeout_is_an_application_timeout():
    clock = Clock()
    clock.advance(NOW.timestamp())
    resource = FakeLex()
    resource.hold = True
    outcome: list = []
    lex(resource, clock).recognize(utterance(), CALL).addBoth(outcome.append)
    clock.advance(3.9)
    assert outcome == []
    clock.advance(0.2)
    (failure,) = outcome
    assert failure.check(ApplicationTimeout)
    assert "Amazon Lex did not answer within 4 s" in failure.getErrorMessage()


def test_lex_applications_are_built_from_their_settings():
    """type lex in [asr.applications.NAME] makes a LexApplication on the region's endpoint."""
    built = build_applications({"booking": SETTINGS}, StubTreq(Resource()), Clock())
    (application,) = built.values()
    assert isinstance(application, LexApplication)
    assert application.url(CALL) == f"https://runtime-v2-lex.eu-west-2.amazonaws.com{PATH}"
    assert application.timeout == 4.0
