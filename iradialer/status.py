"""
What C{GET /api/status} reports, gathered from the parts of the running server.

L{StatusBoard} owns the figures it can know itself (version, uptime, configuration with
secrets masked, licenses per tenant, the history kept by L{CallRecorder}) and asks each other
part for its own section through a I{source} registered with L{StatusBoard.add_source}.  A
part that is not running has no source, and its section says C{{"running": false}}: the
board never makes a figure up.

Every figure is scoped to who asks: a tenant sees its own tenant's figures and the shared
infrastructure (FreeSWITCH nodes, the CPA engine); the administrator sees everything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from iradialer import __version__
from iradialer.config import Config, TenantConfig
from iradialer.domain.errors import Status
from iradialer.domain.tenants import LicenseLedger, Principal, TenantDirectory
from iradialer.metrics import Metrics, cpa_label, reason_label

HISTORY_MINUTES = 60
WINDOWS = (5, 60)

# Who sees a source's section: everyone ("shared": infrastructure such as FreeSWITCH nodes),
# the administrator only ("admin": figures mixing every tenant), or each tenant its own
# ("tenant": the source is called with the tenant's id, or None for the administrator).
Scope = Literal["shared", "admin", "tenant"]

# Parts every full server runs; until one registers, its section says it is not running.
EXPECTED_SECTIONS = ("freeswitch", "cpa", "webhooks", "dialer")

# Sections the board writes itself; a source may not take these names.
_OWN_FIELDS = frozenset(
    {"statusCode", "message", "version", "uptime_seconds", "time", "viewer", "tenants"}
    | {"licenses", "calls", "config"}
)


@dataclass
class _Minute:
    """What happened to one tenant's calls in one minute."""

    started: int = 0
    answered: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    cpa: Counter[str] = field(default_factory=Counter)
    cpa_latency_ms_sum: float = 0.0

    def add(self, other: _Minute) -> None:
        self.started += other.started
        self.answered += other.answered
        self.ended.update(other.ended)
        self.cpa.update(other.cpa)
        self.cpa_latency_ms_sum += other.cpa_latency_ms_sum

    def summary(self) -> dict[str, Any]:
        decisions = sum(self.cpa.values())
        return {
            "started": self.started,
            "answered": self.answered,
            "ended": sum(self.ended.values()),
            "ended_by_reason": dict(sorted(self.ended.items())),
            "cpa": dict(sorted(self.cpa.items())),
            "cpa_latency_ms_avg": (
                round(self.cpa_latency_ms_sum / decisions, 1) if decisions else None
            ),
        }


class CallRecorder:
    """
    The dialer's account of its calls, kept per tenant and per minute for the last hour, and
    counted in the Prometheus metrics.  Every method takes the time of what happened
    (C{now}, seconds since the epoch), so the history is exact under a fake clock.
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._minutes: dict[str, dict[int, _Minute]] = {}

    def _minute(self, tenant_id: str, now: float) -> _Minute:
        minute = int(now // 60)
        minutes = self._minutes.setdefault(tenant_id, {})
        if minute not in minutes:
            for old in [m for m in minutes if m <= minute - HISTORY_MINUTES]:
                del minutes[old]
            minutes[minute] = _Minute()
        return minutes[minute]

    def record_call_started(self, tenant_id: str, now: float) -> None:
        """A call was placed (makecall accepted it)."""
        self._minute(tenant_id, now).started += 1
        if self.metrics:
            self.metrics.calls_started.labels(tenant_id).inc()

    def record_call_answered(self, tenant_id: str, now: float) -> None:
        """The callee answered."""
        self._minute(tenant_id, now).answered += 1
        if self.metrics:
            self.metrics.calls_answered.labels(tenant_id).inc()

    def record_call_ended(self, tenant_id: str, reason_code: str, now: float) -> None:
        """A call ended, for the Appendix D C{reason_code} of its hangup event."""
        reason = reason_label(reason_code)
        self._minute(tenant_id, now).ended[reason] += 1
        if self.metrics:
            self.metrics.calls_ended.labels(tenant_id, reason).inc()

    def record_cpa(self, tenant_id: str, event_data: str, latency_ms: float, now: float) -> None:
        """
        CPA reported C{event_data} (LV AM FX MD BP SL DT or a tone's name), C{latency_ms}
        after the answer (the event's C{ms_since_answer}).
        """
        result = cpa_label(event_data)
        minute = self._minute(tenant_id, now)
        minute.cpa[result] += 1
        minute.cpa_latency_ms_sum += latency_ms
        if self.metrics:
            self.metrics.cpa_decisions.labels(tenant_id, result).inc()
            self.metrics.cpa_decision_seconds.labels(result).observe(latency_ms / 1000.0)

    def _merged(self, tenant_ids: Container[str] | None, now: float) -> dict[int, _Minute]:
        """Minute index to the sum over C{tenant_ids} (None: all), for the last hour."""
        current = int(now // 60)
        merged: dict[int, _Minute] = {}
        for tenant_id, minutes in self._minutes.items():
            if tenant_ids is not None and tenant_id not in tenant_ids:
                continue
            for minute, counts in minutes.items():
                if current - HISTORY_MINUTES < minute <= current:
                    merged.setdefault(minute, _Minute()).add(counts)
        return merged

    def report(self, tenant_ids: Iterable[str] | None, now: float) -> dict[str, Any]:
        """
        Totals of the last 5 and 60 minutes (the minute in progress and the ones before it),
        and one entry per minute of the last hour, oldest first, for the chart.
        """
        merged = self._merged(None if tenant_ids is None else set(tenant_ids), now)
        current = int(now // 60)
        report: dict[str, Any] = {}
        for window in WINDOWS:
            total = _Minute()
            for minute, counts in merged.items():
                if minute > current - window:
                    total.add(counts)
            report[f"last_{window}_minutes"] = total.summary()
        per_minute = []
        quiet = _Minute()
        for minute in range(current - HISTORY_MINUTES + 1, current + 1):
            counts = merged.get(minute, quiet)
            per_minute.append(
                {
                    "minute": _iso(minute * 60),
                    "started": counts.started,
                    "answered": counts.answered,
                    "ended": sum(counts.ended.values()),
                    "cpa": dict(sorted(counts.cpa.items())),
                }
            )
        report["per_minute"] = per_minute
        return report


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class _Source:
    read: Callable[..., Mapping[str, Any]]
    scope: Scope


@dataclass(frozen=True)
class LicenseState:
    """
    Whether this server can use its licenses (C{GET /api/license}); when not, the
    Appendix B C{status} and the reason.
    """

    usable: bool
    licenses: int
    status: Status | None = None
    reason: str | None = None


class StatusBoard:
    """
    The status of the server, as each principal may see it.

    @param directory: the tenants in force.
    @param ledger: licenses in use.
    @param clock: for uptime and the time of the report.
    @param current_config: the configuration in force (it changes on reload).
    @param recorder: the call history.
    """

    log = Logger()

    def __init__(
        self,
        *,
        directory: TenantDirectory,
        ledger: LicenseLedger,
        clock: IReactorTime,
        current_config: Callable[[], Config],
        recorder: CallRecorder,
    ) -> None:
        self.directory = directory
        self.ledger = ledger
        self.clock = clock
        self.current_config = current_config
        self.recorder = recorder
        self.started = clock.seconds()
        self._sources: dict[str, _Source] = {}
        self._health_checks: dict[str, Callable[[], str | None]] = {}

    def add_source(
        self, name: str, read: Callable[..., Mapping[str, Any]], scope: Scope = "admin"
    ) -> None:
        """
        Report C{read()} (C{read(tenant_id)} for scope C{"tenant"}) as section C{name}.

        C{read} returns a JSON-able mapping; the section is that mapping plus
        C{"running": true}.  It is called on every status request, in the reactor thread,
        so it must be quick and must not block.
        """
        if name in _OWN_FIELDS:
            raise ValueError(f"status section {name!r} is the board's own")
        self._sources[name] = _Source(read, scope)

    def remove_source(self, name: str) -> None:
        """The part stopped: its section says it is not running again."""
        self._sources.pop(name, None)

    def add_health_check(self, name: str, check: Callable[[], str | None]) -> None:
        """
        C{check()} returns why the server cannot place calls now (e.g. no FreeSWITCH node is
        connected), or C{None}; any reason makes C{GET /api/license} answer 400.
        """
        self._health_checks[name] = check

    # -- what each principal sees ------------------------------------------------------------

    def _tenants(self, principal: Principal) -> list[TenantConfig]:
        if principal.tenant is None:
            return list(self.directory)
        tenant = self.directory.get(principal.tenant.id)
        return [] if tenant is None else [tenant]

    def license_figures(self) -> list[tuple[str, int, int]]:
        """C{(tenant_id, used, limit)} of every tenant."""
        return [(t.id, self.ledger.used(t.id), t.licenses) for t in self.directory]

    def snapshot(self, principal: Principal) -> dict[str, Any]:
        """
        The status as C{principal} may see it (the fields of C{docs/operations.md}).
        """
        now = self.clock.seconds()
        tenants = self._tenants(principal)
        licenses: list[dict[str, Any]] = [
            {"id": t.id, "licenses_used": self.ledger.used(t.id), "licenses_total": t.licenses}
            for t in tenants
        ]
        used = sum(t["licenses_used"] for t in licenses)
        tenant_ids = None if principal.is_admin else [t.id for t in tenants]
        body: dict[str, Any] = {
            "version": __version__,
            "uptime_seconds": round(now - self.started, 3),
            "time": _iso(now),
            "viewer": "admin" if principal.tenant is None else principal.tenant.id,
            "tenants": licenses,
            "licenses": {"used": used, "total": sum(t.licenses for t in tenants)},
            "calls": {"active": used, **self.recorder.report(tenant_ids, now)},
        }
        for name in EXPECTED_SECTIONS:
            body[name] = {"running": False}
        for name, source in self._sources.items():
            if source.scope == "admin" and not principal.is_admin:
                body.pop(name, None)
                continue
            body[name] = self._read(name, source, principal)
        if principal.is_admin:
            body["config"] = self.current_config().masked()
        return body

    def _read(self, name: str, source: _Source, principal: Principal) -> dict[str, Any]:
        try:
            if source.scope == "tenant":
                tenant_id = None if principal.tenant is None else principal.tenant.id
                section = source.read(tenant_id)
            else:
                section = source.read()
            return {"running": True, **section}
        except Exception:
            self.log.failure("Status source {name} failed", name=name)
            return {"running": True, "error": "this part could not report its status (logged)"}

    # -- GET /api/license ----------------------------------------------------------------------

    def license_state(self) -> LicenseState:
        """
        Usable when some tenant has licenses and no health check reports a problem.
        """
        total = sum(t.licenses for t in self.directory)
        if total <= 0:
            return LicenseState(False, 0, Status.NO_LICENSES, "No iraDial licenses are installed")
        for name, check in self._health_checks.items():
            try:
                problem = check()
            except Exception:
                self.log.failure("Health check {name} failed", name=name)
                problem = f"the {name} health check failed (logged)"
            if problem:
                return LicenseState(
                    False, total, Status.LICENSES_UNUSABLE, f"Unable to use the licences: {problem}"
                )
        return LicenseState(True, total)
