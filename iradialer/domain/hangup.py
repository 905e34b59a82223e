"""
Hangup causes: the one place that maps FreeSWITCH's causes to what a webhook reports.

FreeSWITCH names causes with the same enumeration as the seed's Appendix D (Q.850 numbers,
plus FreeSWITCH's own above 127); the hangup event reports that name as C{reason_code}, the
Q.850 number, and the SIP status when FreeSWITCH saw one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# Appendix D: enumeration -> (Q.850 / FreeSWITCH number, SIP equivalent or None).
CAUSES: dict[str, tuple[int, int | None]] = {
    "UNSPECIFIED": (0, None),
    "UNALLOCATED_NUMBER": (1, 404),
    "NO_ROUTE_TRANSIT_NET": (2, 404),
    "NO_ROUTE_DESTINATION": (3, 404),
    "CHANNEL_UNACCEPTABLE": (6, None),
    "CALL_AWARDED_DELIVERED": (7, None),
    "NORMAL_CLEARING": (16, None),
    "USER_BUSY": (17, 486),
    "NO_USER_RESPONSE": (18, 408),
    "NO_ANSWER": (19, 480),
    "SUBSCRIBER_ABSENT": (20, 480),
    "CALL_REJECTED": (21, 603),
    "NUMBER_CHANGED": (22, 410),
    "REDIRECTION_TO_NEW_DESTINATION": (23, 410),
    "EXCHANGE_ROUTING_ERROR": (25, 483),
    "DESTINATION_OUT_OF_ORDER": (27, 502),
    "INVALID_NUMBER_FORMAT": (28, 484),
    "FACILITY_REJECTED": (29, 501),
    "RESPONSE_TO_STATUS_ENQUIRY": (30, None),
    "NORMAL_UNSPECIFIED": (31, 480),
    "NORMAL_CIRCUIT_CONGESTION": (34, 503),
    "NETWORK_OUT_OF_ORDER": (38, 503),
    "NORMAL_TEMPORARY_FAILURE": (41, 503),
    "SWITCH_CONGESTION": (42, 503),
    "ACCESS_INFO_DISCARDED": (43, None),
    "REQUESTED_CHAN_UNAVAIL": (44, 503),
    "PRE_EMPTED": (45, None),
    "FACILITY_NOT_SUBSCRIBED": (50, None),
    "OUTGOING_CALL_BARRED": (52, 403),
    "INCOMING_CALL_BARRED": (54, 403),
    "BEARERCAPABILITY_NOTAUTH": (57, 403),
    "BEARERCAPABILITY_NOTAVAIL": (58, 503),
    "SERVICE_UNAVAILABLE": (63, None),
    "BEARERCAPABILITY_NOTIMPL": (65, 488),
    "CHAN_NOT_IMPLEMENTED": (66, None),
    "FACILITY_NOT_IMPLEMENTED": (69, 501),
    "SERVICE_NOT_IMPLEMENTED": (79, 501),
    "INVALID_CALL_REFERENCE": (81, None),
    "INCOMPATIBLE_DESTINATION": (88, 488),
    "INVALID_MSG_UNSPECIFIED": (95, None),
    "MANDATORY_IE_MISSING": (96, None),
    "MESSAGE_TYPE_NONEXIST": (97, None),
    "WRONG_MESSAGE": (98, None),
    "IE_NONEXIST": (99, None),
    "INVALID_IE_CONTENTS": (100, None),
    "WRONG_CALL_STATE": (101, None),
    "RECOVERY_ON_TIMER_EXPIRE": (102, 504),
    "MANDATORY_IE_LENGTH_ERROR": (103, None),
    "PROTOCOL_ERROR": (111, None),
    "INTERWORKING": (127, None),
    "ORIGINATOR_CANCEL": (487, 487),
    "CRASH": (500, None),
    "SYSTEM_SHUTDOWN": (501, None),
    "LOSE_RACE": (502, None),
    "MANAGER_REQUEST": (503, None),
    "BLIND_TRANSFER": (600, None),
    "ATTENDED_TRANSFER": (601, None),
    "ALLOTTED_TIMEOUT": (602, None),
    "USER_CHALLENGE": (603, None),
    "MEDIA_TIMEOUT": (604, None),
    "PICKED_OFF": (605, None),
    "USER_NOT_REGISTERED": (606, None),
    "PROGRESS_TIMEOUT": (607, None),
    "GATEWAY_DOWN": (609, None),
}


@dataclass(frozen=True)
class Hangup:
    """
    Why a call ended, as the hangup webhook reports it.

    @ivar observed: C{False} when FreeSWITCH's own hangup was not seen (the call vanished
        while the Event Socket was down) and the cause is iradialer's account of it.
    """

    reason_code: str
    q850: int
    sip_code: int | None
    status: str
    observed: bool = True

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"reason_code": self.reason_code, "q850": self.q850}
        if self.sip_code is not None:
            fields["sip_code"] = self.sip_code
        if not self.observed:
            fields["cause_observed"] = False
        return fields


class Headers(Protocol):
    """An event's headers (an L{iradialer.protocols.esl.Event}, or a plain dict)."""

    def get(self, header: str, default: Any = None) -> Any: ...


def _int_or_none(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def from_freeswitch(headers: Headers) -> Hangup:
    """
    The cause of a C{CHANNEL_HANGUP(_COMPLETE)}: C{Hangup-Cause}, the Q.850 number FreeSWITCH
    recorded (or the table's), and the SIP status it saw on the wire, if any.
    """
    name = headers.get("Hangup-Cause") or "NORMAL_UNSPECIFIED"
    number, _ = CAUSES.get(name, (CAUSES["NORMAL_UNSPECIFIED"][0], None))
    q850 = _int_or_none(headers.get("variable_hangup_cause_q850"))
    sip = _int_or_none(headers.get("variable_sip_term_status")) or _int_or_none(
        headers.get("variable_sip_invite_failure_status")
    )
    return Hangup(
        reason_code=name,
        q850=q850 if q850 is not None else number,
        sip_code=sip,
        status=describe(name),
    )


def from_originate_error(text: str) -> Hangup:
    """
    The cause of an originate that failed before any channel event was seen: FreeSWITCH's
    C{-ERR USER_BUSY} names it.
    """
    name = text.strip().removeprefix("-ERR").strip().split()[0] if text.strip() else ""
    if name not in CAUSES:
        name = "NORMAL_TEMPORARY_FAILURE"
    number, _ = CAUSES[name]
    return Hangup(reason_code=name, q850=number, sip_code=None, status=describe(name))


def dial_failed(why: str) -> Hangup:
    """A call iradialer could not place (the node went away, an unexpected error)."""
    return Hangup("NORMAL_TEMPORARY_FAILURE", 41, None, f"dialing failed: {why}")


def unobserved(why: str) -> Hangup:
    """
    A call that ended while iradialer could not see FreeSWITCH: the cause is unknown.
    """
    return Hangup(reason_code="UNSPECIFIED", q850=0, sip_code=None, status=why, observed=False)


def describe(name: str) -> str:
    return "call ended: " + name.lower().replace("_", " ")
