"""
The CPA engine: every stream's 20 ms frames analysed together, one batch per tick.

A stream is a slot (a row of every detector's state).  L{CpaEngine.step} takes one frame for
each of some slots, runs the shared measurements and every detector on the whole batch with
numpy, and returns what was detected, in order, per slot.  Live calls
(L{iradialer.media.MediaService}) and the offline tool (L{iradialer.cpa.cli}) use it the same way.

Times are milliseconds since answer, given by the caller with each frame (the time of the
frame's first sample): streams pause (FreeSWITCH stops sending during a playback) and the engine
never invents audio for a pause; C{total_timeout} is checked against the caller's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iradialer.cpa.amd import CAUSES, AmdDetector
from iradialer.cpa.config import CpaConfig
from iradialer.cpa.dtmf import KEYS, DtmfDetector
from iradialer.cpa.frontend import FRAME, FRAME_MS, measure
from iradialer.cpa.state import Columns, as_index
from iradialer.cpa.tones import RECENT_TONES, ToneTracker

#: Beeps: single tones in this range (Hz) that last C{beep_min_length}.
BEEP_MIN_HZ = 380.0
BEEP_MAX_HZ = 2600.0
#: A beep's per-frame frequency estimates (at least three) spread this little (standard
#: deviation, Hz; a beep at 15 dB SNR measures under 0.5, held notes of music 0.2-1.7) ...
BEEP_MAX_SPREAD_HZ = 0.8
#: ... the three bins around its peak hold this share of the energy, on average (a pure tone
#: at 15 dB SNR: 0.96-0.97; synthesizer notes of hold music: 0.93-0.95) ...
BEEP_MIN_TONALITY = 0.95
#: ... its second and third harmonics together hold at most this much of the fundamental's
#: energy (-20 dB): a voicemail beep is a sine (beeps in the train calls, G.711 and noise
#: included: at most 0.005), an instrument's note is not (held notes of the train music that
#: were otherwise nearly pure: 0.045-0.13) ...
BEEP_MAX_HARMONICS = 0.01
#: ... every frame since its onset fits it (the beating of 440+480 Hz ringback makes some
#: frames fall out), and no other tone of 80 ms or more ended this shortly before it began
#: (the tracker sees an end 40 ms after the tone stops): a tone that takes over from another
#: at once is a melody.  (300 ms, the first choice, also caught beeps that came 150-300 ms
#: after the greeting's last steady vowel: 8 of the 165 clean train beeps.)
BEEP_ISOLATION_MS = 100
#: Nor is a tone that this many other tones of 40 ms or more preceded within a second (pure
#: synthesizer notes of the train music: 4-8; beeps of the train calls: at most 3, from the
#: greeting's steady vowels; continuous speech reaches 4 at 0.6% of moments).
MELODY_WINDOW_MS = 1000
MELODY_TONES = RECENT_TONES
#: A beep follows a pause or comes out of speech, which has pauses: in the second before its
#: onset at least this many frames were 6 dB or more below it (train beeps, after a pause or
#: interrupting the greeting: at least 12 of 50).  A tone that rises out of a second of
#: continuous sound as loud as itself is a note of music (the train music's pure notes: 0).
BEEP_CONTEXT_MS = 1000
BEEP_QUIET_DB = 6.0
BEEP_MIN_QUIET_FRAMES = 3
#: Frames after C{beep_min_length} during which a run may still become steady enough.
BEEP_SETTLE_FRAMES = 6
#: Fax and modem tones (V.25, T.30, V.8, Bell 103): centre, tolerance (Hz).
ANS = (2100.0, 15.0)
BELL = (2225.0, 15.0)
CNG = (1100.0, 38.0)
#: ANSam's 15 Hz AM (envelope 0.8-1.2) gives a frame amplitude spread of about 0.12.
ANSAM_MIN_DEPTH = 0.06
#: Frames of tone before FX/MD: CNG and Bell 400 ms, ANS 500 ms (spandsp: 415 / 550 ms);
#: after speech (a greeting) the tone must last 1.5 s, so a voicemail beep is not a fax.
FAX_FRAMES = 25
SHORT_FAX_FRAMES = 20
FAX_AFTER_SPEECH_FRAMES = 75
FAX_MAX_SPREAD_HZ = 6.0
#: A second CNG burst 2.5-4.0 s after the first is a calling fax even after speech.
CNG_CADENCE_MS = (2500, 4000)
#: V.21 HDLC flags: 500 ms of energy at 1650/1850 Hz, each tone holding some of it (flags
#: measure about 0.4 of the band in the 1650 Hz bin and 0.08 in the 1850 Hz bin).
V21_FRAMES = 25
V21_MARK_SHARE = 0.2
V21_SPACE_SHARE = 0.04
#: A "tone" with this share of its band at both 1650 and 1850 Hz is V.21 starting, not a beep
#: (the two bins are four apart: no single tone reaches both).
V21_FSK_SHARE = 0.03


@dataclass(frozen=True)
class Detection:
    """
    One CPA event.  C{ms} is when it happened on the line (the onset of a beep, tone or
    digit; the moment of the decision for LV, AM, SL, DT), C{decided_ms} when the engine knew;
    both in milliseconds since answer.
    """

    event: str
    ms: int
    decided_ms: int
    digit: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    """
    The analysis of a stream ended: C{reason} is the break event, C{"total_timeout"}, or
    C{"end_of_input"} (offline files).
    """

    ms: int
    reason: str


Outcome = tuple[int, Detection | Done]

_limited = False


def _single_threaded_blas() -> None:
    """
    OpenBLAS's threads make the small per-tick products many times slower on a busy machine
    (measured: 4 us vs 0.08 us per stream); the engine wants one core, predictably.
    """
    global _limited
    if not _limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        _limited = True


class CpaEngine:
    def __init__(self, capacity: int = 64) -> None:
        _single_threaded_blas()
        self.capacity = 0
        self._configs: list[CpaConfig | None] = []
        self._free: list[int] = []
        self.tones = ToneTracker(0)
        self.dtmf = DtmfDetector(0)
        self.amd = AmdDetector(0)
        self.s = Columns(
            {
                "open": ((), np.bool_, False),
                "done": ((), np.bool_, False),
                "classified": ((), np.bool_, False),
                "fax_reported": ((), np.bool_, False),
                "run_reported": ((), np.bool_, False),
                "beep_frames": ((), np.int32, 4),
                "detect_dtmf": ((), np.bool_, True),
                "total_timeout": ((), np.int64, 15000),
                "cng_onset": ((), np.int64, -(10**9)),
            },
            0,
        )
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        for part in (self.tones.s, self.dtmf.s, self.amd.s, self.s):
            part.grow(capacity)
        self._free.extend(range(capacity - 1, self.capacity - 1, -1))
        self._configs.extend([None] * (capacity - self.capacity))
        self.capacity = capacity

    def open(self, config: CpaConfig) -> int:
        """
        Start analysing a new stream with C{config}; returns its slot.
        """
        if not self._free:
            self._grow(max(16, self.capacity * 2))
        slot = self._free.pop()
        for part in (self.tones.s, self.dtmf.s, self.s):
            part.reset(slot)
        self.amd.configure(slot, config)
        s = self.s
        s.open[slot] = True
        s.beep_frames[slot] = -(-config.beep_min_length // FRAME_MS)
        s.detect_dtmf[slot] = config.detect_dtmf
        s.total_timeout[slot] = config.total_timeout
        self._configs[slot] = config
        return slot

    def close(self, slot: int) -> None:
        if self._configs[slot] is None:
            return
        self.s.open[slot] = False
        self._configs[slot] = None
        self._free.append(slot)

    def is_done(self, slot: int) -> bool:
        return bool(self.s.done[slot])

    def config(self, slot: int) -> CpaConfig:
        config = self._configs[slot]
        if config is None:
            raise KeyError(slot)
        return config

    def step(self, slots: Iterable[int], frames: np.ndarray, ms: Iterable[int]) -> list[Outcome]:
        """
        Analyse one frame (row of C{frames}, 160 samples) of each slot in C{slots}, whose first
        sample was heard C{ms} after answer.  Slots that are done are skipped.
        """
        slot_array = np.asarray(slots, dtype=np.int64)
        ms_array = np.asarray(ms, dtype=np.int64)
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != FRAME or len(frames) != len(slot_array):
            raise ValueError("frames must be (len(slots), 160)")
        live = self.s.open[slot_array] & ~self.s.done[slot_array]
        if not live.all():
            slot_array, ms_array, frames = slot_array[live], ms_array[live], frames[live]
        if len(slot_array) == 0:
            return []
        idx = as_index(slot_array)
        f = measure(frames)
        length, fsk_length, grew = self.tones.process(idx, f, ms_array)
        dtmf_active, dtmf_found = self.dtmf.process(idx, f.x, ms_array)
        neutral = (length >= 2) | (fsk_length >= 2) | dtmf_active
        decisions, silence_rows, _speech = self.amd.process(idx, f, neutral, ms_array)
        end_ms = ms_array + FRAME_MS

        found: dict[int, list[Detection]] = {}

        def add(row: int, detection: Detection) -> None:
            found.setdefault(row, []).append(detection)

        detect_dtmf = self.s.detect_dtmf[idx]
        for h, (rows, digits, onsets) in enumerate(dtmf_found):
            for row, digit, onset in zip(rows.tolist(), digits.tolist(), onsets.tolist()):
                if detect_dtmf[row]:
                    decided = int(ms_array[row]) + 10 * (h + 1)
                    add(row, Detection("DTMF", int(onset), decided, digit=KEYS[digit]))

        starting = grew & (length == 1)
        if starting.any():
            self.s.run_reported[slot_array[starting]] = False
        beep_frames = self.s.beep_frames[idx]
        beep_due = (
            grew
            & (length >= beep_frames)
            & (length <= beep_frames + BEEP_SETTLE_FRAMES)
            & ~self.s.run_reported[idx]
        )
        fax_pending = ~self.s.fax_reported[idx]
        fax_due = (
            grew
            & fax_pending
            & np.isin(length, (SHORT_FAX_FRAMES, FAX_FRAMES, FAX_AFTER_SPEECH_FRAMES))
        )
        fsk_due = fax_pending & (fsk_length == V21_FRAMES)
        for row in np.nonzero(beep_due | fax_due | fsk_due)[0].tolist():
            slot = int(slot_array[row])
            now = int(end_ms[row])
            if beep_due[row] and not self.s.run_reported[slot]:
                for detection in self._beep(slot, now):
                    add(row, detection)
            if (fax_due[row] or fsk_due[row]) and not self.s.fax_reported[slot]:
                for detection in self._fax(slot, now, bool(fsk_due[row])):
                    add(row, detection)

        for row, am, cause, voiced in zip(
            decisions.rows.tolist(),
            decisions.am.tolist(),
            decisions.cause.tolist(),
            decisions.voiced_ms.tolist(),
        ):
            slot = int(slot_array[row])
            if self.s.classified[slot]:
                continue
            self.s.classified[slot] = True
            now = int(end_ms[row])
            extras = {"cause": CAUSES[cause], "voiced_ms": int(voiced)}
            add(row, Detection("AM" if am else "LV", now, now, extras=extras))

        for row in silence_rows.tolist():
            now = int(end_ms[row])
            add(row, Detection("SL", now, now))

        outcomes: list[Outcome] = []
        timeout = end_ms >= self.s.total_timeout[idx]
        for row in sorted(set(found) | set(np.nonzero(timeout)[0].tolist())):
            slot = int(slot_array[row])
            events = found.get(row, [])
            if timeout[row] and not self.s.classified[slot]:
                now = int(end_ms[row])
                events.append(Detection("DT", now, now))
            outcomes.extend(self._deliver(slot, events, int(end_ms[row]), bool(timeout[row])))
        return outcomes

    def _deliver(
        self, slot: int, events: list[Detection], now: int, timed_out: bool
    ) -> list[Outcome]:
        config = self.config(slot)
        outcomes: list[Outcome] = []
        for detection in events:
            outcomes.append((slot, detection))
            if detection.event in config.break_events:
                self.s.done[slot] = True
                outcomes.append((slot, Done(detection.decided_ms, detection.event)))
                return outcomes
        if timed_out:
            self.s.done[slot] = True
            outcomes.append((slot, Done(now, "total_timeout")))
        return outcomes

    def expire(self, slots: Iterable[int], ms: Iterable[int]) -> list[Outcome]:
        """
        End the analysis of the slots whose C{total_timeout} has passed at C{ms}, audio or not
        (a stream that stopped sending still times out).
        """
        slot_array = np.asarray(slots, dtype=np.int64)
        ms_array = np.asarray(ms, dtype=np.int64)
        if len(slot_array) == 0:
            return []
        due = (
            self.s.open[slot_array]
            & ~self.s.done[slot_array]
            & (ms_array >= self.s.total_timeout[slot_array])
        )
        outcomes: list[Outcome] = []
        for slot, now in zip(slot_array[due].tolist(), ms_array[due].tolist()):
            events = [] if self.s.classified[slot] else [Detection("DT", now, now)]
            outcomes.extend(self._deliver(slot, events, now, True))
        return outcomes

    def finish(self, slot: int, ms: int) -> list[Outcome]:
        """
        The input ended (an offline file) before the analysis did.
        """
        if self.s.done[slot]:
            return []
        self.s.done[slot] = True
        return [(slot, Done(ms, "end_of_input"))]

    def _classify(self, slot: int, event: str, detection: Detection) -> list[Detection]:
        """
        C{detection} (FX, MD, or a named tone called FX/MD) is also the call's classification.
        """
        out = [detection]
        if event in ("FX", "MD"):
            self.s.fax_reported[slot] = True
            if not self.s.classified[slot]:
                self.s.classified[slot] = True
                self.amd.decide(slot)
        return out

    def _beep(self, slot: int, now: int) -> list[Detection]:
        stats = self.tones.stats(slot)
        if (
            self.tones.s.n_freq[slot] < 3
            or stats.missed > 0
            or stats.spread > BEEP_MAX_SPREAD_HZ
            or stats.tonality < BEEP_MIN_TONALITY
            or stats.harmonics > BEEP_MAX_HARMONICS
        ):
            return []
        melody = (
            stats.onset_ms - int(self.tones.s.previous_end_ms[slot]) < BEEP_ISOLATION_MS
            or self.tones.tones_ended_since(slot, stats.onset_ms - MELODY_WINDOW_MS) >= MELODY_TONES
        )
        heard, quiet = self.tones.quiet_frames(
            slot, stats.onset_ms - BEEP_CONTEXT_MS, stats.onset_ms, stats.level - BEEP_QUIET_DB
        )
        continuous = heard >= BEEP_CONTEXT_MS // FRAME_MS - 1 and quiet < BEEP_MIN_QUIET_FRAMES
        if melody or continuous:
            self.s.run_reported[slot] = True
            return []
        if self.tones.s.fsk_length[slot] > 0 and min(self.tones.fsk_shares(slot)) >= V21_FSK_SHARE:
            return []
        self.s.run_reported[slot] = True
        config = self.config(slot)
        frequency = stats.frequency
        extras = {
            "frequency": round(frequency, 1),
            "level_dbm0": round(stats.level, 1),
        }
        out: list[Detection] = []
        for spec in config.tones:
            if spec.matches(frequency):
                out.extend(
                    self._classify(
                        slot, spec.name, Detection(spec.name, stats.onset_ms, now, extras=extras)
                    )
                )
        if config.tone("BP") is None and BEEP_MIN_HZ <= frequency <= BEEP_MAX_HZ:
            speech = self.amd.speech_seen(slot)
            fax_like = any(abs(frequency - c) <= t for c, t in (ANS, BELL, CNG))
            if speech or not fax_like:
                out.append(Detection("BP", stats.onset_ms, now, extras=extras))
        if any(d.event == "BP" for d in out):
            self.amd.beep_ended(slot)
            if config.beep_is_am and not self.s.classified[slot]:
                self.s.classified[slot] = True
                self.amd.decide(slot)
                out.append(Detection("AM", now, now, extras={"cause": "BEEP"}))
        return out

    def _fax(self, slot: int, now: int, fsk: bool) -> list[Detection]:
        speech = self.amd.speech_seen(slot)
        if fsk:
            mark, space = self.tones.fsk_shares(slot)
            if mark >= V21_MARK_SHARE and space >= V21_SPACE_SHARE:
                onset = now - V21_FRAMES * FRAME_MS
                return self._classify(
                    slot, "FX", Detection("FX", onset, now, extras={"signal": "V.21"})
                )
            return []
        stats = self.tones.stats(slot)
        if stats.spread > FAX_MAX_SPREAD_HZ:
            return []
        frequency = stats.frequency
        frames = stats.frames
        extras: dict[str, Any] = {"frequency": round(frequency, 1)}
        if abs(frequency - CNG[0]) <= CNG[1] and frames == SHORT_FAX_FRAMES:
            previous = int(self.s.cng_onset[slot])
            self.s.cng_onset[slot] = stats.onset_ms
            cadence = CNG_CADENCE_MS[0] <= stats.onset_ms - previous <= CNG_CADENCE_MS[1]
            if not speech or cadence:
                extras["signal"] = "CNG"
                return self._classify(
                    slot, "FX", Detection("FX", stats.onset_ms, now, extras=extras)
                )
            return []
        wanted = FAX_AFTER_SPEECH_FRAMES if speech else None
        if abs(frequency - ANS[0]) <= ANS[1] and frames == (wanted or FAX_FRAMES):
            modem = stats.am_depth >= ANSAM_MIN_DEPTH
            extras["signal"] = "ANSam" if modem else "ANS"
            event = "MD" if modem else "FX"
            return self._classify(slot, event, Detection(event, stats.onset_ms, now, extras=extras))
        if abs(frequency - BELL[0]) <= BELL[1] and frames == (wanted or SHORT_FAX_FRAMES):
            extras["signal"] = "Bell"
            return self._classify(slot, "MD", Detection("MD", stats.onset_ms, now, extras=extras))
        return []
