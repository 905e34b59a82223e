"""
The DTMF receiver against the ITU-T Q.24 edges (CPA-NOTES.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from iradialer.cpa.dtmf import COLUMNS, KEYS, ROWS
from iradialer.cpa.g711 import ulaw_decode, ulaw_encode
from tests.cpa_signals import dual, join, noise, pcm, run, silence


def digits(x: np.ndarray, **params: object) -> str:
    return "".join(
        w.digit or ""
        for w in run(x, total_timeout=600000, **params)
        if getattr(w, "event", "") == "DTMF"
    )


def key_signal(
    key: str,
    ms: float = 60,
    row_off: float = 0.0,
    col_off: float = 0.0,
    row_db: float = -10,
    col_db: float = -10,
) -> np.ndarray:
    i = KEYS.index(key)
    return dual(ROWS[i // 4] * (1 + row_off), COLUMNS[i % 4] * (1 + col_off), ms, row_db, col_db)


def sequence(
    ms: float = 40, pause: float = 40, noise_db: float | None = -40, **kw: float
) -> np.ndarray:
    parts = [silence(200)]
    for key in KEYS:
        parts += [key_signal(key, ms, **kw), silence(pause)]
    x = join(*parts, silence(300))
    if noise_db is not None:
        x = x + noise(len(x) / 8, noise_db)
    return x


@pytest.mark.parametrize(
    "row_off, col_off", [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015), (-0.015, 0.015)]
)
def test_accepts_frequency_offsets_of_one_and_a_half_percent(
    row_off: float, col_off: float
) -> None:
    """
    All 16 digits, 40 ms each with 40 ms pauses, both tones 1.5% off, -25 dBm0 per tone and
    noise 15 dB below: every digit found once, in order.
    """
    x = sequence(row_off=row_off, col_off=col_off, row_db=-25, col_db=-25, noise_db=-40)
    assert digits(x) == KEYS


@pytest.mark.parametrize("row_off, col_off", [(0.035, 0), (-0.035, 0), (0, 0.035), (0, -0.035)])
def test_rejects_frequency_offsets_of_three_and_a_half_percent(
    row_off: float, col_off: float
) -> None:
    """
    One tone 3.5% off (at a strong -10 dBm0, 60 ms): no digit at all.
    """
    assert digits(sequence(ms=60, pause=60, row_off=row_off, col_off=col_off)) == ""


def test_accepts_40_ms_and_rejects_23_ms() -> None:
    """
    Duration: 40 ms tones are digits wherever they fall in the frames, 23 ms tones never are.
    """
    for start in range(0, 20, 3):
        lead = silence(100 + start)
        assert digits(join(lead, key_signal("5", 40), silence(200))) == "5"
        assert digits(join(lead, key_signal("5", 23), silence(200))) == ""


def test_twist_limits() -> None:
    """
    8 dB normal twist (high tone weaker) and 4 dB reverse twist are accepted at -25 dBm0 for
    the weaker tone.
    """
    assert digits(sequence(row_db=-17, col_db=-25)) == KEYS
    assert digits(sequence(row_db=-25, col_db=-21)) == KEYS


def test_levels() -> None:
    """
    -25 dBm0 per tone is detected, -55 dBm0 is not.
    """
    assert digits(sequence(ms=60, row_db=-25, col_db=-25, noise_db=None)) == KEYS
    assert digits(sequence(ms=60, row_db=-55, col_db=-55, noise_db=None)) == ""


def test_pauses_between_digits() -> None:
    """
    A 40 ms pause separates two equal digits; a 10 ms gap inside one digit does not make two.
    """
    assert (
        digits(
            join(silence(100), key_signal("7", 50), silence(40), key_signal("7", 50), silence(200))
        )
        == "77"
    )
    assert (
        digits(
            join(silence(100), key_signal("7", 50), silence(10), key_signal("7", 50), silence(200))
        )
        == "7"
    )


def test_unchanged_after_g711_round_trip() -> None:
    """
    The accept-edge sequence through mu-law gives the same digits.
    """
    x = sequence(row_off=0.015, col_off=-0.015, row_db=-25, col_db=-25, noise_db=-40)
    assert digits(ulaw_decode(ulaw_encode(pcm(x)))) == KEYS


def test_detect_dtmf_no_reports_nothing() -> None:
    """
    detect_dtmf = no turns the digits off.
    """
    assert digits(sequence(), detect_dtmf=False) == ""


def test_digit_reported_at_its_onset() -> None:
    """
    A digit's ms is its onset (to 10 ms); decided_ms is 30-40 ms later.
    """
    [d] = [
        w
        for w in run(join(silence(333), key_signal("#", 80), silence(200)))
        if getattr(w, "event", "") == "DTMF"
    ]
    assert d.digit == "#"
    assert 320 <= d.ms <= 345
    assert 20 <= d.decided_ms - d.ms <= 50
