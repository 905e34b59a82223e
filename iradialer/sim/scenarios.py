"""
Simulated callees: who answers which number, after how long, and what they sound like.

A scenario file is TOML with a list of C{[[scenario]]} tables (CONTRACT.md, "Simulator
scenario file"); the first whose C{match} regular expression finds the dialed number wins.
Numbers no table matches fall through to the built-in plan (L{DEFAULT_PLAN}), which gives
every outcome and every kind of built-in audio its own number ending.

Outcomes carry what FreeSWITCH reports for them when it calls a real SIP peer (the
C{sip_*} captures): the hangup cause, its Q.850 number, and the SIP status.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iradialer.config import ConfigError, read_file

BUILTIN_AUDIO = ("human", "machine_beep", "machine_nobeep", "fax", "modem", "silence", "music")


@dataclass(frozen=True)
class Outcome:
    """
    How the far end ends the attempt.  C{cause} is None for C{answer}; C{rings} says whether
    a 180 Ringing (CHANNEL_PROGRESS) comes first; C{sip_status}/C{sip_phrase} are the final
    response FreeSWITCH got (None when no SIP was sent).
    """

    name: str
    cause: str | None
    rings: bool
    sip_status: int | None
    sip_phrase: str | None


OUTCOMES: dict[str, Outcome] = {
    o.name: o
    for o in (
        Outcome("answer", None, True, 200, "OK"),
        Outcome("busy", "USER_BUSY", False, 486, "Busy Here"),
        # Never answers: FreeSWITCH gives up at originate_timeout and CANCELs (487).
        Outcome("no_answer", "NO_ANSWER", True, 487, "CANCEL"),
        Outcome("unallocated", "UNALLOCATED_NUMBER", False, 404, "Not Found"),
        Outcome("reject", "CALL_REJECTED", True, 603, "Decline"),
        # mod_sofia refuses a down gateway before any SIP is sent.
        Outcome("gateway_down", "GATEWAY_DOWN", False, None, None),
    )
}


@dataclass(frozen=True)
class Dtmf:
    """
    Digits the callee presses (RFC 2833): at C{at_ms} after answer, or C{after_prompt_ms}
    after each prompt the caller starts playing.
    """

    digits: str
    at_ms: int | None = None
    after_prompt_ms: int | None = None


@dataclass(frozen=True)
class Scenario:
    match: re.Pattern[str]
    outcome: Outcome
    ring_ms: int = 2000
    audio: str | Path = "human"
    hangup_after_ms: int | None = None
    dtmf: tuple[Dtmf, ...] = ()
    where: str = "(built-in plan)"

    def describe(self) -> str:
        return f"{self.where} match={self.match.pattern!r} outcome={self.outcome.name}"


def _builtin(
    ending: str,
    outcome: str,
    audio: str = "human",
    ring_ms: int = 2000,
    hangup_after_ms: int | None = None,
    dtmf: tuple[Dtmf, ...] = (),
) -> Scenario:
    return Scenario(
        match=re.compile(ending + "$"),
        outcome=OUTCOMES[outcome],
        ring_ms=ring_ms,
        audio=audio,
        hangup_after_ms=hangup_after_ms,
        dtmf=dtmf,
        where=f"(built-in plan) ...{ending}",
    )


# The number endings are documented in docs/simulator.md; keep the two in step.
DEFAULT_PLAN: tuple[Scenario, ...] = (
    _builtin("0001", "answer", "human"),
    _builtin("0002", "answer", "machine_beep", ring_ms=3000),
    _builtin("0003", "answer", "machine_nobeep", ring_ms=3000),
    _builtin("0004", "answer", "fax", ring_ms=1000),
    _builtin("0005", "answer", "modem", ring_ms=1000),
    _builtin("0006", "answer", "silence"),
    _builtin("0007", "answer", "music", ring_ms=1000),
    _builtin("0008", "busy", ring_ms=300),
    _builtin("0009", "no_answer"),
    _builtin("0010", "unallocated", ring_ms=200),
    _builtin("0011", "reject", ring_ms=4000),
    _builtin("0012", "gateway_down", ring_ms=0),
    _builtin("0013", "answer", "human", dtmf=(Dtmf("1234#", after_prompt_ms=1500),)),
    _builtin("0014", "answer", "human", dtmf=(Dtmf("5", at_ms=3000),)),
    _builtin("0015", "answer", "human", hangup_after_ms=5000),
    _builtin("0016", "answer", "machine_beep", ring_ms=3000, hangup_after_ms=20000),
    _builtin("", "answer", "human"),
)


class ScenarioPlan:
    """
    The scenarios in force: a file's tables first, then the built-in plan.
    """

    def __init__(self, scenarios: tuple[Scenario, ...] = (), source: str | None = None) -> None:
        self.scenarios = scenarios + DEFAULT_PLAN
        self.source = source

    def for_number(self, number: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.match.search(number):
                return scenario
        raise AssertionError("the built-in plan ends with a catch-all")  # pragma: no cover


def load_scenarios(path: str | Path) -> ScenarioPlan:
    """
    Read and check a scenario file.

    @raise ConfigError: naming the file and the key, e.g. C{scenario[1].ring_ms}.
    """
    path = Path(path)
    return parse_scenarios(read_file(path), str(path), path.resolve().parent)


def parse_scenarios(text: str, source: str, base: Path) -> ScenarioPlan:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "(syntax)", str(e)) from None
    unknown = sorted(set(document) - {"scenario"})
    if unknown:
        raise ConfigError(source, unknown[0], "unknown key (only [[scenario]] tables belong here)")
    tables = document.get("scenario", [])
    if not isinstance(tables, list):
        raise ConfigError(source, "scenario", "must be an array of tables ([[scenario]])")
    scenarios = tuple(
        _read_scenario(table, f"scenario[{i}]", source, base) for i, table in enumerate(tables)
    )
    return ScenarioPlan(scenarios, source)


_KEYS = {"match", "ring_ms", "outcome", "audio", "hangup_after_ms", "dtmf"}


def _read_scenario(table: Any, where: str, source: str, base: Path) -> Scenario:
    def error(key: str, problem: str) -> ConfigError:
        return ConfigError(source, f"{where}.{key}" if key else where, problem)

    if not isinstance(table, dict):
        raise error("", "must be a table")
    for key in table:
        if key not in _KEYS:
            raise error(key, f"unknown key (expected one of {', '.join(sorted(_KEYS))})")
    if "match" not in table:
        raise error("match", "is required")
    pattern = table["match"]
    if not isinstance(pattern, str):
        raise error("match", "must be a string (a regular expression)")
    try:
        match = re.compile(pattern)
    except re.error as e:
        raise error("match", f"is not a valid regular expression: {e}") from None
    outcome_name = table.get("outcome", "answer")
    if outcome_name not in OUTCOMES:
        raise error("outcome", f"must be one of {' | '.join(OUTCOMES)}, not {outcome_name!r}")
    ring_ms = _milliseconds(table, "ring_ms", 2000, error)
    hangup_after = _milliseconds(table, "hangup_after_ms", None, error)
    audio: str | Path = table.get("audio", "human")
    if not isinstance(audio, str) or not audio:
        raise error("audio", "must be a WAV path or a built-in name")
    if audio not in BUILTIN_AUDIO:
        from iradialer.sim.audio import AudioError, load_wav

        wav = (base / audio).resolve()
        try:
            load_wav(wav)
        except AudioError as e:
            raise error("audio", f"{wav}: {e} (built-ins: {', '.join(BUILTIN_AUDIO)})") from None
        audio = wav
    dtmf = _read_dtmf(table.get("dtmf", []), error)
    return Scenario(
        match=match,
        outcome=OUTCOMES[outcome_name],
        ring_ms=ring_ms,
        audio=audio,
        hangup_after_ms=hangup_after,
        dtmf=dtmf,
        where=f"{source} {where}",
    )


def _milliseconds(table: dict[str, Any], key: str, default: int | None, error: Any) -> Any:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(key, f"must be an integer number of milliseconds, not {type(value).__name__}")
    if value < 0:
        raise error(key, f"must not be negative, got {value}")
    return value


_DIGITS = re.compile(r"[0-9*#A-Da-d]+")


def _read_dtmf(entries: Any, error: Any) -> tuple[Dtmf, ...]:
    if not isinstance(entries, list):
        raise error("dtmf", "must be a list of {at_ms, digits} or {after_prompt_ms, digits}")
    result = []
    for i, entry in enumerate(entries):
        key = f"dtmf[{i}]"
        if not isinstance(entry, dict):
            raise error(key, 'must be a table such as { at_ms = 4000, digits = "123#" }')
        extra = set(entry) - {"at_ms", "after_prompt_ms", "digits"}
        if extra:
            raise error(f"{key}.{sorted(extra)[0]}", "unknown key")
        digits = entry.get("digits")
        if not isinstance(digits, str) or not _DIGITS.fullmatch(digits):
            raise error(f"{key}.digits", "must be a string of DTMF digits (0-9 * # A-D)")
        timing = [k for k in ("at_ms", "after_prompt_ms") if k in entry]
        if len(timing) != 1:
            raise error(key, "needs exactly one of at_ms or after_prompt_ms")
        value = _milliseconds(
            entry, timing[0], None, lambda k, p, where=key: error(f"{where}.{k}", p)
        )
        result.append(Dtmf(digits.upper(), **{timing[0]: value}))
    return tuple(result)
