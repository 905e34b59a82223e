"""
DTMF receiver to ITU-T Q.24, on 10 ms half frames, for a batch of streams.

Each half frame (80 samples, Hamming window) is projected on the eight DTMF frequencies.  A
half qualifies for a digit when its strongest row and column tones are both above the level
floor, carry most of the half's energy, and their twist is inside the limits.  The frequency of
each tone is measured from the phase advance between consecutive qualifying halves (a pulse-pair
estimate, exact to a fraction of a hertz at 15 dB SNR), which is what makes the +-1.5% accept /
+-3.5% reject edges separable: a bin magnitude alone moves by less than 1 dB across them.

Duration: a digit needs three consecutive qualifying halves.  A 40 ms tone always covers three
whole halves, a 23 ms tone never does.  A digit ends after three non-qualifying halves (a
40 ms pause always has them, a 10 ms gap never does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iradialer.cpa.frontend import P0, RATE
from iradialer.cpa.state import Columns, Index

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
FREQS = np.array(ROWS + COLUMNS)
KEYS = "123A456B789C*0#D"
HALF = 80


@dataclass(frozen=True)
class DtmfLimits:
    #: Lowest level of each tone, dBm0 (Q.24: accept down to -25 dBm0).
    min_level_dbm0: float = -32.0
    #: The two tones must carry this fraction of the half's energy.
    min_tone_fraction: float = 0.85
    #: Column tone weaker than row tone by at most this (normal twist, accept 8 dB).
    max_normal_twist_db: float = 10.0
    #: Column tone stronger than row tone by at most this (reverse twist, accept 4 dB).
    max_reverse_twist_db: float = 6.0
    #: Largest measured frequency offset, fraction of nominal (accept 1.5%, reject 3.5%).
    max_offset: float = 0.023
    #: Consecutive qualifying halves for a digit / non-qualifying halves ending it.
    min_halves: int = 3
    release_halves: int = 3


_WINDOW = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(HALF) / (HALF - 1))


def _projection_matrix() -> tuple[np.ndarray, float]:
    n = np.arange(HALF)
    window = _WINDOW
    angle = 2 * np.pi * np.outer(n, FREQS) / RATE
    matrix = np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], 1)
    return matrix.astype(np.float32), float(window.sum())


PROJECT, _WINDOW_SUM = _projection_matrix()
_ENERGY_WEIGHTS = (_WINDOW**2 / np.sum(_WINDOW**2)).astype(np.float32)
#: Expected phase advance over one half at each nominal frequency, removed before averaging.
_ADVANCE = np.exp(-2j * np.pi * FREQS * HALF / RATE).astype(np.complex64)


class DtmfDetector:
    """
    Batched Q.24 receiver.  L{process} returns, per half frame, the rows that detected a digit.
    """

    def __init__(self, capacity: int, limits: DtmfLimits | None = None) -> None:
        self.limits = limits or DtmfLimits()
        self.s = Columns(
            {
                "prev": ((8,), np.complex64, 0),
                "prev_digit": ((), np.int8, -1),
                "digit": ((), np.int8, -1),
                "length": ((), np.int16, 0),
                "misses": ((), np.int16, 0),
                "reported": ((), np.bool_, False),
                "z_row": ((), np.complex64, 0),
                "z_col": ((), np.complex64, 0),
                "onset_ms": ((), np.int64, 0),
            },
            capacity,
        )
        lim = self.limits
        self._min_power = P0 * 10 ** (lim.min_level_dbm0 / 10)

    def process(
        self, idx: Index, x: np.ndarray, ms: np.ndarray
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """
        Run both halves of the frames C{x} (k, 160) of the streams at C{idx}.

        @return: (active, found): C{active} marks rows where a digit tone is present (not
            speech); C{found} is, per half, (row numbers, digit indexes, onset ms).
        """
        k = x.shape[0]
        halves = x.reshape(k * 2, HALF)
        proj = (halves @ PROJECT).reshape(k, 2, 16)
        energy = ((halves * halves) @ _ENERGY_WEIGHTS).reshape(k, 2)
        s = self.s
        prev = s.prev[idx]
        prev_digit = s.prev_digit[idx]
        digit = s.digit[idx]
        length = s.length[idx]
        misses = s.misses[idx]
        reported = s.reported[idx]
        z_row = s.z_row[idx]
        z_col = s.z_col[idx]
        onset = s.onset_ms[idx]
        active = np.zeros(k, dtype=bool)
        found = []
        rows = np.arange(k)
        lim = self.limits
        for h in range(2):
            c = proj[:, h, :8] + 1j * proj[:, h, 8:]
            power = 2.0 * (c.real**2 + c.imag**2) / _WINDOW_SUM**2
            r = np.argmax(power[:, :4], axis=1)
            col = np.argmax(power[:, 4:], axis=1) + 4
            p_row = power[rows, r]
            p_col = power[rows, col]
            twist = 10.0 * np.log10((p_col + 1e-9) / (p_row + 1e-9))
            qualifies = (
                (p_row >= self._min_power)
                & (p_col >= self._min_power)
                & (p_row + p_col >= lim.min_tone_fraction * energy[:, h])
                & (twist >= -lim.max_normal_twist_db)
                & (twist <= lim.max_reverse_twist_db)
            )
            d = np.where(qualifies, r * 4 + (col - 4), -1).astype(np.int8)
            active |= qualifies
            pair = c * np.conj(prev) * _ADVANCE
            same = qualifies & (d == prev_digit)
            new = qualifies & (d != digit)
            cont = qualifies & (d == digit)
            half_ms = ms + 10 * h
            z_row = np.where(new, 0, z_row + np.where(same & cont, pair[rows, r], 0))
            z_col = np.where(new, 0, z_col + np.where(same & cont, pair[rows, col], 0))
            onset = np.where(new, half_ms, onset)
            reported = np.where(new, False, reported)
            length = np.where(new, 1, np.where(cont, length + 1, length))
            misses = np.where(qualifies, 0, misses + 1)
            digit = np.where(new, d, digit)
            released = ~qualifies & (misses >= lim.release_halves)
            digit = np.where(released, -1, digit)
            length = np.where(released, 0, length)
            reported = np.where(released, False, reported)
            candidate = (digit >= 0) & ~reported & (length >= lim.min_halves)
            if candidate.any():
                hit = candidate & self._frequencies_ok(digit, z_row, z_col)
                if hit.any():
                    where = np.nonzero(hit)[0]
                    found.append((where, digit[where].astype(np.int64), onset[where]))
                    reported = reported | hit
            prev = c.astype(np.complex64)
            prev_digit = d
        s.prev[idx] = prev
        s.prev_digit[idx] = prev_digit
        s.digit[idx] = digit
        s.length[idx] = length
        s.misses[idx] = misses
        s.reported[idx] = reported
        s.z_row[idx] = z_row
        s.z_col[idx] = z_col
        s.onset_ms[idx] = onset
        return active, found

    def _frequencies_ok(
        self, digit: np.ndarray, z_row: np.ndarray, z_col: np.ndarray
    ) -> np.ndarray:
        d = np.maximum(digit, 0)
        f_row = FREQS[d // 4]
        f_col = FREQS[4 + d % 4]
        off_row = np.angle(z_row) * (RATE / HALF) / (2 * np.pi)
        off_col = np.angle(z_col) * (RATE / HALF) / (2 * np.pi)
        limit = self.limits.max_offset
        return (
            (np.abs(z_row) > 0)
            & (np.abs(z_col) > 0)
            & (np.abs(off_row) <= limit * f_row)
            & (np.abs(off_col) <= limit * f_col)
        )
