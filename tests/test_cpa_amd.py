"""
Live voice / answering machine decisions, silence (SL) and the timers, on synthetic calls.
"""

from __future__ import annotations

import numpy as np

from iradialer.cpa.engine import Detection
from tests.cpa_signals import first, join, noise, run, silence, tone, voice


def line(x: np.ndarray, noise_dbm0: float = -65, seed: int = 1) -> np.ndarray:
    return x + noise(len(x) / 8, noise_dbm0, seed)


def hello(ms: float = 600, dbm0: float = -20) -> np.ndarray:
    return voice(ms, dbm0, seed=3)


def decision(x: np.ndarray, **params: object) -> Detection:
    for what in run(x, **params):
        if isinstance(what, Detection) and what.event in ("LV", "AM"):
            return what
    raise AssertionError("no LV/AM decision")


def test_short_greeting_then_silence_is_live_voice() -> None:
    """
    "hello?" (600 ms) then silence: LV about after_greeting_silence (750 ms in 1.1) after the
    greeting ends.
    """
    d = decision(line(join(silence(500), hello(), silence(3000))))
    assert d.event == "LV"
    assert d.extras["cause"] == "HUMAN"
    assert 1100 + 700 <= d.decided_ms <= 1100 + 900


def test_long_greeting_is_a_machine() -> None:
    """
    Continuous speech: AM once the greeting's span reaches greeting (2600 ms in 1.1).
    """
    d = decision(line(join(silence(400), voice(6000), silence(1000))))
    assert d.event == "AM"
    assert d.extras["cause"] == "LONGGREETING"
    assert 400 + 2500 <= d.decided_ms <= 400 + 2900


def test_greeting_threshold_is_tunable() -> None:
    """
    The same 2.4 s greeting is LV with the default greeting (2600) and AM with greeting 2000.
    """
    x = line(join(silence(400), voice(2400), silence(3000)))
    assert decision(x).event == "LV"
    assert decision(x, greeting=2000).event == "AM"


def test_noisy_line_is_not_a_long_greeting() -> None:
    """
    Line noise at -32 dBm0 (10 dB under the speech) before and after "hello?": LV, where a
    fixed threshold (1.0) calls the noise speech and decides AM.
    """
    x = line(join(silence(600), hello(dbm0=-22), silence(4000)), noise_dbm0=-32)
    assert decision(x).event == "LV"
    assert decision(x, api_version="1.0").event == "AM"


def test_comfort_noise_then_line_noise() -> None:
    """
    FreeSWITCH's 0xFF frames (-1) at the start, then line noise, then "hello?": LV.  The
    half-silent frame where the noise starts does not set the noise floor.
    """
    x = line(join(silence(900), hello(), silence(3000)), noise_dbm0=-40)
    x[:2200] = -1
    assert decision(x).event == "LV"


def test_quiet_line() -> None:
    """
    A -35 dBm0 "hello?" on a quiet line is heard whole (app_amd's fixed threshold chops it into
    words and calls it a machine).
    """
    x = line(join(silence(500), hello(dbm0=-35), silence(4000)), noise_dbm0=-62)
    assert decision(x).event == "LV"
    assert decision(x, api_version="1.0").event == "AM"


def test_initial_silence() -> None:
    """
    Nobody speaks: 1.1 decides LV (a person waiting) after initial_silence; 1.0 decides AM
    after 2500 ms, like app_amd.
    """
    x = line(silence(6000))
    d11 = decision(x)
    assert (d11.event, d11.extras["cause"]) == ("LV", "INITIALSILENCE")
    assert 3000 <= d11.decided_ms <= 3040
    d10 = decision(x, api_version="1.0")
    assert (d10.event, d10.decided_ms) == ("AM", 2500)


def test_initial_silence_ignore_skips_digital_silence() -> None:
    """
    Frames below min_ambient_energy in the first initial_silence_ignore ms are not analysed:
    initial silence counts from the first real audio.
    """
    x = line(silence(6000))
    x[:4000] = -1
    d = decision(x, initial_silence_ignore=500)
    assert 3500 <= d.decided_ms <= 3560
    assert decision(x, initial_silence_ignore=0).decided_ms <= 3040


def test_generation_10_counts_words() -> None:
    """
    1.0 (app_amd) calls a third word a machine; 1.1 does not count words.
    """
    words = [join(voice(300, -20, seed=i), silence(250)) for i in range(3)]
    x = line(join(silence(400), *words, silence(3000)))
    assert decision(x, api_version="1.0").extras["cause"] == "MAXWORDS"
    assert decision(x).event == "LV"


def test_silence_after_the_decision() -> None:
    """
    SL once the line has been silent for silence_detect_limit after LV; 0 turns it off.
    """
    x = line(join(silence(500), hello(), silence(4000)))
    sl = first(x, "SL", silence_detect_limit=2000)
    assert sl is not None and 1100 + 1950 <= sl.decided_ms <= 1100 + 2100
    assert first(x, "SL", silence_detect_limit=0) is None


def test_silence_after_a_beep() -> None:
    """
    beep_to_silence_gap: SL that long after the beep ends (one SL for that silence).
    """
    x = line(join(silence(300), voice(4000), silence(300), tone(1000, 400, -18), silence(3000)))
    found = [
        w
        for w in run(x, beep_to_silence_gap=1000, silence_detect_limit=0)
        if isinstance(w, Detection)
    ]
    sl = [w for w in found if w.event == "SL"]
    assert len(sl) == 1
    assert 5000 + 950 <= sl[0].decided_ms <= 5000 + 1100


def test_detection_timeout_and_break_events() -> None:
    """
    No decision by total_timeout: DT then cpa_done(total_timeout).  A break event ends the
    analysis right after it.
    """
    x = line(silence(3000))
    names = [getattr(w, "event", None) or f"done:{w.reason}" for w in run(x, total_timeout=1500)]
    assert names == ["DT", "done:total_timeout"]
    names = [
        getattr(w, "event", None) or f"done:{w.reason}"
        for w in run(line(join(silence(300), voice(4000))), break_events="AM")
    ]
    assert names == ["AM", "done:AM"]


def test_tones_are_not_speech() -> None:
    """
    A 2 s tone after "hello?" neither lengthens the greeting nor counts as silence: still LV
    (decided after the tone, once the silence after it is long enough).
    """
    x = line(join(silence(500), hello(), silence(200), tone(800, 2000, -20), silence(3000)))
    d = decision(x, beep_is_am=False)
    assert d.event == "LV"
    assert d.decided_ms >= 3300
