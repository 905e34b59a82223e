"""
Conferences: moving calls into and out of them, member operations, and the C{CONF-*}
events.

A conference is named C{CONF-<uuid4>}, belongs to the tenant whose call created it, and
lives on one FreeSWITCH node.  Calls enter with C{uuid_transfer <uuid>
'conference:<name>@default,park' inline}, so leaving (kick, parkcall) lands them back in
park with a C{CHANNEL_PARK} event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.config import TenantConfig
from iradialer.domain.calls import Action, Call, Place
from iradialer.domain.errors import DialerError, Status
from iradialer.protocols import fscommand
from iradialer.protocols.esl import CommandError, Event

if TYPE_CHECKING:
    from iradialer.dialer.core import Dialer

# conference::maintenance actions reported as webhook events (the seed's Appendix C names;
# "CONF-del-number" is the seed's spelling, kept for compatibility).
MEMBER_EVENTS = {
    "add-member": ("CONF-add-member", "New call is added to the conference"),
    "del-member": ("CONF-del-number", "Call was removed from the conference"),
    "mute-member": ("CONF-mute-member", "Call was muted successfully"),
    "unmute-member": ("CONF-unmute-member", "Call was unmuted successfully"),
    "deaf-member": ("CONF-deaf-member", "Call was deafened successfully"),
    "undeaf-member": ("CONF-undeaf-member", "Call was un-deafened successfully"),
    "hold-member": ("CONF-hold-member", "Call was put to hold successfully"),
    "unhold-member": ("CONF-unhold-member", "Call was removed from hold successfully"),
}

MEMBER_ACTIONS = ("mute", "unmute", "deaf", "undeaf", "hold", "unhold")


@dataclass
class Conference:
    name: str
    tenant_id: str
    node: str | None = None
    members: set[str] = field(default_factory=set)


class Conferences:
    log = Logger()

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self.by_name: dict[str, Conference] = {}
        dialer.on_event("CUSTOM conference::maintenance", self._member_event)
        dialer.on_hangup(self._call_ended)

    # -- ownership --------------------------------------------------------------------------

    def reserve(self, name: str, tenant_id: str, node: str | None = None) -> Conference:
        conference = self.by_name.get(name)
        if conference is None:
            conference = self.by_name[name] = Conference(name, tenant_id, node)
        return conference

    def _owned(self, tenant: TenantConfig, name: str) -> Conference:
        """
        The tenant's conference C{name}, reserved now if nobody has it; another tenant's
        conference is reported like a missing call (404, 107).
        """
        conference = self.by_name.get(name)
        if conference is not None and conference.tenant_id != tenant.id:
            raise DialerError(
                Status.UNKNOWN_CALL, "The conference mentioned in the API doesn't exist", 404
            )
        return conference or self.reserve(name, tenant.id)

    # -- entering ---------------------------------------------------------------------------

    async def bridge(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.BRIDGE)
        name = body.get("conf_uuid") or f"CONF-{self.dialer.new_uuid()}"
        existing = name in self.by_name
        conference = self._owned(tenant, name)
        self.dialer.expect_url(call, "CONF-add-member", body.get("event_url"))
        code = (
            Status.BRIDGE_EXISTING_CONFERENCE_FAILED
            if existing
            else (Status.BRIDGE_NEW_CONFERENCE_FAILED)
        )
        await self._enter(call, conference, code)
        return {"call_uuid": call.uuid, "conf_uuid": name}

    async def multiconf(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        uuids = body["call_uuid"]
        if any(not u for u in uuids):
            raise DialerError(
                Status.NULL_UUID_IN_MULTICONF, "Null call_uuid/conf_uuid in the multiconf request"
            )
        calls = [self.dialer.lookup(tenant, u, Action.BRIDGE) for u in dict.fromkeys(uuids)]
        name = body["conf_uuid"]
        existing = name in self.by_name
        conference = self._owned(tenant, name)
        code = (
            Status.BRIDGE_EXISTING_CONFERENCE_FAILED
            if existing
            else (Status.BRIDGE_NEW_CONFERENCE_FAILED)
        )
        self._same_node(conference, calls)
        for call in calls:
            self.dialer.expect_url(call, "CONF-add-member", body.get("event_url"))
            await self._enter(call, conference, code)
        return {"conf_uuid": name}

    def _same_node(self, conference: Conference, calls: list[Call]) -> None:
        nodes = {c.node for c in calls} | ({conference.node} if conference.node else set())
        if len(nodes) > 1:
            raise DialerError(
                Status.BRIDGE_OTHER_DIALER_FAILED,
                "Bridging into the conference in another dialer failed: the calls are on "
                f"different FreeSWITCH nodes ({', '.join(sorted(nodes))})",
            )

    async def _enter(self, call: Call, conference: Conference, code: int) -> None:
        self._same_node(conference, [call])
        if call.place is Place.CONFERENCE and call.conference == conference.name:
            return
        conference.node = call.node
        node = self.dialer.node_of(call)
        self.dialer.advance(call, "moving", conference=conference.name)
        try:
            await node.api(
                fscommand.uuid_transfer_to_conference(
                    call.uuid, fscommand.conference(conference.name)
                )
            )
        except CommandError as e:
            self.dialer.advance(call, "parked")
            raise DialerError(code, f"Bridging into the conference failed: {e.text}") from None

    def join_on_answer(self, call: Call) -> None:
        """
        A makecall with join_conf: the answered call enters its new conference, and the
        add_to_conf call follows it there.
        """
        assert call.conf_uuid is not None
        tenant = self.dialer.tenant(call.tenant_id)
        conference = self.reserve(call.conf_uuid, call.tenant_id, call.node)

        async def join() -> None:
            await self._enter(call, conference, Status.BRIDGE_NEW_CONFERENCE_FAILED)
            other_uuid = call.add_to_conf
            if other_uuid and tenant is not None:
                other = self.dialer.lookup(tenant, other_uuid, Action.BRIDGE)
                await self._enter(other, conference, Status.BRIDGE_EXISTING_CONFERENCE_FAILED)

        def failed(failure: Failure) -> None:
            error = failure.value
            if isinstance(error, DialerError) and call.live:
                self.dialer.emit_error(call, error.status, error.message)
            elif call.live:
                self.log.failure("Joining {conf} failed", failure, conf=call.conf_uuid)
                self.dialer.emit_error(
                    call,
                    Status.BRIDGE_NEW_CONFERENCE_FAILED,
                    f"Bridging into a brand new conference failed: {failure.getErrorMessage()}",
                )

        Deferred.fromCoroutine(join()).addErrback(failed)

    # -- members ----------------------------------------------------------------------------

    async def member_action(
        self, tenant: TenantConfig, action: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        assert action in MEMBER_ACTIONS
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.CONFERENCE_MEMBER)
        assert call.conference is not None
        self.dialer.expect_url(call, f"CONF-{action}-member", body.get("event_url"))
        try:
            await self.dialer.node_of(call).api(
                fscommand.conference_member(call.conference, action, call.uuid)
            )
        except CommandError as e:
            raise DialerError(
                Status.CONFERENCE_ACTION_FAILED,
                f"The requested action in the conference failed: {e.text}",
            ) from None
        return {"call_uuid": call.uuid, "conf_uuid": call.conference}

    async def park(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.PARK)
        self.dialer.expect_url(call, "parked", body.get("event_url"))
        self.dialer.advance(call, "moving")
        try:
            await self.dialer.node_of(call).api(fscommand.uuid_park(call.uuid))
        except CommandError as e:
            raise DialerError(Status.PARK_FAILED, f"Failed to park the call: {e.text}") from None
        return {"call_uuid": call.uuid}

    # -- events -----------------------------------------------------------------------------

    def _member_event(self, call: Call, event: Event) -> None:
        action = event.get("Action")
        name = event.get("Conference-Name")
        member_id = event.get("Member-ID")
        if action == "add-member":
            joined = self.by_name.get(name) or self.reserve(name, call.tenant_id, call.node)
            joined.members.add(call.uuid)
            self.dialer.advance(call, "joined", conference=name, member_id=member_id)
        elif action == "del-member":
            conference = self.by_name.get(name)
            if conference is not None:
                conference.members.discard(call.uuid)
            self.dialer.advance(call, "left", conference=name)
        reported = MEMBER_EVENTS.get(action or "")
        if reported is not None:
            event_name, status = reported
            self.dialer.emit(call, event_name, status, conf_uuid=name, member_id=member_id)

    def conference_event(self, event: Event) -> None:
        """A conference-level maintenance event (no member): forget destroyed conferences."""
        if event.get("Action") == "conference-destroy":
            self.by_name.pop(event.get("Conference-Name"), None)

    def _call_ended(self, call: Call) -> None:
        for conference in self.by_name.values():
            conference.members.discard(call.uuid)
