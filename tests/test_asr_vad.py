"""
The voice detector: WebRTC's VAD behind the steady-tone gate, on real recorded speech and on
the tones a call meets.
"""

from __future__ import annotations

import numpy as np
import pytest
import webrtcvad

from iradialer.asr import corpus
from iradialer.asr.segmenter import SpeechEnded
from iradialer.asr.vad import FRAME, ToneGate, VoiceDetector
from tests.asr_helpers import PHRASES, segment


def verdicts(detector: VoiceDetector, audio: corpus.Labelled) -> np.ndarray:
    out = []
    for frame, ms in audio.frames():
        out += detector.push(frame, ms)
    out += detector.flush()
    assert [d.ms for d in out] == [ms for _, ms in audio.frames()]
    return np.array([d.speech for d in out])


@pytest.fixture(scope="module")
def speech() -> corpus.Labelled:
    return corpus.speech_with_pauses(PHRASES, np.random.default_rng(11))


@pytest.fixture(scope="module")
def tones() -> dict[str, np.ndarray]:
    return corpus.tone_events(np.random.default_rng(12))


@pytest.mark.parametrize("aggr_mode", [1, 2, 3])
def test_real_speech_is_found_and_pauses_are_not(speech, aggr_mode):
    """
    On recorded phrases with pauses, at least 95% of speech frames are called speech and at
    least 80% of the frames called speech are speech (the rest is WebRTC's own hang-over at
    word ends), at every aggr_mode.
    """
    said = verdicts(VoiceDetector(aggr_mode), speech)
    truth = speech.speech
    assert (said & truth).sum() / truth.sum() >= 0.95
    assert (said & truth).sum() / said.sum() >= 0.80


@pytest.mark.parametrize("aggr_mode", [1, 2, 3])
def test_tones_are_not_speech(tones, aggr_mode):
    """
    Beeps (400-2000 Hz, 0.2-1 s, Asterisk's beep.wav), ringback, busy, dial tone, DTMF (60
    and 100 ms digits), fax CNG/CED and SIT: at most 2 frames of any of them are speech,
    where WebRTC alone calls most of them speech.
    """
    rng = np.random.default_rng(13)
    for name, tone in tones.items():
        audio = corpus.nothing(tone, rng)
        assert verdicts(VoiceDetector(aggr_mode), audio).sum() <= 2, name
    ungated = corpus.nothing(tones["dial tone 350+440"], rng)
    assert verdicts(VoiceDetector(1, gate=False), ungated).sum() >= 50


def test_gate_withdraws_a_beep_from_its_first_frame():
    """
    The gate's verdict reaches back over the frames it needed, so no frame of a steady beep
    leaves the detector as speech, the first included; the frames are released in order,
    delay_frames late.
    """
    rng = np.random.default_rng(1)
    audio = corpus.nothing(
        np.concatenate([corpus.silence(300), corpus.sine([1000], 400, -12, rng)]), rng
    )
    detector = VoiceDetector(1)
    released = []
    for i, (frame, ms) in enumerate(audio.frames()):
        out = detector.push(frame, ms)
        released += out
        assert len(released) == max(0, i + 1 - detector.delay_frames)
    released += detector.flush()
    beep = [d for d in released if d.ms >= 300]
    assert all(d.tonal and not d.speech for d in beep[1:])
    assert not any(d.speech for d in released)


def test_the_start_of_a_stream_is_not_speech_unless_it_is():
    """
    WebRTC alone calls the first 140 ms of a stream speech whatever they hold: line noise at
    the start is not speech here, and a phrase that starts at once still becomes one
    utterance whose audio holds all of it (the warm-up frames are its pre-roll).
    """
    rng = np.random.default_rng(2)
    quiet = corpus.nothing(corpus.silence(1000), rng)
    assert verdicts(VoiceDetector(1), quiet).sum() == 0
    raw = webrtcvad.Vad(1)
    assert sum(raw.is_speech(f.tobytes(), 8000) for f, _ in quiet.frames()) >= 5
    at_once = corpus.speech_with_pauses(["hello-world"], rng, pause_ms=(0, 0))
    (u,) = [e.utterance for e in segment(at_once, finish="stopped") if isinstance(e, SpeechEnded)]
    (phrase,) = at_once.phrases
    assert u.start_ms - 300 <= phrase[0] and u.end_ms >= phrase[1]
    assert np.array_equal(u.samples[:FRAME], at_once.samples[:FRAME])


def test_a_gap_in_the_stream_resets_the_gate():
    """
    Windows never straddle a gap in the stream's milliseconds: after a gap the gate needs
    fresh frames before it calls anything steady.
    """
    gate = ToneGate()
    tone = corpus.sine([1000], 400, -12, np.random.default_rng(3)).astype("<i2")
    results = [gate.push(tone[i * FRAME : (i + 1) * FRAME]) for i in range(10)]
    assert max(results) > 0
    gate.reset()
    assert [gate.push(tone[i * FRAME : (i + 1) * FRAME]) for i in range(7)] == [0] * 7


def test_bad_input_is_refused():
    """aggr_mode outside 1-3 and frames that are not 160 samples are errors, not guesses."""
    with pytest.raises(ValueError, match="aggr_mode"):
        VoiceDetector(0)
    with pytest.raises(ValueError, match="160 samples"):
        VoiceDetector(1).push(np.zeros(80, dtype=np.int16), 0)
