"""
ASR sessions: recorded phrases in, one utterance each to the application, results reported
in utterance order, asr_done last; stop, total_timeout, failing and silent applications,
log_voice, two calls at once, and a real local recogniser over HTTP.
"""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import pytest_twisted
from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.web.client import Agent
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from iradialer.asr import corpus
from iradialer.asr.applications import CallInfo, HttpApplication
from iradialer.asr.config import AsrConfig
from iradialer.asr.session import AsrSession
from tests.asr_helpers import CALL, PHRASES, Recorder, ScriptedApplication, covers, feed


@pytest.fixture(scope="module")
def phrases() -> corpus.Labelled:
    return corpus.speech_with_pauses(PHRASES[:4], np.random.default_rng(31))


def session(application, clock, config=None, call=CALL, **kwargs):
    events = Recorder()
    s = AsrSession(config or AsrConfig("LexConnect"), call, application, clock, events, **kwargs)
    s.start()
    return s, events


def test_one_utterance_per_phrase_results_in_order_though_replies_are_not(phrases):
    """
    Four recorded phrases: four utterances go to the application as each ends (with the
    call's identity); replies given in reverse order are reported as asr_result 1, 2, 3, 4;
    asr_done comes last, after stop, with the count.
    """
    clock = Clock()
    app = ScriptedApplication()
    s, events = session(app, clock)
    feed(s, phrases, clock)
    assert [u.number for u, _, _ in app.requests] == [1, 2, 3, 4]
    assert all(call == CALL for _, call, _ in app.requests)
    for u, _, d in reversed(app.requests):
        d.callback({"text": f"phrase {u.number}"})
    done = []
    s.stop().addCallback(done.append)
    assert done == ["stopped"]
    names = events.names()
    assert names[0] == "asr_started"
    assert names[1:9] == ["asr_speech_start", "asr_speech_end"] * 4
    assert names[9:] == ["asr_result"] * 4 + ["asr_done"]
    assert [f["result"]["text"] for f in events.of("asr_result")] == [
        f"phrase {n}" for n in (1, 2, 3, 4)
    ]
    assert [f["utterance"] for f in events.of("asr_result")] == [1, 2, 3, 4]
    assert events.of("asr_done") == [{"status": "ASR done", "reason": "stopped", "utterances": 4}]
    for fields, (start, end) in zip(events.of("asr_speech_end"), phrases.phrases):
        assert fields["cause"] == "silence"
        assert (
            fields["duration_ms"]
            == fields["ms"] - events.of("asr_speech_start")[fields["utterance"] - 1]["ms"]
        )
        assert covers(
            (start - 200, end + 200), (fields["ms"] - fields["duration_ms"], fields["ms"])
        )
    assert events.of("asr_started") == [
        {
            "status": "ASR started",
            "asr_application": "LexConnect",
            "aggr_mode": 1,
            "total_timeout": 20000,
        }
    ]


def test_a_result_waits_for_the_ones_before_it(phrases):
    """Utterance 2's reply arriving first is held until utterance 1's arrives."""
    clock = Clock()
    app = ScriptedApplication()
    s, events = session(app, clock)
    feed(s, phrases, clock)
    app.requests[1][2].callback({"n": 2})
    assert events.of("asr_result") == []
    app.requests[0][2].callback({"n": 1})
    assert [f["result"] for f in events.of("asr_result")] == [{"n": 1}, {"n": 2}]


def test_stop_waits_for_outstanding_replies_and_is_final(phrases):
    """
    stop() with replies outstanding: asr_done only after the last reply; frames fed after
    stop are ignored, and stopping again changes nothing.
    """
    clock = Clock()
    app = ScriptedApplication()
    s, events = session(app, clock)
    feed(s, phrases, clock)
    done = []
    s.stop().addCallback(done.append)
    assert done == [] and "asr_done" not in events.names()
    feed(s, phrases, clock)
    assert len(app.requests) == 4
    for _, _, d in app.requests:
        d.callback({})
    assert done == ["stopped"] and events.names()[-1] == "asr_done"
    s.stop("call ended")
    assert events.names().count("asr_done") == 1
    s.when_done().addCallback(done.append)
    assert done == ["stopped", "stopped"]


def test_total_timeout_ends_the_session_and_cuts_the_utterance_in_progress(phrases):
    """
    total_timeout (on the clock, from start) stops the session in the middle of a phrase:
    that utterance is cut (cause total_timeout) and still recognised; asr_done says why.
    """
    clock = Clock()
    app = ScriptedApplication()
    first_start, first_end = phrases.phrases[0]
    timeout = first_start + (first_end - first_start) // 2
    s, events = session(app, clock, AsrConfig("LexConnect", total_timeout=timeout))
    feed(s, phrases, clock)
    (cut,) = events.of("asr_speech_end")
    assert cut["cause"] == "total_timeout"
    assert len(app.requests) == 1
    app.requests[0][2].callback({"partial": True})
    assert events.names()[-2:] == ["asr_result", "asr_done"]
    assert events.of("asr_done")[0]["reason"] == "total_timeout"


def test_call_ended_stops_the_session_with_that_reason(phrases):
    """The lead stops the session when the call hangs up: asr_done reason 'call ended'."""
    clock = Clock()
    app = ScriptedApplication()
    s, events = session(app, clock)
    feed(
        s,
        corpus.Labelled(phrases.samples[: 8 * (phrases.phrases[0][0] + 500)], phrases.speech, []),
        clock,
    )
    s.stop("call ended")
    app.requests[0][2].callback({})
    assert events.of("asr_speech_end")[0]["cause"] == "call ended"
    assert events.of("asr_done")[0]["reason"] == "call ended"


class FlakyRecogniser(Resource):
    """Fails utterance 1, never answers utterance 2, recognises the rest."""

    isLeaf = True

    def render_POST(self, request):
        n = int(request.getHeader("x-iradialer-utterance"))
        if n == 1:
            request.setResponseCode(503)
            return b"busy"
        if n == 2:
            return NOT_DONE_YET
        return json.dumps({"utterance": n}).encode()


def test_failing_and_silent_applications_are_error_events_and_the_session_goes_on(phrases):
    """
    The http application failing on utterance 1 (HTTP 503) is an error event with
    status_code 141; not answering utterance 2 within its timeout is status_code 142; the
    session keeps running and reports utterances 3 and 4, in order after the errors.
    """
    clock = Clock()
    app = HttpApplication("http://asr.test/r", 2.0, StubTreq(FlakyRecogniser()), clock)
    s, events = session(app, clock, AsrConfig("LexConnect", total_timeout=60000))
    feed(s, phrases, clock)
    clock.advance(2.0)
    assert s.state == "running"
    reports = [(n, f) for n, f in events.events if n in ("asr_result", "error")]
    assert [(n, f["utterance"]) for n, f in reports] == [
        ("error", 1),
        ("error", 2),
        ("asr_result", 3),
        ("asr_result", 4),
    ]
    assert reports[0][1]["status_code"] == 141 and "HTTP 503" in reports[0][1]["status"]
    assert reports[1][1]["status_code"] == 142 and "within 2 s" in reports[1][1]["status"]
    assert reports[0][1]["asr_application"] == "LexConnect"


def test_an_application_that_raises_is_an_error_event_without_its_trace(phrases):
    """A bug in an application (it raises) is error 141 'internal error'; the trace is logged."""

    class Broken:
        def recognize(self, utterance, call):
            raise KeyError("secret detail")

    clock = Clock()
    s, events = session(Broken(), clock)
    logged = []
    from twisted.logger import globalLogPublisher

    globalLogPublisher.addObserver(logged.append)
    try:
        feed(s, phrases, clock)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    errors = events.of("error")
    assert [e["status"] for e in errors] == ["ASR application failed: internal error"] * 4
    assert any("log_failure" in e for e in logged)


def test_two_sessions_at_once_keep_to_their_own_calls(phrases):
    """
    Two calls fed frame by frame, interleaved, one speaking and one hearing only tones: the
    first gets its four utterances under its own call, the second none.
    """
    clock = Clock()
    app = ScriptedApplication()
    other = CallInfo("7d3c1b8a-1111-4222-8333-944455556666", "globex")
    a, events_a = session(app, clock)
    b, events_b = session(app, clock, call=other)
    rng = np.random.default_rng(32)
    tones = np.concatenate(list(corpus.tone_events(rng).values()))
    beeps = corpus.nothing(tones[: len(phrases.samples)], rng)
    for (fa, ms), (fb, _) in zip(phrases.frames(), beeps.frames()):
        a.feed(fa, ms)
        b.feed(fb, ms)
        clock.advance(0.02)
    assert [call for _, call, _ in app.requests] == [CALL] * 4
    assert len(events_a.of("asr_speech_end")) == 4
    assert events_b.of("asr_speech_start") == []


def test_log_voice_keeps_each_utterance_inside_the_directory(phrases, tmp_path: Path):
    """
    log_voice yes: each utterance is kept as <call_uuid>-<n>.wav under the given directory
    (named in asr_speech_end.voice_file), the same audio the application got; a call uuid
    with path characters cannot leave the directory.
    """
    clock = Clock()
    app = ScriptedApplication()
    sneaky = CallInfo("../../etc/passwd", "acme")
    s, events = session(
        app,
        clock,
        AsrConfig("LexConnect", log_voice=True),
        call=sneaky,
        log_voice_dir=tmp_path / "voice",
    )
    feed(s, phrases, clock)
    names = [f["voice_file"] for f in events.of("asr_speech_end")]
    assert names == [f"______etc_passwd-00{n}.wav" for n in (1, 2, 3, 4)]
    assert sorted(p.name for p in (tmp_path / "voice").iterdir()) == names
    for name, (utterance, _, _) in zip(names, app.requests):
        with wave.open(str(tmp_path / "voice" / name)) as w:
            kept = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert np.array_equal(kept, utterance.samples)


def test_log_voice_without_a_directory_is_refused_and_off_keeps_nothing(phrases, tmp_path):
    """log_voice yes needs a directory; log_voice no writes nothing even when given one."""
    with pytest.raises(ValueError, match="log_voice"):
        AsrSession(AsrConfig("x", log_voice=True), CALL, ScriptedApplication(), Clock(), Recorder())
    clock = Clock()
    s, events = session(ScriptedApplication(), clock, log_voice_dir=tmp_path)
    feed(s, phrases, clock)
    assert list(tmp_path.iterdir()) == []
    assert all("voice_file" not in f for f in events.of("asr_speech_end"))


class LocalRecogniser(Resource):
    """
    A test ASR server: checks each POST is an 8 kHz 16-bit mono WAV, holds the replies until
    C{expected} utterances have come, then answers them newest first.
    """

    isLeaf = True

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.held: list[tuple[object, int, int]] = []
        self.all_in: Deferred[None] = Deferred()

    def render_POST(self, request):
        with wave.open(io.BytesIO(request.content.read())) as w:
            assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
            samples = w.getnframes()
        n = int(request.getHeader("x-iradialer-utterance"))
        self.held.append((request, n, samples))
        if len(self.held) == self.expected:
            for held, number, count in reversed(self.held):
                held.setHeader(b"content-type", b"application/json")
                held.write(json.dumps({"utterance": number, "samples": count}).encode())
                held.finish()
            self.all_in.callback(None)
        return NOT_DONE_YET


@pytest_twisted.ensureDeferred
async def test_end_to_end_with_a_local_recogniser_over_http(phrases):
    """
    Through a real socket on 127.0.0.1: four recorded phrases make four POSTs to the local
    recogniser, which answers them in reverse order; asr_result events come 1-4, carrying
    what the server saw (a WAV per phrase, longer than the phrase), and asr_done last.
    """
    recogniser = LocalRecogniser(expected=4)
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(recogniser))
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/recognize"
        app = HttpApplication(url, 10.0, HTTPClient(Agent(reactor)), reactor)
        events = Recorder()
        s = AsrSession(AsrConfig("LexConnect"), CALL, app, reactor, events)
        s.start()
        feed(s, phrases)
        await recogniser.all_in
        assert await s.stop() == "stopped"
    finally:
        await port.stopListening()
    results = [f["result"] for f in events.of("asr_result")]
    assert [r["utterance"] for r in results] == [1, 2, 3, 4]
    for result, (start, end) in zip(results, phrases.phrases):
        assert result["samples"] >= (end - start) * 8
    assert events.names()[-1] == "asr_done"
