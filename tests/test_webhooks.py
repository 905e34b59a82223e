"""
The webhook service, deterministically (ManualStore + treq.testing's in-memory agent +
task.Clock): the event's
shape, durability before the caller moves on, signing and rotation, backoff timing, order per
call with concurrent calls, dead letters and the fallback URL, bounded memory, restarts.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from iradialer.config import ConfigError, WebhookConfig, parse
from iradialer.domain.errors import DialerError
from iradialer.metrics import Metrics
from iradialer.store import ManualStore
from iradialer.webhooks.outbox import Draft, encode
from tests.conftest import REPO
from tests.webhook_fakes import ACME, GLOBEX, SETTINGS, START, Harness, hmac_hex


@pytest.fixture
def h() -> Harness:
    return Harness().start()


def sequences_by_call(events: list[dict]) -> dict[str, list[int]]:
    by_call: dict[str, list[int]] = defaultdict(list)
    for event in events:
        by_call[event["call_uuid"]].append(event["sequence"])
    return dict(by_call)


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


# -- the event and its commit -------------------------------------------------------------


def test_send_fires_with_the_event_once_committed(h):
    """
    send() fires only after the event is committed to the outbox, with the contract's
    fields: event, status, call_uuid, tenant_id, event_id (uuid4), sequence from 1,
    timestamp in ISO-8601 UTC with milliseconds, then the caller's fields.
    """
    h.receiver.answer = lambda r: None
    seen_in_store = []
    d = h.service.send(
        "acme", "call-1", "http://hooks.example.com/hook", "cpa_detection", "machine detected",
        event_data="AM", ms_since_answer=1830,
    )  # fmt: skip
    d.addCallback(
        lambda e: (
            seen_in_store.append(
                h.sql("SELECT body FROM webhook_outbox WHERE event_id = ?", e["event_id"])
            )
            or e
        )
    )
    assert not d.called
    h.pump()
    event = d.result
    assert list(event) == [
        "event", "status", "call_uuid", "tenant_id", "event_id", "sequence", "timestamp",
        "event_data", "ms_since_answer",
    ]  # fmt: skip
    assert event["event"] == "cpa_detection" and event["status"] == "machine detected"
    assert event["call_uuid"] == "call-1" and event["tenant_id"] == "acme"
    assert UUID(event["event_id"]).version == 4
    assert event["sequence"] == 1
    assert event["timestamp"] == "2027-01-15T08:00:00.000Z"
    assert event["event_data"] == "AM" and event["ms_since_answer"] == 1830
    assert len(seen_in_store[0]) == 1
    assert h.receiver.requests[0].event == event


def test_timestamp_has_milliseconds(h):
    """The timestamp is the clock's time, to the millisecond, in UTC with Z."""
    h.clock.advance(0.1234)
    event = h.emit("c")
    assert event["timestamp"] == "2027-01-15T08:00:00.123Z"


def test_reserved_fields_and_non_json_are_refused_without_using_a_sequence(h):
    """
    Fields may not override event_id, sequence or timestamp; a value JSON cannot carry fails
    the send and leaves no trace (the next event still gets sequence 1).
    """
    [clash] = h.send("c", sequence=9)
    assert isinstance(clash, Failure) and clash.check(ValueError)
    bad = h.send("c", mos=float("nan"))
    h.pump()
    assert isinstance(bad[0], Failure) and bad[0].check(ValueError)
    good = h.send("c")
    h.pump()
    assert good[0]["sequence"] == 1
    assert h.service.status()["outbox_depth"] == 0


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    before=st.dictionaries(st.text(), json_values, max_size=4),
    after=st.dictionaries(st.text(), json_values, max_size=4),
    sequence=st.integers(min_value=1, max_value=2**53),
)
def test_draft_body_is_the_event_as_json(before, after, sequence):
    """
    The body made from a draft and the sequence the store gives is byte for byte the JSON
    of the whole event, wherever "sequence" sits and whatever the other values are.
    """
    after.pop("sequence", None)
    before.pop("sequence", None)
    event = {**before, "sequence": 0, **{k: v for k, v in after.items() if k not in before}}
    event.setdefault("event_id", "x")
    event.setdefault("event", "y")
    assert Draft.of(event).body(sequence) == encode(dict(event, sequence=sequence))


# -- the request: headers and signature --------------------------------------------------


def test_post_is_json_with_event_id_and_signature(h):
    """
    Each POST is the event as JSON with Content-Type application/json, X-Iradialer-Event-Id,
    and X-Iradialer-Signature t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
    """
    h.clock.advance(41.7)
    event = h.emit("call-1")
    [received] = h.receiver.requests
    assert received.header("Content-Type") == "application/json"
    assert received.header("X-Iradialer-Event-Id") == event["event_id"]
    assert received.header("User-Agent").startswith("iradialer/")
    signature = received.header("X-Iradialer-Signature")
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
    assert signature == f"t={int(START + 41.7)},v1=" + hmac_hex(
        "acme-secret", str(int(START + 41.7)), received.body
    )


def test_rotation_signs_with_both_secrets(h):
    """While rotating (two secrets) the header carries one v1 per secret, new one first."""
    h.send("call-1", tenant="globex")
    h.pump()
    header = h.receiver.requests[0].header("X-Iradialer-Signature")
    t, first, second = header.split(",")
    assert t == f"t={int(START)}"
    body = h.receiver.requests[0].body
    assert first == "v1=" + hmac_hex("globex-new", str(int(START)), body)
    assert second == "v1=" + hmac_hex("globex-old", str(int(START)), body)


def test_retry_is_signed_at_its_own_time(h):
    """Each attempt is signed with its own t, so receivers' replay windows keep working."""
    answers = iter([503, 200])
    h.receiver.answer = lambda r: next(answers)
    h.send("c")
    h.pump()
    h.advance(2)
    first, second = (r.header("X-Iradialer-Signature") for r in h.receiver.requests)
    assert first.startswith(f"t={int(START)},") and second.startswith(f"t={int(START) + 2},")
    assert [r.header("X-Iradialer-Attempt") for r in h.receiver.requests] == ["1", "2"]


def readme_verifier():
    """The verify() function of the README's receiver example."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Verifying webhook signatures", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify"]


def test_readme_receiver_verifies_real_requests(h):
    """
    The README's stdlib receiver accepts what the service sends (with either secret while
    rotating), and refuses a changed body, a wrong secret and a stale timestamp.
    """
    verify = readme_verifier()
    h.send("call-1", tenant="globex")
    h.pump()
    request = h.receiver.requests[0]
    header = request.header("X-Iradialer-Signature")
    assert verify(header, request.body, [b"globex-new"], now=START + 10)
    assert verify(header, request.body, [b"globex-old"], now=START + 10)
    assert not verify(header, request.body.replace(b"1", b"2"), [b"globex-new"], now=START)
    assert not verify(header, request.body, [b"acme-secret"], now=START)
    assert not verify(header, request.body, [b"globex-new"], now=START + 301)
    assert not verify("garbage", request.body, [b"globex-new"], now=START)


# -- retries and their timing -------------------------------------------------------------


def test_backoff_schedule_then_dead_letter(h, logged):
    """
    A receiver that always fails gets 5 attempts at 0, 2, 10, 42 and 170 s (backoff 2 s
    times 4 each time, no jitter); then the event is a dead letter, counted and logged
    with status_code 132, and reported as web_error to the tenant's fallback URL.
    """
    h.receiver.answer = lambda r: 503 if r.path == "/hook" else 200
    event = h.emit("call-1")
    for step in (2, 8, 32, 128):
        h.advance(step - 0.001)
        assert len([r for r in h.receiver.requests if r.path == "/hook"]) < 5
        h.advance(0.001)
    attempts = [r.at - START for r in h.receiver.requests if r.path == "/hook"]
    assert attempts == pytest.approx([0, 2, 10, 42, 170])
    assert h.sql("SELECT event_id, attempts, last_error FROM webhook_dead_letters") == [
        (event["event_id"], 5, "HTTP 503: receiver says no")
    ]
    assert h.sql("SELECT COUNT(*) FROM webhook_outbox") == [(0,)]
    status = h.service.status()
    assert status["dead_letters"] == 1 and status["dead_lettered"] == 1
    assert status["attempts"] == 6 and status["failures"] == 5 and status["delivered"] == 1
    [dead_log] = [e for e in logged if e.get("status_code") == 132]
    assert dead_log["event_id"] == event["event_id"] and dead_log["attempts"] == 5
    [web_error] = h.receiver.accepted("/fallback")
    assert web_error["event"] == "web_error" and web_error["status_code"] == 132
    assert web_error["failed_event_id"] == event["event_id"]
    assert web_error["failed_event"] == "answered"
    assert web_error["failed_url"] == "http://hooks.example.com/hook"
    assert web_error["call_uuid"] == "call-1" and web_error["sequence"] == 1
    assert web_error["error"] == "HTTP 503: receiver says no"


def test_jitter_spreads_retries_within_bounds():
    """With jitter 0.2 each delay is within +/-20% of the schedule, and they differ."""
    settings = replace(SETTINGS, jitter=0.2)
    service = Harness(settings).service
    delays = [service.backoff(n) for n in (1, 1, 1, 2, 3, 4)]
    nominal = [2, 2, 2, 8, 32, 128]
    assert all(0.8 * n <= d <= 1.2 * n for d, n in zip(delays, nominal))
    assert len(set(delays[:3])) == 3


def test_backoff_is_capped():
    """No wait exceeds backoff_max, however many attempts are configured."""
    service = Harness(replace(SETTINGS, attempts=60, backoff_max=60.0)).service
    assert [service.backoff(n) for n in (1, 2, 3, 4, 59)] == [2, 8, 32, 60, 60]


def test_timeout_counts_as_a_failed_attempt(h):
    """
    A receiver that does not answer within the timeout (on the injected clock) fails the
    attempt; the retry follows after the backoff.
    """
    h.receiver.answer = lambda r: None if len(h.receiver.requests) == 1 else 200
    h.send("c")
    h.pump()
    h.advance(9.9)
    assert h.service.status()["in_flight"] == 1
    h.advance(0.1)
    assert h.service.status()["failures"] == 1
    assert h.sql("SELECT attempts, last_error FROM webhook_outbox") == [
        (1, "no response within 10 s")
    ]
    h.advance(2)
    assert [r.at - START for r in h.receiver.requests] == [0, 12]
    assert h.service.status()["outbox_depth"] == 0


def test_redirect_is_not_followed(h):
    """A 3xx is a failure: following it could take the event somewhere unchecked."""
    h.receiver.answer = lambda r: 302 if r.path == "/hook" else 200
    h.send("c")
    h.pump()
    assert [r.path for r in h.receiver.requests] == ["/hook"]
    assert h.sql("SELECT last_error FROM webhook_outbox") == [("HTTP 302: receiver says no",)]


# -- order ---------------------------------------------------------------------------------


def test_next_event_of_a_call_waits_other_calls_do_not(h):
    """
    While call A's first event waits for its receiver, A's later events are not posted but
    call B's are; once A1 is answered, A2 and A3 follow in order.
    """
    h.receiver.answer = lambda r: None if r.event["call_uuid"] == "A" else 200
    for n in range(3):
        h.send("A", n=n)
        h.send("B", n=n)
    h.pump()
    assert [(r.event["call_uuid"], r.event["sequence"]) for r in h.receiver.requests] == [
        ("A", 1), ("B", 1), ("B", 2), ("B", 3),
    ]  # fmt: skip
    h.receiver.answer = lambda r: 200
    h.receiver.release(200)
    h.pump()
    assert sequences_by_call(h.receiver.accepted()) == {"A": [1, 2, 3], "B": [1, 2, 3]}
    assert [e["n"] for e in h.receiver.accepted() if e["call_uuid"] == "A"] == [0, 1, 2]


def test_order_holds_across_retries_with_many_calls(h):
    """
    Forty calls, five events each, sent interleaved to a receiver failing every third
    request: each call's events are accepted exactly in sequence order, each once.
    """
    count = iter(range(10**6))
    h.receiver.answer = lambda r: 500 if next(count) % 3 == 0 else 200
    for n in range(5):
        for call in range(40):
            h.send(f"call-{call}", n=n)
    h.pump()
    for _ in range(100):
        h.advance(2)
    accepted = h.receiver.accepted()
    assert len(accepted) == 200 and h.service.status()["dead_letters"] == 0
    assert sequences_by_call(accepted) == {f"call-{c}": [1, 2, 3, 4, 5] for c in range(40)}
    for call, posted in sequences_by_call([r.event for r in h.receiver.requests]).items():
        assert posted == sorted(posted), call  # never a later event before an earlier one


def test_events_without_a_call_are_ordered_per_tenant(h):
    """
    Events without a call (e.g. cpa_configured) are ordered and numbered per tenant,
    apart from the calls' own sequences.
    """
    h.send(None, "cpa_configured")
    h.send("call-1")
    h.send(None, "cpa_configured")
    h.send(None, "asr_configured", tenant="globex")
    h.pump()
    got = [(e["tenant_id"], e["call_uuid"], e["sequence"]) for e in h.receiver.accepted()]
    assert sorted(got, key=str) == sorted(
        [("acme", None, 1), ("acme", "call-1", 1), ("acme", None, 2), ("globex", None, 1)],
        key=str,
    )


def test_a_dead_letter_lets_the_call_move_on(h):
    """
    An event given up no longer holds its call: the next one is delivered (the receiver
    sees the gap in sequence).
    """
    h.receiver.answer = lambda r: 503 if r.event.get("n") == 0 else 200
    h.send("c", n=0)
    h.send("c", n=1)
    h.pump()
    for _ in range(5):
        h.advance(130)
    assert [e["sequence"] for e in h.receiver.accepted()] == [2]
    assert h.service.status()["dead_letters"] == 1


# -- dead letters --------------------------------------------------------------------------


def test_dead_letter_without_fallback_url_is_only_counted(h):
    """A tenant without fallback_url gets no web_error; the dead letter is kept and counted."""
    h.receiver.answer = lambda r: 400
    h.send("c", tenant="globex")
    h.pump()
    for _ in range(5):
        h.advance(130)
    assert [r.path for r in h.receiver.requests] == ["/hook"] * 5
    assert h.service.status()["dead_letters"] == 1
    assert h.sql("SELECT tenant_id, attempts FROM webhook_dead_letters") == [("globex", 5)]


def test_failing_fallback_does_not_report_itself(h):
    """A web_error that cannot be delivered is a dead letter too, not another web_error."""
    h.receiver.answer = lambda r: 503
    h.send("c")
    h.pump()
    for _ in range(12):
        h.advance(130)
    assert sorted(r[0] for r in h.sql("SELECT event FROM webhook_dead_letters")) == [
        "answered",
        "web_error",
    ]
    assert h.sql("SELECT COUNT(*) FROM webhook_outbox") == [(0,)]


def test_redeliver_dead_letters(h):
    """
    Dead letters can be put back (e.g. from the manhole once the receiver is fixed): they
    are delivered with their original event id and sequence.
    """
    h.receiver.answer = lambda r: 503 if r.path == "/hook" else 200
    event = h.emit("c")
    for _ in range(5):
        h.advance(130)
    h.receiver.answer = lambda r: 200
    result = []
    h.service.redeliver_dead_letters("acme").addCallback(result.append)
    h.pump()
    assert result == [1]
    [again] = h.receiver.accepted()
    assert again == event
    assert h.service.status()["dead_letters"] == 0


def test_unusable_url_fails_attempts_not_the_send(h):
    """
    An event whose URL cannot be posted (a caller skipped check_event_url) is still
    committed and send() fires with it; each attempt fails saying why.
    """
    event = h.emit("c", tenant="globex", url="ftp://hooks.example.com/hook")
    assert event["sequence"] == 1
    assert h.receiver.requests == []
    assert h.sql("SELECT attempts, last_error FROM webhook_outbox") == [
        (1, "event_url must be an http or https URL, not 'ftp'")
    ]


def test_unknown_tenant_events_end_as_dead_letters(h):
    """
    Events of a tenant removed from the configuration cannot be signed: each attempt fails
    saying so, and the event ends as a dead letter rather than being sent unsigned.
    """
    h.send("c", tenant="initech")
    h.pump()
    for _ in range(5):
        h.advance(130)
    assert h.receiver.requests == []
    assert h.sql("SELECT last_error FROM webhook_dead_letters") == [
        ("tenant 'initech' is not configured",)
    ]


# -- destinations --------------------------------------------------------------------------


def check(h: Harness, url: str, tenant=ACME) -> str | None:
    """None when the URL is accepted, else the DialerError's message (status 128)."""
    result: list = []
    h.service.check_event_url(url, tenant).addBoth(result.append)
    if result[0] is None:
        return None
    assert result[0].check(DialerError) and result[0].value.status == 128
    return result[0].value.message


@pytest.mark.parametrize(
    "url, refusal",
    [
        ("https://hooks.example.com/hook", None),
        ("http://hooks.example.com:8443/a?b=c", None),
        ("http://dual.example.com/", None),
        ("http://93.184.216.34/", None),
        ("ftp://hooks.example.com/", "must be an http or https URL"),
        ("javascript:alert(1)", "must be an http or https URL"),
        ("hooks.example.com/hook", "must be an http or https URL"),
        ("http:///nohost", "has no host"),
        ("http://user:pw@hooks.example.com/", "must not carry credentials"),
        ("http://hooks.example.com:99999/", "is not a valid URL"),
        ("http://hooks.example.com/a b", "spaces or control characters"),
        ("http://hooks.example.com/caf\u00e9", "must be ASCII"),
        ("http://127.0.0.1:8080/hook", "is a loopback address"),
        ("http://localhost/hook", "is a loopback address"),
        ("http://[::1]/hook", "is a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "is a link-local address"),
        ("http://10.0.0.8/", "is a private address"),
        ("http://192.168.1.20/", "is a private address"),
        ("http://172.16.5.4/", "is a private address"),
        ("http://[fd00::1]/", "is a private address"),
        ("http://100.64.0.1/", "address"),
        ("http://0.0.0.0/", "address"),
        ("http://internal.example.com/hook", "internal.example.com (10.1.2.3) is a private"),
        ("http://sneaky.example.com/hook", "sneaky.example.com (127.0.0.1) is a loopback"),
        ("http://nowhere.example.com/hook", "does not resolve"),
    ],
)
def test_event_url_validation(h, url, refusal):
    """
    event_url must be http(s), well formed, without credentials, and (for a tenant without
    allow_private_webhooks) resolve only to public addresses: every address of the name is
    checked.
    """
    h.resolver.table["localhost"] = ["127.0.0.1", "::1"]
    message = check(h, url)
    if refusal is None:
        assert message is None
    else:
        assert message is not None and refusal in message


def test_private_destinations_allowed_when_configured(h):
    """A tenant with allow_private_webhooks may use loopback and private receivers."""
    assert check(h, "http://127.0.0.1:9000/hook", GLOBEX) is None
    assert check(h, "http://internal.example.com/hook", GLOBEX) is None
    assert "http or https" in check(h, "file:///etc/passwd", GLOBEX)


def test_destination_is_checked_again_at_delivery(h):
    """
    A name that resolved to a public address when checked but to a private one when the
    event goes out is not contacted: the attempt fails and the event ends as a dead letter.
    Verdicts are cached for a minute, not forever.
    """
    assert check(h, "http://flip.example.com/hook") is not None  # unknown name: refused
    h.resolver.table["flip.example.com"] = ["93.184.216.34"]
    h.advance(61)
    assert check(h, "http://flip.example.com/hook") is None
    h.resolver.table["flip.example.com"] = ["10.0.0.1"]
    h.advance(61)
    h.send("c", url="http://flip.example.com/hook")
    h.pump()
    assert h.receiver.requests == []
    assert "10.0.0.1) is a private address" in h.sql("SELECT last_error FROM webhook_outbox")[0][0]
    lookups = len(h.resolver.lookups)
    h.advance(2)
    assert len(h.resolver.lookups) == lookups  # still cached


# -- memory, fairness, restarts -----------------------------------------------------------


def test_dead_receiver_grows_the_outbox_not_memory(h):
    """
    With a receiver that never answers, 2,000 events of 500 calls are all on disk while
    at most `concurrency` events are held in memory; when it comes back every event arrives,
    in order per call.
    """
    h.receiver.answer = lambda r: None
    for n in range(4):
        for call in range(500):
            h.send(f"call-{call}", n=n)
    h.pump()
    status = h.service.status()
    assert status["outbox_depth"] == 2000
    assert h.sql("SELECT COUNT(*) FROM webhook_outbox") == [(2000,)]
    assert status["streams_delivering"] <= 5 and status["in_flight"] <= 5  # tenant limit
    assert len(h.receiver.hanging) == 5
    for _ in range(3):  # timeouts and retries keep memory bounded too
        h.advance(10)
        h.advance(300)
        assert len(h.service._delivering) <= 5
    h.receiver.answer = lambda r: 200
    h.receiver.release(200)
    h.pump()
    for _ in range(40):
        h.advance(300)
    accepted = h.receiver.accepted()
    assert len({e["event_id"] for e in accepted}) == 2000
    assert sequences_by_call(accepted) == {f"call-{c}": [1, 2, 3, 4] for c in range(500)}
    assert h.service.status()["outbox_depth"] == 0


def test_a_dead_tenant_does_not_starve_another(h):
    """
    One tenant's receiver hanging uses at most tenant_concurrency slots: another tenant's
    events keep flowing.
    """
    h.receiver.answer = lambda r: None if r.event["tenant_id"] == "acme" else 200
    for call in range(50):
        h.send(f"acme-{call}")
    for call in range(50):
        h.send(f"globex-{call}", tenant="globex")
    h.pump()
    assert len(h.receiver.hanging) == 5
    assert len([e for e in h.receiver.accepted() if e["tenant_id"] == "globex"]) == 50


def test_restart_resumes_the_outbox_in_order(tmp_path):
    """
    Events queued but not delivered when the service stops are delivered after a restart
    (a new service on the same store file), in order, and sequences continue where they
    were.
    """
    path = tmp_path / "store.sqlite"
    first = Harness(store=ManualStore(path)).start()
    first.receiver.answer = lambda r: 200 if r.event["sequence"] == 1 else 503
    for n in range(4):
        first.send("c", n=n)
    first.pump()
    first.service.stopService()
    first.pump()
    assert first.sql("SELECT COUNT(*) FROM webhook_outbox") == [(3,)]

    second = Harness(store=ManualStore(path), clock=first.clock).start()
    assert second.service.status()["outbox_depth"] == 3
    second.advance(2)
    second.send("c", n=4)
    second.pump()
    assert [e["sequence"] for e in second.receiver.accepted()] == [2, 3, 4, 5]
    assert [e["n"] for e in second.receiver.accepted()] == [1, 2, 3, 4]


def test_claims_left_by_a_crash_are_released(tmp_path):
    """
    A server killed mid-delivery leaves its streams marked claimed; the next start releases
    them and delivers (the event in flight may arrive twice: at least once).
    """
    path = tmp_path / "store.sqlite"
    crashed = Harness(store=ManualStore(path)).start()
    crashed.receiver.answer = lambda r: None
    crashed.send("c", n=0)
    crashed.send("c", n=1)
    crashed.pump()
    assert crashed.sql("SELECT claimed FROM webhook_streams") == [(1,)]
    # no stopService: the process is gone

    second = Harness(store=ManualStore(path), clock=crashed.clock).start()
    assert [e["n"] for e in second.receiver.accepted()] == [0, 1]
    assert second.sql("SELECT claimed, next_attempt_at FROM webhook_streams") == [(0, None)]


def test_stop_abandons_attempts_in_flight(h):
    """
    Stopping cancels attempts in flight without counting them as failures; the events stay
    in the outbox for the next start.
    """
    h.receiver.answer = lambda r: None
    h.send("c")
    h.pump()
    h.service.stopService()
    h.pump()
    assert h.service.status()["failures"] == 0
    assert h.sql("SELECT attempts FROM webhook_outbox") == [(0,)]


def test_events_sent_before_start_wait_for_it():
    """Events sent before the service starts are committed and delivered once it starts."""
    h = Harness()
    h.send("c")
    h.pump()
    assert h.receiver.requests == []
    h.service.startService()
    h.pump()
    assert len(h.receiver.accepted()) == 1


def test_housekeeping_forgets_old_call_sequences_and_dead_letters(h):
    """
    Sequence counters of calls idle longer than sequence_retention_days, and dead letters
    older than dead_letter_retention_days, are removed hourly; tenant counters are kept.
    """
    h.receiver.answer = lambda r: 503 if r.event["call_uuid"] == "dead" else 200
    h.send("old")
    h.send(None)
    h.send("dead", tenant="globex")
    h.pump()
    for _ in range(5):
        h.advance(130)
    h.advance(7 * 86400 + 3600)
    assert h.sql("SELECT stream FROM webhook_streams ORDER BY stream") == [("tenant:acme",)]
    assert h.service.status()["dead_letters"] == 1
    h.advance(23 * 86400)
    assert h.sql("SELECT COUNT(*) FROM webhook_dead_letters") == [(0,)]
    assert h.service.status()["dead_letters"] == 0


def test_metrics_count_attempts_failures_dead_letters_and_lag():
    """
    The server's Prometheus metrics count attempts and failures (by reason) per tenant,
    dead letters, and the lag of each delivery.
    """
    metrics = Metrics()
    h = Harness(metrics=metrics).start()
    h.receiver.answer = lambda r: 503 if r.path == "/hook" else 200
    h.send("c")
    h.send("d", url="http://internal.example.com/hook")
    h.pump()
    for _ in range(5):
        h.advance(130)
    value = metrics.registry.get_sample_value
    assert value("iradialer_webhook_attempts_total", {"tenant": "acme"}) == 12
    assert value("iradialer_webhook_failures_total", {"tenant": "acme", "reason": "http_5xx"}) == 5
    assert value("iradialer_webhook_failures_total", {"tenant": "acme", "reason": "refused"}) == 5
    assert value("iradialer_webhook_dead_letters_total", {"tenant": "acme"}) == 2
    assert value("iradialer_webhook_lag_seconds_count") == 2  # the two web_error events


def test_status_reports_lag(h):
    """status() gives the outbox depth and the send-to-2xx lag of recent deliveries."""
    h.receiver.answer = lambda r: None
    h.send("c")
    h.pump()
    h.clock.advance(0.25)
    h.receiver.release(200)
    h.pump()
    status = h.service.status()
    assert status["lag_ms"] == {"p50": 250.0, "p99": 250.0, "max": 250.0}
    assert status["outbox_depth"] == 0 and status["delivered"] == 1


# -- configuration -------------------------------------------------------------------------


BASE = '[api]\nadmin_token = "admin-token-1"\n[freeswitch]\nsimulate = true\n'


def test_webhooks_section_defaults_and_keys():
    """[webhooks] is optional; every key is read and checked."""
    from pathlib import Path

    assert parse(BASE, "t.toml", Path("/")).webhooks == WebhookConfig()
    config = parse(
        BASE
        + "[webhooks]\ntimeout = 3\nattempts = 8\nbackoff_initial = 0.5\nbackoff_multiplier = 2\n"
        "backoff_max = 30\njitter = 0.1\nconcurrency = 64\ntenant_concurrency = 8\n"
        "sequence_retention_days = 2\ndead_letter_retention_days = 0\n",
        "t.toml",
        Path("/"),
    )
    assert config.webhooks == WebhookConfig(3.0, 8, 0.5, 2.0, 30.0, 0.1, 64, 8, 2.0, 0.0)
    for bad, key in [
        ("jitter = 1.5", "webhooks.jitter"),
        ("attempts = 0", "webhooks.attempts"),
        ("timeout = 'x'", "webhooks.timeout"),
        ("retries = 3", "webhooks.retries"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse(BASE + "[webhooks]\n" + bad + "\n", "t.toml", Path("/"))
        assert caught.value.key == key


def test_example_file_documents_every_webhooks_key():
    """etc/iradialer.example.toml lists each [webhooks] key with its default value."""
    from iradialer.config import load

    example = REPO / "etc" / "iradialer.example.toml"
    assert load(example).webhooks == WebhookConfig()
    section = example.read_text().split("[webhooks]", 1)[1].split("\n[", 1)[0]
    for key in WebhookConfig.__dataclass_fields__:
        assert re.search(rf"^{key} = ", section, re.M), key
