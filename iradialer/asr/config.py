"""
The ASR configuration: the body of C{setasrparams} (seed 3.23), checked and frozen.

The seed's keys and defaults: C{asr_application} (a name from the server configuration's
C{[asr.applications.NAME]}), C{aggr_mode} 1-3 (1), C{log_voice} (no) and C{total_timeout}
in milliseconds (20000).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

AGGR_MODES = (1, 2, 3)
TOTAL_TIMEOUT_RANGE = (1000, 3600000)


@dataclass(frozen=True)
class AsrConfig:
    asr_application: str
    aggr_mode: int = 1
    log_voice: bool = False
    total_timeout: int = 20000

    @classmethod
    def from_params(cls, params: Mapping[str, Any], applications: Collection[str]) -> AsrConfig:
        """
        Build from a C{setasrparams} body (or a stored L{to_params}); keys that are not ASR
        settings (C{config_name}, C{event_url}, ...) are ignored.

        @param applications: the application names the server configuration defines.  When
            C{asr_application} is absent and exactly one is defined, that one is meant.
        @raise ValueError: a missing or meaningless value, with a message naming the key.
        """
        names = sorted(applications)
        application = params.get("asr_application")
        if application is None:
            if len(names) != 1:
                raise ValueError(
                    "asr_application: is required (configured: {})".format(
                        ", ".join(names) or "none"
                    )
                )
            application = names[0]
        if application not in applications:
            raise ValueError(
                "asr_application: {!r} is not an ASR application of this server "
                "(configured: {})".format(application, ", ".join(names) or "none")
            )
        aggr_mode = _int(params, "aggr_mode", 1)
        if aggr_mode not in AGGR_MODES:
            raise ValueError(f"aggr_mode: must be 1, 2 or 3, not {aggr_mode}")
        total_timeout = _int(params, "total_timeout", 20000)
        low, high = TOTAL_TIMEOUT_RANGE
        if not low <= total_timeout <= high:
            raise ValueError(f"total_timeout: must be {low} to {high} ms, not {total_timeout}")
        return cls(
            asr_application=application,
            aggr_mode=aggr_mode,
            log_voice=_yes_no(params, "log_voice", False),
            total_timeout=total_timeout,
        )

    def to_params(self) -> dict[str, Any]:
        """The configuration as a C{setasrparams} body; C{from_params} of it equals self."""
        return {
            "asr_application": self.asr_application,
            "aggr_mode": self.aggr_mode,
            "log_voice": self.log_voice,
            "total_timeout": self.total_timeout,
        }


def _int(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"{key}: must be an integer, not a boolean")
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"{key}: must be an integer, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: must be an integer, not {value!r}") from None


def _yes_no(params: Mapping[str, Any], key: str, default: bool) -> bool:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "no", "false"):
        return value.strip().lower() in ("yes", "true")
    raise ValueError(f"{key}: must be yes or no, not {value!r}")
