"""
Text-to-speech through Amazon Polly: request signing and the synthesized-file cache.
"""

from __future__ import annotations

import json
import wave
from datetime import UTC, datetime

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from iradialer.aws import sign_v4
from iradialer.domain.errors import DialerError
from iradialer.tts import Polly, PollySettings

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_signature_matches_aws_published_example():
    """The GET Object example of AWS's Signature Version 4 documentation, byte for byte."""
    headers = sign_v4(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {
            "Range": "bytes=0-9",
            "x-amz-content-sha256": EMPTY_SHA256,
        },
        b"",
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        service="s3",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["Authorization"].endswith(
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in headers["Authorization"]


class FakePolly(Resource):
    """Answers SynthesizeSpeech with 8 kHz PCM, recording what it was asked."""

    isLeaf = True

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.requests: list[tuple[dict, dict]] = []
        self.status = status

    def render_POST(self, request):
        body = json.loads(request.content.read())
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        self.requests.append((body, headers))
        request.setResponseCode(self.status)
        if self.status != 200:
            return json.dumps(
                {"message": "The security token included in the request is invalid."}
            ).encode()
        return b"\x01\x00" * 1600


def make_polly(tmp_path, resource):
    settings = PollySettings(
        "eu-west-1", "AKIDTEST", "secret", tmp_path / "cache", endpoint="https://polly.test"
    )
    clock = Clock()
    clock.advance(1_800_000_000)
    return Polly(settings, StubTreq(resource), clock)


@pytest_twisted.ensureDeferred
async def test_polly_synthesizes_once_and_caches(tmp_path):
    """The first request is signed and fetched; the same text and voice later is the same file."""
    fake = FakePolly()
    polly = make_polly(tmp_path, fake)
    path = await polly.synthesize("Your appointment is tomorrow", "Joanna")
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (
            8000,
            1,
            2,
            1600,
        )
    body, headers = fake.requests[0]
    assert body == {
        "OutputFormat": "pcm",
        "SampleRate": "8000",
        "Text": "Your appointment is tomorrow",
        "TextType": "text",
        "VoiceId": "Joanna",
    }
    assert headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDTEST/20270115/eu-west-1/polly/aws4_request"
    )
    assert await polly.synthesize("Your appointment is tomorrow", "Joanna") == path
    assert len(fake.requests) == 1
    assert await polly.synthesize("Your appointment is tomorrow", "Matthew") != path


@pytest_twisted.ensureDeferred
async def test_polly_refusal_is_a_play_error(tmp_path):
    polly = make_polly(tmp_path, FakePolly(status=403))
    with pytest.raises(DialerError) as caught:
        await polly.synthesize("hello", "Joanna")
    assert caught.value.status == 106 and "security token" in caught.value.message
    assert not list((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True
