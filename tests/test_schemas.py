"""
Request schemas: the contract's leniency, jsonschema's wording, defaults, and the OpenAPI
document built from the same schemas.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["yes", "No", "TRUE", "false", "12", " 7 ", "-1", "0x10", "1e3", "٣"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_WITH_SCHEMA = sorted(name for name, e in ENDPOINTS.items() if e.schema is not None)


def _plausible(prop: dict[str, Any]) -> st.SearchStrategy[Any] | None:
    """Values of the field's own shape: its pattern, range, enum, examples."""
    kind = prop.get("type")
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    if kind == "boolean":
        return st.booleans() | st.sampled_from(["yes", "no", "TRUE", "False"])
    if kind == "integer":
        numbers = st.integers(prop.get("minimum", -(10**6)), prop.get("maximum", 10**6))
        return numbers | numbers.map(str)
    if kind == "string" and "pattern" in prop:
        size = prop.get("maxLength", 64)
        return st.from_regex(prop["pattern"], fullmatch=True).filter(lambda v: len(v) <= size)
    if kind == "string":
        return st.text(
            min_size=prop.get("minLength", 0), max_size=min(prop.get("maxLength", 20), 20)
        )
    if prop.get("examples"):
        return st.sampled_from(prop["examples"])
    return None


@st.composite
def request_bodies(draw: Any) -> tuple[str, dict[str, Any]]:
    """
    An endpoint and a body: its required fields (usually), other fields of its own and
    strangers, each with a value the schema suggests or any JSON at all.
    """
    name = draw(st.sampled_from(_WITH_SCHEMA))
    schema = ENDPOINTS[name].schema
    properties = schema.get("properties", {})
    keys = list(schema.get("required", [])) if draw(st.booleans()) else []
    keys += draw(st.lists(st.sampled_from(sorted(properties)) | st.text(max_size=6), max_size=4))
    body = {}
    for key in keys:
        plausible = _plausible(properties.get(key, {}))
        shaped = plausible is not None and draw(st.integers(0, 5)) > 0
        body[key] = draw(plausible) if shaped else draw(_JSON)
    return name, body


@settings(max_examples=400, deadline=None)
@given(request_bodies())
def test_any_body_is_either_refused_with_135_or_comes_out_valid(request: tuple[str, Any]):
    """
    Whatever JSON object a client sends to any endpoint, validate() either refuses it with
    135 and a message, or returns a body of known fields only, with defaults filled in,
    that the strict (not lenient) schema accepts: yes/no strings became booleans and
    numeric strings integers.  Nothing else escapes.
    """
    name, body = request
    schema = ENDPOINTS[name].schema
    try:
        out = validate(name, body)
    except DialerError as e:
        assert e.status == 135 and e.message
        return
    assert set(out) <= set(schema.get("properties", {}))
    assert set(schema.get("required", [])) <= set(out)
    assert Draft202012Validator(schema).is_valid(out), (name, body, out)
