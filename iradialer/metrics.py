"""
The server's Prometheus metrics, defined in one place and updated by the part that owns each.

L{iradialer.server} builds one L{Metrics} on its own C{CollectorRegistry} and hands it to the
parts; tests build their own, so no test sees another's figures.  C{/metrics} serves the
registry (see L{iradialer.api.site}).  C{docs/operations.md} lists every metric.

Label values are kept to short, bounded sets (tenant ids, node names, Appendix D reason
codes, CPA results, route paths): anything else would make every scrape grow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from iradialer import __version__

# Times from answer to a CPA decision: AMD decides within a few seconds, beeps come later.
CPA_DECISION_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 30.0)
# One CPA tick analyses 20 ms of audio of every stream; it must stay well under 20 ms.
CPA_TICK_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.05)
# ESL command round trips: an api command answers in milliseconds, bgapi at once.
ESL_COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Webhook lag, from the event to its delivery: retries back off over minutes.
WEBHOOK_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_REASON = re.compile(r"[A-Z0-9_]{1,64}")
_CPA_RESULT = re.compile(r"[A-Za-z0-9_]{1,16}")


def reason_label(reason_code: str) -> str:
    """An Appendix D hangup reason as a label value; anything else is C{OTHER}."""
    return reason_code if _REASON.fullmatch(reason_code) else "OTHER"


def cpa_label(event_data: str) -> str:
    """A CPA result (LV AM FX MD BP SL DT, or a configured tone's name) as a label value."""
    return event_data if _CPA_RESULT.fullmatch(event_data) else "other"


class Metrics:
    """
    Every metric of the server.  Each attribute is a C{prometheus_client} metric; the part
    named in its comment updates it.

    Figures that are read rather than counted (licenses in use, calls by state) are set by
    hooks given to L{before_scrape}, which L{refresh} runs in the reactor thread just before
    each scrape is served, so they never read the dialer's state from another thread.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, process_metrics: bool = False
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._hooks: list[Callable[[], None]] = []
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)

        self.build_info = Gauge(
            "iradialer_build_info", "Always 1; the version running", ["version"], registry=r
        )
        self.build_info.labels(__version__).set(1)

        # Calls: CallRecorder (iradialer.status), fed by the dialer.
        self.calls_started = Counter(
            "iradialer_calls_started", "Calls placed (makecall accepted)", ["tenant"], registry=r
        )
        self.calls_answered = Counter(
            "iradialer_calls_answered", "Calls answered by the callee", ["tenant"], registry=r
        )
        self.calls_ended = Counter(
            "iradialer_calls_ended",
            "Calls ended, by hangup reason (Appendix D reason_code)",
            ["tenant", "reason"],
            registry=r,
        )
        # The dialer, through a before_scrape hook calling set_calls_in_state.
        self.calls_in_state = Gauge(
            "iradialer_calls_in_state",
            "Calls in progress, by call state",
            ["tenant", "state"],
            registry=r,
        )
        # The server, through a before_scrape hook (see set_licenses).
        self.licenses_used = Gauge(
            "iradialer_licenses_used", "Licenses held by calls", ["tenant"], registry=r
        )
        self.licenses_limit = Gauge(
            "iradialer_licenses_limit", "Licenses the tenant has", ["tenant"], registry=r
        )

        # CPA decisions: CallRecorder.  Engine load: the media service.
        self.cpa_decisions = Counter(
            "iradialer_cpa_decisions",
            "CPA detections reported (event_data of cpa_detection)",
            ["tenant", "result"],
            registry=r,
        )
        self.cpa_decision_seconds = Histogram(
            "iradialer_cpa_decision_seconds",
            "Time from answer to each CPA detection",
            ["result"],
            buckets=CPA_DECISION_BUCKETS,
            registry=r,
        )
        self.cpa_streams = Gauge(
            "iradialer_cpa_streams", "Call audio streams being analysed", registry=r
        )
        self.cpa_tick_seconds = Histogram(
            "iradialer_cpa_tick_seconds",
            "Time to analyse one 20 ms tick of every stream",
            buckets=CPA_TICK_BUCKETS,
            registry=r,
        )
        self.media_packets_dropped = Counter(
            "iradialer_media_packets_dropped",
            "Audio datagrams dropped (late, unknown sender, malformed)",
            ["reason"],
            registry=r,
        )

        # Webhooks: the webhook service.
        self.webhook_attempts = Counter(
            "iradialer_webhook_attempts", "Webhook delivery attempts", ["tenant"], registry=r
        )
        self.webhook_failures = Counter(
            "iradialer_webhook_failures",
            "Webhook delivery attempts that failed (timeout, connection, refused, http_3xx...5xx)",
            ["tenant", "reason"],
            registry=r,
        )
        self.webhook_dead_letters = Counter(
            "iradialer_webhook_dead_letters",
            "Webhook events given up after the last attempt",
            ["tenant"],
            registry=r,
        )
        self.webhook_lag_seconds = Histogram(
            "iradialer_webhook_lag_seconds",
            "Time from an event to its successful delivery",
            buckets=WEBHOOK_LAG_BUCKETS,
            registry=r,
        )
        self.webhook_outbox_depth = Gauge(
            "iradialer_webhook_outbox_depth", "Webhook events waiting to be delivered", registry=r
        )

        # FreeSWITCH Event Socket: the node pool and its ESL client.
        self.esl_connected = Gauge(
            "iradialer_esl_connected",
            "1 while the Event Socket connection to the node is up, else 0",
            ["node"],
            registry=r,
        )
        self.esl_connects = Counter(
            "iradialer_esl_connects",
            "Event Socket connections made (a count above 1 means reconnections)",
            ["node"],
            registry=r,
        )
        self.esl_command_seconds = Histogram(
            "iradialer_esl_command_seconds",
            "Time from sending an Event Socket command to its reply, by command verb",
            ["node", "command"],
            buckets=ESL_COMMAND_BUCKETS,
            registry=r,
        )

        # HTTP API: iradialer.api.site.
        self.api_request_seconds = Histogram(
            "iradialer_api_request_seconds",
            "Time to answer an API request, by route, method and HTTP status",
            ["route", "method", "status"],
            buckets=API_BUCKETS,
            registry=r,
        )
        self.api_malformed_requests = Counter(
            "iradialer_api_malformed_requests",
            "Connections to the API that sent something other than HTTP (answered 400 and"
            " closed before any request was read)",
            registry=r,
        )

    def before_scrape(self, hook: Callable[[], None]) -> None:
        """
        Have C{hook()} called (in the reactor thread) before each scrape, to set gauges
        from state read at that moment.
        """
        self._hooks.append(hook)

    def refresh(self) -> None:
        """
        Run the L{before_scrape} hooks; called by the C{/metrics} resource.
        """
        for hook in self._hooks:
            hook()

    def set_calls_in_state(self, counts: Mapping[tuple[str, str], int]) -> None:
        """
        Set C{iradialer_calls_in_state} from C{(tenant_id, state) -> calls}; states with no
        calls any more disappear.  For the dialer's L{before_scrape} hook.
        """
        self.calls_in_state.clear()
        for (tenant_id, state), calls in counts.items():
            self.calls_in_state.labels(tenant_id, state).set(calls)

    def set_licenses(self, figures: Iterable[tuple[str, int, int]]) -> None:
        """
        Set the license gauges from C{(tenant_id, used, limit)} rows; tenants not in the rows
        (removed by a reload) disappear.
        """
        self.licenses_used.clear()
        self.licenses_limit.clear()
        for tenant_id, used, limit in figures:
            self.licenses_used.labels(tenant_id).set(used)
            self.licenses_limit.labels(tenant_id).set(limit)
