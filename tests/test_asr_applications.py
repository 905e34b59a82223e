"""
The built-in C{http} ASR application: one POST of audio/wav per utterance, the JSON reply
relayed, failures and timeouts reported as ApplicationError.
"""

from __future__ import annotations

import io
import json
import wave

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
    HttpApplication,
    build_applications,
)
from iradialer.asr.segmenter import Utterance
from tests.asr_helpers import CALL

URL = "http://asr.example/recognize"


class Recogniser(Resource):
    isLeaf = True

    def __init__(self, code: int = 200, body: bytes | None = None, hold: bool = False):
        super().__init__()
        self.code = code
        self.body = body
        self.hold = hold
        self.seen: list[tuple[dict[str, str], bytes]] = []

    def render_POST(self, request):
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        audio = request.content.read()
        self.seen.append((headers, audio))
        if self.hold:
            return NOT_DONE_YET
        request.setResponseCode(self.code)
        if self.body is not None:
            return self.body
        return json.dumps({"text": "hello world", "bytes": len(audio)}).encode()


def utterance(number: int = 2) -> Utterance:
    samples = (np.sin(np.arange(4000) / 3) * 3000).astype("<i2")
    return Utterance(number=number, start_ms=1000, end_ms=1400, samples=samples)


def app(resource: Resource, clock: Clock | None = None, timeout: float = 5.0) -> HttpApplication:
    return HttpApplication(URL, timeout, StubTreq(resource), clock or Clock())


@pytest_twisted.ensureDeferred
async def test_posts_the_utterance_as_wav_with_the_calls_identifiers():
    """
    One POST to the configured URL: body a WAV (8 kHz 16-bit mono, the samples), headers
    naming the call, the tenant, the utterance and its duration; the JSON reply is relayed.
    """
    resource = Recogniser()
    reply = await app(resource).recognize(utterance(), CALL)
    ((headers, body),) = resource.seen
    assert reply == {"text": "hello world", "bytes": len(body)}
    assert headers["content-type"] == "audio/wav"
    assert headers["x-iradialer-call-uuid"] == CALL.call_uuid
    assert headers["x-iradialer-tenant"] == "acme"
    assert headers["x-iradialer-utterance"] == "2"
    assert headers["x-iradialer-duration-ms"] == "400"
    with wave.open(io.BytesIO(body)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        assert np.array_equal(np.frombuffer(w.readframes(4000), "<i2"), utterance().samples)


@pytest.mark.parametrize(
    "code, body, message",
    [
        (500, b'{"error": "boom"}', "answered HTTP 500"),
        (200, b"<html>", "did not answer JSON"),
        (200, b"[1, 2]", "JSON that is not an object"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_replies_are_application_errors(code, body, message):
    """A non-2xx status, a reply that is not JSON, or JSON that is not an object."""
    with pytest.raises(ApplicationError, match=message):
        await app(Recogniser(code, body)).recognize(utterance(), CALL)


@pytest_twisted.ensureDeferred
async def test_unreachable_server_is_an_application_error():
    """A connection that cannot be made is an ApplicationError naming the URL."""
    application = HttpApplication("http://127.0.0.1:1/x", 5.0, _Refusing(), Clock())
    with pytest.raises(ApplicationError, match="127.0.0.1:1/x: ConnectionRefusedError"):
        await application.recognize(utterance(), CALL)


class _Refusing:
    def post(self, url, **kwargs):
        from twisted.internet.defer import fail
        from twisted.internet.error import ConnectionRefusedError

        return fail(ConnectionRefusedError())


def test_no_reply_within_the_timeout_is_an_application_timeout():
    """
    A server that never answers: after the configured timeout on the injected clock (and not
    before) the recognition fails with ApplicationTimeout.
    """
    clock = Clock()
    d = app(Recogniser(hold=True), clock, timeout=2.5).recognize(utterance(), CALL)
    outcome = []
    d.addBoth(outcome.append)
    clock.advance(2.4)
    assert outcome == []
    clock.advance(0.2)
    (failure,) = outcome
    assert failure.check(ApplicationTimeout)
    assert "did not answer within 2.5 s" in failure.getErrorMessage()


def test_applications_are_built_from_the_server_configuration():
    """Each [asr.applications.NAME] of type http becomes an HttpApplication with its settings."""
    clock = Clock()
    built = build_applications(
        {"LexConnect": {"type": "http", "url": URL, "timeout": 3.0}}, StubTreq(Resource()), clock
    )
    (application,) = built.values()
    assert isinstance(application, HttpApplication)
    assert (application.url, application.timeout, application.clock) == (URL, 3.0, clock)
