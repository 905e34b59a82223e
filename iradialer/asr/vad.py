"""
Voice activity detection for ASR: WebRTC's VAD behind a steady-tone gate.

WebRTC's VAD (through C{webrtcvad-wheels}) is the field's standard speech/non-speech
classifier, but it calls pure tones, dual tones and steady hums speech.  So every frame first
passes a small numpy gate that marks I{tonal} frames, and a frame is speech only when WebRTC
says so and the gate does not object.  The gate looks at 60 ms windows (the last three frames,
Hann-windowed, 15.6 Hz resolution, 300-3400 Hz) and marks a frame tonal when either

 - B{steady}: the window's magnitude spectrum is the same (cosine similarity >= 0.97) as the
   window 60 ms before it, for three windows running, i.e. nothing changed for 160 ms: a beep,
   ringback, busy, dial tone, fax CNG/CED, SIT, a held musical note.  Speech changes within
   that time (pitch and formants move): measured on the Asterisk prompts, this withdraws 0.1%
   of speech frames; or
 - B{DTMF}: two narrow lines (+-31 Hz) hold 97% of the window's energy, one at a DTMF row
   frequency and one at a column frequency (+-3.5%): digits are often 40-100 ms, too short
   to be I{steady}.

A decision covers every frame of the windows that made it, and one frame more on either side
(a tone's partial first and last frames), so frames are released 160 ms late: the first
frames of a beep are withdrawn before anyone sees them as speech.  WebRTC runs on the
released frames and never sees a tone, so neither its own hang-over nor its noise model
carries the tone on (shown silence instead, its noise estimate sinks and line noise after a
DTMF string becomes "speech" in mode 1).

Nothing here knows Twisted; times are the media stream's milliseconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

RATE = 8000
FRAME = 160
FRAME_MS = 20

#: C{aggr_mode} (the seed's 1-3) -> WebRTC VAD mode (0-3).  See docs/asr.md for the measured
#: reason: WebRTC's mode 0 ("quality") adds almost no speech recall over mode 1 on telephone
#: speech but lets more noise through, so the seed's three levels are WebRTC's 1, 2 and 3.
WEBRTC_MODES = {1: 1, 2: 2, 3: 3}

_WINDOW = 3 * FRAME
_FFT = 512
_HANN = np.hanning(_WINDOW).astype(np.float64)
_BINS = np.arange(_FFT // 2 + 1) * RATE / _FFT
_BAND = (_BINS >= 300) & (_BINS <= 3400)
_BAND_HZ = _BINS[_BAND]
_LINE_HALF_WIDTH = 2  # bins either side of a line (+-31 Hz)
_DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
_DTMF_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
#: Mean square of a 0 dBm0 sine in 16-bit linear (peak 3.14 dB below full scale).
_P0 = (32768 * 10 ** (-3.14 / 20)) ** 2 / 2


@dataclass(frozen=True)
class GateLimits:
    #: Cosine similarity of windows 60 ms apart at and above which the signal is steady.
    steady_similarity: float = 0.97
    #: Consecutive steady windows needed.
    steady_windows: int = 3
    #: Share of energy in two lines at and above which a window may be a DTMF digit.
    line_share: float = 0.97
    #: Relative frequency tolerance of a DTMF line.
    dtmf_tolerance: float = 0.035
    #: Windows quieter than this (dBm0) are left to WebRTC.
    min_level_dbm0: float = -50.0


class ToneGate:
    """
    Marks the frames of one stream that belong to steady single or dual tones.

    L{push} takes each frame and answers how many of the most recent frames (including this
    one) are tonal, so the caller can withdraw them.
    """

    def __init__(self, limits: GateLimits | None = None) -> None:
        self.limits = limits or GateLimits()
        self._samples = np.zeros(_WINDOW, dtype=np.float64)
        self._filled = 0
        self._spectra: deque[np.ndarray] = deque(maxlen=4)
        self._steady_run = 0
        self._min_mean_square = _P0 * 10 ** (self.limits.min_level_dbm0 / 10)

    def reset(self) -> None:
        """Forget the history (after a gap in the stream, windows must not straddle it)."""
        self._filled = 0
        self._spectra.clear()
        self._steady_run = 0

    def push(self, frame: np.ndarray) -> int:
        """
        @return: the number of most recent frames, this one included, that are tonal (0 to
            L{ToneGate.reach}).
        """
        self._samples[:-FRAME] = self._samples[FRAME:]
        self._samples[-FRAME:] = frame
        self._filled = min(self._filled + 1, 3)
        if self._filled < 3:
            return 0
        window = self._samples
        mean_square = float(np.dot(window, window)) / _WINDOW
        power = np.abs(np.fft.rfft(window * _HANN, _FFT))[_BAND] ** 2
        magnitude = np.sqrt(power)
        norm = float(np.linalg.norm(magnitude))
        if mean_square < self._min_mean_square or norm == 0.0:
            self._spectra.append(np.zeros_like(magnitude))
            self._steady_run = 0
            return 0
        spectrum = magnitude / norm
        self._spectra.append(spectrum)
        limits = self.limits
        steady = len(self._spectra) == 4 and spectrum @ self._spectra[0] >= limits.steady_similarity
        self._steady_run = self._steady_run + 1 if steady else 0
        if self._steady_run >= limits.steady_windows:
            return 5 + self._steady_run
        if self._is_dtmf(power):
            return 3
        return 0

    def _is_dtmf(self, power: np.ndarray) -> bool:
        share, low, high = _two_lines(power)
        if share < self.limits.line_share:
            return False
        tolerance = self.limits.dtmf_tolerance
        return any(abs(low - f) <= tolerance * f for f in _DTMF_ROWS) and any(
            abs(high - f) <= tolerance * f for f in _DTMF_COLUMNS
        )

    @property
    def reach(self) -> int:
        """How far back a verdict can reach (frames): a steady run's windows."""
        return 5 + self.limits.steady_windows


def _two_lines(power: np.ndarray) -> tuple[float, float, float]:
    """The share of energy in the two strongest lines, and their frequencies (low, high)."""
    total = float(power.sum())
    rest = power.copy()
    held = 0.0
    peaks = []
    for _ in range(2):
        peak = int(np.argmax(rest))
        lines = slice(max(0, peak - _LINE_HALF_WIDTH), peak + _LINE_HALF_WIDTH + 1)
        held += float(rest[lines].sum())
        rest[lines] = 0.0
        peaks.append(float(_BAND_HZ[peak]))
    low, high = sorted(peaks)
    return (held / total if total > 0 else 0.0), low, high


@dataclass
class Decision:
    """One frame with its verdict; C{speech} is final once the frame leaves the detector."""

    samples: np.ndarray
    ms: int
    speech: bool
    tonal: bool = False


class VoiceDetector:
    """
    Speech/non-speech for each 20 ms frame of one stream, L{delay_frames} frames late (so a
    tone found later can still withdraw its first frames).

    @param aggr_mode: the seed's aggressiveness 1-3 (see L{WEBRTC_MODES}).
    @param gate: whether tones are removed first (off only to measure what it brings).
    """

    def __init__(self, aggr_mode: int, gate: bool = True, limits: GateLimits | None = None):
        if aggr_mode not in WEBRTC_MODES:
            raise ValueError(f"aggr_mode must be 1, 2 or 3, not {aggr_mode!r}")
        self._vad = webrtcvad.Vad(WEBRTC_MODES[aggr_mode])
        self._gate = ToneGate(limits) if gate else None
        self._pending: deque[Decision] = deque()
        self._next_ms: int | None = None
        self.delay_frames = self._gate.reach if self._gate is not None else 0
        self._tone_tail = 0
        self._classified = 0

    def push(self, samples: np.ndarray, ms: int) -> list[Decision]:
        """
        Take one frame (160 int16 samples) that starts C{ms} into the stream.

        @return: the frames whose verdict is now final, oldest first (none while the
            detector fills, then one per frame).
        """
        frame = np.asarray(samples, dtype="<i2")
        if frame.shape != (FRAME,):
            raise ValueError(f"a frame is {FRAME} samples, not {frame.shape}")
        decision = Decision(frame, ms, False)
        self._pending.append(decision)
        if self._gate is not None:
            if self._next_ms is not None and ms != self._next_ms:
                self._gate.reset()
            tonal = self._gate.push(frame)
            if tonal:
                # one frame more on either side: the tone's partial first and last frames
                for held in list(self._pending)[-(tonal + 1) :]:
                    held.tonal = True
                self._tone_tail = 1
            elif self._tone_tail:
                decision.tonal = True
                self._tone_tail -= 1
        self._next_ms = ms + FRAME_MS
        released = []
        while len(self._pending) > self.delay_frames:
            released.append(self._classify(self._pending.popleft()))
        return released

    def flush(self) -> list[Decision]:
        """Release the held frames as they stand (the stream ended)."""
        released = [self._classify(d) for d in self._pending]
        self._pending.clear()
        return released

    def _classify(self, decision: Decision) -> Decision:
        # WebRTC never sees a tone: neither its hang-over nor its noise model carries it on.
        if not decision.tonal:
            speech = self._vad.is_speech(decision.samples.tobytes(), RATE)
            decision.speech = speech and self._classified >= _WARM_UP_FRAMES
            self._classified += 1
        return decision


#: WebRTC calls the first 140 ms of a stream speech whatever they hold (modes 0 and 1) while
#: it initialises.  Its verdicts on them are not taken; the frames still reach an utterance as
#: pre-roll, so speech at the very start is not clipped.  (Priming it with faint noise instead
#: sets its noise estimate so low that line noise at -45 dBm0 is "speech" for seconds.)
_WARM_UP_FRAMES = 7
