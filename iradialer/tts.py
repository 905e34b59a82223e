"""
Text-to-speech engines that synthesize to a cached file FreeSWITCH then plays.

flite needs none of this: FreeSWITCH speaks it itself (C{speak flite|slt|text}).  An engine
here has one method, C{synthesize(text, voice) -> Deferred[Path]}, and is named in the
C{[tts.<name>]} section of the configuration.  Built in: C{polly} (Amazon Polly's
SynthesizeSpeech, signed with AWS Signature Version 4, no SDK needed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from twisted.logger import Logger

from iradialer.domain.errors import DialerError, Status


class TextToSpeech(Protocol):
    async def synthesize(self, text: str, voice: str) -> Path: ...


def sign_v4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """
    The headers to add to a request for AWS Signature Version 4: C{x-amz-date} and
    C{Authorization}.  Every header given (and C{host}) is signed.
    """
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {k.lower(): " ".join(v.strip().split()) for k, v in headers.items()}
    signed.setdefault("host", parts.netloc)
    signed["x-amz-date"] = amz_date
    names = sorted(signed)
    query = "&".join(
        sorted(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)
        )
    )
    canonical = "\n".join(
        [
            method.upper(),
            quote(parts.path or "/", safe="/-_.~"),
            query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }


def wav_bytes(pcm: bytes, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV file around C{pcm}."""
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        len(pcm),
    )
    return header + pcm


@dataclass(frozen=True)
class PollySettings:
    region: str
    access_key_id: str
    secret_access_key: str
    cache_dir: Path
    endpoint: str | None = None

    @property
    def url(self) -> str:
        base = self.endpoint or f"https://polly.{self.region}.amazonaws.com"
        return base.rstrip("/") + "/v1/speech"


class Polly:
    """
    Amazon Polly: 8 kHz PCM from SynthesizeSpeech, kept as WAV files named by a hash of the
    voice and text, so a prompt is synthesized (and paid for) once.
    """

    log = Logger()

    def __init__(self, settings: PollySettings, http: Any, clock: Any) -> None:
        self.settings = settings
        self.http = http
        self.clock = clock

    async def synthesize(self, text: str, voice: str) -> Path:
        digest = hashlib.sha256(f"{voice}\x00{text}".encode()).hexdigest()[:32]
        path = self.settings.cache_dir / f"polly-{digest}.wav"
        if path.exists():
            return path
        body = json.dumps(
            {
                "OutputFormat": "pcm",
                "SampleRate": "8000",
                "Text": text,
                "TextType": "text",
                "VoiceId": voice,
            }
        ).encode()
        headers = {"content-type": "application/json"}
        headers.update(
            sign_v4(
                "POST",
                self.settings.url,
                headers,
                body,
                access_key=self.settings.access_key_id,
                secret_key=self.settings.secret_access_key,
                region=self.settings.region,
                service="polly",
                now=datetime.fromtimestamp(self.clock.seconds(), UTC),
            )
        )
        try:
            response = await self.http.post(self.settings.url, data=body, headers=headers)
            content = await response.content()
        except Exception as e:
            raise DialerError(Status.PLAY_MEDIA_ERROR, f"polly could not be reached: {e}") from e
        if response.code != 200:
            try:
                reason = json.loads(content).get("message", "")
            except ValueError:
                reason = content[:200].decode("utf-8", "replace")
            raise DialerError(
                Status.PLAY_MEDIA_ERROR,
                f"polly refused to synthesize (HTTP {response.code}): {reason}",
            )
        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(wav_bytes(content))
        partial.replace(path)
        self.log.info(
            "Polly synthesized {chars} characters as {path}", chars=len(text), path=str(path)
        )
        return path
