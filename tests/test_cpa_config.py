"""
The setcpaparams body as a CpaConfig: seed defaults, round trips, and clear errors.
"""

from __future__ import annotations

import json

import pytest

from iradialer.cpa.config import GENERATIONS, CpaConfig, ToneSpec


def test_defaults_are_the_seeds() -> None:
    """
    Every key of the seed's table with the seed's default; 1.1 for a new configuration.
    """
    c = CpaConfig.from_params({})
    assert c.api_version == "1.1"
    assert (c.min_ambient_energy, c.initial_silence_ignore) == (2, 750)
    assert (c.log_rtp_history, c.log_voice) == (False, False)
    assert c.tones == () and c.break_events == ()
    assert (c.total_timeout, c.silence_detect_limit, c.beep_to_silence_gap) == (15000, 2000, 0)
    assert (c.beep_is_am, c.detect_dtmf) == (True, True)
    assert c.rules == GENERATIONS["1.1"]


def test_full_body_round_trips_through_json() -> None:
    """
    to_params gives a body whose from_params (after a JSON round trip, as in SQLite) is equal.
    """
    body = {
        "request_name": "set_cpa_params",
        "tenant_id": "acme",
        "config_name": "my_setup",
        "api_version": "1.0",
        "analysis": "amd",
        "min_ambient_energy": 1,
        "initial_silence_ignore": 5000,
        "log_rtp_history": True,
        "tones": {"FX": "2100|5", "MD": "1662|5", "BP": "1000|10"},
        "log_voice": True,
        "break_events": "FX,MD,AM",
        "total_timeout": 20000,
        "silence_detect_limit": 3000,
        "beep_to_silence_gap": 1500,
        "beep_is_am": False,
        "detect_dtmf": False,
        "greeting": 1800,
        "speech_snr_db": 7.5,
    }
    c = CpaConfig.from_params(body)
    assert c.tones[0] == ToneSpec("FX", 2100.0, 5.0)
    assert c.break_events == ("FX", "MD", "AM")
    assert c.rules.greeting == 1800 and c.rules.speech_snr_db == 7.5
    assert c.rules.after_greeting_silence == GENERATIONS["1.0"].after_greeting_silence
    again = CpaConfig.from_params(json.loads(json.dumps(c.to_params())))
    assert again == c


def test_lenient_values() -> None:
    """
    yes/no strings and numeric strings are accepted (if the API did not coerce them already);
    break_events is case- and space-insensitive.
    """
    c = CpaConfig.from_params(
        {
            "beep_is_am": "no",
            "detect_dtmf": "Yes",
            "total_timeout": "20000",
            "break_events": " am , fx ",
        }
    )
    assert (c.beep_is_am, c.detect_dtmf, c.total_timeout) == (False, True, 20000)
    assert c.break_events == ("AM", "FX")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"api_version": "2.0"}, "api_version"),
        ({"analysis": "vad"}, "analysis"),
        ({"tones": {"FX": "2100"}}, "frequency|tolerance"),
        ({"tones": {"FX": "abc|5"}}, "frequency|tolerance"),
        ({"tones": {"fax": "2100|5"}}, "2-character"),
        ({"tones": {"LV": "1000|5"}}, "outcome"),
        ({"tones": {"XX": "9000|5"}}, "outside"),
        ({"tones": {"XX": "1000|0"}}, "tolerance"),
        ({"tones": "FX"}, "object"),
        ({"silence_detect_limit": 500}, "silence_detect_limit"),
        ({"silence_detect_limit": 10001}, "silence_detect_limit"),
        ({"break_events": "AM,XY"}, "break_events"),
        ({"break_events": "2100"}, "name it in tones"),
        ({"total_timeout": -1}, "total_timeout"),
        ({"beep_is_am": "maybe"}, "beep_is_am"),
        ({"greeting": 10}, "greeting"),
        ({"speech_detector": "neural"}, "speech_detector"),
    ],
)
def test_semantic_errors_name_the_key(params: dict, message: str) -> None:
    """
    Well-typed but meaningless values raise ValueError naming the key or the problem.
    """
    with pytest.raises(ValueError, match=message):
        CpaConfig.from_params(params)


def test_silence_detect_limit_zero_is_off_and_break_on_named_tone() -> None:
    """
    silence_detect_limit 0 turns SL off; a configured tone name may be a break event.
    """
    c = CpaConfig.from_params(
        {"silence_detect_limit": 0, "tones": {"XA": "850|20"}, "break_events": "XA"}
    )
    assert c.silence_detect_limit == 0
    assert c.break_events == ("XA",)
