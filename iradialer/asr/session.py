"""
One call's ASR session: frames in, utterances out to the application, events to the caller.

The media service calls L{AsrSession.feed} with each 20 ms frame; the voice detector and the
segmenter cut utterances; each utterance goes to the application as soon as it ends, so
several may be out at once, but their results are reported in utterance order.  The session
ends on L{AsrSession.stop} (C{stopasr}, the call ending) or when C{total_timeout} runs out;
the utterance in progress then is cut and still recognised, and C{asr_done} is reported after
every outstanding reply, so it is always the last event of a session.

Events (C{on_event(name, fields)}; every C{fields} has a human C{status}):
 - C{asr_started}: C{asr_application}, C{aggr_mode}, C{total_timeout};
 - C{asr_speech_start}: C{utterance} (1, 2, ...), C{ms} (stream time of the first speech);
 - C{asr_speech_end}: C{utterance}, C{ms} (end of the speech), C{duration_ms}, C{cause}
   (C{silence}, C{max_length} or the stop reason), C{voice_file} when C{log_voice} kept it;
 - C{asr_result}: C{utterance}, C{result} (the application's JSON reply);
 - C{error}: C{utterance}, C{status_code} 141 (the application failed) or 142 (it did not
   answer in time); the session goes on;
 - C{asr_done}: C{reason} (C{stopped}, C{total_timeout}, C{call ended}, ...), C{utterances}.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.asr.applications import (
    ApplicationError,
    ApplicationTimeout,
    AsrApplication,
    CallInfo,
)
from iradialer.asr.config import AsrConfig
from iradialer.asr.segmenter import (
    Segmenter,
    SegmenterSettings,
    SpeechEnded,
    SpeechStarted,
    Utterance,
)
from iradialer.asr.vad import Decision, VoiceDetector
from iradialer.domain.errors import Status

STOPPED = "stopped"
TOTAL_TIMEOUT = "total_timeout"
CALL_ENDED = "call ended"

EventSink = Callable[[str, dict[str, Any]], None]


class AsrSession:
    """
    ASR on one call's audio stream.

    @param on_event: called with each event's name and fields, in order.
    @param log_voice_dir: where C{log_voice} keeps each utterance as
        C{<call_uuid>-<n>.wav}; required when the configuration says C{log_voice}.
    """

    log = Logger()

    def __init__(
        self,
        config: AsrConfig,
        call: CallInfo,
        application: AsrApplication,
        clock: IReactorTime,
        on_event: EventSink,
        log_voice_dir: Path | None = None,
        settings: SegmenterSettings | None = None,
    ) -> None:
        if config.log_voice and log_voice_dir is None:
            raise ValueError("log_voice is set but no directory was given to keep voice in")
        self.config = config
        self.call = call
        self.application = application
        self.clock = clock
        self.on_event = on_event
        self.log_voice_dir = log_voice_dir if config.log_voice else None
        self.detector = VoiceDetector(config.aggr_mode)
        self.segmenter = Segmenter(settings)
        self.state = "new"  # -> running -> closing -> stopping -> done
        self.reason: str | None = None
        self._timer: IDelayedCall | None = None
        self._utterances = 0
        self._outcomes: dict[int, tuple[str, dict[str, Any]]] = {}
        self._next_report = 1
        self._waiters: list[Deferred[str]] = []

    # -- the caller's side --------------------------------------------------------------------

    def start(self) -> None:
        """Report C{asr_started} and arm C{total_timeout} (on the clock, from now)."""
        if self.state != "new":
            raise RuntimeError(f"the session is {self.state}, it cannot start again")
        self.state = "running"
        self._emit(
            "asr_started",
            status="ASR started",
            asr_application=self.config.asr_application,
            aggr_mode=self.config.aggr_mode,
            total_timeout=self.config.total_timeout,
        )
        self._timer = self.clock.callLater(
            self.config.total_timeout / 1000.0, self.stop, TOTAL_TIMEOUT
        )

    def feed(self, frame: np.ndarray, ms: int) -> None:
        """The media consumer: one 20 ms frame (160 int16 samples), C{ms} into the stream."""
        if self.state != "running":
            return
        for decision in self.detector.push(frame, ms):
            self._segment(decision)

    def stop(self, reason: str = STOPPED) -> Deferred[str]:
        """
        End the session: the utterance in progress is cut and recognised, and C{asr_done}
        follows the last reply.  Stopping again changes nothing.

        @return: fires with the reason the session ended once C{asr_done} is reported.
        """
        if self.state in ("new", "running"):
            started = self.state == "running"
            self.state = "closing"  # no more frames; replies may arrive while cutting the rest
            self.reason = reason
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            if started:
                for decision in self.detector.flush():
                    self._segment(decision)
                for event in self.segmenter.finish(reason):
                    self._handle(event)
                self.state = "stopping"  # only replies are awaited now
                self._report()
            else:
                self._finish(announce=False)
        return self.when_done()

    def when_done(self) -> Deferred[str]:
        """Fires with the reason the session ended, once it has (at once if it has)."""
        if self.state == "done":
            assert self.reason is not None
            d: Deferred[str] = Deferred()
            d.callback(self.reason)
            return d
        d = Deferred()
        self._waiters.append(d)
        return d

    # -- inside -------------------------------------------------------------------------------

    def _segment(self, decision: Decision) -> None:
        for event in self.segmenter.push(decision):
            self._handle(event)

    def _handle(self, event: SpeechStarted | SpeechEnded) -> None:
        if isinstance(event, SpeechStarted):
            self._emit(
                "asr_speech_start", status="speech started", utterance=event.number, ms=event.ms
            )
            return
        utterance = event.utterance
        self._utterances = utterance.number
        fields: dict[str, Any] = {
            "status": "speech ended",
            "utterance": utterance.number,
            "ms": utterance.end_ms,
            "duration_ms": utterance.duration_ms,
            "cause": utterance.cause,
        }
        if self.log_voice_dir is not None:
            name = self._keep_voice(self.log_voice_dir, utterance)
            if name is not None:
                fields["voice_file"] = name
        self._emit("asr_speech_end", **fields)
        d = maybeDeferred(self.application.recognize, utterance, self.call)
        d.addCallbacks(
            self._recognised,
            self._failed,
            callbackArgs=(utterance.number,),
            errbackArgs=(utterance.number,),
        )

    def _keep_voice(self, directory: Path, utterance: Utterance) -> str | None:
        name = "{}-{:03d}.wav".format(
            re.sub(r"[^A-Za-z0-9_-]", "_", self.call.call_uuid)[:64] or "call", utterance.number
        )
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / name
            if path.resolve().parent != directory.resolve():
                raise OSError(f"{name} is not inside {directory}")
            path.write_bytes(utterance.wav())
        except OSError:
            self.log.failure(
                "Could not keep utterance {n} of call {call_uuid}",
                n=utterance.number,
                call_uuid=self.call.call_uuid,
            )
            return None
        return name

    def _recognised(self, reply: dict[str, Any], number: int) -> None:
        self._outcomes[number] = (
            "asr_result",
            {"status": "speech recognised", "utterance": number, "result": reply},
        )
        self._report()

    def _failed(self, failure: Failure, number: int) -> None:
        code = Status.ASR_APPLICATION_FAILED
        if failure.check(ApplicationTimeout):
            code = Status.ASR_APPLICATION_TIMEOUT
            status = f"ASR application timed out: {failure.getErrorMessage()}"
        elif failure.check(ApplicationError):
            status = f"ASR application failed: {failure.getErrorMessage()}"
        else:  # a bug in the application: the trace goes to the log, not to the tenant
            status = "ASR application failed: internal error"
            self.log.failure(
                "ASR application {name} raised on utterance {n}",
                failure,
                name=self.config.asr_application,
                n=number,
            )
        self._outcomes[number] = (
            "error",
            {
                "status": status,
                "status_code": int(code),
                "utterance": number,
                "asr_application": self.config.asr_application,
            },
        )
        self._report()

    def _report(self) -> None:
        while self._next_report in self._outcomes:
            name, fields = self._outcomes.pop(self._next_report)
            self._next_report += 1
            self._emit(name, **fields)
        if self.state == "stopping" and self._next_report > self._utterances:
            self._finish(announce=True)

    def _finish(self, announce: bool) -> None:
        self.state = "done"
        assert self.reason is not None
        if announce:
            self._emit(
                "asr_done", status="ASR done", reason=self.reason, utterances=self._utterances
            )
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self.reason)

    def _emit(self, name: str, **fields: Any) -> None:
        try:
            self.on_event(name, fields)
        except Exception:
            self.log.failure("ASR event {name} could not be delivered", name=name)
