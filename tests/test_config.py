"""
The configuration file: the example loads, and every mistake names the file and the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iradialer.config import ConfigError, embedded_default, load, parse
from tests.conftest import REPO

MINIMAL = """
[api]
admin_token = "admin-token-1"

[freeswitch]
simulate = true

[[tenant]]
id = "acme"
token = "acme-token-1"
licenses = 2
gateways = ["sofia/gateway/sim"]
webhook_secret = "s3cret"
"""


def parse_text(text: str) -> object:
    return parse(text, "test.toml", base=Path("/srv/iradialer"))


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_text(text)
    return caught.value


def test_example_file_loads():
    """The documented example is a valid configuration, with paths beside it."""
    config = load(REPO / "etc" / "iradialer.example.toml")
    assert config.tenants[0].id == "acme"
    assert config.store.path == (REPO / "etc" / "var" / "iradialer.sqlite").resolve()
    assert config.freeswitch.nodes[0].password == "ClueCon"
    assert config.asr_applications["LexConnect"]["type"] == "http"


def test_minimal_file_gets_defaults():
    """Sections left out take the documented defaults."""
    config = parse_text(MINIMAL)
    assert config.api.listen == "tcp:8080:interface=127.0.0.1"
    assert config.media.port == 9000
    assert config.media.freeswitch_ports == (30000, 39999)
    assert config.manhole.listen is None
    assert config.tenants[0].webhook_secrets == ("s3cret",)


def test_unknown_key_is_named():
    """A misspelt key is refused, not ignored."""
    error = error_of(MINIMAL.replace("licenses = 2", "licences = 2\nlicenses = 2"))
    assert error.key == "tenant[0].licences"
    assert error.source == "test.toml"
    assert "tenant[0].licences" in str(error) and "test.toml" in str(error)


def test_wrong_type_is_named():
    error = error_of(MINIMAL.replace("licenses = 2", 'licenses = "two"'))
    assert error.key == "tenant[0].licenses"
    assert "integer" in error.problem


def test_missing_required_key_is_named():
    error = error_of(MINIMAL.replace('admin_token = "admin-token-1"', ""))
    assert error.key == "api.admin_token"
    assert error.problem == "is required"


def test_bad_endpoint_is_refused_at_load():
    error = error_of(MINIMAL.replace("[api]", '[api]\nlisten = "tcp:http"'))
    assert error.key == "api.listen"


def test_duplicate_tenant_tokens_are_refused():
    doubled = MINIMAL + MINIMAL.split("[freeswitch]\nsimulate = true\n")[1].replace(
        'id = "acme"', 'id = "other"'
    )
    error = error_of(doubled)
    assert error.key == "tenant[1].token"


def test_nodes_required_without_simulator():
    error = error_of(MINIMAL.replace("simulate = true", "simulate = false"))
    assert error.key == "freeswitch.node"


def test_manhole_must_be_loopback():
    text = MINIMAL + '\n[manhole]\nlisten = "tcp:2222"\nauthorized_keys = "keys"\n'
    assert error_of(text).key == "manhole.listen"


def test_gateway_with_dial_syntax_is_refused():
    """A gateway name cannot smuggle originate syntax into the dial string."""
    error = error_of(MINIMAL.replace('"sofia/gateway/sim"', '"sofia/gateway/sim,x"'))
    assert error.key == "tenant[0].gateways"


def test_unreadable_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "absent.toml")
    assert str(tmp_path / "absent.toml") in str(caught.value)


def test_toml_syntax_error_names_the_file():
    error = error_of("[api\n")
    assert error.key == "(syntax)" and error.source == "test.toml"


def test_embedded_default_has_a_demo_tenant_with_random_tokens():
    one, two = embedded_default(), embedded_default()
    assert one.freeswitch.simulate
    assert one.tenants[0].allow_private_webhooks
    assert one.tenants[0].token != two.tenants[0].token
    assert one.api.admin_token != one.tenants[0].token


def test_masked_hides_every_secret():
    masked = str(parse_text(MINIMAL).masked())
    for secret in ("admin-token-1", "acme-token-1", "s3cret"):
        assert secret not in masked


LEX = """
[asr.applications.booking]
type = "lex"
region = "eu-west-2"
bot_id = "BOT0123456"
bot_alias_id = "TSTALIASID"
locale_id = "en_GB"
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI-lex-key"
"""


def test_asr_lex_application():
    """A lex application's keys are read and checked; its secret never shows in status."""
    config = parse_text(MINIMAL + LEX)
    settings = config.asr_applications["booking"]
    assert (settings["type"], settings["bot_id"], settings["locale_id"]) == (
        "lex",
        "BOT0123456",
        "en_GB",
    )
    assert (settings["endpoint"], settings["timeout"]) == (None, 10.0)
    assert "wJalrXUtnFEMI-lex-key" not in str(config.masked())
    error = error_of(MINIMAL + LEX.replace('"BOT0123456"', '"bot 1"'))
    assert "asr.applications.booking.bot_id" in str(error)
    error = error_of(MINIMAL + LEX.replace('locale_id = "en_GB"\n', ""))
    assert "locale_id: is required" in str(error)
