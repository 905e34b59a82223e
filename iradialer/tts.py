"""
Text-to-speech engines that synthesize to a cached file FreeSWITCH then plays.

flite needs none of this: FreeSWITCH speaks it itself (C{speak flite|slt|text}).  An engine
here has one method, C{synthesize(text, voice) -> Deferred[Path]}, and is named in the
C{[tts.<name>]} section of the configuration.  Built in: C{polly} (Amazon Polly's
SynthesizeSpeech, signed with AWS Signature Version 4, no SDK needed).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from twisted.logger import Logger

from iradialer.aws import sign_v4
from iradialer.domain.errors import DialerError, Status


class TextToSpeech(Protocol):
    async def synthesize(self, text: str, voice: str) -> Path: ...


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
