"""
Call control: the calls of every tenant, driven by FreeSWITCH events, reported as webhooks.

L{Dialer} is the one listener of the FreeSWITCH node pool and of the media service.  Each
call's L{Call} state machine is the truth for what may happen next; the feature modules
(L{iradialer.dialer.playback}, L{iradialer.dialer.conferences}, L{iradialer.dialer.digits},
L{iradialer.dialer.analysis}) act on calls through the methods here.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.config import Config, TenantConfig
from iradialer.dialer.analysis import CallAnalysis
from iradialer.dialer.asr import Recognition
from iradialer.dialer.audio import AudioTaps
from iradialer.dialer.conferences import Conferences
from iradialer.dialer.digits import Digits
from iradialer.dialer.playback import Playbacks
from iradialer.dialer.records import Records
from iradialer.domain import hangup as causes
from iradialer.domain.calls import Action, Call, Place, Progress
from iradialer.domain.errors import DialerError, Status
from iradialer.domain.pacing import Pacer
from iradialer.domain.tenants import LicenseLedger, LicensesExhausted, TenantDirectory
from iradialer.freeswitch.node import NodeDown
from iradialer.freeswitch.pool import NoNodeAvailable
from iradialer.protocols import fscommand
from iradialer.protocols.esl import CommandError, ConnectionClosed, Event
from iradialer.status import CallRecorder
from iradialer.tts import TextToSpeech

# How many ended calls are kept in memory for getdetails (older ones come from the store).
ENDED_KEPT = 10_000


class Dialer(Service):
    """
    Every live call, and the operations the API asks of them.
    """

    log = Logger()

    def __init__(
        self,
        *,
        config: Config,
        pool: Any,
        media: Any,
        webhooks: Any,
        records: Records,
        directory: TenantDirectory,
        ledger: LicenseLedger,
        pacer: Pacer,
        recorder: CallRecorder,
        clock: IReactorTime,
        tts: dict[str, TextToSpeech] | None = None,
        asr_applications: dict[str, Any] | None = None,
        new_uuid: Callable[[], str] = lambda: str(uuidlib.uuid4()),
    ) -> None:
        self.config = config
        self.pool = pool
        self.media = media
        self.webhooks = webhooks
        self.records = records
        self.directory = directory
        self.ledger = ledger
        self.pacer = pacer
        self.recorder = recorder
        self.clock = clock
        self.tts = tts or {}
        self.asr_applications = asr_applications or {}
        self.new_uuid = new_uuid
        self.calls: dict[str, Call] = {}
        self.ended: OrderedDict[str, Call] = OrderedDict()
        self._event_handlers: dict[str, list[Callable[[Call, Event], None]]] = {}
        self._hangup_hooks: list[Callable[[Call], None]] = []
        self._pending_urls: dict[tuple[str, str], str] = {}
        self._adopting: Deferred[None] = succeed(None)
        self._drop_when_created: set[str] = set()
        self.audio = AudioTaps(self)
        self.analysis = CallAnalysis(self)
        self.asr = Recognition(self)
        self.conferences = Conferences(self)
        self.playbacks = Playbacks(self)
        self.digits = Digits(self)

    # -- wiring of the feature modules ------------------------------------------------------

    def on_event(self, name: str, handler: Callable[[Call, Event], None]) -> None:
        """Have C{handler(call, event)} called for FreeSWITCH events C{name} of our calls."""
        self._event_handlers.setdefault(name, []).append(handler)

    def on_hangup(self, hook: Callable[[Call], None]) -> None:
        """Have C{hook(call)} called once when a call has ended (to release what it held)."""
        self._hangup_hooks.append(hook)

    def status(self, tenant_id: str | None) -> dict[str, Any]:
        """
        The status board's section: live calls by state (one tenant's, or everyone's for
        the admin).
        """
        calls = [c for c in self.calls.values() if tenant_id in (None, c.tenant_id)]
        by_state: dict[str, int] = {}
        for (_, state), count in self.calls_in_state(calls).items():
            by_state[state] = by_state.get(state, 0) + count
        return {
            "active_calls": len(calls),
            "calls_by_state": by_state,
            "cpa_sessions": sum(1 for c in calls if c.uuid in self.analysis.sessions),
            "conferences": sum(
                1
                for conf in self.conferences.by_name.values()
                if conf.members and tenant_id in (None, conf.tenant_id)
            ),
        }

    def calls_in_state(self, calls: Iterable[Call] | None = None) -> dict[tuple[str, str], int]:
        """Live calls counted by (tenant, state): dialing, ringing, parked, conference..."""
        counts: dict[tuple[str, str], int] = {}
        for call in self.calls.values() if calls is None else calls:
            state = call.progress.value if call.place is Place.NONE else call.place.value
            counts[(call.tenant_id, state)] = counts.get((call.tenant_id, state), 0) + 1
        return counts

    # -- lookups ----------------------------------------------------------------------------

    def lookup(self, tenant: TenantConfig, call_uuid: str, action: Action) -> Call:
        """
        The tenant's call, checked for C{action}.

        @raise DialerError: 107 (404) for an unknown call or another tenant's; else what
            L{Call.check} says.
        """
        call_uuid = call_uuid.lower()
        call = self.calls.get(call_uuid) or self.ended.get(call_uuid)
        if call is None or call.tenant_id != tenant.id:
            raise DialerError(
                Status.UNKNOWN_CALL, "The call_uuid mentioned in the API doesn't exist", 404
            )
        call.check(action)
        return call

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        return self.directory.get(tenant_id)

    def node_of(self, call: Call) -> Any:
        node = self.pool.node_for(call.uuid)
        if node is None:
            raise DialerError(
                Status.CALL_GONE, "The call's FreeSWITCH node is not known any more", 400
            )
        return node

    # -- webhooks ---------------------------------------------------------------------------

    def expect_url(self, call: Call, event: str, url: str | None) -> None:
        """
        The next C{event} of C{call} goes to C{url} (the event_url of the request that
        caused it) instead of the makecall one.
        """
        if url:
            self._pending_urls[(call.uuid, event)] = url

    def emit(
        self, call: Call, event: str, status: str, url: str | None = None, **fields: Any
    ) -> Deferred[Any]:
        """
        Queue one webhook event of C{call}.  Events are queued in the order they happen;
        the webhook service keeps that order per call.
        """
        target = url or self._pending_urls.pop((call.uuid, event), None) or call.event_url
        d = self.webhooks.send(call.tenant_id, call.uuid, target, event, status, **fields)
        d.addErrback(self._emit_failed, call, event)
        return d

    def emit_error(
        self, call: Call, code: int, message: str, url: str | None = None, **fields: Any
    ) -> Deferred[Any]:
        return self.emit(call, "error", message, url=url, status_code=int(code), **fields)

    def _emit_failed(self, failure: Failure, call: Call, event: str) -> None:
        self.log.failure(
            "Could not queue webhook {event} of call {call_uuid}",
            failure,
            event=event,
            call_uuid=call.uuid,
        )

    # -- persistence ------------------------------------------------------------------------

    def save(self, call: Call) -> Deferred[None]:
        d = self.records.save_call(call.details(), call.live)
        d.addErrback(
            lambda f: self.log.failure("Could not save call {call_uuid}", f, call_uuid=call.uuid)
        )
        return d

    def advance(self, call: Call, signal: str, **details: Any) -> bool:
        """Feed C{signal} to the call's state machine; persist it when it changed."""
        changed = call.apply(signal, self.clock.seconds(), **details)
        if changed:
            self.save(call)
        return changed

    # -- makecall ---------------------------------------------------------------------------

    async def make_call(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        gateway = body["gateway"]
        if gateway not in tenant.gateways:
            raise DialerError(
                Status.INVALID_REQUEST, f"gateway {gateway!r} is not one this tenant may use"
            )
        if body["enable_cpa"]:
            await self.analysis.check_config(tenant, body.get("config_name"))
        add_to = body.get("add_to_conf")
        if add_to:
            if not body["join_conf"]:
                raise DialerError(Status.INVALID_REQUEST, "add_to_conf needs join_conf yes")
            self.lookup(tenant, add_to, Action.BRIDGE)
        await self.webhooks.check_event_url(body["event_url"], tenant)
        self.pacer.admit(tenant.id, gateway, self.clock.seconds())
        try:
            call, node, command = self._place(tenant, body)
        except BaseException:
            self.pacer.call_ended(gateway)
            raise
        self.recorder.record_call_started(tenant.id, call.created_at)
        await DeferredList(
            [
                self.save(call),
                self.emit(
                    call,
                    "originate",
                    "dialing",
                    to=call.to,
                    **{"from": call.from_},
                    gateway=gateway,
                ),
            ],
            fireOnOneErrback=True,
            consumeErrors=True,
        )
        d = node.bgapi(command)
        d.addCallbacks(
            self._originated, self._originate_failed, callbackArgs=(call,), errbackArgs=(call,)
        )
        result = {"call_uuid": call.uuid}
        if call.conf_uuid:
            result["conf_uuid"] = call.conf_uuid
        return result

    def _place(self, tenant: TenantConfig, body: dict[str, Any]) -> tuple[Call, Any, str]:
        """
        Choose the node, take a license, build the originate command and register the
        call; undone entirely if any step is refused.
        """
        try:
            node = self.pool.choose_node()
        except NoNodeAvailable as e:
            if e.retry_after is not None:
                raise DialerError(
                    Status.ORIGINATE_THROTTLED,
                    f"Call failed to originate, could be a throttling problem: {e}",
                    429,
                    retry_after=e.retry_after,
                ) from None
            raise DialerError(Status.DIAL_FAILED, f"Call dialing failed: {e}", 503) from None
        call_uuid = self.new_uuid()
        call = Call(
            uuid=call_uuid,
            tenant_id=tenant.id,
            node=node.name,
            event_url=body["event_url"],
            to=body["to"],
            from_=body["from"],
            gateway=body["gateway"],
            created_at=self.clock.seconds(),
            enable_cpa=body["enable_cpa"],
            cpa_config=body.get("config_name"),
            join_conf=body["join_conf"],
            conf_uuid=f"CONF-{self.new_uuid()}" if body["join_conf"] else None,
            add_to_conf=body.get("add_to_conf", "").lower() or None,
            call_params={k: str(v) for k, v in (body.get("call_params") or {}).items()},
        )
        try:
            command = fscommand.originate(
                call_uuid=call_uuid,
                gateway=call.gateway,
                destination=call.to,
                caller_id_number=call.from_,
                timeout_s=body["dial_timeout"],
                sip_headers={f"X-{k}": v for k, v in call.call_params.items()},
            )
        except fscommand.UnsafeValue as e:
            raise DialerError(Status.INVALID_REQUEST, f"{e.what}: {e.problem}") from None
        try:
            self.ledger.acquire(tenant.id, call_uuid)
        except LicensesExhausted as e:
            raise DialerError(Status.LICENSES_USED_UP, str(e)) from None
        self.calls[call_uuid] = call
        self.pool.claim(call_uuid, node)
        if call.conf_uuid:
            self.conferences.reserve(call.conf_uuid, tenant.id, node.name)
        return call, node, command

    def _originated(self, reply: str, call: Call) -> None:
        self.log.debug(
            "Originate of {call_uuid} returned {reply!r}", call_uuid=call.uuid, reply=reply
        )

    def _originate_failed(self, failure: Failure, call: Call) -> None:
        """
        FreeSWITCH's C{-ERR <CAUSE>} ends a call that produced no hangup of its own (the
        BACKGROUND_JOB of a failed originate comes after CHANNEL_HANGUP_COMPLETE when there
        was a channel).  A lost connection decides nothing: reconciliation after the
        reconnect says whether the call exists.
        """
        if call.hangup is not None:
            return
        error = failure.value
        if isinstance(error, CommandError):
            self.finish(call, causes.from_originate_error(error.text))
        elif failure.check(NodeDown):
            self.finish(
                call,
                causes.dial_failed(
                    f"FreeSWITCH node {call.node} went down before the call was placed"
                ),
            )
        elif failure.check(ConnectionClosed):
            self.log.warn(
                "Originate of {call_uuid} interrupted by a lost connection", call_uuid=call.uuid
            )
        else:
            self.log.failure("Originate of {call_uuid} failed", failure, call_uuid=call.uuid)
            self.finish(call, causes.dial_failed(failure.getErrorMessage()))

    # -- drop and details --------------------------------------------------------------------

    async def drop(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call = self.lookup(tenant, body["call_uuid"], Action.DROP)
        self.expect_url(call, "hangup", body.get("event_url"))
        try:
            await self.node_of(call).api(fscommand.uuid_kill(call.uuid, "NORMAL_CLEARING"))
        except CommandError as e:
            if call.live and call.progress is Progress.DIALING:
                # No channel yet: FreeSWITCH creates it in a moment; kill it then.
                call.timeline.append({"at": self.clock.seconds(), "signal": "drop_requested"})
                self._drop_when_created.add(call.uuid)
                return {"call_uuid": call.uuid}
            raise DialerError(Status.CALL_GONE, f"could not drop the call: {e.text}") from None
        return {"call_uuid": call.uuid}

    async def details(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call_uuid = body["call_uuid"]
        try:
            call = self.lookup(tenant, call_uuid, Action.DETAILS)
            details = call.details()
        except DialerError:
            record = await self.records.load_call(call_uuid)
            if record is None or record.get("tenant_id") != tenant.id:
                raise
            details = record
            call = None
        if call is not None:
            self.emit(
                call, "get_details", "call details", url=body.get("event_url"), details=details
            )
        else:
            self.webhooks.send(
                tenant.id,
                call_uuid,
                body["event_url"],
                "get_details",
                "call details",
                details=details,
            )
        return {"call_uuid": call_uuid, "details": details}

    # -- FreeSWITCH events (the pool's listener) --------------------------------------------

    def event_received(self, node: Any, event: Event) -> None:
        name = event.name
        if name == "CUSTOM":
            name = f"CUSTOM {event.subclass}"
        call = self.calls.get(event.uuid or "")
        if call is None:
            if name == "CUSTOM conference::maintenance":
                self.conferences.conference_event(event)
            return
        handler = getattr(self, "_on_" + name.replace(" ", "_").replace("::", "_"), None)
        if handler is not None:
            handler(call, event)
        for extra in self._event_handlers.get(name, ()):
            extra(call, event)

    def _on_CHANNEL_CREATE(self, call: Call, event: Event) -> None:
        if call.uuid in self._drop_when_created:
            self._drop_when_created.discard(call.uuid)
            d = self.node_of(call).api(fscommand.uuid_kill(call.uuid, "NORMAL_CLEARING"))
            d.addErrback(
                lambda f: self.log.warn(
                    "Delayed drop of {c} failed: {e}", c=call.uuid, e=f.getErrorMessage()
                )
            )
        self.emit(call, "started", "call has been set up")

    def _on_CHANNEL_PROGRESS(self, call: Call, event: Event) -> None:
        if self.advance(call, "ringing"):
            self.emit(call, "ringing", "ringing")

    _on_CHANNEL_PROGRESS_MEDIA = _on_CHANNEL_PROGRESS

    def _on_CHANNEL_ANSWER(self, call: Call, event: Event) -> None:
        if not self.advance(call, "answered"):
            return
        self.emit(call, "answered", "answered")
        self.recorder.record_call_answered(call.tenant_id, self.clock.seconds())
        if call.enable_cpa:
            self.analysis.start(call)
        elif call.join_conf:
            self.conferences.join_on_answer(call)

    def _on_CHANNEL_PARK(self, call: Call, event: Event) -> None:
        was = call.place
        if self.advance(call, "parked") and was in (Place.CONFERENCE, Place.MOVING):
            self.emit(call, "parked", "call was moved out of the conference and parked")

    def _on_CHANNEL_HANGUP(self, call: Call, event: Event) -> None:
        self.advance(call, "hungup", cause=event.get("Hangup-Cause"))

    def _on_CHANNEL_HANGUP_COMPLETE(self, call: Call, event: Event) -> None:
        self.advance(call, "hungup", cause=event.get("Hangup-Cause"))
        self.finish(
            call,
            causes.from_freeswitch(event),
            billsec=event.get("variable_billsec"),
            mos=event.get("variable_rtp_audio_in_mos"),
            quality=event.get("variable_rtp_audio_in_quality_percentage"),
        )

    # -- the end of a call ------------------------------------------------------------------

    def finish(
        self,
        call: Call,
        why: causes.Hangup,
        billsec: str | None = None,
        mos: str | None = None,
        quality: str | None = None,
    ) -> None:
        """
        Report the call's end once: hangup then call_quality; release its license and
        everything else it held.
        """
        if call.hangup is not None:
            return
        now = self.clock.seconds()
        call.apply("hungup", now, cause=why.reason_code)
        end = call.ended_at if call.ended_at is not None else now
        if billsec is not None and billsec.isdigit():
            seconds = int(billsec)
        elif call.answered_at is not None:
            seconds = int(end - call.answered_at)
        else:
            seconds = 0
        fields = why.fields()
        fields.update(duration_ms=int(round((end - call.created_at) * 1000)), billsec=seconds)
        call.hangup = dict(fields, status=why.status)
        for hook in self._hangup_hooks:
            try:
                hook(call)
            except Exception:
                self.log.failure("Hangup hook failed for {call_uuid}", call_uuid=call.uuid)
        self.emit(call, "hangup", why.status, event_data=why.reason_code, **fields)
        measured = _float_or_none(mos) is not None
        self.emit(
            call,
            "call_quality",
            "media quality of the call" if measured else "no media quality was measured",
            mos=_float_or_none(mos),
            quality=_float_or_none(quality),
        )
        self.ledger.release(call.uuid)
        self.pool.release(call.uuid)
        self.pacer.call_ended(call.gateway)
        self.recorder.record_call_ended(call.tenant_id, why.reason_code, now)
        self._drop_when_created.discard(call.uuid)
        for key in [k for k in self._pending_urls if k[0] == call.uuid]:
            del self._pending_urls[key]
        self.calls.pop(call.uuid, None)
        self.ended[call.uuid] = call
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)
        self.save(call)

    # -- reconciliation ---------------------------------------------------------------------

    def node_up(self, node: Any, live_channels: list[dict[str, Any]]) -> None:
        # Reconciled once the calls of the last run are loaded (maybe a moment later), and
        # only for calls older than this listing: no call is placed on a node during its
        # handshake, so a younger one cannot be missing from it.
        listed_at = self.clock.seconds()
        self._adopting.addCallback(lambda _: self._reconcile(node, live_channels, listed_at))

    def node_down(self, node: Any) -> None:
        self.log.warn(
            "FreeSWITCH node {node} is down; its calls wait for it to come back", node=node.name
        )

    def calls_vanished(self, node: Any, call_uuids: list[str]) -> None:
        for call_uuid in call_uuids:
            call = self.calls.get(call_uuid)
            if call is not None:
                self.finish(call, _unseen_end(node))

    def _reconcile(self, node: Any, rows: Iterable[dict[str, Any]], listed_at: float) -> None:
        """
        After (re)connecting to C{node}: calls it no longer had when it listed its channels
        ended while we could not see them; calls it still has are ours again, in the state
        FreeSWITCH reports.
        """
        live = {row.get("uuid"): row for row in rows}
        for call in [
            c for c in self.calls.values() if c.node == node.name and c.created_at <= listed_at
        ]:
            row = live.get(call.uuid)
            if row is None:
                self.finish(call, _unseen_end(node))
                continue
            self.pool.claim(call.uuid, node, adopted=True)
            if (
                row.get("callstate") in ("ACTIVE", "HELD")
                and call.progress is not Progress.ANSWERED
            ):
                self.advance(call, "answered")
                self.emit(call, "answered", "answered (seen after reconnecting)")
            if row.get("application") == "park":
                self.advance(call, "parked")

    async def adopt_from_store(self) -> None:
        """
        After a restart: take back the calls the last run had not seen end, with their
        licenses; reconciliation with each node then says which still exist.
        """
        for record in await self.records.live_calls():
            if record["call_uuid"] in self.calls:
                continue
            call = _call_from_record(record)
            self.calls[call.uuid] = call
            self.ledger.acquire(call.tenant_id, call.uuid, force=True)
            if call.node not in {node.name for node in self.pool.nodes}:
                self.finish(
                    call,
                    causes.unobserved(
                        f"call was on FreeSWITCH node {call.node}, which is no longer configured"
                    ),
                )
                continue
            self.pacer.call_adopted(call.gateway)
            self.log.info(
                "Re-adopting call {call_uuid} of the last run (node {node})",
                call_uuid=call.uuid,
                node=call.node,
            )

    def startService(self) -> None:
        super().startService()
        self._adopting = Deferred.fromCoroutine(self.adopt_from_store())
        self._adopting.addErrback(
            lambda f: self.log.failure("Re-adopting calls after a restart failed", f)
        )


def _unseen_end(node: Any) -> causes.Hangup:
    """
    Why a call of C{node} ended while iradialer could not see it, as far as is known.
    """
    if getattr(node, "restarted", False):
        return causes.unobserved(
            f"FreeSWITCH node {node.name} restarted while iradialer could not see it;"
            " the call ended with it"
        )
    return causes.unobserved(
        f"call ended while iradialer could not see FreeSWITCH node {node.name}"
    )


def _float_or_none(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _call_from_record(record: dict[str, Any]) -> Call:
    call = Call(
        uuid=record["call_uuid"],
        tenant_id=record["tenant_id"],
        node=record["node"],
        event_url=record["event_url"],
        to=record["to"],
        from_=record["from"],
        gateway=record["gateway"],
        created_at=record["created_at"],
        enable_cpa=record.get("enable_cpa", False),
        cpa_config=record.get("config_name"),
        join_conf=record.get("join_conf", False),
        conf_uuid=record.get("new_conf_uuid"),
    )
    call.progress = Progress(record["state"])
    call.place = Place(record["place"])
    call.conference = record.get("conf_uuid")
    call.member_id = record.get("member_id")
    call.answered_at = record.get("answered_at")
    call.timeline = list(record.get("timeline", []))
    return call
