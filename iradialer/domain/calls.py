"""
One call's lifecycle: an explicit state machine fed by FreeSWITCH events.

API handlers ask the call (L{Call.check}) whether an action may happen now, and never guess
from scattered flags.  The machine has two dimensions: the call's progress
(dialing -> ringing -> answered -> hung up) and, once answered, where its media is
(parked, in a conference, or moving between the two).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from iradialer.domain.errors import DialerError, Status


class Progress(enum.Enum):
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    HUNGUP = "hungup"


class Place(enum.Enum):
    NONE = "none"  # not answered yet
    PARKED = "parked"
    MOVING = "moving"  # a transfer into or out of a conference is under way
    CONFERENCE = "conference"


# Progress transitions: (from, signal) -> to.  Signals not listed leave the progress alone.
_PROGRESS: dict[tuple[Progress, str], Progress] = {
    (Progress.DIALING, "ringing"): Progress.RINGING,
    (Progress.DIALING, "answered"): Progress.ANSWERED,
    (Progress.RINGING, "answered"): Progress.ANSWERED,
    (Progress.DIALING, "hungup"): Progress.HUNGUP,
    (Progress.RINGING, "hungup"): Progress.HUNGUP,
    (Progress.ANSWERED, "hungup"): Progress.HUNGUP,
}

# Where the media is, once answered: (from, signal) -> to.
_PLACE: dict[tuple[Place, str], Place] = {
    (Place.NONE, "answered"): Place.PARKED,
    (Place.PARKED, "moving"): Place.MOVING,
    (Place.CONFERENCE, "moving"): Place.MOVING,
    (Place.MOVING, "joined"): Place.CONFERENCE,
    (Place.PARKED, "joined"): Place.CONFERENCE,
    (Place.CONFERENCE, "joined"): Place.CONFERENCE,
    (Place.MOVING, "parked"): Place.PARKED,
    (Place.CONFERENCE, "parked"): Place.PARKED,
    (Place.CONFERENCE, "left"): Place.MOVING,
    (Place.PARKED, "parked"): Place.PARKED,
}


class Action(enum.Enum):
    """
    What a request may ask of a call; L{Call.check} says whether the call allows it now.
    """

    DROP = "drop"
    PLAY = "play"
    STOP_PLAY = "stop_play"
    CONFERENCE_MEMBER = "conference_member"  # mute, unmute, deaf, undeaf, hold, unhold
    PARK = "park"
    BRIDGE = "bridge"
    SEND_DTMF = "send_dtmf"
    COLLECT_DTMF = "collect_dtmf"
    DETAILS = "details"
    ASR = "asr"


@dataclass
class Call:
    """
    What iradialer knows of one call.  Mutated only through L{apply}.
    """

    uuid: str
    tenant_id: str
    node: str
    event_url: str
    to: str
    from_: str
    gateway: str
    created_at: float
    enable_cpa: bool = False
    cpa_config: str | None = None
    join_conf: bool = False
    conf_uuid: str | None = None
    add_to_conf: str | None = None
    call_params: dict[str, str] = field(default_factory=dict)
    progress: Progress = Progress.DIALING
    place: Place = Place.NONE
    conference: str | None = None
    member_id: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    hangup: dict[str, Any] | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, signal: str, at: float, **details: Any) -> bool:
        """
        Feed one signal (C{ringing}, C{answered}, C{moving}, C{joined}, C{left}, C{parked},
        C{hungup}); returns whether anything changed.  Signals that do not fit the current
        state (a duplicate event, a late one after hangup) change nothing.
        """
        if self.progress is Progress.HUNGUP:
            return False
        progress = _PROGRESS.get((self.progress, signal), self.progress)
        if progress is Progress.HUNGUP:
            place = Place.NONE
        elif progress is Progress.ANSWERED:
            place = _PLACE.get((self.place, signal), self.place)
        else:
            place = self.place
        rejoined = signal == "joined" and place is Place.CONFERENCE
        if (progress, place) == (self.progress, self.place) and not rejoined:
            return False
        self.progress, self.place = progress, place
        if signal == "answered":
            self.answered_at = at
        elif signal == "hungup":
            self.ended_at = at
        if place is Place.CONFERENCE:
            self.conference = details.get("conference", self.conference)
            self.member_id = details.get("member_id", self.member_id)
        else:
            self.conference = self.member_id = None
        entry: dict[str, Any] = {"at": round(at, 3), "signal": signal, "progress": progress.value}
        if place is not Place.NONE:
            entry["place"] = place.value
        entry.update({k: v for k, v in details.items() if v is not None})
        self.timeline.append(entry)
        return True

    @property
    def live(self) -> bool:
        return self.progress is not Progress.HUNGUP

    def check(self, action: Action) -> None:
        """
        @raise DialerError: with the Appendix B code that says why C{action} cannot happen now.
        """
        if action is Action.DETAILS:
            return
        if not self.live:
            raise DialerError(
                Status.CALL_GONE, "The call_uuid mentioned in the API doesn't exist anymore"
            )
        if action is Action.DROP:
            return
        if self.progress is not Progress.ANSWERED:
            raise DialerError(
                Status.CALL_NOT_ANSWERED,
                "Call specified by call_uuid is not in answered state "
                f"(it is {self.progress.value})",
            )
        if action is Action.CONFERENCE_MEMBER and self.place is not Place.CONFERENCE:
            raise DialerError(
                Status.NOT_IN_CONFERENCE,
                "The requested API can only be called while in conference",
            )
        if action is Action.PARK:
            if self.place is Place.PARKED:
                raise DialerError(
                    Status.ALREADY_PARKED, "Call Park failed since the call is already parked"
                )
            if self.place is not Place.CONFERENCE:
                raise DialerError(
                    Status.PARK_FAILED, f"Failed to park the call: it is {self.place.value}"
                )
        if action is Action.COLLECT_DTMF and self.place is not Place.PARKED:
            raise DialerError(
                Status.IN_CONFERENCE_NO_DTMF,
                "Call is in the conference, can't accept the DTMF"
                if self.place is Place.CONFERENCE
                else f"Call can't accept the DTMF while {self.place.value}",
            )
        if action in (Action.PLAY, Action.ASR) and self.place is Place.CONFERENCE:
            raise DialerError(
                Status.INVALID_REQUEST,
                "not available while the call is in a conference (not implemented yet); "
                "parkcall first",
            )
        if action in (Action.PLAY, Action.BRIDGE, Action.ASR) and self.place is Place.MOVING:
            raise DialerError(
                Status.INVALID_REQUEST, "The call is moving between conference and park; retry"
            )

    def details(self) -> dict[str, Any]:
        """
        What getdetails reports.
        """
        return {
            "call_uuid": self.uuid,
            "tenant_id": self.tenant_id,
            "state": self.progress.value,
            "place": self.place.value,
            "to": self.to,
            "from": self.from_,
            "gateway": self.gateway,
            "event_url": self.event_url,
            "node": self.node,
            "conf_uuid": self.conference,
            "member_id": self.member_id,
            "enable_cpa": self.enable_cpa,
            "config_name": self.cpa_config,
            "join_conf": self.join_conf,
            "new_conf_uuid": self.conf_uuid,
            "created_at": self.created_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "hangup": self.hangup,
            "timeline": list(self.timeline),
        }
