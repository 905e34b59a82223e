"""
The ASR configuration (setasrparams, seed 3.23): the seed's keys and defaults, checked
against the applications the server configuration names.
"""

from __future__ import annotations

import pytest

from iradialer.asr.config import AsrConfig

APPS = ("LexConnect", "Other")


def test_defaults_are_the_seeds():
    """aggr_mode 1, log_voice no, total_timeout 20000 ms."""
    config = AsrConfig.from_params({"config_name": "x", "asr_application": "LexConnect"}, APPS)
    assert config == AsrConfig("LexConnect", aggr_mode=1, log_voice=False, total_timeout=20000)


def test_seed_sample_request_with_lenient_spellings():
    """The seed's sample body: numeric strings and yes/no strings are accepted."""
    body = {
        "config_name": "my_setup",
        "asr_application": "LexConnect",
        "log_voice": "YES",
        "aggr_mode": "3",
        "total_timeout": "10000",
    }
    config = AsrConfig.from_params(body, APPS)
    assert (config.aggr_mode, config.log_voice, config.total_timeout) == (3, True, 10000)


def test_round_trip():
    """to_params is a body from_params turns back into the same configuration."""
    config = AsrConfig("Other", aggr_mode=2, log_voice=True, total_timeout=5000)
    assert AsrConfig.from_params(config.to_params(), APPS) == config


def test_the_only_application_is_the_default():
    """Without asr_application, the one configured application is meant; with two, none is."""
    assert AsrConfig.from_params({}, ["Only"]).asr_application == "Only"
    with pytest.raises(ValueError, match="asr_application: is required"):
        AsrConfig.from_params({}, APPS)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"asr_application": "Nope"}, "'Nope' is not an ASR application of this server"),
        ({"aggr_mode": 4}, "aggr_mode: must be 1, 2 or 3"),
        ({"aggr_mode": 0}, "aggr_mode: must be 1, 2 or 3"),
        ({"aggr_mode": 1.5}, "aggr_mode: must be an integer"),
        ({"aggr_mode": True}, "aggr_mode: must be an integer"),
        ({"total_timeout": 999}, "total_timeout: must be 1000 to 3600000 ms"),
        ({"total_timeout": "soon"}, "total_timeout: must be an integer"),
        ({"log_voice": "maybe"}, "log_voice: must be yes or no"),
    ],
)
def test_meaningless_values_are_refused_naming_the_key(body, message):
    """Each bad value is a ValueError whose message names the key (shown to the tenant)."""
    with pytest.raises(ValueError, match=message):
        AsrConfig.from_params({"asr_application": "LexConnect", **body}, APPS)
