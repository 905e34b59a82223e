"""
The CPA configuration: the body of C{setcpaparams}, checked and frozen.

Every key of the seed's table is here with the seed's default.  The decision rules of the
answering-machine detector have tunables of their own (C{initial_silence}, C{greeting}, ...);
they are optional keys of the same body whose defaults depend on C{api_version}, the detector
generation (see C{docs/cpa.md}).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

API_VERSIONS = ("1.0", "1.1")
DEFAULT_API_VERSION = "1.1"

#: Events the engine can report (besides configured tone names).
BUILTIN_EVENTS = ("LV", "AM", "FX", "MD", "BP", "SL", "DT", "DTMF")

_TONE_NAME = re.compile(r"[A-Z][A-Z0-9]")
_TONE_SPEC = re.compile(r"\s*(\d+(?:\.\d+)?)\s*\|\s*(\d+(?:\.\d+)?)\s*")

#: Frequencies a named tone may have: what survives a telephone channel.
TONE_MIN_HZ = 200.0
TONE_MAX_HZ = 3600.0


@dataclass(frozen=True)
class AmdRules:
    """
    The tunables of the LV/AM decision, all in milliseconds except where said.

    A generation (C{api_version}) fixes their defaults; any of them can be overridden by a key
    of the same name in C{setcpaparams}.
    """

    #: No speech this long after answer (ignored digital silence excluded): decide.
    initial_silence: int
    #: What initial silence means: "LV" (a person waiting for the caller) or "AM".
    initial_silence_event: str
    #: A greeting (speech with pauses shorter than C{after_greeting_silence}) longer than
    #: this is a machine ...
    greeting: int
    #: ... measured as "voiced" (speech frames only, app_amd) or "span" (from its first word
    #: to now, pauses included: decides sooner on machines that talk on).
    greeting_measure: str
    #: Silence this long after a greeting no longer than C{greeting} means a person.
    after_greeting_silence: int
    #: Shortest speech burst counted as a word.
    min_word_length: int
    #: Silence this long separates words.
    between_words_silence: int
    #: This many words in the greeting mean a machine; 0 turns the rule off.
    maximum_number_of_words: int
    #: Speech detector: "fixed" (mean absolute sample >= C{silence_threshold}) or "adaptive"
    #: (per-band noise floors, tones removed first).
    speech_detector: str
    #: Threshold of the fixed detector (mean absolute sample value, 16-bit scale).
    silence_threshold: int
    #: Adaptive detector: speech when the mean per-band SNR (dB) exceeds this ...
    speech_snr_db: float
    #: ... and the frame level is above this (dBm0).
    speech_min_level_dbm0: float


GENERATIONS: dict[str, AmdRules] = {
    # Asterisk app_amd's rules and defaults: a fixed energy threshold and word counting.
    "1.0": AmdRules(
        initial_silence=2500,
        initial_silence_event="AM",
        greeting=1500,
        greeting_measure="voiced",
        after_greeting_silence=800,
        min_word_length=100,
        between_words_silence=50,
        maximum_number_of_words=3,
        speech_detector="fixed",
        silence_threshold=256,
        speech_snr_db=0.0,
        speech_min_level_dbm0=-99.0,
    ),
    # Adaptive noise floor, tones removed, no word counting (a three-word "hello, who's
    # this?" is a person); greeting, after_greeting_silence and speech_snr_db chosen by the
    # grid search of scripts/cpa_evaluate.py --tune on the train split (docs/cpa.md).
    "1.1": AmdRules(
        initial_silence=3000,
        initial_silence_event="LV",
        greeting=2600,
        greeting_measure="span",
        after_greeting_silence=750,
        min_word_length=60,
        between_words_silence=50,
        maximum_number_of_words=0,
        speech_detector="adaptive",
        silence_threshold=256,
        speech_snr_db=6.0,
        speech_min_level_dbm0=-52.0,
    ),
}

RULE_LIMITS: dict[str, tuple[float, float]] = {
    "initial_silence": (500, 60000),
    "greeting": (300, 30000),
    "after_greeting_silence": (100, 10000),
    "min_word_length": (20, 5000),
    "between_words_silence": (20, 5000),
    "maximum_number_of_words": (0, 100),
    "silence_threshold": (1, 32767),
    "speech_snr_db": (0.0, 40.0),
    "speech_min_level_dbm0": (-99.0, 0.0),
}


@dataclass(frozen=True)
class ToneSpec:
    name: str
    frequency: float
    tolerance: float

    def matches(self, frequency: float) -> bool:
        return abs(frequency - self.frequency) <= self.tolerance

    def to_param(self) -> str:
        return f"{_number(self.frequency)}|{_number(self.tolerance)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class CpaConfig:
    """
    One C{setcpaparams} configuration.  Times are milliseconds.
    """

    api_version: str = DEFAULT_API_VERSION
    analysis: str = "amd"
    min_ambient_energy: int = 2
    initial_silence_ignore: int = 750
    log_rtp_history: bool = False
    tones: tuple[ToneSpec, ...] = ()
    log_voice: bool = False
    break_events: tuple[str, ...] = ()
    total_timeout: int = 15000
    silence_detect_limit: int = 2000
    beep_to_silence_gap: int = 0
    beep_is_am: bool = True
    detect_dtmf: bool = True
    #: Shortest steady tone reported as a beep or named tone.
    beep_min_length: int = 80
    #: A 1 kHz beep this long is written back to the callee on answer (0: none); the seed
    #: recommends one for carriers that need media both ways at once.
    welcome_beep_ms: int = 0
    #: Explicit overrides of the generation's L{AmdRules}; see L{rules}.
    rule_overrides: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def rules(self) -> AmdRules:
        base = GENERATIONS[self.api_version]
        if not self.rule_overrides:
            return base
        values = {f.name: getattr(base, f.name) for f in fields(AmdRules)}
        values.update(dict(self.rule_overrides))
        return AmdRules(**values)

    def tone(self, name: str) -> ToneSpec | None:
        for spec in self.tones:
            if spec.name == name:
                return spec
        return None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CpaConfig:
        """
        Build from a C{setcpaparams} body already checked against the API's JSON Schema
        (booleans and integers coerced).  Keys that are not CPA settings (C{request_name},
        C{tenant_id}, C{config_name}) are ignored.

        @raise ValueError: a value that is well-typed but meaningless, with a message that
            names the key.
        """
        p = dict(params)
        api_version = str(p.get("api_version", DEFAULT_API_VERSION))
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version: must be one of 1.0, 1.1, not {api_version!r}")
        analysis = str(p.get("analysis", "amd"))
        if analysis.lower() != "amd":
            raise ValueError(f"analysis: only 'amd' is supported, not {analysis!r}")
        tones = _parse_tones(p.get("tones") or {})
        silence_limit = _int(p, "silence_detect_limit", 2000)
        if silence_limit != 0 and not 1000 <= silence_limit <= 10000:
            raise ValueError(
                f"silence_detect_limit: must be 0 (off) or 1000 to 10000 ms, not {silence_limit}"
            )
        names = set(BUILTIN_EVENTS) | {t.name for t in tones}
        break_events = _parse_break_events(p.get("break_events"), names)
        overrides = []
        for f in fields(AmdRules):
            if p.get(f.name) is None:
                continue
            overrides.append((f.name, _rule_value(f.name, p[f.name])))
        config = cls(
            api_version=api_version,
            analysis="amd",
            min_ambient_energy=_int(p, "min_ambient_energy", 2, 0, 32767),
            initial_silence_ignore=_int(p, "initial_silence_ignore", 750, 0, 60000),
            log_rtp_history=_bool(p, "log_rtp_history", False),
            tones=tones,
            log_voice=_bool(p, "log_voice", False),
            break_events=break_events,
            total_timeout=_int(p, "total_timeout", 15000, 1000, 600000),
            silence_detect_limit=silence_limit,
            beep_to_silence_gap=_int(p, "beep_to_silence_gap", 0, 0, 60000),
            beep_is_am=_bool(p, "beep_is_am", True),
            detect_dtmf=_bool(p, "detect_dtmf", True),
            beep_min_length=_int(p, "beep_min_length", 80, 40, 2000),
            welcome_beep_ms=_int(p, "welcome_beep_ms", 0, 0, 2000),
            rule_overrides=tuple(overrides),
        )
        config.rules  # noqa: B018  (validates the combination)
        return config

    def to_params(self) -> dict[str, Any]:
        """
        The configuration as a C{setcpaparams} body; C{from_params} of it is equal to self.
        """
        params: dict[str, Any] = {
            "api_version": self.api_version,
            "analysis": self.analysis,
            "min_ambient_energy": self.min_ambient_energy,
            "initial_silence_ignore": self.initial_silence_ignore,
            "log_rtp_history": self.log_rtp_history,
            "tones": {t.name: t.to_param() for t in self.tones},
            "log_voice": self.log_voice,
            "break_events": ",".join(self.break_events),
            "total_timeout": self.total_timeout,
            "silence_detect_limit": self.silence_detect_limit,
            "beep_to_silence_gap": self.beep_to_silence_gap,
            "beep_is_am": self.beep_is_am,
            "detect_dtmf": self.detect_dtmf,
            "beep_min_length": self.beep_min_length,
            "welcome_beep_ms": self.welcome_beep_ms,
        }
        params.update(dict(self.rule_overrides))
        return params


def _int(p: Mapping[str, Any], key: str, default: int, low: int = 0, high: int = 10**9) -> int:
    value = p.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"{key}: must be an integer, not a boolean")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: must be an integer, not {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{key}: must be between {low} and {high}, not {number}")
    return number


def _bool(p: Mapping[str, Any], key: str, default: bool) -> bool:
    value = p.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "true", "no", "false"):
        return value.lower() in ("yes", "true")
    raise ValueError(f"{key}: must be yes or no, not {value!r}")


def _parse_tones(raw: Any) -> tuple[ToneSpec, ...]:
    if not isinstance(raw, Mapping):
        raise ValueError("tones: must be an object of NAME: 'frequency|tolerance'")
    specs = []
    for name, spec in raw.items():
        if not isinstance(name, str) or not _TONE_NAME.fullmatch(name):
            raise ValueError(f"tones: {name!r} is not a 2-character event name like 'FX'")
        if name in ("LV", "AM", "SL", "DT"):
            raise ValueError(f"tones: {name!r} is a CPA outcome, not a tone")
        match = _TONE_SPEC.fullmatch(spec) if isinstance(spec, str) else None
        if match is None:
            raise ValueError(f"tones: {name}: {spec!r} is not 'frequency|tolerance' in Hz")
        frequency, tolerance = float(match.group(1)), float(match.group(2))
        if not TONE_MIN_HZ <= frequency <= TONE_MAX_HZ:
            raise ValueError(
                f"tones: {name}: {_number(frequency)} Hz is outside "
                f"{_number(TONE_MIN_HZ)}-{_number(TONE_MAX_HZ)} Hz"
            )
        if not 1 <= tolerance <= 200:
            raise ValueError(f"tones: {name}: tolerance {_number(tolerance)} Hz is not 1-200")
        specs.append(ToneSpec(name, frequency, tolerance))
    return tuple(specs)


def _parse_break_events(raw: Any, names: set[str]) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    events = []
    for item in items:
        name = str(item).strip().upper()
        if not name:
            continue
        if name not in names:
            raise ValueError(
                f"break_events: {name!r} is not an event ({', '.join(sorted(names))});"
                " to stop on a frequency, name it in tones"
            )
        if name not in events:
            events.append(name)
    return tuple(events)


def _rule_value(name: str, value: Any) -> Any:
    if name == "initial_silence_event":
        if value not in ("LV", "AM"):
            raise ValueError(f"initial_silence_event: must be LV or AM, not {value!r}")
        return value
    if name == "greeting_measure":
        if value not in ("voiced", "span"):
            raise ValueError(f"greeting_measure: must be voiced or span, not {value!r}")
        return value
    if name == "speech_detector":
        if value not in ("fixed", "adaptive"):
            raise ValueError(f"speech_detector: must be fixed or adaptive, not {value!r}")
        return value
    low, high = RULE_LIMITS[name]
    if isinstance(value, bool):
        raise ValueError(f"{name}: must be a number, not a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name}: must be between {low:g} and {high:g}, not {number:g}")
    return number if name.startswith("speech_") else int(number)
