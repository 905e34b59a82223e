"""
Shared by the ASR tests: real recorded phrases, a scripted application, feeding a session.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from iradialer.asr.applications import CallInfo
from iradialer.asr.corpus import Labelled
from iradialer.asr.segmenter import Segmenter, Utterance
from iradialer.asr.vad import VoiceDetector

#: Asterisk prompts that are one phrase each (no pause inside longer than 300 ms).
PHRASES = (
    "hello-world",
    "vm-intro",
    "tt-weasels",
    "auth-thankyou",
    "tt-somethingwrong",
    "vm-goodbye",
)

CALL = CallInfo(call_uuid="0b6f2a0e-5a57-4c1e-9a51-8f0d4a1c2b3d", tenant_id="acme")


class ScriptedApplication:
    """An application whose replies the test gives, in any order."""

    def __init__(self) -> None:
        self.requests: list[tuple[Utterance, CallInfo, Deferred[dict[str, Any]]]] = []

    def recognize(self, utterance: Utterance, call: CallInfo) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        self.requests.append((utterance, call, d))
        return d


class Recorder:
    """An C{on_event} that keeps (name, fields) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, fields: dict[str, Any]) -> None:
        self.events.append((name, fields))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [fields for n, fields in self.events if n == name]


def feed(session: Any, audio: Labelled, clock: Clock | None = None, start_ms: int = 0) -> None:
    """Every frame of C{audio}, the clock moving 20 ms per frame as on a live call."""
    for frame, ms in audio.frames():
        session.feed(frame, start_ms + ms)
        if clock is not None:
            clock.advance(0.02)


def covers(outer: tuple[int, int], inner: tuple[int, int]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


def segment(audio: Labelled, aggr_mode: int = 1, settings=None, finish=None) -> list:
    """The segmenter's events for C{audio} through a fresh detector."""
    detector = VoiceDetector(aggr_mode)
    segmenter = Segmenter(settings)
    events = []
    for frame, ms in audio.frames():
        for decision in detector.push(frame, ms):
            events += segmenter.push(decision)
    for decision in detector.flush():
        events += segmenter.push(decision)
    if finish:
        events += segmenter.finish(finish)
    return events
