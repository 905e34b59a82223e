"""
Conferences end to end: bridgecall, multiconf, member operations, parkcall, join_conf.
"""

from __future__ import annotations

import pytest_twisted

from tests.e2e import Stack, stack_fixture

stack = stack_fixture()


@pytest_twisted.ensureDeferred
async def test_bridge_member_ops_and_park(stack: Stack):
    """Two calls in one conference; each member operation is its CONF-* event; parkcall
    takes one back to park (parked event); a second parkcall is 123."""
    first = await stack.answered_call("15550000006")
    second = await stack.answered_call("15550000006")
    code, body = await stack.post("bridgecall", {"call_uuid": first})
    assert code == 200, body
    conf_uuid = body["conf_uuid"]
    assert conf_uuid.startswith("CONF-")
    added = await stack.wait_for(first, "CONF-add-member")
    assert added["conf_uuid"] == conf_uuid and added["member_id"]
    code, body = await stack.post("bridgecall", {"call_uuid": second, "conf_uuid": conf_uuid})
    assert code == 200, body
    await stack.wait_for(second, "CONF-add-member")

    for action in ("mute", "unmute", "deaf", "undeaf", "hold", "unhold"):
        code, body = await stack.post(action, {"call_uuid": first})
        assert code == 200, (action, body)
        event = await stack.wait_for(first, f"CONF-{action}-member")
        assert event["conf_uuid"] == conf_uuid

    code, body = await stack.post("parkcall", {"call_uuid": second})
    assert code == 200, body
    await stack.wait_for(second, "CONF-del-number")
    await stack.wait_for(second, "parked")
    code, body = await stack.post("parkcall", {"call_uuid": second})
    assert (code, body["status_code"]) == (400, 123)
    code, body = await stack.post("hold", {"call_uuid": second})
    assert (code, body["status_code"]) == (400, 125)
    code, body = await stack.post(
        "getsimpledtmf", {"call_uuid": first, "event_url": stack.hook_url}
    )
    assert (code, body["status_code"]) == (400, 117)


@pytest_twisted.ensureDeferred
async def test_multiconf_and_conference_ownership(stack: Stack):
    calls = [await stack.answered_call("15550000006") for _ in range(2)]
    conf_uuid = "CONF-6f1d5b2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    code, body = await stack.post("multiconf", {"conf_uuid": conf_uuid, "call_uuid": calls})
    assert code == 200, body
    for call_uuid in calls:
        await stack.wait_for(call_uuid, "CONF-add-member")
    code, body = await stack.post("multiconf", {"conf_uuid": conf_uuid, "call_uuid": [None]})
    assert (code, body["status_code"]) == (400, 136)
    theirs = await stack.make_call("15550000006", token="globex-token-1")
    await stack.wait_for(theirs, "answered")
    code, body = await stack.post(
        "bridgecall", {"call_uuid": theirs, "conf_uuid": conf_uuid}, token="globex-token-1"
    )
    assert (code, body["status_code"]) == (404, 107)


@pytest_twisted.ensureDeferred
async def test_join_conf_and_add_to_conf(stack: Stack):
    """makecall with join_conf puts the answered call in its new conference (conf_uuid in
    the response) and brings the add_to_conf call along."""
    agent = await stack.answered_call("15550000006")
    code, body = await stack.post(
        "makecall",
        {
            "gateway": "sofia/gateway/sim",
            "to": "15550000006",
            "from": "15559990000",
            "event_url": stack.hook_url,
            "join_conf": "yes",
            "add_to_conf": agent,
        },
    )
    assert code == 200, body
    customer, conf_uuid = body["call_uuid"], body["conf_uuid"]
    joined = await stack.wait_for(customer, "CONF-add-member")
    assert joined["conf_uuid"] == conf_uuid
    followed = await stack.wait_for(agent, "CONF-add-member")
    assert followed["conf_uuid"] == conf_uuid


@pytest_twisted.ensureDeferred
async def test_unanswered_call_cannot_be_bridged(stack: Stack):
    ringing = await stack.make_call("15550000009")
    code, body = await stack.post("bridgecall", {"call_uuid": ringing})
    assert (code, body["status_code"]) == (400, 137)
