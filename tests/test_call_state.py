"""
The per-call state machine: which FreeSWITCH signals move a call, and which actions each
state allows (with the Appendix B code that says why not).
"""

from __future__ import annotations

from iradialer.domain.calls import Action, Call, Place, Progress
from iradialer.domain.errors import DialerError


def new_call() -> Call:
    return Call(
        uuid="u1",
        tenant_id="acme",
        node="fs1",
        event_url="http://x/",
        to="15550001",
        from_="15550002",
        gateway="sofia/gateway/sim",
        created_at=100.0,
    )


def code_of(call: Call, action: Action) -> int | None:
    try:
        call.check(action)
    except DialerError as e:
        return e.status
    return None


def test_normal_life():
    """dialing -> ringing -> answered (parked) -> conference -> parked -> hung up."""
    call = new_call()
    assert call.apply("ringing", 101)
    assert not call.apply("ringing", 101.5), "a second 180 changes nothing"
    assert call.apply("answered", 103) and call.place is Place.PARKED and call.answered_at == 103
    assert call.apply("moving", 104) and call.place is Place.MOVING
    assert call.apply("joined", 104.1, conference="CONF-1", member_id="7")
    assert (call.place, call.conference, call.member_id) == (Place.CONFERENCE, "CONF-1", "7")
    assert call.apply("left", 105) and call.place is Place.MOVING and call.conference is None
    assert call.apply("parked", 105.1) and call.place is Place.PARKED
    assert call.apply("hungup", 110, cause="NORMAL_CLEARING")
    assert (call.progress, call.place, call.ended_at) == (Progress.HUNGUP, Place.NONE, 110)
    assert not call.apply("answered", 111), "nothing happens after hangup"
    assert [e["signal"] for e in call.timeline] == [
        "ringing",
        "answered",
        "moving",
        "joined",
        "left",
        "parked",
        "hungup",
    ]


def test_moving_between_conferences_records_the_new_one():
    call = new_call()
    call.apply("answered", 1)
    call.apply("joined", 2, conference="CONF-A", member_id="1")
    assert call.apply("joined", 3, conference="CONF-B", member_id="2")
    assert call.conference == "CONF-B"


def test_unanswered_call_refuses_media_but_can_be_dropped():
    call = new_call()
    assert code_of(call, Action.PLAY) == 137
    assert code_of(call, Action.SEND_DTMF) == 137
    assert code_of(call, Action.DROP) is None
    assert code_of(call, Action.DETAILS) is None


def test_conference_only_actions():
    """hold on a parked call is 125; parkcall on a parked call is 123; DTMF in conference 117."""
    call = new_call()
    call.apply("answered", 1)
    assert code_of(call, Action.CONFERENCE_MEMBER) == 125
    assert code_of(call, Action.PARK) == 123
    assert code_of(call, Action.COLLECT_DTMF) is None
    call.apply("joined", 2, conference="CONF-A", member_id="1")
    assert code_of(call, Action.CONFERENCE_MEMBER) is None
    assert code_of(call, Action.PARK) is None
    assert code_of(call, Action.COLLECT_DTMF) == 117


def test_ended_call_is_108():
    call = new_call()
    call.apply("hungup", 5)
    for action in (Action.DROP, Action.PLAY, Action.CONFERENCE_MEMBER):
        assert code_of(call, action) == 108
    assert code_of(call, Action.DETAILS) is None
