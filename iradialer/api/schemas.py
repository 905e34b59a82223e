"""
One JSON Schema per request: the single source for validating requests and for the OpenAPI
document at C{GET /api/openapi.json}.

Each schema is written strictly (booleans, integers with their ranges).  The contract's
leniency (C{"yes"/"no"/"true"/"false"} for yes/no fields, numeric strings for integers) is
derived from C{x-lenient} marks: L{validate} checks a body against the lenient form, coerces
the lenient values, then checks the strict form, so every message is jsonschema's own.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from iradialer import __version__
from iradialer.cpa.config import RULE_LIMITS, AmdRules
from iradialer.domain.errors import DialerError, Status

UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
CONF = r"^CONF-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_YES = {"yes", "true"}


def any_case(*words: str) -> str:
    """A portable (ECMA-262 and Python) pattern matching C{words} in any letter case."""
    spelled = (
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in w)
        for w in words
    )
    return "^(" + "|".join(spelled) + ")$"


def yes_no(description: str, default: bool | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "boolean", "description": description, "x-lenient": "boolean"}
    if default is not None:
        schema["default"] = default
    return schema


def integer(
    description: str,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "description": description, "x-lenient": "integer"}
    if default is not None:
        schema["default"] = default
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def string(description: str, default: str | None = None, **constraints: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "description": description, **constraints}
    if default is not None:
        schema["default"] = default
    return schema


_RULE_TYPES = {f.name: str(f.type) for f in dataclasses.fields(AmdRules)}

CALL_UUID = string("Unique identifier of the call (from makecall).", maxLength=64, minLength=1)
EVENT_URL = string(
    "Where this request's events are POSTed (http or https); the makecall one by default.",
    maxLength=2048,
    pattern=r"^[hH][tT][tT][pP][sS]?://[^\s]+$",
)
STOP_ON_KEY = yes_no("Stop playing when the callee presses a key.", True)
LOOP_COUNT = integer("How many times to play.", 1, 1, 100)
TTS_VOICE = string(
    "flite voice: slt, rms, awb or kal (any case); for polly, a Polly voice id.",
    "slt",
    pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$",
)
TTS_ENGINE = string(
    "flite (built into FreeSWITCH) or polly (Amazon Polly).",
    "flite",
    pattern=any_case("flite", "polly"),
)
TERM_KEYS = string("Keys that end digit collection.", "", pattern=r"^[0-9*#]{0,12}$")


def _request(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _call_request(**properties: dict[str, Any]) -> dict[str, Any]:
    return _request(["call_uuid"], call_uuid=CALL_UUID, event_url=EVENT_URL, **properties)


@dataclass(frozen=True)
class Endpoint:
    name: str
    summary: str
    schema: dict[str, Any] | None  # None: a GET without a body
    method: str = "POST"
    response: Mapping[str, Any] | None = None  # extra fields of the 200 body
    authenticated: bool = True


_SETCPAPARAMS = _request(
    ["request_name", "tenant_id", "config_name", "analysis"],
    request_name=string("Request name, e.g. set_cpa_params.", maxLength=64),
    tenant_id=string("The tenant (licensee); must be the token's own.", maxLength=64),
    api_version=string(
        "Detector generation: 1.0, or 1.1 (better; the default).", "1.1", enum=["1.0", "1.1"]
    ),
    config_name=string("Unique name for the configuration.", pattern=r"^[A-Za-z0-9_.-]{1,64}$"),
    analysis=string("Name of the analysis: amd.", pattern=any_case("amd")),
    min_ambient_energy=integer(
        "Energy separating perfect initial silence from ambient silence.", 2, 0, 1000
    ),
    initial_silence_ignore=integer(
        "Ms of initial audio ignored while below min_ambient_energy.", 750, 0, 60000
    ),
    log_rtp_history=yes_no("Log the history of received packets.", False),
    tones={
        "type": "object",
        "description": 'Named tones to report: {"FX": "2100|5"} = frequency Hz | tolerance Hz.',
        "propertyNames": {"pattern": r"^[A-Z]{2}$"},
        "additionalProperties": {
            "type": "string",
            "pattern": r"^\d{2,4}(\.\d+)?\|\d{1,3}(\.\d+)?$",
        },
        "default": {},
        "maxProperties": 16,
    },
    log_voice=yes_no("Record the analysed stream to a WAV.", False),
    break_events=string(
        "Comma separated events that end the analysis, e.g. FX,MD,AM.",
        pattern=r"^\s*([A-Za-z]{2}(\s*,\s*[A-Za-z]{2})*)?\s*$",
    ),
    total_timeout=integer("Ms after answer at which the analysis stops.", 15000, 1000, 120000),
    silence_detect_limit=integer(
        "Ms of silence after LV/AM that reports SL; 0 = off, else 1000-10000.", 2000, 0, 10000
    ),
    beep_to_silence_gap=integer(
        "Ms of silence after a beep that reports SL; 0 = off.", 0, 0, 60000
    ),
    beep_is_am=yes_no("A beep before any LV/AM decision means AM.", True),
    detect_dtmf=yes_no("Report DTMF digits heard during the analysis.", True),
    welcome_beep_ms=integer(
        "Ms of a 1 kHz beep written to the callee on answer (0 = none); some carriers need "
        "media both ways at once.",
        0,
        0,
        2000,
    ),
    beep_min_length=integer(
        "Shortest steady tone reported as a beep or named tone (ms).", 80, 40, 2000
    ),
    initial_silence_event=string(
        "What initial silence means (default per api_version).", enum=["LV", "AM"]
    ),
    greeting_measure=string(
        "How a greeting is measured: voiced (speech only) or span.", enum=["voiced", "span"]
    ),
    speech_detector=string(
        "fixed energy threshold (1.0) or adaptive noise floor (1.1).", enum=["fixed", "adaptive"]
    ),
    event_url=EVENT_URL,
    # The answering-machine rules' numeric tunables (docs/cpa.md); absent = the default of
    # the api_version.
    **{
        name: (
            integer(f"AMD rule {name} (docs/cpa.md).", None, int(low), int(high))
            if _RULE_TYPES[name] == "int"
            else {
                "type": "number",
                "minimum": low,
                "maximum": high,
                "description": f"AMD rule {name} (docs/cpa.md).",
            }
        )
        for name, (low, high) in RULE_LIMITS.items()
    },
)

_MAKECALL = _request(
    ["gateway", "to", "from", "event_url"],
    gateway=string(
        "A gateway the tenant may use, e.g. sofia/gateway/chime.",
        maxLength=128,
        examples=["sofia/gateway/sim"],
    ),
    to=string(
        "E.164 number to dial: 6-15 digits, optional +.",
        pattern=r"^\+?[0-9]{6,15}$",
        examples=["15551230001"],
    ),
    **{
        "from": string(
            "E.164 caller id: 6-15 digits, optional +.",
            pattern=r"^\+?[0-9]{6,15}$",
            examples=["15559990000"],
        )
    },
    event_url={**EVENT_URL, "examples": ["http://127.0.0.1:9100/events"]},
    enable_cpa=yes_no("Run call progress analysis from answer.", False),
    dial_timeout=integer("Seconds to wait for answer.", 30, 1, 600),
    join_conf=yes_no(
        "Put the answered call in a new conference (conf_uuid in the response).", False
    ),
    add_to_conf=string("A live call to add to that conference.", maxLength=64),
    config_name=string(
        "The CPA configuration (required when enable_cpa is yes).",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
    ),
    call_params={
        "type": "object",
        "description": "Sent as SIP headers X-<key>: <value>.",
        "propertyNames": {"pattern": r"^[A-Za-z0-9_-]{1,64}$"},
        "additionalProperties": {"type": ["string", "number", "boolean"]},
        "maxProperties": 32,
    },
)

_GETVALIDDTMF = _call_request(
    var_name=string("Returned with the digits, to identify them.", "", maxLength=64),
    minimum_digits=integer("Fewest digits accepted.", 5, 1, 128),
    maximum_digits=integer("Most digits accepted.", 5, 1, 128),
    maximum_tries=integer("Prompts before giving up.", 3, 1, 10),
    timeout=integer("Seconds to wait for the digits.", 10, 1, 300),
    term_keys=TERM_KEYS,
    reg_expr=string("Regular expression the digits must match.", "", maxLength=256),
    audio_type=string(
        "What prompt_message is: tts, filename or url.",
        pattern=any_case("tts", "filename", "file", "url"),
    ),
    prompt_message=string("Prompt played before collecting.", minLength=1, maxLength=4000),
    error_message=string("Played after a wrong input.", "", maxLength=4000),
    tts_voice=TTS_VOICE,
    tts_engine=TTS_ENGINE,
)
_GETVALIDDTMF["required"] = ["call_uuid", "event_url", "audio_type", "prompt_message"]

_GETSIMPLEDTMF = _call_request(
    var_name=string("Returned with the digits, to identify them.", "", maxLength=64),
    digit_count=integer("How many digits to collect.", 1, 1, 128),
    timeout=integer("Seconds to wait for the digits.", 10, 1, 300),
    term_keys=TERM_KEYS,
)
_GETSIMPLEDTMF["required"] = ["call_uuid", "event_url"]

_GETDETAILS = _call_request()
_GETDETAILS["required"] = ["call_uuid", "event_url"]

_PLAY_COMMON = {"stop_on_key": STOP_ON_KEY, "loop_count": LOOP_COUNT}

ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in [
        Endpoint("setcpaparams", "Save a CPA configuration (seed 3.1).", _SETCPAPARAMS),
        Endpoint(
            "makecall",
            "Dial a number (seed 3.2).",
            _MAKECALL,
            response={
                "call_uuid": string("The new call."),
                "conf_uuid": string("Its conference, when join_conf is yes."),
            },
        ),
        Endpoint(
            "bridgecall",
            "Move a call into a new or existing conference (seed 3.3).",
            _call_request(
                conf_uuid=string("Conference to join; a new one when absent.", pattern=CONF)
            ),
            response={"conf_uuid": string("The conference the call joins.")},
        ),
        Endpoint(
            "playfile",
            "Play a file from files_dir (seed 3.4).",
            {
                **_call_request(
                    filename=string("wav/mp3 name under files_dir.", minLength=1, maxLength=512),
                    **_PLAY_COMMON,
                ),
                "required": ["call_uuid", "filename"],
            },
            response={"play_id": string("Carried by this request's play_done event.")},
        ),
        Endpoint(
            "playtext",
            "Speak text with TTS (seed 3.5).",
            {
                **_call_request(
                    text=string("Text to speak.", minLength=1, maxLength=4000),
                    tts_voice=TTS_VOICE,
                    tts_engine=TTS_ENGINE,
                    **_PLAY_COMMON,
                ),
                "required": ["call_uuid", "text"],
            },
            response={"play_id": string("Carried by this request's play_done event.")},
        ),
        Endpoint(
            "playurl",
            "Play a recording from an http(s) URL (seed 3.6).",
            {
                **_call_request(
                    url=string(
                        "wav/mp3 URL; http:// is assumed without a scheme.",
                        minLength=1,
                        maxLength=2048,
                    ),
                    **_PLAY_COMMON,
                ),
                "required": ["call_uuid", "url"],
            },
            response={"play_id": string("Carried by this request's play_done event.")},
        ),
        Endpoint("stopplay", "Stop what is playing on the call (seed 3.7).", _call_request()),
        Endpoint("dropcall", "Hang up the call (seed 3.8).", _call_request()),
        Endpoint("mute", "Mute the member: nobody hears it (seed 3.9).", _call_request()),
        Endpoint("unmute", "Unmute the member (seed 3.10).", _call_request()),
        Endpoint("deaf", "Deafen the member: it hears nobody (seed 3.11).", _call_request()),
        Endpoint("undeaf", "Undeafen the member (seed 3.12).", _call_request()),
        Endpoint(
            "getdetails",
            "The call's details, also sent as a get_details event (3.13).",
            _GETDETAILS,
            response={"details": {"type": "object"}},
        ),
        Endpoint("getsimpledtmf", "Collect digits (seed 3.14).", _GETSIMPLEDTMF),
        Endpoint("getvaliddtmf", "Prompt for and validate digits (seed 3.15).", _GETVALIDDTMF),
        Endpoint("hold", "Put the conference member on hold (seed 3.16).", _call_request()),
        Endpoint("unhold", "Take the member off hold (seed 3.17).", _call_request()),
        Endpoint(
            "parkcall",
            "Take the call out of its conference, back to park (seed 3.18).",
            _call_request(),
        ),
        Endpoint(
            "multiconf",
            "Put several calls in one conference (seed 3.19).",
            _request(
                ["conf_uuid", "call_uuid"],
                conf_uuid=string("CONF-<uuid4>; new or existing.", pattern=CONF),
                call_uuid={
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": {"type": ["string", "null"], "maxLength": 64},
                    "description": "The calls (answered, of this tenant).",
                },
                event_url=EVENT_URL,
            ),
            response={"conf_uuid": string("The conference.")},
        ),
        Endpoint(
            "senddtmf",
            "Send digits to the call (seed 3.20).",
            {
                **_call_request(
                    digits=string(
                        "Digits 0-9 * # A-D, w/W for pauses.", pattern=r"^[0-9*#A-Da-dwW]{1,64}$"
                    )
                ),
                "required": ["call_uuid", "digits"],
            },
        ),
        Endpoint(
            "setasrparams",
            "Save an ASR configuration (seed 3.23).",
            _request(
                ["config_name"],
                config_name=string(
                    "Unique name for the configuration.", pattern=r"^[A-Za-z0-9_.-]{1,64}$"
                ),
                asr_application=string(
                    "An ASR application named in the server configuration.", maxLength=64
                ),
                aggr_mode=integer("VAD aggressiveness 1-3.", 1, 1, 3),
                log_voice=yes_no("Keep each utterance's WAV.", False),
                total_timeout=integer("Ms after which ASR stops.", 20000, 1000, 3600000),
            ),
        ),
        Endpoint(
            "startasr",
            "Start ASR on the call (seed 3.24).",
            {
                **_call_request(
                    config_name=string("The ASR configuration.", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
                ),
                "required": ["config_name", "call_uuid"],
            },
        ),
        Endpoint("stopasr", "Stop ASR on the call.", _call_request()),
        Endpoint(
            "status",
            "Server status: JSON, or a dashboard for browsers (seed 3.21).",
            None,
            method="GET",
        ),
        Endpoint(
            "license",
            "200 when the server holds usable licenses, else 400 (seed 3.22).",
            None,
            method="GET",
            authenticated=False,
        ),
        Endpoint("reload", "Reload tenants and tokens from the configuration file (admin).", None),
        Endpoint("openapi.json", "This document.", None, method="GET"),
    ]
}


_LENIENT_FORMS = {
    "boolean": {"type": "string", "pattern": any_case("yes", "no", "true", "false")},
    "integer": {"type": "string", "pattern": r"^\s*-?[0-9]{1,12}\s*$"},
}


def _lenient(schema: Any) -> Any:
    """
    The schema with every C{x-lenient} value also accepting its string spellings.  Range
    keywords stay beside the C{anyOf}: they apply to numbers only, so a numeric string passes
    here and has its range checked after coercion.
    """
    if isinstance(schema, list):
        return [_lenient(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("x-lenient")
    if kind is not None:
        outer = {k: v for k, v in schema.items() if k not in ("type", "x-lenient")}
        return {"anyOf": [{"type": kind}, _LENIENT_FORMS[kind]], **outer}
    return {k: _lenient(v) for k, v in schema.items()}


def _coerce(schema: Mapping[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    for name, prop in schema.get("properties", {}).items():
        if name not in out:
            continue
        value = out[name]
        kind = prop.get("x-lenient")
        if kind == "boolean" and isinstance(value, str):
            out[name] = value.lower() in _YES
        elif kind == "integer" and isinstance(value, str):
            out[name] = int(value.strip())
    return out


def _defaults(schema: Mapping[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = copy.deepcopy(prop["default"])
    return out


_STRICT: dict[str, Draft202012Validator] = {}
_LENIENT: dict[str, Draft202012Validator] = {}
for _endpoint in ENDPOINTS.values():
    if _endpoint.schema is not None:
        Draft202012Validator.check_schema(_endpoint.schema)
        _STRICT[_endpoint.name] = Draft202012Validator(_endpoint.schema)
        _LENIENT[_endpoint.name] = Draft202012Validator(_lenient(_endpoint.schema))


def _message(validator: Draft202012Validator, body: Any) -> str | None:
    error = best_match(validator.iter_errors(body))
    if error is None:
        return None
    message = error.message
    if error.schema is _LENIENT_FORMS["boolean"]:
        message = f"{error.instance!r} is not one of 'yes', 'no', 'true', 'false'"
    elif error.schema is _LENIENT_FORMS["integer"]:
        message = f"{error.instance!r} is not of type 'integer'"
    field = ".".join(str(p) for p in error.absolute_path)
    return f"{message} (at '{field}')" if field else message


def validate(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """
    The request body checked against endpoint C{name}'s schema, lenient values coerced and
    defaults filled in; unknown keys are dropped.

    @raise DialerError: 135 with jsonschema's wording.
    """
    schema = ENDPOINTS[name].schema
    assert schema is not None
    for validator in (_LENIENT[name], None):
        if validator is None:
            body = _coerce(schema, body)
            validator = _STRICT[name]
        message = _message(validator, body)
        if message is not None:
            raise DialerError(Status.SCHEMA_VIOLATION, message)
    known = schema.get("properties", {})
    return _defaults(schema, {k: v for k, v in body.items() if k in known})


def _strip_marks(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strip_marks(s) for s in schema]
    if isinstance(schema, dict):
        return {k: _strip_marks(v) for k, v in schema.items() if k != "x-lenient"}
    return schema


_ERROR_BODY = {
    "type": "object",
    "required": ["statusCode", "error", "message"],
    "properties": {
        "statusCode": {"type": "integer"},
        "error": {"type": "string"},
        "message": {"type": "string"},
        "status_code": {"type": "integer", "description": "Appendix B code"},
    },
}


def _ok_body(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["statusCode", "message"],
        "properties": {
            "statusCode": {"type": "integer", "const": 200},
            "message": {"type": "string"},
            **(extra or {}),
        },
    }


def _call_links() -> dict[str, Any]:
    """
    OpenAPI links from makecall's call_uuid to every operation on a call, so clients (and
    property-based testers) know where the identifier comes from.
    """
    return {
        name: {
            "operationId": re.sub(r"\W", "_", name),
            "requestBody": {"call_uuid": "$response.body#/call_uuid"},
            "description": f"{name} on the new call",
        }
        for name, endpoint in ENDPOINTS.items()
        if endpoint.schema is not None
        and endpoint.schema.get("properties", {}).get("call_uuid", {}).get("type") == "string"
    }


def openapi() -> dict[str, Any]:
    """
    The OpenAPI 3.1 document of every endpoint, from the same schemas L{validate} uses.
    """
    paths: dict[str, Any] = {}
    errors = {"$ref": "#/components/responses/Error"}
    for endpoint in ENDPOINTS.values():
        operation: dict[str, Any] = {
            "operationId": re.sub(r"\W", "_", endpoint.name),
            "summary": endpoint.summary,
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": _ok_body(endpoint.response)}},
                },
                **{code: errors for code in ("400", "401", "403", "404", "405")},
            },
        }
        if endpoint.name == "makecall":
            operation["responses"]["429"] = {
                "$ref": "#/components/responses/Error",
                "description": "Over the pacing rate (status_code 115); see Retry-After",
            }
            operation["responses"]["503"] = errors
            operation["responses"]["200"]["links"] = _call_links()
        if not endpoint.authenticated:
            operation["security"] = []
        if endpoint.schema is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": _strip_marks(_lenient(endpoint.schema))}
                },
            }
        paths[f"/api/{endpoint.name}"] = {endpoint.method.lower(): operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "iradialer API",
            "version": __version__,
            "description": "The iraDialer API v1.5.1.0 with iradialer's contract. Every "
            "request is authenticated with a bearer token scoped to one tenant.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR_BODY},
            "responses": {
                "Error": {
                    "description": "The contract's error body",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
        "paths": paths,
    }
