"""
Media on live calls end to end: CPA through unicast, plays, stopplay, DTMF collection.
"""

from __future__ import annotations

import wave
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import LogLevel, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Site

from iradialer.tts import wav_bytes
from tests.e2e import TIMEOUT, Stack, stack_fixture

stack = stack_fixture()

CPA = {
    "request_name": "set_cpa_params",
    "tenant_id": "acme",
    "api_version": "1.1",
    "config_name": "amd",
    "analysis": "amd",
    "total_timeout": "15000",
}


@pytest_twisted.ensureDeferred
async def test_setcpaparams_checks_tenant_and_meaning(stack: Stack):
    code, body = await stack.post("setcpaparams", {**CPA, "event_url": stack.hook_url})
    assert code == 200 and body["config_name"] == "amd"
    configured = await stack.wait_for(None, "cpa_configured")
    assert configured["call_uuid"] is None and configured["config_name"] == "amd"
    code, body = await stack.post("setcpaparams", {**CPA, "tenant_id": "globex"})
    assert code == 401
    code, body = await stack.post("setcpaparams", {**CPA, "break_events": "LV,ZZ"})
    assert (code, body["status_code"]) == (400, 129) and "break_events" in body["message"]
    code, body = await stack.post(
        "setcpaparams", {k: v for k, v in CPA.items() if k != "config_name"}
    )
    assert (code, body["message"]) == (400, "'config_name' is a required property")


@pytest_twisted.ensureDeferred
async def test_cpa_finds_a_live_person(stack: Stack):
    """The built-in human says "Hello." and waits: LV, and a break on LV ends the analysis."""
    await stack.post("setcpaparams", {**CPA, "break_events": "LV,AM"})
    call_uuid = await stack.make_call("15550000001", enable_cpa="yes", config_name="amd")
    setup = await stack.wait_for(call_uuid, "cpa_setup")
    assert setup["config_name"] == "amd"
    detection = await stack.wait_for(call_uuid, "cpa_detection")
    assert detection["event_data"] == "LV" and detection["status"] == "live voice detected"
    assert 300 < detection["ms_since_answer"] < 4000
    done = await stack.wait_for(call_uuid, "cpa_done")
    assert done["reason"] == "LV"
    names = stack.names(call_uuid)
    assert names.index("answered") < names.index("cpa_setup") < names.index("cpa_detection")


@pytest_twisted.ensureDeferred
async def test_freeswitch_stops_sending_audio_once_cpa_is_done(stack: Stack):
    """
    Once CPA is done and nothing else needs the call's audio, the call is re-parked, which
    ends FreeSWITCH's unicast stream, and stays up: otherwise every parked call would send
    50 datagrams a second to be dropped for as long as it lasts.
    """
    await stack.post("setcpaparams", {**CPA, "break_events": "LV"})
    media = stack.simulator.media
    stopped: Deferred[str] = Deferred()
    stop = media.stop

    def stop_and_tell(channel):
        was_streaming = media.streaming(channel.uuid) is not None
        stop(channel)
        if was_streaming and channel.alive and not stopped.called:
            stopped.callback(channel.uuid)

    media.stop = stop_and_tell
    call_uuid = await stack.make_call("15550000001", enable_cpa="yes", config_name="amd")
    await stack.wait_for(call_uuid, "cpa_done")
    assert await stopped.addTimeout(TIMEOUT, reactor) == call_uuid
    assert media.streaming(call_uuid) is None
    assert stack.simulator.channel(call_uuid).alive
    code, body = await stack.post(
        "getdetails", {"call_uuid": call_uuid, "event_url": stack.hook_url}
    )
    assert code == 200, body
    assert (body["details"]["state"], body["details"]["place"]) == ("answered", "parked")
    assert "hangup" not in stack.names(call_uuid)


@pytest_twisted.ensureDeferred
async def test_cpa_finds_a_machine_and_its_beep(stack: Stack):
    """The built-in voicemail: AM during the greeting, then BP at the beep."""
    await stack.post("setcpaparams", {**CPA, "break_events": "BP", "beep_is_am": "no"})
    call_uuid = await stack.make_call("15550000002", enable_cpa="yes", config_name="amd")
    am = await stack.wait_for(call_uuid, "cpa_detection", lambda e: e["event_data"] == "AM")
    bp = await stack.wait_for(call_uuid, "cpa_detection", lambda e: e["event_data"] == "BP")
    assert am["ms_since_answer"] < bp["ms_since_answer"]
    assert abs(bp["frequency"] - 1000) < 20
    done = await stack.wait_for(call_uuid, "cpa_done")
    assert done["reason"] == "BP"


@pytest_twisted.ensureDeferred
async def test_welcome_beep_is_written_back_to_the_callee(stack: Stack):
    await stack.post("setcpaparams", {**CPA, "welcome_beep_ms": 200, "total_timeout": 2000})
    call_uuid = await stack.make_call("15550000006", enable_cpa="yes", config_name="amd")
    await stack.wait_for(call_uuid, "cpa_done", timeout=10)
    audio = stack.simulator.media.written_back(call_uuid)
    assert len(audio) >= 200 * 16 * 0.9, len(audio)


@pytest_twisted.ensureDeferred
async def test_playfile_and_its_play_done(stack: Stack):
    """A file under files_dir plays (loop_count times) and play_done comes once."""
    sounds = stack.tmp_path / "sounds"
    with wave.open(str(sounds / "hello.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * 2400)
    call_uuid = await stack.answered_call("15550000006")
    code, body = await stack.post(
        "playfile", {"call_uuid": call_uuid, "filename": "hello.wav", "loop_count": 2}
    )
    assert code == 200 and body["play_id"]
    done = await stack.wait_for(call_uuid, "play_done")
    assert done["play_id"] == body["play_id"] and "status_code" not in done
    assert stack.names(call_uuid).count("play_done") == 1
    played = [p for p in stack.simulator.channel(call_uuid).played if "hello.wav" in p[2]]
    assert len(played) == 2


@pytest_twisted.ensureDeferred
async def test_playfile_refuses_names_outside_files_dir(stack: Stack):
    call_uuid = await stack.answered_call("15550000006")
    for name, code in [
        ("../etc/passwd.wav", 128),
        ("/etc/x.wav", 128),
        ("a b.wav", 128),
        ("missing.wav", 103),
        ("notes.txt", 128),
    ]:
        got, body = await stack.post("playfile", {"call_uuid": call_uuid, "filename": name})
        assert (got, body["status_code"]) == (400, code), (name, body)


@pytest_twisted.ensureDeferred
async def test_playtext_and_stopplay(stack: Stack):
    """Text is spoken by flite; stopplay breaks it off and play_done says so."""
    call_uuid = await stack.answered_call("15550000006")
    text = "This is a long message that takes several seconds to say, so we can stop it."
    code, body = await stack.post(
        "playtext", {"call_uuid": call_uuid, "text": text, "tts_voice": "Kal"}
    )
    assert code == 200, body
    code, stopped = await stack.post("stopplay", {"call_uuid": call_uuid})
    assert code == 200 and stopped["stopped"] == [body["play_id"]]
    done = await stack.wait_for(call_uuid, "play_done")
    assert done["status"] == "Play was stopped"
    code, body = await stack.post(
        "playtext", {"call_uuid": call_uuid, "text": "x", "tts_voice": "nobody"}
    )
    assert (code, body["status_code"]) == (400, 128)


class Recordings(Resource):
    """A web server of recordings: 404 for anything else."""

    isLeaf = True

    def __init__(self, files: dict[bytes, bytes]) -> None:
        super().__init__()
        self.files = files

    def render_GET(self, request):
        if request.path not in self.files:
            request.setResponseCode(404)
            return b"not found"
        request.setHeader(b"content-type", b"audio/wav")
        return self.files[request.path]


@pytest_twisted.ensureDeferred
async def test_playurl(stack: Stack):
    """A recording on a local web server is fetched through http_cache:// and played; a
    missing one ends its play with 103."""
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        Site(Recordings({b"/hello.wav": wav_bytes(b"\x00\x10" * 4000)}))
    )
    try:
        call_uuid = await stack.answered_call("15550000006")
        host = f"127.0.0.1:{port.getHost().port}"
        code, body = await stack.post(
            "playurl", {"call_uuid": call_uuid, "url": f"{host}/hello.wav"}
        )
        assert code == 200, body
        done = await stack.wait_for(call_uuid, "play_done")
        assert "status_code" not in done, done
        code, body = await stack.post(
            "playurl", {"call_uuid": call_uuid, "url": f"http://{host}/nope.wav"}
        )
        assert code == 200, body
        missing = await stack.wait_for(
            call_uuid, "play_done", lambda e: e["play_id"] == body["play_id"]
        )
        assert missing["status_code"] == 103
    finally:
        await port.stopListening()
    code, body = await stack.post("playurl", {"call_uuid": call_uuid, "url": "ftp://x/y.wav"})
    assert (code, body["status_code"]) == (400, 128)
    code, body = await stack.post(
        "playurl", {"call_uuid": call_uuid, "url": "http://x/${system rm}.wav"}
    )
    assert (code, body["status_code"]) == (400, 128)


@pytest_twisted.ensureDeferred
async def test_getvaliddtmf_collects_digits(stack: Stack):
    """The callee of ...0013 presses 1234# after each prompt: collected, with var_name."""
    call_uuid = await stack.answered_call("15550000013")
    code, body = await stack.post(
        "getvaliddtmf",
        {
            "call_uuid": call_uuid,
            "event_url": stack.hook_url,
            "var_name": "pin",
            "minimum_digits": 4,
            "maximum_digits": 4,
            "term_keys": "#",
            "reg_expr": "^[0-9]+$",
            "audio_type": "tts",
            "prompt_message": "Please enter your PIN: four digits, it's easy.",
        },
    )
    assert code == 200, body
    event = await stack.wait_for(call_uuid, "dtmf")
    assert (event["digits"], event["var_name"], event["status"]) == ("1234", "pin", "collected")


@pytest_twisted.ensureDeferred
async def test_getsimpledtmf_times_out(stack: Stack):
    call_uuid = await stack.answered_call("15550000006")
    code, body = await stack.post(
        "getsimpledtmf",
        {"call_uuid": call_uuid, "event_url": stack.hook_url, "digit_count": 2, "timeout": 1},
    )
    assert code == 200, body
    event = await stack.wait_for(call_uuid, "dtmf", timeout=10)
    assert (event["status"], event["status_code"], event["digits"]) == ("timeout", 200, "")


@pytest_twisted.ensureDeferred
async def test_cpa_resumes_after_a_playback(stack: Stack):
    """
    A playback stops FreeSWITCH's unicast stream for good; while CPA still needs the audio,
    the call is re-parked and a new stream started on a new port once the play is over.
    """
    await stack.post("setcpaparams", {**CPA, "total_timeout": 20000, "break_events": "BP"})
    call_uuid = await stack.make_call("15550000002", enable_cpa="yes", config_name="amd")
    await stack.wait_for(call_uuid, "cpa_setup")
    first_port = stack.dialer.audio.taps[call_uuid].port
    code, body = await stack.post("playtext", {"call_uuid": call_uuid, "text": "One moment."})
    assert code == 200, body
    await stack.wait_for(call_uuid, "play_done")
    beep = await stack.wait_for(call_uuid, "cpa_detection", lambda e: e["event_data"] == "BP")
    assert beep["ms_since_answer"] > 5000
    assert [p for p in stack.simulator.channel(call_uuid).played if p[1] == "speak"]
    # The beep (after the play) came through a stream other than the first.
    assert first_port not in {t.port for t in stack.dialer.audio.taps.values()}


@pytest_twisted.ensureDeferred
async def test_unicast_port_taken_is_retried_on_another(tmp_path):
    """
    FreeSWITCH answers +OK to a unicast whose port it cannot bind, then sends nothing: after
    two silent seconds the call is re-parked and streamed from the next port, and CPA works.
    """
    import socket

    from tests.e2e import Stack

    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    first = taken.getsockname()[1]
    stack = Stack(tmp_path)
    try:
        await stack.start(ports=first)
        await stack.post("setcpaparams", {**CPA, "break_events": "LV"})
        call_uuid = await stack.make_call("15550000001", enable_cpa="yes", config_name="amd")
        detection = await stack.wait_for(call_uuid, "cpa_detection", timeout=15)
        assert detection["event_data"] == "LV"
        assert "error" not in stack.names(call_uuid)
    finally:
        taken.close()
        await stack.stop()


@pytest_twisted.ensureDeferred
async def test_callee_gone_before_cpa_starts_is_no_error(stack: Stack):
    """
    The callee hangs up just as CPA starts: the unicast finds no channel (C{-ERR invalid
    session id}).  That is the call ending, not a CPA failure: no error event, nothing logged
    as critical, and the hangup reported as usual.
    """
    node = stack.dialer.pool.nodes[0]
    unicast = node.unicast

    async def hang_up_first(uuid: str, *args: Any, **kwargs: Any) -> str:
        await node.api(f"uuid_kill {uuid}")
        await stack.wait_for(uuid, "hangup")
        return await unicast(uuid, *args, **kwargs)

    node.unicast = lambda *a, **kw: Deferred.fromCoroutine(hang_up_first(*a, **kw))
    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        await stack.post("setcpaparams", {**CPA, "break_events": "LV"})
        call_uuid = await stack.make_call("15550000001", enable_cpa="yes", config_name="amd")
        await stack.wait_for(call_uuid, "call_quality")
    finally:
        globalLogPublisher.removeObserver(logged.append)
    names = stack.names(call_uuid)
    assert names[-2:] == ["hangup", "call_quality"] and "error" not in names, names
    assert any("not started: the call ended" in e.get("log_format", "") for e in logged)
    critical = [e for e in logged if e.get("log_level") == LogLevel.critical]
    assert critical == [], [e["log_failure"].getTraceback() for e in critical]
