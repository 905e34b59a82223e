"""
Pacing: how fast new calls may start, and how many may run through one gateway at once.

Carriers throttle (and FreeSWITCH itself refuses more than its C{sessions-per-second}), so a
call over a limit is refused up front with a time to retry after, never dropped silently.
Limits come from the configuration in force (tenant C{cps}, C{[[gateway]]} C{cps} and
C{max_calls}) and follow a reload; the state of the buckets survives it.

Rates are token buckets holding up to one second's worth of calls (at least one), refilled
continuously; so a tenant with C{cps = 10} may start 10 calls at once, then one every 0.1 s.
Time is passed in (C{now}, in seconds), so this module never reads a clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iradialer.config import Config
from iradialer.domain.errors import DialerError, Status

# Seconds a call refused by a gateway's max_calls is told to wait: when one of that gateway's
# calls ends is not known in advance.
CONCURRENCY_RETRY_AFTER = 1.0

# A wait shorter than this is none: it is below the rounding of clock readings (a float
# holding seconds since 1970 has a resolution of about 0.2 microseconds).
_NEGLIGIBLE_S = 1e-6


@dataclass
class TokenBucket:
    """
    C{rate} tokens a second, at most C{capacity} held; one token per call.
    """

    rate: float
    capacity: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, now: float) -> TokenBucket:
        capacity = max(1.0, rate)
        return cls(rate=rate, capacity=capacity, tokens=capacity, updated=now)

    def _level(self, now: float) -> float:
        return min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)

    def wait(self, now: float) -> float:
        """
        Seconds until a token is there; 0 when one is there now.
        """
        wait = (1.0 - self._level(now)) / self.rate
        return wait if wait > _NEGLIGIBLE_S else 0.0

    def take(self, now: float) -> None:
        self.tokens = self._level(now) - 1.0
        self.updated = max(self.updated, now)


class Pacer:
    """
    Admits new calls under the tenant's rate, the gateway's rate and the gateway's cap.

    The dialer calls L{admit} before it originates a call and L{call_ended} once for every
    admitted call when it is over, including one whose origination then failed; otherwise the
    gateway's count of calls in progress drifts up and its cap refuses calls for ever.

    @param current_config: the configuration in force (it changes on reload).
    """

    def __init__(self, current_config: Callable[[], Config]) -> None:
        self._current_config = current_config
        self._config: Config | None = None
        self._tenant_rates: dict[str, float] = {}
        self._gateway_rates: dict[str, float] = {}
        self._gateway_caps: dict[str, int] = {}
        self._tenant_buckets: dict[str, TokenBucket] = {}
        self._gateway_buckets: dict[str, TokenBucket] = {}
        self._in_progress: Counter[str] = Counter()
        self._throttled: Counter[tuple[str, str]] = Counter()

    def _limits(self) -> None:
        """
        Take the limits of the configuration in force; a changed rate starts a fresh bucket.
        """
        config = self._current_config()
        if config is self._config:
            return
        self._config = config
        self._tenant_rates = {t.id: t.cps for t in config.tenants if t.cps is not None}
        self._gateway_rates = {g.name: g.cps for g in config.gateways if g.cps is not None}
        self._gateway_caps = {g.name: g.max_calls for g in config.gateways if g.max_calls}
        for buckets, rates in (
            (self._tenant_buckets, self._tenant_rates),
            (self._gateway_buckets, self._gateway_rates),
        ):
            for key in [k for k, b in buckets.items() if rates.get(k) != b.rate]:
                del buckets[key]

    def _bucket(
        self, buckets: dict[str, TokenBucket], rates: dict[str, float], key: str, now: float
    ) -> TokenBucket | None:
        rate = rates.get(key)
        if rate is None:
            return None
        if key not in buckets:
            buckets[key] = TokenBucket.full(rate, now)
        return buckets[key]

    def admit(self, tenant_id: str, gateway: str, now: float) -> None:
        """
        Count one new call of C{tenant_id} through C{gateway} starting at C{now}, or refuse it.

        Nothing is counted when the call is refused, so a refused call costs no tenant or
        gateway any of its rate.

        @raise DialerError: status 115, HTTP 429, with C{retry_after} in seconds.
        """
        self._limits()
        tenant_bucket = self._bucket(self._tenant_buckets, self._tenant_rates, tenant_id, now)
        gateway_bucket = self._bucket(self._gateway_buckets, self._gateway_rates, gateway, now)
        refusals: list[tuple[str, float, str]] = []
        if tenant_bucket is not None and (wait := tenant_bucket.wait(now)) > 0:
            refusals.append(
                ("tenant_cps", wait, f"tenant {tenant_id} may start {tenant_bucket.rate:g} calls/s")
            )
        if gateway_bucket is not None and (wait := gateway_bucket.wait(now)) > 0:
            refusals.append(
                ("gateway_cps", wait, f"gateway {gateway} takes {gateway_bucket.rate:g} calls/s")
            )
        cap = self._gateway_caps.get(gateway)
        if cap is not None and self._in_progress[gateway] >= cap:
            refusals.append(
                (
                    "gateway_max_calls",
                    CONCURRENCY_RETRY_AFTER,
                    f"gateway {gateway} carries at most {cap} calls at once",
                )
            )
        if refusals:
            for limit, _, _ in refusals:
                self._throttled[(tenant_id, limit)] += 1
            retry_after = max(wait for _, wait, _ in refusals)
            reasons = "; ".join(reason for _, _, reason in refusals)
            raise DialerError(
                Status.ORIGINATE_THROTTLED,
                f"Call failed to originate, could be a throttling problem: {reasons}; "
                f"retry after {retry_after:.2f} s",
                http_status=429,
                retry_after=retry_after,
            )
        for bucket in (tenant_bucket, gateway_bucket):
            if bucket is not None:
                bucket.take(now)
        self._in_progress[gateway] += 1

    def call_adopted(self, gateway: str) -> None:
        """
        A call placed before a restart, taken back: it counts against the gateway's cap.
        """
        self._in_progress[gateway] += 1

    def call_ended(self, gateway: str) -> None:
        """
        One call admitted through C{gateway} is over (or never started).
        """
        if self._in_progress[gateway] > 1:
            self._in_progress[gateway] -= 1
        else:
            self._in_progress.pop(gateway, None)

    def in_progress(self, gateway: str) -> int:
        return self._in_progress[gateway]

    def status(self, tenant_id: str | None) -> dict[str, Any]:
        """
        The limits and their use, for the status page: a tenant (C{tenant_id}) sees its own
        rate and the limits of the gateways it may use; the administrator (C{None}) sees
        every limit, the calls in progress per gateway, and how often each limit refused.
        """
        self._limits()
        config = self._config
        assert config is not None
        if tenant_id is None:
            return {
                "tenants": {t.id: {"cps": t.cps} for t in config.tenants},
                "gateways": {
                    g.name: {
                        "cps": g.cps,
                        "max_calls": g.max_calls,
                        "calls_in_progress": self._in_progress[g.name],
                    }
                    for g in config.gateways
                },
                "throttled": {
                    f"{tenant}/{limit}": count
                    for (tenant, limit), count in sorted(self._throttled.items())
                },
            }
        tenant = next((t for t in config.tenants if t.id == tenant_id), None)
        usable = set() if tenant is None else set(tenant.gateways)
        return {
            "cps": None if tenant is None else tenant.cps,
            "gateways": {
                g.name: {"cps": g.cps, "max_calls": g.max_calls}
                for g in config.gateways
                if g.name in usable
            },
            "throttled": {
                limit: count
                for (t, limit), count in sorted(self._throttled.items())
                if t == tenant_id
            },
        }
