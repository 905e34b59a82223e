"""
Steady single-tone tracking and V.21 preamble detection, for a batch of streams.

A frame is I{tonal} when the three DFT bins around its strongest peak (200-3600 Hz) hold most
of its energy.  Its frequency is measured from the phase advance of that bin since the previous
frame (hop = frame = 20 ms, so the estimate is unambiguous within +-25 Hz of the bin centre and
accurate to a fraction of a hertz on a clean tone): a Goertzel bin alone is 50 Hz wide and
could not honour a tolerance like C{2100|5}.

Consecutive tonal frames at the same bin, the same level (+-4 dB) and the same frequency
(+-8 Hz of the run's mean) form a I{run}.  Up to two frames that break the run (a phase
reversal of fax ANS/, a click) are forgiven.  Dual tones (ringback 440+480 Hz, busy, DTMF) do not
form runs: their beating moves the level and the phase from frame to frame.

The tracker does not name tones; the engine classifies a run when it reaches a milestone
(L{ToneTracker.process} returns the rows that did), from its mean frequency, frequency spread
and amplitude modulation depth (ANSam is 2100 Hz with 15 Hz AM).  For beeps it also keeps each
stream's context: the ends of its last few tones and the levels of its last 1.2 s of frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iradialer.cpa.frontend import BIN_HZ, FIRST_BIN, FRAME_MS, Frames
from iradialer.cpa.state import Columns, Index

_LOW = 4 - FIRST_BIN  # 200 Hz
_HIGH = 72 - FIRST_BIN  # 3600 Hz
_FSK_BAND = slice(31 - FIRST_BIN, 40 - FIRST_BIN)  # 1550-1950 Hz
_FSK_MARK = 33 - FIRST_BIN  # 1650 Hz
_FSK_SPACE = 37 - FIRST_BIN  # 1850 Hz
#: Runs at least this long count as an earlier tone when judging whether a beep is isolated.
_NOTE_FRAMES = 4
#: Runs at least this long (40 ms) count as tones of a melody; the ends of the last
#: C{RECENT_TONES} of them are kept.
_TONE_FRAMES = 2
RECENT_TONES = 4
#: Frame levels kept per stream (1.2 s): the context of a tone that may be a beep.
_CONTEXT_FRAMES = 60


@dataclass(frozen=True)
class ToneLimits:
    min_tonality: float = 0.85
    min_level_dbm0: float = -50.0
    max_level_step_db: float = 4.0
    max_frequency_step_hz: float = 8.0
    forgiven_frames: int = 2
    fsk_min_fraction: float = 0.80
    fsk_min_level_dbm0: float = -45.0


@dataclass(frozen=True)
class RunStats:
    """
    What is known about one tone run when it reaches a milestone.
    """

    frames: int
    missed: int  # frames of the run's span that did not fit it
    onset_ms: int
    frequency: float
    spread: float  # standard deviation of the per-frame estimates, Hz
    am_depth: float  # standard deviation / mean of the frame amplitude
    level: float  # dBm0
    tonality: float  # mean share of the frame energy in the three bins around the peak
    harmonics: float  # mean energy at 2f and 3f relative to f
    level_spread: float  # standard deviation of the frame levels, dB


class ToneTracker:
    def __init__(self, capacity: int, limits: ToneLimits | None = None) -> None:
        self.limits = limits or ToneLimits()
        self.s = Columns(
            {
                "prev_re": ((_HIGH + 2,), np.float32, 0),
                "prev_im": ((_HIGH + 2,), np.float32, 0),
                "prev_tonal": ((), np.bool_, False),
                "prev_peak": ((), np.int16, -10),
                "prev_last_quarter": ((), np.float32, 0),
                "length": ((), np.int32, 0),
                "peak": ((), np.int16, 0),
                "misses": ((), np.int16, 0),
                "missed": ((), np.int16, 0),
                "n_freq": ((), np.int32, 0),
                "f_sum": ((), np.float64, 0),
                "f_sq": ((), np.float64, 0),
                "n_level": ((), np.int32, 0),
                "level_sum": ((), np.float64, 0),
                "amp_sum": ((), np.float64, 0),
                "amp_sq": ((), np.float64, 0),
                "tonality_sum": ((), np.float64, 0),
                "harmonic_sum": ((), np.float64, 0),
                "level_sq": ((), np.float64, 0),
                "onset_ms": ((), np.int64, 0),
                "previous_end_ms": ((), np.int64, -(10**9)),
                "tone_ends_ms": ((RECENT_TONES,), np.int64, -(10**9)),
                "levels": ((_CONTEXT_FRAMES,), np.float32, 0),
                "level_ms": ((_CONTEXT_FRAMES,), np.int64, -(10**9)),
                "fsk_length": ((), np.int32, 0),
                "fsk_misses": ((), np.int16, 0),
                "fsk_mark": ((), np.float64, 0),
                "fsk_space": ((), np.float64, 0),
            },
            capacity,
        )

    def process(
        self, idx: Index, f: Frames, ms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """
        Update the runs of the streams at C{idx} with their frames C{f} (whose first samples
        are at C{ms}).

        @return: (length, fsk_length, grew): the run lengths in frames after this frame (0: no
            run) and which runs started or grew with this frame.
        """
        s = self.s
        lim = self.limits
        k = f.x.shape[0]
        rows = np.arange(k)
        power = f.power
        total = power.sum(axis=1) + 1e-3
        peak = np.argmax(power[:, _LOW : _HIGH + 1], axis=1) + _LOW
        near = power[rows, peak - 1] + power[rows, peak] + power[rows, peak + 1]
        tonal = (near >= lim.min_tonality * total) & (f.level >= lim.min_level_dbm0)

        prev_re = s.prev_re[idx]
        prev_im = s.prev_im[idx]
        pr = prev_re[rows, peak]
        pi = prev_im[rows, peak]
        cr = f.re[rows, peak]
        ci = f.im[rows, peak]
        advance = np.arctan2(ci * pr - cr * pi, cr * pr + ci * pi)
        fine = (peak + FIRST_BIN) * BIN_HZ + advance * (BIN_HZ / (2 * np.pi))
        # The phase advance is known modulo one bin (50 Hz); a quadratic fit of the log
        # magnitude around the peak (good to a few Hz) picks the right turn, which matters
        # for tones near a bin edge such as Bell's 2225 Hz.
        a = np.log(power[rows, peak - 1] + 1e-3)
        b = np.log(power[rows, peak] + 1e-3)
        c = np.log(power[rows, peak + 1] + 1e-3)
        curvature = a - 2 * b + c
        delta = np.where(curvature < 0, 0.5 * (a - c) / np.where(curvature < 0, curvature, -1), 0)
        coarse = (peak + FIRST_BIN + np.clip(delta, -0.5, 0.5)) * BIN_HZ
        frequency = fine + BIN_HZ * np.round((coarse - fine) / BIN_HZ)
        ratio = near / total
        harmonics = np.zeros(k)
        for multiple in (2, 3):
            h = (peak + FIRST_BIN) * multiple - FIRST_BIN
            ok = h + 1 < power.shape[1]
            hc = np.where(ok, h, 1)
            harmonics += np.where(
                ok, power[rows, hc - 1] + power[rows, hc] + power[rows, hc + 1], 0.0
            )
        harmonics = harmonics / (near + 1e-3)
        measured = tonal & s.prev_tonal[idx] & (np.abs(peak - s.prev_peak[idx]) <= 1)

        length = s.length[idx]
        run_peak = s.peak[idx]
        n_freq = s.n_freq[idx]
        f_sum = s.f_sum[idx]
        f_sq = s.f_sq[idx]
        n_level = s.n_level[idx]
        level_sum = s.level_sum[idx]
        in_run = length > 0
        mean_f = f_sum / np.maximum(n_freq, 1)
        mean_level = level_sum / np.maximum(n_level, 1)
        same_peak = np.abs(peak - run_peak) <= 1
        close = (
            ~measured | (n_freq == 0) | (np.abs(frequency - mean_f) <= lim.max_frequency_step_hz)
        )
        consistent = (
            in_run
            & tonal
            & same_peak
            & (np.abs(f.level - mean_level) <= lim.max_level_step_db)
            & close
        )
        start = tonal & ~consistent & (~in_run | ~same_peak)
        missed = in_run & ~consistent & ~start
        misses = np.where(consistent | start, 0, s.misses[idx] + missed)
        ended = missed & (misses > lim.forgiven_frames)

        counted = consistent & measured
        amp = np.sqrt(f.mean_square)
        onset = self._onset(f, ms, s.prev_last_quarter[idx])
        keep = consistent | (in_run & ~ended & ~start)
        finished = (ended | (start & in_run)) & (length >= _NOTE_FRAMES)
        s.previous_end_ms[idx] = np.where(finished, ms, s.previous_end_ms[idx])
        slots = _slots(idx, k)
        position = (ms // FRAME_MS) % _CONTEXT_FRAMES
        s.levels[slots, position] = f.level
        s.level_ms[slots, position] = ms
        tone_ended = (ended | (start & in_run)) & (length >= _TONE_FRAMES)
        if tone_ended.any():
            slots = slots[tone_ended]
            ends = s.tone_ends_ms[slots]
            s.tone_ends_ms[slots] = np.concatenate([ends[:, 1:], ms[tone_ended, None]], axis=1)
        s.length[idx] = np.where(start, 1, np.where(keep, length + consistent, 0))
        s.peak[idx] = np.where(start, peak, run_peak)
        s.misses[idx] = misses
        s.missed[idx] = np.where(start, 0, s.missed[idx] + missed)
        s.n_freq[idx] = np.where(start, 0, n_freq + counted)
        s.f_sum[idx] = np.where(start, 0.0, f_sum + np.where(counted, frequency, 0.0))
        s.f_sq[idx] = np.where(start, 0.0, f_sq + np.where(counted, frequency * frequency, 0.0))
        s.n_level[idx] = np.where(start, 1, n_level + consistent)
        s.level_sum[idx] = np.where(start, f.level, level_sum + np.where(consistent, f.level, 0))
        s.amp_sum[idx] = np.where(start, amp, s.amp_sum[idx] + np.where(consistent, amp, 0))
        s.amp_sq[idx] = np.where(start, amp * amp, s.amp_sq[idx] + np.where(consistent, amp**2, 0))
        s.tonality_sum[idx] = np.where(
            start, ratio, s.tonality_sum[idx] + np.where(consistent, ratio, 0)
        )
        s.harmonic_sum[idx] = np.where(
            start, harmonics, s.harmonic_sum[idx] + np.where(consistent, harmonics, 0)
        )
        s.level_sq[idx] = np.where(
            start, f.level**2, s.level_sq[idx] + np.where(consistent, f.level**2, 0)
        )
        s.onset_ms[idx] = np.where(start, onset, s.onset_ms[idx])
        s.prev_re[idx] = f.re[:, : _HIGH + 2]
        s.prev_im[idx] = f.im[:, : _HIGH + 2]
        s.prev_tonal[idx] = tonal
        s.prev_peak[idx] = peak
        s.prev_last_quarter[idx] = f.quarters[:, 3]

        band = power[:, _FSK_BAND].sum(axis=1)
        fsk = (band >= lim.fsk_min_fraction * total) & (f.level >= lim.fsk_min_level_dbm0)
        fsk_length = s.fsk_length[idx]
        fsk_misses = np.where(fsk, 0, s.fsk_misses[idx] + 1)
        fsk_ended = fsk_misses > lim.forgiven_frames
        mark = power[:, _FSK_MARK] / (band + 1e-3)
        space = power[:, _FSK_SPACE] / (band + 1e-3)
        fsk_length = np.where(fsk_ended, 0, fsk_length + fsk)
        s.fsk_length[idx] = fsk_length
        s.fsk_misses[idx] = fsk_misses
        s.fsk_mark[idx] = np.where(fsk_ended, 0.0, s.fsk_mark[idx] + np.where(fsk, mark, 0))
        s.fsk_space[idx] = np.where(fsk_ended, 0.0, s.fsk_space[idx] + np.where(fsk, space, 0))
        return s.length[idx], fsk_length, consistent | start

    def _onset(self, f: Frames, ms: np.ndarray, prev_last: np.ndarray) -> np.ndarray:
        """
        When in the frame the tone began, to 5 ms: the first quarter with a third of the
        strongest quarter's energy (or the previous frame's last quarter).
        """
        q = f.quarters
        threshold = 0.3 * q.max(axis=1)
        first = np.argmax(q >= threshold[:, None], axis=1)
        earlier = (first == 0) & (prev_last >= threshold)
        return ms + 5 * first - 5 * earlier

    def stats(self, slot: int) -> RunStats:
        s = self.s
        n = max(int(s.n_freq[slot]), 1)
        mean = float(s.f_sum[slot]) / n
        spread = float(np.sqrt(max(float(s.f_sq[slot]) / n - mean * mean, 0.0)))
        m = max(int(s.n_level[slot]), 1)
        amp_mean = float(s.amp_sum[slot]) / m
        amp_var = max(float(s.amp_sq[slot]) / m - amp_mean * amp_mean, 0.0)
        return RunStats(
            frames=int(s.length[slot]),
            missed=int(s.missed[slot]),
            onset_ms=int(s.onset_ms[slot]),
            frequency=mean,
            spread=spread,
            am_depth=float(np.sqrt(amp_var)) / max(amp_mean, 1e-9),
            level=float(s.level_sum[slot]) / m,
            tonality=float(s.tonality_sum[slot]) / m,
            harmonics=float(s.harmonic_sum[slot]) / m,
            level_spread=float(
                np.sqrt(max(float(s.level_sq[slot]) / m - (float(s.level_sum[slot]) / m) ** 2, 0))
            ),
        )

    def tones_ended_since(self, slot: int, ms: int) -> int:
        """
        How many tones of 40 ms or more (up to L{RECENT_TONES}) ended at or after C{ms}.
        """
        return int((self.s.tone_ends_ms[slot] >= ms).sum())

    def quiet_frames(
        self, slot: int, since_ms: int, until_ms: int, below_dbm0: float
    ) -> tuple[int, int]:
        """
        Of the frames heard from C{since_ms} to C{until_ms} (at most 1.2 s back): how many
        there are, and how many were below C{below_dbm0}.
        """
        when = self.s.level_ms[slot]
        inside = (when >= since_ms) & (when + FRAME_MS <= until_ms)
        return int(inside.sum()), int((inside & (self.s.levels[slot] <= below_dbm0)).sum())

    def fsk_shares(self, slot: int) -> tuple[float, float]:
        n = max(int(self.s.fsk_length[slot]), 1)
        return float(self.s.fsk_mark[slot]) / n, float(self.s.fsk_space[slot]) / n


def _slots(idx: Index, k: int) -> np.ndarray:
    return np.arange(idx.start, idx.start + k) if isinstance(idx, slice) else idx
