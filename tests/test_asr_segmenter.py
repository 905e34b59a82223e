"""
Utterances from speech decisions: one per spoken phrase on real recorded speech, nothing
clipped, a length limit, and nothing from tones.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from iradialer.asr import corpus
from iradialer.asr.segmenter import (
    Segmenter,
    SegmenterSettings,
    SpeechEnded,
    SpeechStarted,
    Utterance,
)
from iradialer.asr.vad import FRAME, Decision
from tests.asr_helpers import PHRASES, covers, segment


def utterances(events) -> list[Utterance]:
    return [e.utterance for e in events if isinstance(e, SpeechEnded)]


@pytest.fixture(scope="module")
def speech() -> corpus.Labelled:
    return corpus.speech_with_pauses(PHRASES, np.random.default_rng(21))


@pytest.mark.parametrize("aggr_mode", [1, 2, 3])
def test_one_utterance_per_spoken_phrase_nothing_clipped(speech, aggr_mode):
    """
    Six recorded phrases separated by 1.2-2.5 s pauses make six utterances, numbered 1-6, each
    starting and ending on its phrase (within 200 ms), each one's audio holding its whole
    phrase (pre-roll and post-roll around it), and every speech start reported before its end.
    """
    events = segment(speech, aggr_mode)
    found = utterances(events)
    assert [u.number for u in found] == list(range(1, len(PHRASES) + 1))
    for u, (start, end) in zip(found, speech.phrases):
        assert abs(u.start_ms - start) <= 200 and abs(u.end_ms - end) <= 200, (u, start, end)
        audio_start = u.start_ms - 300
        audio_end = audio_start + u.audio_ms
        assert covers((audio_start, audio_end), (start, end))
        assert u.cause == "silence"
    kinds = [
        (type(e).__name__, e.number if isinstance(e, SpeechStarted) else e.utterance.number)
        for e in events
    ]
    assert kinds == [
        (k, n) for n in range(1, len(PHRASES) + 1) for k in ("SpeechStarted", "SpeechEnded")
    ]


def test_utterance_audio_is_the_stream_around_the_speech(speech):
    """
    An utterance's samples are exactly the stream's, from pre-roll (300 ms) before the first
    speech frame to post-roll (200 ms) after the last.
    """
    first = utterances(segment(speech))[0]
    begin = (first.start_ms - 300) * 8
    assert np.array_equal(first.samples, speech.samples[begin : begin + len(first.samples)])
    assert first.audio_ms == first.duration_ms + 300 + 200


def test_utterance_wav_is_8khz_16bit_mono():
    """The WAV sent to applications and kept by log_voice: 8 kHz, 16-bit, mono, the samples."""
    samples = (np.arange(800) % 100 - 50).astype("<i2")
    u = Utterance(number=1, start_ms=0, end_ms=100, samples=samples)
    with wave.open(io.BytesIO(u.wav())) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        assert np.array_equal(np.frombuffer(w.readframes(800), "<i2"), samples)


@pytest.mark.parametrize("aggr_mode", [1, 2, 3])
def test_tones_and_beeps_make_no_utterance(aggr_mode):
    """
    Every tone of the corpus (beeps, beep.wav, ringback, busy, dial tone, DTMF, fax, SIT), one
    after another over line noise: not one utterance.
    """
    rng = np.random.default_rng(22)
    tones = corpus.tone_events(rng)
    audio = corpus.nothing(np.concatenate(list(tones.values())), rng)
    assert segment(audio, aggr_mode, finish="stopped") == []


def test_a_beep_between_phrases_changes_nothing(speech):
    """A voicemail beep in the pause between two phrases neither joins nor adds utterances."""
    rng = np.random.default_rng(23)
    two = corpus.speech_with_pauses(PHRASES[:2], rng, pause_ms=(2500, 2500))
    beep = corpus.sine([1000], 500, -12, rng)
    mixed = two.samples.astype(np.float64)
    at = (two.phrases[0][1] + 900) * 8
    mixed[at : at + len(beep)] += beep
    audio = corpus.Labelled(mixed.astype("<i2"), two.speech, two.phrases)
    found = utterances(segment(audio))
    assert len(found) == 2
    assert all(covers((u.start_ms - 100, u.end_ms + 100), p) for u, p in zip(found, two.phrases))


def decisions(pattern: str) -> list[Decision]:
    """'S' speech, '.' not: one frame each."""
    return [
        Decision(np.full(FRAME, i, dtype="<i2"), i * 20, c == "S") for i, c in enumerate(pattern)
    ]


def test_short_blips_do_not_start_speech_and_pauses_inside_a_phrase_do_not_end_it():
    """
    Fewer than 5 speech frames in 200 ms start nothing; a 600 ms pause does not end an
    utterance; 700 ms with at most 10% speech frames does, so a lone speech frame in the
    silence does not hold it open (the speech is taken to run to that frame).
    """
    segmenter = Segmenter()
    events = []
    pattern = "." * 20 + "SS..S....S" + "." * 20 + "S" * 8 + "." * 30 + "S" * 4 + "." * 17 + "S"
    for d in decisions(pattern + "." * 40):
        events += segmenter.push(d)
        if events and isinstance(events[-1], SpeechEnded):
            ended_at = d.ms
            break
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    u = events[1].utterance
    assert (u.start_ms, u.end_ms) == (50 * 20, 110 * 20)
    # the 700 ms ending at frame 124 hold 3 speech frames (90, 91 and the lone 109): <= 10%
    assert ended_at == 124 * 20
    assert u.cause == "silence"


def test_pre_roll_reaches_back_and_post_roll_is_trimmed():
    """
    The utterance's audio starts 300 ms (15 frames) before the first speech frame and ends
    200 ms (10 frames) after the last; the silence that ended it is not sent.
    """
    segmenter = Segmenter()
    events = []
    for d in decisions("." * 30 + "S" * 10 + "." * 40):
        events += segmenter.push(d)
    u = events[-1].utterance
    assert list(u.samples[::FRAME]) == list(range(15, 50))


def test_maximum_utterance_length_cuts_and_speech_goes_on():
    """
    Speech longer than max_utterance_ms is cut there (cause max_length) and what follows is a
    new utterance, with no frame sent twice.
    """
    settings = SegmenterSettings(max_utterance_ms=1000)
    segmenter = Segmenter(settings)
    events = []
    for d in decisions("." * 5 + "S" * 110 + "." * 40):
        events += segmenter.push(d)
    ended = [e.utterance for e in events if isinstance(e, SpeechEnded)]
    assert [u.cause for u in ended] == ["max_length", "max_length", "silence"]
    assert all(u.audio_ms <= 1000 for u in ended)
    sent = np.concatenate([u.samples[::FRAME] for u in ended])
    assert len(set(sent.tolist())) == len(sent)
    assert set(range(5, 115)) <= set(sent.tolist())


def test_finish_cuts_the_utterance_in_progress():
    """Stopping in mid-speech ends the utterance with the stop's reason as cause."""
    segmenter = Segmenter()
    for d in decisions("." * 10 + "S" * 20):
        segmenter.push(d)
    (event,) = segmenter.finish("total_timeout")
    assert event.utterance.cause == "total_timeout"
    assert event.utterance.end_ms == 30 * 20
    assert segmenter.finish("stopped") == []
