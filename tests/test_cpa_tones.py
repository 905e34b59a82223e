"""
Beeps, named tones, fax and modem tones: frequencies, durations, onsets, and what is not a beep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iradialer.cpa.wav import read_wav
from tests.cpa_signals import amplitude, dual, first, join, noise, run, silence, tone, voice

ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")


def line(x: np.ndarray) -> np.ndarray:
    """C{x} on a line with a little noise (-65 dBm0), as every analogue or mobile leg has."""
    return x + noise(len(x) / 8, -65)


def greeting_then(x: np.ndarray) -> np.ndarray:
    """A machine greeting, a short gap, then C{x}, then silence."""
    return line(join(silence(300), voice(3000), silence(400), x, silence(1500)))


@pytest.mark.parametrize("freq", [400, 700, 1000, 1400, 2000, 2500])
def test_beep_reported_at_its_onset_with_its_frequency(freq: float) -> None:
    """
    A 300 ms beep after a greeting: BP, onset within 10 ms, decided within 100 ms of it,
    frequency within 1 Hz.
    """
    x = greeting_then(tone(freq + 3.3, 300, -20))
    bp = first(x, "BP")
    assert bp is not None
    onset = 3700
    assert abs(bp.ms - onset) <= 10
    assert bp.decided_ms - onset <= 100
    assert abs(bp.extras["frequency"] - (freq + 3.3)) <= 1.0


def test_beep_in_noise_at_15_db() -> None:
    """
    A -30 dBm0 beep with white noise 15 dB below it is found.
    """
    x = greeting_then(tone(850, 250, -30))
    x = x + noise(len(x) / 8, -45)
    assert first(x, "BP") is not None


def test_short_tone_is_not_a_beep() -> None:
    """
    60 ms of tone is shorter than beep_min_length (80 ms): no BP; 120 ms is a beep, unless
    beep_min_length is 200.
    """
    assert first(greeting_then(tone(1000, 60, -20)), "BP") is None
    assert first(greeting_then(tone(1000, 120, -20)), "BP") is not None
    assert first(greeting_then(tone(1000, 120, -20)), "BP", beep_min_length=200) is None


@pytest.mark.parametrize("f1, f2", [(440, 480), (480, 620), (350, 440), (770, 1336)])
def test_dual_tones_are_not_beeps(f1: float, f2: float) -> None:
    """
    Ringback, busy, dial tone and a DTMF digit are dual tones, never BP.
    """
    x = greeting_then(dual(f1, f2, 1000, -20, -20))
    assert first(x, "BP") is None


@pytest.mark.parametrize("second_db, third_db", [(-16, -60), (-60, -15), (-17, -19)])
def test_a_note_with_harmonics_is_not_a_beep(second_db: float, third_db: float) -> None:
    """
    A held instrument note (a fundamental with its 2nd/3rd harmonics 15-19 dB down, about
    -15 dB together) is not a beep, though its fundamental is as steady as one; the same
    fundamental alone, or with harmonics 30 dB down (a slightly distorted beep), is.
    """
    f0, level = 624.0, -25.0

    def note(h2: float, h3: float) -> np.ndarray:
        return (
            tone(f0, 400, level)
            + tone(2 * f0, 400, level + h2, 0.4)
            + tone(3 * f0, 400, level + h3, 1.3)
        )

    assert first(greeting_then(note(second_db, third_db)), "BP") is None
    assert first(greeting_then(note(-30, -33)), "BP") is not None
    assert first(greeting_then(tone(f0, 400, level)), "BP") is not None


def test_a_pure_note_after_a_run_of_notes_is_not_a_beep() -> None:
    """
    Four short pure notes (60 ms, too short to count as "a tone just before") within the
    second before a steady pure tone make it part of a melody: no BP.  Three such notes (as
    a greeting's steady vowels can give) or none leave it a beep.
    """

    def melody(notes: int) -> np.ndarray:
        parts = [silence(200)]
        for f in (523.3, 587.3, 659.3, 784.0)[:notes]:
            parts += [tone(f, 60, -22), silence(140)]
        # Notes shorter than 80 ms, the last 320 ms before the tone: the isolation test is out.
        parts += [silence(180), tone(622.3, 400, -22), silence(1000)]
        return join(*parts)

    assert first(greeting_then(melody(4)), "BP") is None
    assert first(greeting_then(melody(3)), "BP") is not None
    assert first(greeting_then(melody(0)), "BP") is not None


def test_a_pure_tone_out_of_continuous_sound_is_not_a_beep() -> None:
    """
    A pure tone that takes over from a second and a half of continuous sound as loud as it
    (a held note where the rest of the band stops) is not a beep; after a 200 ms pause, or
    cutting into a recorded greeting mid-word (speech dips between syllables), the same tone
    is one.
    """
    band = noise(1500, -22, seed=5)
    note = tone(622.3, 400, -22)
    assert first(line(join(silence(500), band, note, silence(1000))), "BP") is None
    assert first(line(join(silence(500), band, silence(200), note, silence(1000))), "BP")
    greeting = read_wav(ALLISON / "vm-nobodyavail.wav").astype(float)[:16000]
    greeting *= amplitude(-22) / np.sqrt(2 * np.mean(greeting**2))
    assert first(line(join(silence(300), greeting, note, silence(1000))), "BP")


def test_beep_soon_after_the_greeting_last_vowel() -> None:
    """
    A beep 200 ms after the greeting's last steady vowel (a tone-like "note" of 200 ms) is a
    beep; a tone that follows another at once (legato) is a melody, not a beep.
    """
    vowel = tone(300, 200, -20) + tone(600, 200, -36, 0.5)
    beep = tone(1000, 300, -20)
    greeting = join(silence(300), voice(2000), silence(300))
    assert first(line(join(greeting, vowel, silence(200), beep, silence(1000))), "BP")
    assert first(line(join(greeting, vowel, beep, silence(1000))), "BP") is None


def test_beep_is_am() -> None:
    """
    A beep before any LV/AM decision means AM (beep_is_am yes, the default), reported after BP;
    with beep_is_am no the beep alone decides nothing.
    """
    x = line(join(silence(300), voice(1200), silence(300), tone(1000, 400, -18), silence(3000)))
    assert [e for e in _names(run(x)) if e in ("BP", "AM", "LV")][:2] == ["BP", "AM"]
    names = _names(run(x, beep_is_am=False))
    assert "BP" in names
    assert names.index("LV") > names.index("BP")


def _names(found: list) -> list[str]:
    return [getattr(w, "event", "done") for w in found]


def test_named_tone_inside_and_outside_tolerance() -> None:
    """
    "XA": "850|20" is reported for 866 Hz (inside), not for 900 Hz (beyond 2 x 20 + 10 Hz).
    """
    tones = {"XA": "850|20"}
    assert (
        first(join(silence(500), tone(866, 400, -20), silence(500)), "XA", tones=tones) is not None
    )
    assert first(join(silence(500), tone(900, 400, -20), silence(500)), "XA", tones=tones) is None


def test_named_tone_with_tight_tolerance() -> None:
    """
    "FX": "2100|5": 2104 Hz is FX, 2121 Hz is not (and is outside CED's own +-15 Hz too).
    """
    tones = {"FX": "2100|5"}
    assert (
        first(join(silence(500), tone(2104, 600, -20), silence(300)), "FX", tones=tones) is not None
    )
    assert first(join(silence(500), tone(2121, 1200, -20), silence(300)), "FX", tones=tones) is None


def test_bp_spec_restricts_beeps() -> None:
    """
    With "BP": "1000|10" configured, a 700 Hz beep is not BP, a 1005 Hz one is.
    """
    tones = {"BP": "1000|10"}
    assert first(greeting_then(tone(700, 300, -20)), "BP", tones=tones) is None
    assert first(greeting_then(tone(1005, 300, -20)), "BP", tones=tones) is not None


def _ced(ms: float, reversals: bool, am: bool) -> np.ndarray:
    t = np.arange(int(ms * 8)) / 8000
    phase = np.pi * (np.floor(t / 0.45) % 2) if reversals else 0
    x = np.sin(2 * np.pi * 2100 * t + phase)
    if am:
        x = x * (1 + 0.2 * np.sin(2 * np.pi * 15 * t))
    return x * tone(1000, ms, -15).max()


@pytest.mark.parametrize(
    "signal, event",
    [
        (_ced(3000, False, False), "FX"),
        (_ced(3000, True, False), "FX"),
        (_ced(3000, False, True), "MD"),
        (_ced(3000, True, True), "MD"),
        (tone(2225, 2500, -15), "MD"),
        (join(tone(1100, 500, -15), silence(3000), tone(1100, 500, -15)), "FX"),
    ],
)
def test_fax_and_modem_within_one_second(signal: np.ndarray, event: str) -> None:
    """
    CED (with and without phase reversals), ANSam, Bell 2225 Hz and CNG after silence are
    FX/MD within 1.0 s of the tone's onset, with no BP before.
    """
    x = join(silence(1200), signal, silence(500))
    found = [w for w in run(x) if getattr(w, "event", "") in ("FX", "MD", "BP", "LV", "AM")]
    assert found[0].event == event
    assert found[0].decided_ms - 1200 <= 1000


def test_v21_preamble_is_fax() -> None:
    """
    V.21 HDLC flags (1650/1850 Hz FSK at 300 bit/s) are FX.
    """
    bits = np.tile([0, 1, 1, 1, 1, 1, 1, 0], 50)
    n = 8000
    index = (np.arange(n) / (8000 / 300)).astype(int)
    freq = np.where(bits[index] == 1, 1650.0, 1850.0)
    x = join(silence(800), np.sin(2 * np.pi * np.cumsum(freq) / 8000) * 5000, silence(500))
    found = [w for w in run(x) if getattr(w, "event", "") in ("FX", "MD", "BP", "LV", "AM")]
    assert found[0].event == "FX"
    assert found[0].extras["signal"] == "V.21"


def test_fax_frequency_beep_after_a_greeting_is_a_beep() -> None:
    """
    A 400 ms 2100 Hz beep after a greeting is BP, not FX (a fax needs 1.5 s after speech).
    """
    names = _names(run(greeting_then(tone(2100, 400, -20))))
    assert "BP" in names
    assert "FX" not in names
