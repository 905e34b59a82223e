"""
Request schemas: the contract's leniency, jsonschema's wording, defaults, and the OpenAPI
document built from the same schemas.
"""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from iradialer.api.schemas import ENDPOINTS, openapi, validate
from iradialer.domain.errors import DialerError

CALL = {
    "gateway": "sofia/gateway/sim",
    "to": "+15550001234",
    "from": "15550009999",
    "event_url": "http://127.0.0.1:9/hook",
}


def error(name: str, body: dict) -> str:
    with pytest.raises(DialerError) as caught:
        validate(name, body)
    assert caught.value.status == 135
    return caught.value.message


def test_yes_no_and_numeric_strings_are_coerced():
    body = validate(
        "makecall", {**CALL, "enable_cpa": "YES", "join_conf": "false", "dial_timeout": "20"}
    )
    assert (body["enable_cpa"], body["join_conf"], body["dial_timeout"]) == (True, False, 20)
    assert validate("makecall", {**CALL, "enable_cpa": True})["enable_cpa"] is True


def test_defaults_are_filled_and_unknown_keys_dropped():
    body = validate("makecall", {**CALL, "color": "blue"})
    assert body["dial_timeout"] == 30 and body["enable_cpa"] is False
    assert "color" not in body


def test_jsonschema_wording():
    assert error("setcpaparams", {"request_name": "x", "tenant_id": "acme", "analysis": "amd"}) == (
        "'config_name' is a required property"
    )
    assert error("makecall", {**CALL, "dial_timeout": "0"}) == (
        "0 is less than the minimum of 1 (at 'dial_timeout')"
    )
    assert error("makecall", {**CALL, "enable_cpa": "maybe"}) == (
        "'maybe' is not one of 'yes', 'no', 'true', 'false' (at 'enable_cpa')"
    )
    assert "(at 'to')" in error("makecall", {**CALL, "to": "12"})


@pytest.mark.parametrize("to", ["1555000123,x", "1555{x}", "15550001234 &park()", "1555^^:"])
def test_dial_string_syntax_cannot_pass(to):
    """Nothing that means something to FreeSWITCH gets through the E.164 pattern."""
    error("makecall", {**CALL, "to": to})


def test_event_url_must_be_http():
    assert "(at 'event_url')" in error("makecall", {**CALL, "event_url": "ftp://x/"})


def test_openapi_document_is_valid_and_complete():
    document = openapi()
    assert document["openapi"] == "3.1.0"
    for name, endpoint in ENDPOINTS.items():
        operation = document["paths"][f"/api/{name}"][endpoint.method.lower()]
        if endpoint.schema is not None:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            Draft202012Validator.check_schema(schema)
            assert "x-lenient" not in str(schema)
    makecall = document["paths"]["/api/makecall"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    lenient = Draft202012Validator(makecall)
    assert lenient.is_valid({**CALL, "enable_cpa": "yes", "dial_timeout": "15"})
    assert not lenient.is_valid({**CALL, "dial_timeout": 0})
