"""
The webhook service: every event reaches its receiver at least once, in order per call,
signed, across restarts of the server.

L{WebhookService.send} commits the event to the outbox (L{iradialer.webhooks.outbox}) before
its Deferred fires, so a caller that waits for it never loses an event.  Delivery then runs
in the background:

 - Events are grouped in streams: a call's events, or a tenant's events without a call.  A
   stream's next event is posted only after the previous one got a 2xx (and was removed
   from the outbox) or was given up; different streams are delivered concurrently, up to
   C{concurrency} in all and C{tenant_concurrency} per tenant.
 - A failed attempt (no 2xx within C{timeout}) is retried with exponential backoff and
   jitter, up to C{attempts} in all; then the event goes to the dead letters, is logged with
   C{status_code} 132 and, when the tenant has a C{fallback_url}, reported there as a
   C{web_error} event.
 - Memory holds only the streams being delivered (at most C{concurrency}); streams waiting
   for a retry or for room wait in the database, found again by an index scan when due.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import UTC, datetime
from functools import partial
from random import Random
from typing import Any
from uuid import uuid4

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IHostnameResolver
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from iradialer import __version__
from iradialer.config import TenantConfig, WebhookConfig
from iradialer.domain.errors import DialerError, Status
from iradialer.domain.tenants import TenantDirectory
from iradialer.metrics import Metrics
from iradialer.store import Store
from iradialer.webhooks import outbox
from iradialer.webhooks.destinations import DestinationPolicy, url_host
from iradialer.webhooks.http import AttemptFailed, BytesProducer, pooled_agent, read_response
from iradialer.webhooks.signing import signature_header

_RESERVED = frozenset({"event_id", "sequence", "timestamp"})
_USER_AGENT = f"iradialer/{__version__}".encode("ascii")
_STORE_RETRY_SECONDS = 5.0
_HOUSEKEEPING_SECONDS = 3600.0
_DAY = 86400.0


def iso_timestamp(seconds: float) -> str:
    """
    ISO-8601 UTC with milliseconds and C{Z}: C{2026-11-27T10:00:00.123Z}.
    """
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookService(Service):
    """
    Queue and deliver webhook events.  Named C{webhooks} in the server.

    @param store: where the outbox lives.
    @param tenants: the tenants in force (secrets, fallback URL, private destinations).
    @param reactor: the clock for timeouts and retries (and, when C{agent} is not given,
        the reactor the client connects with).
    @param agent: the L{IAgent} that posts (C{treq.testing.RequestTraversalAgent} in
        tests); by default an L{Agent} over a persistent connection pool.  An agent rather
        than a treq client: treq's per-request URL and cookie handling costs about as much
        CPU as everything else per event together (see C{docs/webhooks.md}).
    @param resolver: an L{IHostnameResolver} for destination checks; by default the
        reactor's.
    @param random: the source of backoff jitter.
    @param metrics: the server's Prometheus metrics, fed with attempts, failures by reason,
        dead letters and delivery lag (the outbox depth gauge is set from L{status} before
        each scrape).
    """

    log = Logger()

    def __init__(
        self,
        store: Store,
        tenants: TenantDirectory,
        reactor: Any,
        agent: IAgent | None = None,
        settings: WebhookConfig = WebhookConfig(),  # noqa: B008  (frozen)
        *,
        resolver: IHostnameResolver | None = None,
        random: Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.tenants = tenants
        self.settings = settings
        self._clock = reactor
        self._random = random or Random()
        self._metrics = metrics
        self._pool: HTTPConnectionPool | None = None
        if agent is None:
            agent, self._pool = pooled_agent(reactor, settings.tenant_concurrency, settings.timeout)
        self._agent: IAgent = agent
        self._destinations = DestinationPolicy(reactor, resolver, timeout=settings.timeout)
        self._generation = 0
        self._stopping = False
        self._delivering: dict[str, outbox.Head] = {}
        self._in_flight: dict[str, Deferred[None]] = {}
        self._slots: Counter[str] = Counter()
        self._slots_total = 0
        self._due: dict[str, float] = {}
        self._turn = 0
        self._polling = False
        self._wakeup: IDelayedCall | None = None
        self._store_retries: set[IDelayedCall] = set()
        self._housekeeping = LoopingCall(self._housekeep)
        self._housekeeping.clock = reactor
        self.outbox_depth = 0
        self.dead_letters = 0
        self.attempts = 0
        self.delivered = 0
        self.failures = 0
        self.dead_lettered = 0
        self._lags: deque[float] = deque(maxlen=1000)

    # -- the interface ----------------------------------------------------------------------

    def send(
        self,
        tenant_id: str,
        call_uuid: str | None,
        url: str,
        event: str,
        status: str,
        **fields: Any,
    ) -> Deferred[dict[str, Any]]:
        """
        Queue one event for C{url}; fire with the event as it will be posted once it is
        committed to the outbox (delivery continues in the background).

        The event is C{{"event", "status", "call_uuid", "tenant_id", "event_id", "sequence",
        "timestamp", **fields}}.  C{sequence} counts from 1 per call, or per tenant for events
        without a call (C{call_uuid} C{None}), and survives restarts.  C{url} should have
        passed L{check_event_url}.  Fails when the event cannot be committed (the store
        failed, or C{fields} are not JSON).
        """
        clash = _RESERVED.intersection(fields)
        if clash:
            return fail(ValueError(f"fields may not set {sorted(clash)}"))
        now = self._clock.seconds()
        body = {
            "event": event,
            "status": status,
            "call_uuid": call_uuid,
            "tenant_id": tenant_id,
            "event_id": str(uuid4()),
            "sequence": 0,
            "timestamp": iso_timestamp(now),
            **fields,
        }
        try:
            draft = outbox.Draft.of(body)
        except (TypeError, ValueError) as e:
            return fail(ValueError(f"the event cannot be sent as JSON: {e}"))
        stream = outbox.stream_for(tenant_id, call_uuid)
        d = self._enqueue(stream, tenant_id, url, draft, now)
        return d.addCallback(lambda enqueued: dict(body, sequence=enqueued.sequence))

    def check_event_url(self, url: str, tenant: TenantConfig) -> Deferred[None]:
        """
        Fire when C{url} may receive C{tenant}'s events; fail with L{DialerError} (128) saying
        why not: not http(s), malformed, or resolving to a loopback, link-local or private
        address while the tenant lacks C{allow_private_webhooks}.
        """
        return self._destinations.check(url, tenant.allow_private_webhooks)

    def status(self) -> dict[str, Any]:
        """
        Counters for the status endpoint and the manhole.  C{outbox_depth} and
        C{dead_letters} are totals in the store; the others count since start.  C{lag_ms} is
        the time from L{send} to the 2xx over the last 1,000 deliveries.
        """
        lags = sorted(self._lags)
        lag = None
        if lags:
            lag = {
                "p50": round(lags[len(lags) // 2] * 1000, 1),
                "p99": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000, 1),
                "max": round(lags[-1] * 1000, 1),
            }
        return {
            "outbox_depth": self.outbox_depth,
            "dead_letters": self.dead_letters,
            "streams_delivering": len(self._delivering),
            "in_flight": len(self._in_flight),
            "attempts": self.attempts,
            "delivered": self.delivered,
            "failures": self.failures,
            "dead_lettered": self.dead_lettered,
            "lag_ms": lag,
        }

    def redeliver_dead_letters(self, tenant_id: str | None = None) -> Deferred[int]:
        """
        Put the dead letters (of one tenant, or all) back at the end of their streams for a
        fresh round of attempts; fire with how many.  For operators, e.g. from the manhole,
        once a receiver is fixed.
        """
        now = self._clock.seconds()
        d = self.store.run(partial(outbox.redeliver_dead_letters, tenant_id=tenant_id, now=now))
        return d.addCallback(self._redelivered)

    def backoff(self, failures: int) -> float:
        """
        Seconds to wait after the C{failures}-th failed attempt of an event.
        """
        s = self.settings
        delay = min(s.backoff_initial, s.backoff_max)
        for _ in range(failures - 1):
            delay = min(delay * s.backoff_multiplier, s.backoff_max)
        return delay * (1 + s.jitter * (2 * self._random.random() - 1))

    # -- service ----------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._generation += 1
        self._stopping = False
        self._recover()
        self._housekeeping.start(_HOUSEKEEPING_SECONDS, now=False)

    def _recover(self) -> None:
        generation = self._generation
        d = self.store.run(outbox.recover, durable=False)
        d.addCallbacks(
            self._recovered,
            self._store_failed,
            callbackArgs=(generation,),
            errbackArgs=("recovering the outbox", generation, self._recover),
        )

    def stopService(self) -> Deferred[None]:
        """
        Stop delivering.  Attempts in flight are abandoned; their events stay in the outbox
        and are delivered again after the next start.
        """
        super().stopService()
        self._stopping = True
        self._generation += 1
        if self._housekeeping.running:
            self._housekeeping.stop()
        for call in [self._wakeup, *self._store_retries]:
            if call is not None and call.active():
                call.cancel()
        self._wakeup = None
        self._store_retries.clear()
        in_flight = list(self._in_flight.values())
        self._in_flight.clear()
        self._delivering.clear()
        self._slots.clear()
        self._slots_total = 0
        self._due.clear()
        self._polling = False
        for d in in_flight:
            d.cancel()
        if self._pool is not None:
            return self._pool.closeCachedConnections()
        return succeed(None)

    def _recovered(self, recovered: outbox.Recovered, generation: int) -> None:
        if generation != self._generation:
            return
        self.outbox_depth += recovered.depth
        self.dead_letters += recovered.dead_letters
        for tenant_id, at in recovered.due.items():
            self._mark_due(tenant_id, at)
        self.log.info(
            "Webhook outbox: {depth} events to deliver, {dead} dead letters",
            depth=recovered.depth,
            dead=recovered.dead_letters,
        )
        self._wake()

    # -- queueing ---------------------------------------------------------------------------

    def _enqueue(
        self, stream: str, tenant_id: str, url: str, draft: outbox.Draft, now: float
    ) -> Deferred[outbox.Enqueued]:
        claim = bool(self.running) and not self._stopping and self._room(tenant_id) > 0
        if claim:
            self._take(tenant_id, 1)
        d = self.store.run(
            partial(
                outbox.enqueue,
                stream=stream,
                tenant_id=tenant_id,
                url=url,
                draft=draft,
                now=now,
                claim=claim,
            )
        )
        generation = self._generation
        return d.addCallbacks(
            self._enqueued,
            self._not_enqueued,
            callbackArgs=(tenant_id, claim, generation),
            errbackArgs=(tenant_id, claim, generation),
        )

    def _enqueued(
        self, enqueued: outbox.Enqueued, tenant_id: str, claim: bool, generation: int
    ) -> outbox.Enqueued:
        if generation == self._generation:
            self.outbox_depth += 1
            if enqueued.head is not None:
                self._deliver(enqueued.head)
            elif claim:
                self._give_back(tenant_id, 1)
            if enqueued.due_at is not None:
                self._mark_due(tenant_id, enqueued.due_at)
        return enqueued

    def _not_enqueued(
        self, failure: Failure, tenant_id: str, claim: bool, generation: int
    ) -> Failure:
        if claim and generation == self._generation:
            self._give_back(tenant_id, 1)
        self.log.error(
            "Webhook event for tenant {tenant_id} not queued: {error}",
            tenant_id=tenant_id,
            error=failure.getErrorMessage(),
        )
        return failure

    def _redelivered(self, redelivered: outbox.Redelivered) -> int:
        self.outbox_depth += redelivered.count
        self.dead_letters -= redelivered.count
        for tenant_id, at in redelivered.due.items():
            self._mark_due(tenant_id, at)
        self._wake()
        self.log.info("Redelivering {count} dead letters", count=redelivered.count)
        return redelivered.count

    # -- room and polling -------------------------------------------------------------------

    def _room(self, tenant_id: str) -> int:
        return max(
            0,
            min(
                self.settings.tenant_concurrency - self._slots[tenant_id],
                self.settings.concurrency - self._slots_total,
            ),
        )

    def _take(self, tenant_id: str, count: int) -> None:
        self._slots[tenant_id] += count
        self._slots_total += count

    def _give_back(self, tenant_id: str, count: int) -> None:
        if count:
            self._release(tenant_id, count)
            self._wake()

    def _release(self, tenant_id: str, count: int) -> None:
        self._slots[tenant_id] -= count
        self._slots_total -= count
        if not self._slots[tenant_id]:
            del self._slots[tenant_id]

    def _mark_due(self, tenant_id: str, at: float) -> None:
        """
        Some unclaimed stream of C{tenant_id} is due at C{at} (a hint: the database decides).
        """
        self._due[tenant_id] = min(self._due.get(tenant_id, at), at)
        self._wake()

    def _wake(self) -> None:
        """
        Claim due streams when there is room, or set the timer for the next one due.
        """
        if not self.running or self._stopping or self._polling:
            return  # a poll in progress calls again when it is done
        now = self._clock.seconds()
        plan = self._plan(now)
        if plan:
            self._poll(plan, now)
            return
        upcoming = [at for t, at in self._due.items() if at > now and self._room(t) > 0]
        if not upcoming:
            return
        at = min(upcoming)
        if self._wakeup is not None and self._wakeup.active():
            if self._wakeup.getTime() <= at:
                return
            self._wakeup.cancel()
        self._wakeup = self._clock.callLater(at - now, self._wake)

    def _plan(self, now: float) -> dict[str, int]:
        """
        How many due streams to claim per tenant, taking tenants in turn so none is starved.
        """
        due = sorted(t for t, at in self._due.items() if at <= now)
        if not due:
            return {}
        self._turn = (self._turn + 1) % len(due)
        plan: dict[str, int] = {}
        left = self.settings.concurrency - self._slots_total
        for tenant_id in due[self._turn :] + due[: self._turn]:
            count = min(self._room(tenant_id), left)
            if count > 0:
                plan[tenant_id] = count
                left -= count
        return plan

    def _poll(self, plan: dict[str, int], now: float) -> None:
        for tenant_id, count in plan.items():
            self._take(tenant_id, count)
        self._polling = True
        generation = self._generation
        d = self.store.run(partial(outbox.claim_due, plan=plan, now=now), durable=False)
        d.addCallbacks(
            self._polled,
            self._poll_failed,
            callbackArgs=(plan, generation),
            errbackArgs=(plan, generation),
        )

    def _polled(self, claimed: outbox.Claimed, plan: dict[str, int], generation: int) -> None:
        if generation != self._generation:
            return
        self._polling = False
        for tenant_id in plan:
            if tenant_id in claimed.next_due:
                self._due[tenant_id] = claimed.next_due[tenant_id]
            else:
                self._due.pop(tenant_id, None)
        used = Counter(head.tenant_id for head in claimed.heads)
        for head in claimed.heads:
            self._deliver(head)
        for tenant_id, count in plan.items():
            self._give_back(tenant_id, count - used[tenant_id])
        self._wake()

    def _poll_failed(self, failure: Failure, plan: dict[str, int], generation: int) -> None:
        if generation != self._generation:
            return
        self._polling = False
        for tenant_id, count in plan.items():
            self._release(tenant_id, count)
        self._store_failed(failure, "claiming due webhook streams", generation, self._wake)

    # -- delivery ---------------------------------------------------------------------------

    def _deliver(self, head: outbox.Head) -> None:
        """
        Attempt the head of a claimed stream (its slot is taken).
        """
        self._delivering[head.stream] = head
        self.attempts += 1
        if self._metrics is not None:
            self._metrics.webhook_attempts.labels(head.tenant_id).inc()
        d = maybeDeferred(self._post, head)
        self._in_flight[head.stream] = d
        d.addBoth(self._attempted, head, self._generation)

    def _post(self, head: outbox.Head) -> Deferred[None]:
        tenant = self.tenants.get(head.tenant_id)
        if tenant is None:
            return fail(AttemptFailed(f"tenant {head.tenant_id!r} is not configured", "refused"))
        if tenant.allow_private_webhooks:
            url_host(head.url)  # raises for a URL that was never checked
            requested = self._request(head, tenant)
        else:
            checked = self._destinations.check(head.url, allow_private=False)
            requested = checked.addCallback(self._request_checked, head, tenant)
        answered = requested.addCallback(read_response)
        return answered.addTimeout(self.settings.timeout, self._clock, onTimeoutCancel=_timed_out)

    def _request_checked(
        self, _: None, head: outbox.Head, tenant: TenantConfig
    ) -> Deferred[IResponse]:
        return self._request(head, tenant)

    def _request(self, head: outbox.Head, tenant: TenantConfig) -> Deferred[IResponse]:
        signature = signature_header(
            head.body, tenant.webhook_secrets, int(self._clock.seconds())
        ).encode("ascii")
        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"User-Agent": [_USER_AGENT],
                b"X-Iradialer-Event-Id": [head.event_id.encode("ascii")],
                b"X-Iradialer-Signature": [signature],
                b"X-Iradialer-Attempt": [str(head.attempts + 1).encode("ascii")],
            }
        )
        return self._agent.request(
            b"POST", head.url.encode("ascii"), headers, BytesProducer(head.body)
        )

    def _attempted(self, result: None | Failure, head: outbox.Head, generation: int) -> None:
        if generation != self._generation:
            return
        self._in_flight.pop(head.stream, None)
        now = self._clock.seconds()
        if not isinstance(result, Failure):
            self.delivered += 1
            self._lags.append(now - head.created_at)
            if self._metrics is not None:
                self._metrics.webhook_lag_seconds.observe(now - head.created_at)
            self._transition(head, partial(outbox.finish, head=head, now=now))
            return
        self.failures += 1
        attempts = head.attempts + 1
        error, reason = _describe(result)
        if self._metrics is not None:
            self._metrics.webhook_failures.labels(head.tenant_id, reason).inc()
        if attempts >= self.settings.attempts:
            self._give_up(head, attempts, error, now)
            return
        delay = self.backoff(attempts)
        self.log.info(
            "Webhook {event_id} ({event}) attempt {attempt} to {url} failed: {error};"
            " next attempt in {delay:.1f} s",
            event_id=head.event_id,
            event=head.event,
            attempt=attempts,
            url=head.url,
            error=error,
            delay=delay,
        )
        self._transition(
            head,
            partial(outbox.retry_later, head=head, attempts=attempts, error=error, at=now + delay),
            retry_at=now + delay,
        )

    def _give_up(self, head: outbox.Head, attempts: int, error: str, now: float) -> None:
        tenant = self.tenants.get(head.tenant_id)
        self.log.error(
            "Webhook {event_id} ({event}) to {url} undeliverable after {attempts} attempts:"
            " {error}",
            event_id=head.event_id,
            event=head.event,
            url=head.url,
            attempts=attempts,
            error=error,
            tenant_id=head.tenant_id,
            status_code=int(Status.WEBHOOK_FAILED),
        )
        fallback_url = tenant.fallback_url if tenant is not None else None
        web_error = None
        if fallback_url is not None and not head.stream.startswith(outbox.FALLBACK_PREFIX):
            call_uuid = None
            if head.stream.startswith(outbox.CALL_PREFIX):
                call_uuid = head.stream[len(outbox.CALL_PREFIX) :]
            web_error = outbox.Draft.of(
                {
                    "event": "web_error",
                    "status": "webhook delivery failed",
                    "status_code": int(Status.WEBHOOK_FAILED),
                    "call_uuid": call_uuid,
                    "tenant_id": head.tenant_id,
                    "event_id": str(uuid4()),
                    "sequence": 0,
                    "timestamp": iso_timestamp(now),
                    "failed_event": head.event,
                    "failed_event_id": head.event_id,
                    "failed_url": head.url,
                    "attempts": attempts,
                    "error": error,
                }
            )
        dead = outbox.DeadLetter(attempts, error, fallback_url, web_error)
        self._transition(head, partial(outbox.finish, head=head, now=now, dead=dead))

    def _transition(self, head: outbox.Head, work: Any, retry_at: float | None = None) -> None:
        """
        Record the outcome of an attempt; the stream keeps its slot until this commits, so
        its next event is never posted before the previous one left the outbox.
        """
        generation = self._generation
        # Losing this to a power failure only means delivering the event again.
        d = self.store.run(work, durable=False)
        d.addCallbacks(
            self._transitioned,
            self._store_failed,
            callbackArgs=(head, retry_at, generation),
            errbackArgs=(
                f"recording the attempt of webhook {head.event_id}",
                generation,
                partial(self._transition, head, work, retry_at),
            ),
        )

    def _transitioned(
        self,
        finished: outbox.Finished | None,
        head: outbox.Head,
        retry_at: float | None,
        generation: int,
    ) -> None:
        if generation != self._generation:
            return
        next_head = None
        if finished is not None:
            if finished.removed:
                self.outbox_depth -= 1
            if finished.dead:
                self.dead_letters += 1
                self.dead_lettered += 1
                if self._metrics is not None:
                    self._metrics.webhook_dead_letters.labels(head.tenant_id).inc()
            if finished.web_error is not None:
                self.outbox_depth += 1
                if finished.web_error.due_at is not None:
                    self._mark_due(head.tenant_id, finished.web_error.due_at)
            next_head = finished.next_head
        if next_head is not None:
            self._deliver(next_head)
            return
        del self._delivering[head.stream]
        self._give_back(head.tenant_id, 1)
        if retry_at is not None:
            self._mark_due(head.tenant_id, retry_at)

    def _store_failed(self, failure: Failure, doing: str, generation: int, again: Any) -> None:
        """
        The store could not do C{doing}: log it and try C{again} later (every piece of work
        here can be repeated safely).
        """
        if generation != self._generation:
            return
        self.log.failure(
            "Store failed {doing}; trying again in {delay} s",
            failure,
            doing=doing,
            delay=_STORE_RETRY_SECONDS,
        )
        call: IDelayedCall | None = None

        def retry() -> None:
            self._store_retries.discard(call)
            if generation == self._generation:
                again()

        call = self._clock.callLater(_STORE_RETRY_SECONDS, retry)
        self._store_retries.add(call)

    # -- housekeeping -----------------------------------------------------------------------

    def _housekeep(self) -> Deferred[Any]:
        now = self._clock.seconds()
        s = self.settings
        d = self.store.run(
            partial(
                outbox.prune,
                idle_before=now - s.sequence_retention_days * _DAY
                if s.sequence_retention_days
                else None,
                dead_before=now - s.dead_letter_retention_days * _DAY
                if s.dead_letter_retention_days
                else None,
            ),
            durable=False,
        )
        d.addCallbacks(self._pruned, self._prune_failed)
        return d

    def _pruned(self, pruned: outbox.Pruned) -> None:
        self.dead_letters -= pruned.dead_letters
        if pruned.streams or pruned.dead_letters:
            self.log.info(
                "Webhook housekeeping: forgot {streams} idle call sequences, {dead} old dead"
                " letters",
                streams=pruned.streams,
                dead=pruned.dead_letters,
            )

    def _prune_failed(self, failure: Failure) -> None:
        self.log.failure("Webhook housekeeping failed; trying again next hour", failure)


def _timed_out(result: object, timeout: float) -> None:
    raise AttemptFailed(f"no response within {timeout:g} s", "timeout")


def _describe(failure: Failure) -> tuple[str, str]:
    """
    What went wrong with an attempt, for the outbox and the log, and its metric reason.
    """
    value = failure.value
    if isinstance(value, AttemptFailed):
        return str(value), value.reason
    if isinstance(value, DialerError):
        return value.message, "refused"
    reasons = getattr(value, "reasons", None)  # ResponseFailed and friends wrap the cause
    if reasons:
        return "; ".join(_describe(r)[0] for r in reasons)[:500], "connection"
    return f"{type(value).__name__}: {failure.getErrorMessage()}"[:500], "connection"
