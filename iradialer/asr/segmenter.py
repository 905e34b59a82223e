"""
Utterances from per-frame speech decisions: onset, hang-over, pre-roll and a length limit.

Speech I{starts} when at least C{onset_frames} of the last C{onset_window_ms} are speech (one
voiced frame, a click or a cough, is not an utterance).  It I{ends} after C{end_silence_ms}
in which at most C{end_tolerance} of the frames were speech, so the pauses between words and
a stray noisy frame in a pause do not split a phrase.  The audio of an utterance runs from
C{pre_roll_ms} before the first speech frame to C{post_roll_ms} after the last, so soft
onsets and word endings (fricatives WebRTC misses) are not clipped.  An utterance that reaches
C{max_utterance_ms} of audio is cut there and the next one starts fresh.

Pure: no Twisted, no clock; times are the stream's milliseconds.
"""

from __future__ import annotations

import io
import wave
from collections import deque
from dataclasses import dataclass

import numpy as np

from iradialer.asr.vad import FRAME_MS, RATE, Decision


@dataclass(frozen=True)
class SegmenterSettings:
    pre_roll_ms: int = 300
    onset_window_ms: int = 200
    onset_frames: int = 5
    end_silence_ms: int = 700
    end_tolerance: float = 0.1
    post_roll_ms: int = 200
    max_utterance_ms: int = 15000


@dataclass(frozen=True)
class Utterance:
    """
    One stretch of speech: its number in the session (from 1), where the speech starts and
    ends in the stream (ms), why it ended, and its audio with pre- and post-roll.
    """

    number: int
    start_ms: int
    end_ms: int
    samples: np.ndarray
    cause: str = "silence"

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def audio_ms(self) -> int:
        return len(self.samples) * 1000 // RATE

    def wav(self) -> bytes:
        """The audio as a WAV file: 8 kHz, 16-bit signed little-endian, mono."""
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.asarray(self.samples, dtype="<i2").tobytes())
        return out.getvalue()


@dataclass(frozen=True)
class SpeechStarted:
    number: int
    ms: int


@dataclass(frozen=True)
class SpeechEnded:
    utterance: Utterance


Event = SpeechStarted | SpeechEnded


class Segmenter:
    """
    Turns L{Decision}s (in stream order) into L{SpeechStarted} / L{SpeechEnded} events.
    """

    def __init__(self, settings: SegmenterSettings | None = None) -> None:
        self.settings = s = settings or SegmenterSettings()
        self._pre_frames = s.pre_roll_ms // FRAME_MS
        self._onset_frames = max(1, s.onset_window_ms // FRAME_MS)
        self._end_frames = max(1, s.end_silence_ms // FRAME_MS)
        self._post_frames = s.post_roll_ms // FRAME_MS
        self._max_frames = max(1, s.max_utterance_ms // FRAME_MS)
        self._history: deque[Decision] = deque(maxlen=self._pre_frames + self._onset_frames)
        self._frames: list[Decision] = []  # the utterance so far, pre-roll included
        self._first_speech = 0  # indexes in _frames
        self._last_speech = 0
        self._count = 0

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    def push(self, decision: Decision) -> list[Event]:
        if self._frames:
            return self._continue(decision)
        history = self._history
        history.append(decision)
        frames = list(history)
        window_start = max(0, len(frames) - self._onset_frames)
        if sum(d.speech for d in frames[window_start:]) < self.settings.onset_frames:
            return []
        first = next(i for i in range(window_start, len(frames)) if frames[i].speech)
        lead = frames[max(0, first - self._pre_frames) : first]
        self._frames = lead + frames[first:]
        self._first_speech = len(lead)
        self._last_speech = max(i for i, d in enumerate(self._frames) if d.speech)
        history.clear()
        self._count += 1
        return [SpeechStarted(self._count, frames[first].ms)]

    def _continue(self, decision: Decision) -> list[Event]:
        self._frames.append(decision)
        if decision.speech:
            self._last_speech = len(self._frames) - 1
        if len(self._frames) >= self._max_frames:
            return [self._end("max_length")]
        tail = self._frames[-self._end_frames :]
        if len(tail) == self._end_frames and (
            sum(d.speech for d in tail) <= self.settings.end_tolerance * self._end_frames
        ):
            return [self._end("silence")]
        return []

    def finish(self, cause: str) -> list[Event]:
        """End an utterance in progress (the session stops); nothing when there is none."""
        if not self._frames:
            return []
        return [self._end(cause)]

    def _end(self, cause: str) -> SpeechEnded:
        frames = self._frames
        last = self._last_speech
        keep = min(len(frames), last + 1 + self._post_frames)
        utterance = Utterance(
            number=self._count,
            start_ms=frames[self._first_speech].ms,
            end_ms=frames[last].ms + FRAME_MS,
            samples=np.concatenate([d.samples for d in frames[:keep]]),
            cause=cause,
        )
        self._history.clear()
        self._history.extend(frames[keep:])  # the next utterance's pre-roll, if it comes soon
        self._frames = []
        return SpeechEnded(utterance)
