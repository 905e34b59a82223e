"""
Call control end to end: HTTP in, Event Socket commands out to the simulator, FreeSWITCH
events in, webhook POSTs out to a receiver of the test's.
"""

from __future__ import annotations

import pytest_twisted

from tests.e2e import Stack, stack_fixture

stack = stack_fixture()


@pytest_twisted.ensureDeferred
async def test_makecall_then_dropcall(stack: Stack):
    """A call rings, is answered, is dropped: originate, started, ringing, answered, hangup,
    call_quality, in that order, numbered 1..6, and its license comes back."""
    call_uuid = await stack.answered_call()
    code, body = await stack.get("status")
    assert body["tenants"][0]["licenses_used"] == 1
    code, body = await stack.post("dropcall", {"call_uuid": call_uuid})
    assert code == 200, body
    hangup = await stack.wait_for(call_uuid, "hangup")
    quality = await stack.wait_for(call_uuid, "call_quality")
    assert stack.names(call_uuid) == [
        "originate",
        "started",
        "ringing",
        "answered",
        "hangup",
        "call_quality",
    ]
    assert [e["sequence"] for e in stack.events(call_uuid)] == [1, 2, 3, 4, 5, 6]
    assert hangup["reason_code"] == hangup["event_data"] == "NORMAL_CLEARING"
    assert hangup["q850"] == 16 and hangup["duration_ms"] > 0 and hangup["billsec"] >= 0
    assert {e["tenant_id"] for e in stack.events(call_uuid)} == {"acme"}
    assert "mos" in quality and "quality" in quality
    code, body = await stack.get("status")
    assert body["tenants"][0]["licenses_used"] == 0
    code, body = await stack.post("dropcall", {"call_uuid": call_uuid})
    assert (code, body["status_code"]) == (400, 108)


@pytest_twisted.ensureDeferred
async def test_busy_callee(stack: Stack):
    """486 Busy Here: a hangup with USER_BUSY, Q.850 17 and the SIP code, no answer."""
    call_uuid = await stack.make_call("15550000008")
    hangup = await stack.wait_for(call_uuid, "hangup")
    assert (hangup["reason_code"], hangup["q850"], hangup["sip_code"]) == ("USER_BUSY", 17, 486)
    assert hangup["billsec"] == 0
    assert "answered" not in stack.names(call_uuid)


@pytest_twisted.ensureDeferred
async def test_no_answer_within_dial_timeout(stack: Stack):
    """The callee rings past dial_timeout: FreeSWITCH gives up with NO_ANSWER."""
    call_uuid = await stack.make_call("15550000009", dial_timeout=1)
    hangup = await stack.wait_for(call_uuid, "hangup", timeout=10)
    assert hangup["reason_code"] in ("NO_ANSWER", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT")
    assert "ringing" in stack.names(call_uuid)


@pytest_twisted.ensureDeferred
async def test_gateway_down_reported_from_the_originate_error(stack: Stack):
    """No channel at all: the hangup comes from the BACKGROUND_JOB's -ERR GATEWAY_DOWN."""
    call_uuid = await stack.make_call("15550000012")
    hangup = await stack.wait_for(call_uuid, "hangup")
    assert hangup["reason_code"] == "GATEWAY_DOWN"


@pytest_twisted.ensureDeferred
async def test_licenses_used_up(stack: Stack):
    """globex holds 2 licenses: the third concurrent call is 400 / 109 '[2/2]'."""
    for _ in range(2):
        await stack.make_call("15550000001", token="globex-token-1")
    code, body = await stack.post(
        "makecall",
        {
            "gateway": "sofia/gateway/sim",
            "to": "15550000001",
            "from": "15559990000",
            "event_url": stack.hook_url,
        },
        "globex-token-1",
    )
    assert (code, body["status_code"]) == (400, 109)
    assert body["message"] == "Tenant has used up all the available iraDial licenses [2/2]"


@pytest_twisted.ensureDeferred
async def test_makecall_refusals(stack: Stack):
    """Each refusal is the contract's error with its code; none takes a license."""
    base = {
        "gateway": "sofia/gateway/sim",
        "to": "15550000001",
        "from": "15559990000",
        "event_url": stack.hook_url,
    }
    cases = [
        ({**base, "gateway": "sofia/gateway/other"}, 400, 128),
        ({**base, "enable_cpa": "yes"}, 400, 100),
        ({**base, "enable_cpa": "yes", "config_name": "nosuch"}, 400, 100),
        (
            {**base, "join_conf": "yes", "add_to_conf": "6a0c3c3e-0000-4000-8000-000000000000"},
            404,
            107,
        ),
        ({**base, "to": "1555000000,1"}, 400, 135),
        ({**base, "event_url": "http://10.1.2.3/hook"}, 200, None),
        ({k: v for k, v in base.items() if k != "from"}, 400, 135),
    ]
    for body, http, code in cases:
        got, answer = await stack.post("makecall", body)
        assert got == http, (body, answer)
        if code is not None:
            assert answer["status_code"] == code, answer
    code, body = await stack.post("makecall", b"not json")
    assert (code, body["status_code"]) == (400, 134)


@pytest_twisted.ensureDeferred
async def test_private_event_url_refused_without_allowance(tmp_path):
    """A tenant without allow_private_webhooks may not send events to loopback."""
    from tests.e2e import TENANTS

    stack = await Stack(tmp_path).start(
        tenants=TENANTS.replace("allow_private_webhooks = true", "allow_private_webhooks = false")
    )
    try:
        code, body = await stack.post(
            "makecall",
            {
                "gateway": "sofia/gateway/sim",
                "to": "15550000001",
                "from": "15559990000",
                "event_url": stack.hook_url,
            },
        )
        assert (code, body["status_code"]) == (400, 128)
        assert "loopback" in body["message"] or "private" in body["message"]
    finally:
        await stack.stop()


@pytest_twisted.ensureDeferred
async def test_getdetails(stack: Stack):
    """Details in the response and as a get_details event to the request's event_url."""
    call_uuid = await stack.answered_call()
    code, body = await stack.post(
        "getdetails", {"call_uuid": call_uuid, "event_url": stack.hook_url + "?details"}
    )
    assert code == 200
    details = body["details"]
    assert details["state"] == "answered" and details["place"] == "parked"
    assert details["to"] == "15550000001" and details["tenant_id"] == "acme"
    assert [t["signal"] for t in details["timeline"]][:2] == ["ringing", "answered"]
    event = await stack.wait_for(call_uuid, "get_details")
    assert event["details"]["call_uuid"] == call_uuid


@pytest_twisted.ensureDeferred
async def test_calls_are_scoped_to_their_tenant(stack: Stack):
    """Another tenant's call is reported exactly like one that does not exist."""
    call_uuid = await stack.answered_call()
    for name in ("dropcall", "getdetails", "playtext", "mute", "senddtmf", "bridgecall"):
        body = {"call_uuid": call_uuid, "event_url": stack.hook_url, "text": "hi", "digits": "1"}
        code, answer = await stack.post(name, body, token="globex-token-1")
        assert (code, answer["status_code"]) == (404, 107), name
        code, unknown = await stack.post(
            name,
            {**body, "call_uuid": "00000000-0000-4000-8000-000000000000"},
            token="globex-token-1",
        )
        assert unknown == answer, name
    assert "hangup" not in stack.names(call_uuid)


@pytest_twisted.ensureDeferred
async def test_every_endpoint_needs_a_token(stack: Stack):
    from iradialer.api.schemas import ENDPOINTS

    for name, endpoint in ENDPOINTS.items():
        if endpoint.method != "POST":
            continue
        code, body = await stack.post(name, {}, token=None)
        assert (code, body["message"]) == (401, "missing authorization header"), name
        code, body = await stack.post(name, {}, token="wrong-token-x")
        assert (code, body["message"]) == (401, "invalid auth token"), name


@pytest_twisted.ensureDeferred
async def test_senddtmf(stack: Stack):
    call_uuid = await stack.answered_call()
    code, body = await stack.post("senddtmf", {"call_uuid": call_uuid, "digits": "12#"})
    assert code == 200, body
    assert stack.simulator.channel(call_uuid).dtmf_sent == ["12#"]
    unanswered = await stack.make_call("15550000009")
    code, body = await stack.post("senddtmf", {"call_uuid": unanswered, "digits": "1"})
    assert (code, body["status_code"]) == (400, 137)


@pytest_twisted.ensureDeferred
async def test_metrics_follow_calls(stack: Stack):
    """/metrics (admin token) shows the node connected, calls by state and command latency."""
    import treq
    from prometheus_client.parser import text_string_to_metric_families

    async def scrape() -> dict[tuple[str, tuple], float]:
        response = await treq.get(
            f"{stack.base}/metrics", headers={"Authorization": ["Bearer admin-token-1"]}
        )
        assert response.code == 200
        text = (await response.content()).decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    call_uuid = await stack.answered_call()
    samples = await scrape()
    assert samples[("iradialer_esl_connected", (("node", "sim"),))] == 1
    assert samples[("iradialer_calls_in_state", (("state", "parked"), ("tenant", "acme")))] == 1
    await stack.post("dropcall", {"call_uuid": call_uuid})
    await stack.wait_for(call_uuid, "hangup")
    samples = await scrape()
    kills = ("iradialer_esl_command_seconds_count", (("command", "uuid_kill"), ("node", "sim")))
    assert samples[kills] == 1
    assert ("iradialer_calls_in_state", (("state", "parked"), ("tenant", "acme"))) not in samples
