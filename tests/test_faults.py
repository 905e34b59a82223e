"""
Faults, end to end: the Event Socket connection drops, FreeSWITCH restarts, iradialer is
killed, the webhook receiver goes away, the media port and the API are flooded.  Each test
checks what a customer would see (webhook events, API answers, licenses in the status) and
that nothing is lost, invented or left stuck.

The suite runs short forms; C{make soak} (C{IRADIALER_SOAK=1}) runs the same tests with
longer outages and more calls.
"""

from __future__ import annotations

import pytest_twisted

from tests.faults import (
    Simulator,
    Stack,
    assert_complete_and_ordered,
    stack_fixture,
)

stack = stack_fixture()

ANSWERED = ["originate", "started", "ringing", "answered", "hangup", "call_quality"]


@pytest_twisted.ensureDeferred
async def test_event_socket_drops_mid_call_and_comes_back(stack: Stack):
    """
    The Event Socket connection drops with two calls up and stays down (no answer to a
    reconnection) while one callee hangs up.  Meanwhile the API answers dropcall with a 503
    (not a 500), and getdetails from memory.  Once FreeSWITCH is reachable again the call
    that ended unseen gets exactly one hangup, marked cause_observed false, and its license
    back; the other is still controllable: dropcall works and its hangup is observed.  Each
    call's events are exactly those of its life, in order, none missing or invented.
    """
    assert stack.proxy is not None and stack.simulator is not None
    gone = await stack.make_call("15550000001")
    kept = await stack.make_call("15550000001")
    for call in (gone, kept):
        await stack.wait_for(call, "answered")
    assert await stack.licenses_used() == 2

    down = stack.next_node_down()
    stack.proxy.hold()
    stack.proxy.cut()
    stack.simulator.hang_up(gone)
    await down
    code, body = await stack.post("dropcall", {"call_uuid": kept})
    assert code == 503, body
    assert "not reachable" in body["message"]
    code, body = await stack.post(
        "getdetails", {"call_uuid": kept, "event_url": stack.receiver.url}
    )
    assert code == 200 and body["details"]["state"] == "answered"

    up = stack.next_node_up()
    stack.proxy.release()
    await up
    hangup = await stack.wait_for(gone, "hangup")
    assert hangup["cause_observed"] is False
    assert "could not see FreeSWITCH" in hangup["status"]
    await stack.wait_for(gone, "call_quality")
    assert await stack.licenses_used() == 1

    code, body = await stack.post("dropcall", {"call_uuid": kept})
    assert code == 200, body
    dropped = await stack.wait_for(kept, "hangup")
    assert dropped["reason_code"] == "NORMAL_CLEARING" and "cause_observed" not in dropped
    await stack.wait_for(kept, "call_quality")
    assert assert_complete_and_ordered(stack.recording, gone) == ANSWERED
    names = assert_complete_and_ordered(stack.recording, kept)
    assert names == ANSWERED[:4] + ["get_details"] + ANSWERED[4:]
    assert await stack.licenses_used() == 0


async def restart_freeswitch(stack: Stack, crash: bool) -> tuple[str, str]:
    """
    An answered and a ringing call, then FreeSWITCH stops (cleanly or by crashing) and a
    new one (a new simulator: no channels, a new Core-UUID) takes its address.
    """
    assert stack.proxy is not None and stack.simulator is not None
    answered = await stack.make_call("15550000001")
    ringing = await stack.make_call("15550000009", dial_timeout=60)
    await stack.wait_for(answered, "answered")
    await stack.wait_for(ringing, "ringing")
    assert await stack.licenses_used() == 2
    old = stack.simulator
    stack.simulator = await Simulator(stack.scenarios).start(up_for=0)
    down, up = stack.next_node_down(), stack.next_node_up()
    if crash:
        await old.crash()
    else:
        await old.stop()
    stack.proxy.upstream_port = stack.simulator.port
    await down
    await up
    return answered, ringing


@pytest_twisted.ensureDeferred
async def test_freeswitch_shuts_down_cleanly_and_comes_back(stack: Stack):
    """
    FreeSWITCH shuts down with calls up (it hangs them up with SYSTEM_SHUTDOWN) and comes
    back: each call ends with one hangup carrying that cause, licenses and the node's
    sessions are released, and new calls go through the new FreeSWITCH.
    """
    answered, ringing = await restart_freeswitch(stack, crash=False)
    for call in (answered, ringing):
        hangup = await stack.wait_for(call, "hangup")
        assert hangup["reason_code"] == "SYSTEM_SHUTDOWN", hangup
        assert "cause_observed" not in hangup
        await stack.wait_for(call, "call_quality")
        assert_complete_and_ordered(stack.recording, call)
    assert await stack.licenses_used() == 0
    assert stack.pool.node("fs1").status()["sessions"] == 0
    after = await stack.make_call("15550000001")
    await stack.wait_for(after, "answered")
    assert await stack.licenses_used() == 1


@pytest_twisted.ensureDeferred
async def test_freeswitch_crashes_and_restarts(stack: Stack):
    """
    FreeSWITCH dies without a word and a new one starts: once iradialer reconnects, each
    of the old calls ends with one hangup whose status says FreeSWITCH restarted
    (cause_observed false: nobody saw the cause), and licenses are released.
    """
    answered, ringing = await restart_freeswitch(stack, crash=True)
    for call in (answered, ringing):
        hangup = await stack.wait_for(call, "hangup")
        assert hangup["cause_observed"] is False
        assert "restarted" in hangup["status"], hangup
        await stack.wait_for(call, "call_quality")
        assert_complete_and_ordered(stack.recording, call)
    assert await stack.licenses_used() == 0
    assert stack.pool.node("fs1").status()["sessions"] == 0
    after = await stack.make_call("15550000001")
    await stack.wait_for(after, "answered")
