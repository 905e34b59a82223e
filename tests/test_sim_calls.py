"""
Calls through the simulator: outcomes, applications, digits and the API commands, with the
events, variables and reply texts FreeSWITCH gives (see tests/fixtures/esl).
"""

from __future__ import annotations

import json

import pytest

from iradialer.sim.testing import Harness

SCENARIOS = """
[[scenario]]
match = "0001$"
ring_ms = 1000

[[scenario]]
match = "0002$"
outcome = "busy"
ring_ms = 300

[[scenario]]
match = "0003$"
outcome = "no_answer"

[[scenario]]
match = "0004$"
outcome = "unallocated"
ring_ms = 100

[[scenario]]
match = "0005$"
outcome = "reject"
ring_ms = 2000

[[scenario]]
match = "0006$"
outcome = "gateway_down"

[[scenario]]
match = "0007$"
ring_ms = 100
hangup_after_ms = 3000
dtmf = [ { at_ms = 1000, digits = "12" } ]

[[scenario]]
match = "0008$"
ring_ms = 0
dtmf = [ { after_prompt_ms = 700, digits = "123#" } ]

[[scenario]]
match = "0009$"
ring_ms = 0
dtmf = [ { after_prompt_ms = 500, digits = "123#" } ]
"""


def dial(number: str, uuid: str = "u1", extra: str = "") -> str:
    return (
        f"originate {{origination_uuid={uuid},ignore_early_media=true{extra}}}"
        f"sofia/gateway/sim/{number} &park()"
    )


def harness() -> tuple[Harness, object]:
    h = Harness(SCENARIOS)
    c = h.connect(authenticate=True, events="json ALL")
    return h, c


def events(c, *names):
    return [f for f in c.frames() if f.event and (not names or f.name in names)]


def answered(h, c, number="5550001", uuid="u1"):
    c.command("api " + dial(number, uuid))
    h.run_for(1.0)
    c.frames()
    return h.sim.channel(uuid)


def test_answered_call_reply_and_events():
    """originate answers after ring_ms: +OK <uuid>, then PROGRESS, ANSWER, park."""
    h, c = harness()
    c.command("api " + dial("5550001"))
    h.run_for(0.98)
    assert [f for f in c.frames() if f.content_type == "api/response"] == []
    h.run_for(0.04)
    frames = c.frames()
    assert frames[0].text == "+OK u1\n"
    names = [f.name for f in frames if f.event and f.name not in ("API", "CODEC")]
    assert names == [
        "CHANNEL_OUTGOING",
        "CHANNEL_STATE",
        "CHANNEL_CREATE",
        "CHANNEL_ORIGINATE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_PROGRESS",
        "CHANNEL_CALLSTATE",
        "CHANNEL_ANSWER",
        "CHANNEL_CALLSTATE",
        "CALL_UPDATE",
        "CHANNEL_STATE",
        "CHANNEL_EXECUTE",
        "CHANNEL_PARK",
    ]
    answer = next(f.event for f in frames if f.name == "CHANNEL_ANSWER")
    assert answer["Answer-State"] == "answered"
    assert answer["variable_ignore_early_media"] == "true"
    assert answer["Caller-Destination-Number"] == "5550001"


@pytest.mark.parametrize(
    "number, cause, q850, sip, disposition",
    [
        ("5550002", "USER_BUSY", "17", "486", "recv_refuse"),
        ("5550004", "UNALLOCATED_NUMBER", "1", "404", "recv_refuse"),
        ("5550005", "CALL_REJECTED", "21", "603", "recv_refuse"),
    ],
)
def test_refused_calls_report_cause_and_sip_status(number, cause, q850, sip, disposition):
    """busy/unallocated/reject: -ERR <cause>, and the SIP variables of the sip_busy486 capture."""
    h, c = harness()
    c.command("api " + dial(number))
    h.run_for(2.1)
    frames = c.frames()
    assert frames[0].text == f"-ERR {cause}\n"
    complete = next(f.event for f in frames if f.name == "CHANNEL_HANGUP_COMPLETE")
    assert complete["Hangup-Cause"] == cause
    assert complete["variable_hangup_cause_q850"] == q850
    assert complete["variable_sip_term_status"] == sip
    assert complete["variable_proto_specific_hangup_cause"] == f"sip:{sip}"
    assert complete["variable_sip_invite_failure_status"] == sip
    assert complete["variable_sip_hangup_disposition"] == disposition
    assert "variable_rtp_audio_in_mos" not in complete
    assert h.sim.channel("u1") is None


def test_busy_does_not_ring_but_reject_does():
    """Only outcomes where the phone rings send CHANNEL_PROGRESS (180) first."""
    h, c = harness()
    c.command("bgapi " + dial("5550002", "u1"))
    c.command("bgapi " + dial("5550005", "u2"))
    h.run_for(2.1)
    progress = [f.event["Unique-ID"] for f in events(c, "CHANNEL_PROGRESS")]
    assert progress == ["u2"]


def test_no_answer_ends_at_originate_timeout():
    """A callee that never answers: -ERR NO_ANSWER when originate_timeout runs out (487)."""
    h, c = harness()
    c.command("api " + dial("5550003", extra=",originate_timeout=5"))
    h.run_for(4.98)
    assert [f for f in c.frames() if f.content_type == "api/response"] == []
    h.run_for(0.04)
    frames = c.frames()
    assert frames[0].text == "-ERR NO_ANSWER\n"
    complete = next(f.event for f in frames if f.name == "CHANNEL_HANGUP_COMPLETE")
    assert complete["variable_sip_invite_failure_status"] == "487"
    assert complete["variable_sip_hangup_disposition"] == "send_cancel"
    assert complete["variable_hangup_cause_q850"] == "19"
    assert "variable_sip_term_status" not in complete


def test_timeout_shorter_than_ringing_gives_no_answer():
    """originate_timeout shorter than ring_ms: NO_ANSWER before the callee would answer."""
    h, c = harness()
    c.command("api " + dial("5550005", extra=",originate_timeout=1"))
    h.run_for(1.1)
    assert c.frames()[0].text == "-ERR NO_ANSWER\n"


def test_timeout_has_whole_second_granularity():
    """switch_ivr_originate compares epoch seconds: a 5 s limit started at x.6 s ends at x+5.0."""
    h, c = harness()
    h.reactor.advance(0.6)
    c.command("api " + dial("5550003", extra=",originate_timeout=5"))
    h.run_for(4.36)
    assert [f for f in c.frames() if f.content_type == "api/response"] == []
    h.run_for(0.06)
    assert c.frames()[0].text == "-ERR NO_ANSWER\n"


def test_gateway_down_fails_at_once_without_a_channel():
    """gateway_down: -ERR GATEWAY_DOWN immediately and no channel events."""
    h, c = harness()
    c.command("api " + dial("5550006"))
    frames = c.frames()
    assert frames[0].text == "-ERR GATEWAY_DOWN\n"
    assert [f.name for f in frames[1:]] == ["API"]


def test_bgapi_failure_background_job_after_hangup_complete():
    """
    With bgapi a failed originate's BACKGROUND_JOB comes after HANGUP_COMPLETE, before
    DESTROY.
    """
    h, c = harness()
    c.send("bgapi " + dial("5550002") + "\nJob-UUID: job-1\n\n")
    h.run_for(0.5)
    names = [f.name for f in events(c) if f.name not in ("API", "CHANNEL_STATE")]
    assert names[-4:] == [
        "CHANNEL_CALLSTATE",
        "CHANNEL_HANGUP_COMPLETE",
        "BACKGROUND_JOB",
        "CHANNEL_DESTROY",
    ]


def test_uuid_kill_and_quality_variables():
    """
    uuid_kill: +OK, NORMAL_CLEARING, billsec and the quality variables in HANGUP_COMPLETE
    only.
    """
    h, c = harness()
    answered(h, c)
    h.run_for(3.0)
    c.command("api uuid_kill u1")
    h.run_for(0.02)
    frames = c.frames()
    assert frames[0].text == "+OK\n"
    hangup = next(f.event for f in frames if f.name == "CHANNEL_HANGUP")
    complete = next(f.event for f in frames if f.name == "CHANNEL_HANGUP_COMPLETE")
    assert "variable_rtp_audio_in_mos" not in hangup
    assert complete["variable_rtp_audio_in_mos"] == "4.50"
    assert complete["variable_rtp_audio_in_quality_percentage"] == "100.00"
    assert complete["variable_billsec"] == "3"
    assert complete["variable_hangup_cause_q850"] == "16"
    assert complete["variable_sip_hangup_disposition"] == "send_bye"
    assert "variable_sip_term_status" not in complete
    c.command("api uuid_exists u1")
    assert c.frames()[0].text == "false"


def test_callee_hangs_up_and_presses_digits():
    """A scenario's dtmf at_ms arrive as DTMF events; hangup_after_ms is a remote BYE (sip 200)."""
    h, c = harness()
    c.command("bgapi " + dial("5550007"))
    h.run_for(1.5)
    digits = [(f.event["DTMF-Digit"], f.event["DTMF-Source"]) for f in events(c, "DTMF")]
    assert digits == [("1", "RTP"), ("2", "RTP")]
    h.run_for(2.0)
    complete = next(f.event for f in events(c) if f.name == "CHANNEL_HANGUP_COMPLETE")
    assert complete["Hangup-Cause"] == "NORMAL_CLEARING"
    assert complete["variable_sip_term_status"] == "200"
    assert complete["variable_sip_hangup_disposition"] == "recv_bye"


def test_playback_events_and_real_duration(tmp_path):
    """playback: PLAYBACK_START/STOP around the real WAV length, FILE PLAYED, PRIVATE_COMMAND."""
    from tests.test_sim_audio import write_wav

    wav = write_wav(tmp_path / "prompt.wav", seconds=1.5)
    h, c = harness()
    answered(h, c)
    c.command(f"api uuid_broadcast u1 {wav} aleg")
    h.run_for(1.48)
    frames = c.frames()
    assert frames[0].text == "+OK Message sent\n"
    assert [f.name for f in frames[1:] if f.name != "API"] == ["CHANNEL_EXECUTE", "PLAYBACK_START"]
    h.run_for(0.04)
    after = events(c)
    assert [f.name for f in after] == [
        "PLAYBACK_STOP",
        "CHANNEL_EXECUTE_COMPLETE",
        "PRIVATE_COMMAND",
    ]
    assert after[0].event["Playback-Status"] == "done"
    assert after[0].event["variable_playback_ms"] == "1500"
    assert after[1].event["Application-Response"] == "FILE PLAYED"
    assert [k for k, _ in after[2].event_pairs][1] == "Core-UUID"
    assert after[2].event["call-command"] == "execute"
    assert after[2].event["event-lock"] == "true"


def test_uuid_break_stops_playback_with_break():
    """uuid_break during a playback: Playback-Status break, still FILE PLAYED."""
    h, c = harness()
    answered(h, c)
    c.command("api uuid_broadcast u1 tone_stream://%(10000,0,440) aleg")
    h.run_for(1.0)
    c.frames()
    c.command("api uuid_break u1")
    frames = c.frames()
    assert frames[0].text == "+OK\n"
    stop = next(f.event for f in frames if f.name == "PLAYBACK_STOP")
    assert stop["Playback-Status"] == "break"
    assert stop["Playback-File-Type"] == "tone_stream"
    complete = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application-Response"] == "FILE PLAYED"


def test_missing_file_is_file_not_found():
    """A file that does not exist: no PLAYBACK_START, Application-Response FILE NOT FOUND."""
    h, c = harness()
    answered(h, c)
    c.command("api uuid_broadcast u1 /no/such/file.wav aleg")
    frames = events(c)
    assert "PLAYBACK_START" not in [f.name for f in frames]
    complete = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application-Response"] == "FILE NOT FOUND"


def test_sendmsg_speak_and_echo():
    """
    sendmsg execute speak: +OK, no PLAYBACK events, a TTS-length run, the echo with Command
    first.
    """
    h, c = harness()
    answered(h, c)
    c.send(
        "sendmsg u1\ncall-command: execute\nexecute-app-name: speak\n"
        "execute-app-arg: flite|kal|Hello there\n\n"
    )
    h.run_for(0.9)
    frames = c.frames()
    assert frames[0].text == "+OK"
    assert [f.name for f in frames[1:]] == ["CHANNEL_EXECUTE"]
    h.run_for(0.2)
    done = events(c)
    assert [f.name for f in done] == ["CHANNEL_EXECUTE_COMPLETE", "PRIVATE_COMMAND"]
    assert done[0].event["Application-Response"] == "_none_"
    assert done[1].event_pairs[0] == ("Command", "sendmsg u1")
    assert done[1].event_pairs[3] == ("execute-app-arg", "flite|kal|Hello there")


def test_event_lock_queues_commands_in_order():
    """event-lock commands run one after another; an unlocked one nests and suspends the first."""
    h, c = harness()
    answered(h, c)
    for tone in (1000, 1001):
        c.send(
            f"sendmsg u1\ncall-command: execute\nexecute-app-name: playback\n"
            f"execute-app-arg: tone_stream://%({tone},0,440)\nevent-lock: true\n\n"
        )
    h.run_for(2.1)
    stops = [f.event["Playback-File-Path"] for f in events(c, "PLAYBACK_STOP")]
    assert stops == ["tone_stream://%(1000,0,440)", "tone_stream://%(1001,0,440)"]
    c.send(
        "sendmsg u1\ncall-command: execute\nexecute-app-name: playback\n"
        "execute-app-arg: tone_stream://%(1000,0,500)\n\n"
    )
    h.run_for(0.5)
    c.send(
        "sendmsg u1\ncall-command: execute\nexecute-app-name: playback\n"
        "execute-app-arg: tone_stream://%(300,0,600)\n\n"
    )
    h.run_for(1.0)
    order = [
        (f.name, f.event["Playback-File-Path"][-6:])
        for f in events(c, "PLAYBACK_START", "PLAYBACK_STOP")
    ]
    assert order == [
        ("PLAYBACK_START", "0,500)"),
        ("PLAYBACK_START", "0,600)"),
        ("PLAYBACK_STOP", "0,600)"),
        ("PLAYBACK_STOP", "0,500)"),
    ]


PAGD = "1 5 2 5000 # tone_stream://%(200,0,800) silence_stream://250 my_digits {regex}"


def pagd(c, uuid, regex=r"\d+"):
    c.send(
        f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: play_and_get_digits\n"
        f"execute-app-arg: {PAGD.format(regex=regex)}\n\n"
    )


def test_play_and_get_digits_success():
    """Digits after the prompt: my_digits=123, read_result=success, terminator # (run A)."""
    h, c = harness()
    answered(h, c, "5550008")
    pagd(c, "u1")
    h.run_for(2.5)
    frames = events(c)
    digits = [f.event["DTMF-Digit"] for f in frames if f.name == "DTMF"]
    assert digits == ["1", "2", "3", "#"]
    complete = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application"] == "play_and_get_digits"
    assert complete["Application-Response"] == "_none_"
    assert complete["variable_my_digits"] == "123"
    assert complete["variable_read_result"] == "success"
    assert complete["variable_read_terminator_used"] == "#"
    c.command("api uuid_getvar u1 my_digits")
    assert c.frames()[0].text == "123"


def test_play_and_get_digits_timeout_is_failure():
    """
    No digits: the invalid file after each try, then read_result=failure, digits unset (run
    B).
    """
    h, c = harness()
    answered(h, c)
    pagd(c, "u1")
    h.run_for(11.5)
    frames = events(c)
    paths = [f.event["Playback-File-Path"] for f in frames if f.name == "PLAYBACK_START"]
    assert paths == ["tone_stream://%(200,0,800)", "silence_stream://250"] * 2
    complete = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["variable_read_result"] == "failure"
    assert "variable_my_digits" not in complete
    c.command("api uuid_getvar u1 my_digits")
    assert c.frames()[0].text == "_undef_"


def test_play_and_get_digits_regex_mismatch():
    """
    Digits not matching the regex: read_result=success but my_digits unset, my_digits_invalid
    (run C).
    """
    h, c = harness()
    answered(h, c, "5550009")
    pagd(c, "u1", r"^9\d+$")
    h.run_for(6.0)
    complete = next(f.event for f in events(c) if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["variable_read_result"] == "success"
    assert complete["variable_my_digits_invalid"] == "123"
    assert "variable_my_digits" not in complete


def execute(c, uuid: str, app: str, arg: str) -> None:
    c.send(
        f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: {app}\n"
        f"execute-app-arg: {arg}\n\n"
    )


SAY_PAGD = "1 5 1 1000 # 'say:{text}' silence_stream://250 my_digits \\d+"


def test_say_prompt_without_tts_engine_plays_nothing():
    """
    FreeSWITCH 1.10+ speaks everything after say: with the channel's tts_engine; with none
    set it logs Invalid Args and plays nothing: no prompt (so the callee who answers
    prompts keys nothing), straight to collecting, read_result failure.  say:flite:slt:...
    is no different: the engine and voice are just text.
    """
    h, c = harness()
    answered(h, c, "5550008")
    execute(c, "u1", "play_and_get_digits", SAY_PAGD.format(text="flite:slt:Enter your code"))
    h.run_for(2.0)
    frames = events(c)
    paths = [f.event["Playback-File-Path"] for f in frames if f.name == "PLAYBACK_START"]
    assert paths == ["silence_stream://250"]
    assert "DTMF" not in [f.name for f in frames]
    complete = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["variable_read_result"] == "failure"
    assert [kind for _, kind, _ in h.sim.channel("u1").played] == ["playback"]


def test_say_prompt_is_spoken_with_the_channel_tts_engine():
    """
    With tts_engine set, a say: prompt is spoken (no PLAYBACK events, a TTS-length run)
    and is a prompt the callee answers: my_digits 123; the whole rest is the text.
    """
    h, c = harness()
    answered(h, c, "5550008")
    c.command("api uuid_setvar u1 tts_engine flite")
    c.command("api uuid_setvar u1 tts_voice slt")
    execute(c, "u1", "play_and_get_digits", SAY_PAGD.format(text="flite:slt:Enter your code"))
    h.run_for(2.5)
    frames = events(c)
    assert "PLAYBACK_START" not in [f.name for f in frames]
    assert [f.event["DTMF-Digit"] for f in frames if f.name == "DTMF"] == ["1", "2", "3", "#"]
    complete = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["variable_my_digits"] == "123"
    assert h.sim.channel("u1").played[0][1:] == ("speak", "say:flite:slt:Enter your code")


def test_tts_file_plays_like_a_file():
    """
    tts://engine|voice|text (mod_dptools' TTS file format) plays as a file: PLAYBACK_START
    and PLAYBACK_STOP with that path, for as long as the text takes to say.
    """
    h, c = harness()
    answered(h, c)
    execute(c, "u1", "playback", "tts://flite|slt|Hello there")
    h.run_for(1.0)
    assert [f.name for f in events(c)] == ["CHANNEL_EXECUTE", "PLAYBACK_START"]
    h.run_for(0.1)
    frames = events(c)
    stop = next(f.event for f in frames if f.name == "PLAYBACK_STOP")
    assert stop["Playback-File-Path"] == "tts://flite|slt|Hello there"
    assert stop["variable_playback_ms"] == str(150 + 80 * len("Hello there"))
    complete = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application-Response"] == "FILE PLAYED"
    execute(c, "u1", "playback", "tts://flite")
    complete = next(f.event for f in events(c) if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application-Response"] == "FILE NOT FOUND"


def test_http_cache_fetches_before_playing_and_keeps_the_recording(tmp_path):
    """
    http_cache://<url>: the recording is fetched before PLAYBACK_START (a digit pressed
    meanwhile waits, then stops the playback), plays for its WAV length, and a second play
    of the URL is not fetched again; a download that fails is FILE NOT FOUND.
    """
    from twisted.internet.defer import Deferred, fail

    from iradialer.sim.http_cache import HttpCache
    from tests.test_sim_audio import write_wav

    wav = write_wav(tmp_path / "hello.wav", seconds=0.8).read_bytes()
    fetches: dict[str, Deferred[bytes]] = {}

    def get(url: str) -> Deferred[bytes]:
        if "missing" in url:
            return fail(ConnectionRefusedError("refused"))
        fetches[url] = Deferred()
        return fetches[url]

    h, c = harness()
    h.sim.http_cache = HttpCache(h.reactor, get=get)
    answered(h, c)
    url = "http://127.0.0.1:8000/hello.wav"
    execute(c, "u1", "playback", "http_cache://" + url)
    c.command("api uuid_recv_dtmf u1 *")
    h.run_for(0.5)
    assert [f.name for f in events(c) if f.name != "API"] == ["CHANNEL_EXECUTE"]
    fetches.pop(url).callback(wav)
    frames = events(c)
    assert [f.name for f in frames][:4] == [
        "PLAYBACK_START",
        "DTMF",
        "PLAYBACK_STOP",
        "CHANNEL_EXECUTE_COMPLETE",
    ]
    assert frames[2].event["Playback-Status"] == "break"
    execute(c, "u1", "playback", "http_cache://" + url)
    h.run_for(0.78)
    assert "PLAYBACK_STOP" not in [f.name for f in events(c)]
    h.run_for(0.04)
    stop = next(f.event for f in events(c) if f.name == "PLAYBACK_STOP")
    assert (stop["Playback-Status"], stop["variable_playback_ms"]) == ("done", "800")
    assert not fetches
    execute(c, "u1", "playback", "http_cache://http://127.0.0.1:8000/missing.wav")
    complete = next(f.event for f in events(c) if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application-Response"] == "FILE NOT FOUND"


def test_play_and_get_digits_keeps_the_digits_keyed_before_a_hangup():
    """
    A hangup while digits are being collected ends switch_ivr_read there: the completion
    carries the digits keyed so far and read_result failure (not a clean variable).
    """
    h, c = harness()
    answered(h, c, "5550008")
    pagd(c, "u1")
    h.run_for(1.1)
    assert [f.event["DTMF-Digit"] for f in events(c) if f.name == "DTMF"] == ["1", "2"]
    c.command("api uuid_kill u1")
    h.run_for(0.1)
    complete = next(f.event for f in events(c) if f.name == "CHANNEL_EXECUTE_COMPLETE")
    assert complete["Application"] == "play_and_get_digits"
    assert complete["variable_my_digits"] == "12"
    assert complete["variable_read_result"] == "failure"


def test_uuid_recv_dtmf_and_plain_encoding():
    """uuid_recv_dtmf injects digits (source APP); in plain events # is %23 and * stays."""
    h = Harness(SCENARIOS)
    c = h.connect(authenticate=True, events="plain DTMF")
    answered(h, c)
    c.command("api uuid_recv_dtmf u1 *#")
    raw = c.transport.value()
    assert b"DTMF-Digit: *\n" in raw and b"DTMF-Digit: %23\n" in raw
    assert b"DTMF-Source: APP\n" in raw


def test_uuid_send_dtmf_reply():
    """uuid_send_dtmf: FreeSWITCH's reply; the digits go to the far end (no event on this leg)."""
    h, c = harness()
    answered(h, c)
    c.command("api uuid_send_dtmf u1 123#")
    frames = c.frames()
    assert frames[0].text == "+OK u1 sent DTMF 123#.\n"
    assert [f.name for f in frames[1:]] == ["API"]
    assert h.sim.channel("u1").dtmf_sent == ["123#"]
    c.command("api uuid_send_dtmf nope 1")
    assert c.frames()[0].text == "-ERR Cannot locate session!\n"


def test_variables_and_dump():
    """uuid_setvar/getvar (no value unsets), uuid_dump as plain, json and xml."""
    h, c = harness()
    answered(h, c)
    for command, reply in [
        ("api uuid_setvar u1 my_var a b", "+OK\n"),
        ("api uuid_getvar u1 my_var", "a b"),
        ("api uuid_setvar u1 my_var", "+OK\n"),
        ("api uuid_getvar u1 my_var", "_undef_"),
        ("api uuid_getvar u1", "-USAGE: <uuid> <var>\n"),
        ("api uuid_getvar nope x", "-ERR No such channel!\n"),
        ("api uuid_dump nope json", "-ERR No such channel!\n"),
    ]:
        c.command(command)
        assert c.frames()[0].text == reply, command
    c.command("api uuid_dump u1 json")
    dump = json.loads(c.frames()[0].body)
    assert dump["Event-Name"] == "CHANNEL_DATA"
    assert dump["Unique-ID"] == "u1"
    c.command("api uuid_dump u1")
    text = c.frames()[0].text
    assert text.startswith("Event-Name: CHANNEL_DATA\n") and text.endswith("\n\n")
    c.command("api uuid_dump u1 xml")
    assert c.frames()[0].text.startswith("<event>\n  <headers>\n    <Event-Name>CHANNEL_DATA<")


def test_show_channels_and_status():
    """show channels (CSV, count, as json) and status in FreeSWITCH's layout."""
    h, c = harness()
    c.command("api show channels")
    assert c.frames()[0].text == "\n0 total.\n"
    c.command("api show channels as json")
    assert c.frames()[0].text == '{"row_count": 0}\n'
    answered(h, c)
    c.command("api show channels")
    lines = c.frames()[0].text.split("\n")
    assert lines[0].startswith("uuid,direction,created,created_epoch,name,state,")
    assert lines[1].startswith("u1,outbound,")
    assert lines[-2:] == ["1 total.", ""]
    c.command("api show channels as json")
    table = json.loads(c.frames()[0].body)
    assert table["row_count"] == 1 and table["rows"][0]["application"] == "park"
    c.command("api show channels count")
    assert c.frames()[0].text == "\n1 total.\n"
    c.command("api status")
    status = c.frames()[0].text.split("\n")
    assert status[0].startswith("UP 0 years, 0 days, 0 hours, 0 minutes, 1 second, ")
    assert (
        status[1]
        == "FreeSWITCH (Version 1.11.3-dev git cc93a68 2026-08-21 14:10:14Z 64bit) is ready"
    )
    assert status[3] == "1 session(s) - peak 1, last 5min 1 "


def test_transfer_inline_and_park():
    """
    uuid_transfer ... inline leaves park (UNPARK) and runs the inline apps; 'park inline'
    re-parks.
    """
    h, c = harness()
    answered(h, c)
    c.command("api uuid_transfer u1 park inline")
    frames = c.frames()
    assert frames[0].text == "+OK\n"
    names = [f.name for f in frames if f.event and f.name != "API"]
    assert names == [
        "CHANNEL_UNPARK",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_EXECUTE",
        "CHANNEL_PARK",
    ]
    execute = next(f.event for f in frames if f.name == "CHANNEL_EXECUTE")
    assert execute["Caller-Dialplan"] == "inline"
    c.command("api uuid_transfer nope park inline")
    assert c.frames()[0].text == "-ERR No such channel!\n"


def test_unknown_application_hangs_up():
    """An application the simulator lacks ends the call like FreeSWITCH without the module."""
    h, c = harness()
    answered(h, c)
    c.send("sendmsg u1\ncall-command: execute\nexecute-app-name: nonexistent_app\n\n")
    h.run_for(0.02)
    hangup = next(f.event for f in events(c) if f.name == "CHANNEL_HANGUP")
    assert hangup["Hangup-Cause"] == "DESTINATION_OUT_OF_ORDER"


def test_conference_join_list_members_and_kick():
    """
    Two calls in a conference: add-member events, list/json_list, mute by uuid=, kick back to
    park.
    """
    h, c = harness()
    answered(h, c, uuid="u1")
    answered(h, c, uuid="u2")
    c.command("api uuid_transfer u1 'conference:CONF-a@default,park' inline")
    h.run_for(0.1)
    c.send(
        "sendmsg u2\ncall-command: execute\nexecute-app-name: conference\n"
        "execute-app-arg: CONF-a@default\n\n"
    )
    h.run_for(0.5)
    actions = [f.event.get("Action") for f in events(c, "conference::maintenance")]
    assert actions[:5] == [
        "conference-create",
        "play-file",
        "add-member",
        "floor-change",
        "add-member",
    ]
    c.command("api conference CONF-a list")
    listing = c.frames()[0].text
    assert listing == (
        "2;sofia/gateway/sim/5550001;u2;Outbound Call;5550001;hear|speak;0;0;100\n"
        "1;sofia/gateway/sim/5550001;u1;Outbound Call;5550001;hear|speak|floor;0;0;100\n"
    )
    c.command("api conference CONF-a mute uuid=u1")
    frames = c.frames()
    assert frames[0].text == "+OK mute 1\n"
    mute = next(f.event for f in frames if f.name == "conference::maintenance")
    assert (mute["Action"], mute["Member-ID"], mute["Speak"]) == ("mute-member", "1", "false")
    c.command("api conference CONF-a json_list")
    listed = json.loads(c.frames()[0].body)
    assert [m["id"] for m in listed[0]["members"]] == [2, 1]
    assert listed[0]["members"][1]["flags"]["can_speak"] is False
    for command, reply in [
        ("api conference CONF-a mute 999", "-ERR Non-Existant ID 999\n"),
        ("api conference CONF-a mute uuid=nope", "-ERR Non-Existant member\n"),
        ("api conference CONF-a mute", "mute <[member_id|all]|last|non_moderator> [<quiet>]"),
        ("api conference CONF-x json_list", "-ERR Conference CONF-x not found\n"),
    ]:
        c.command(command)
        assert c.frames()[0].text == reply, command
    c.command("api conference CONF-a kick 1")
    frames = c.frames()
    assert frames[0].text == "+OK kicked 1\n"
    names = [
        (f.name, (f.event or {}).get("Action") or (f.event or {}).get("Application"))
        for f in frames[1:]
        if f.name != "API"
    ]
    assert names == [
        ("conference::maintenance", "kick-member"),
        ("conference::maintenance", "floor-change"),
        ("PRESENCE_IN", None),
        ("conference::maintenance", "play-file"),
        ("conference::maintenance", "del-member"),
        ("CODEC", None),
        ("CHANNEL_EXECUTE_COMPLETE", "conference"),
        ("CHANNEL_EXECUTE", "park"),
        ("CHANNEL_PARK", None),
        ("conference::maintenance", "floor-change"),
    ]
    c.command("api conference CONF-a hup 2")
    frames = c.frames()
    assert frames[0].text == "+OK hup 2\n"
    names = [f.name for f in frames if f.event]
    assert names[-3:] == ["PRESENCE_IN", "conference::maintenance", "conference::maintenance"]
    assert "PRIVATE_COMMAND" in names
    c.command("api conference list")
    assert c.frames()[0].text == "+OK No active conferences.\n"
    c.command("api uuid_getvar u2 current_application")
    assert c.frames()[0].text == "conference"


def test_broadcast_app_syntax_and_hangup_after():
    """uuid_broadcast <uuid> app::args runs that app; app!cause hangs up after it."""
    h, c = harness()
    answered(h, c)
    c.command("api uuid_broadcast u1 speak::flite|slt|hello")
    h.run_for(1.0)
    executes = [f.event["Application"] for f in events(c, "CHANNEL_EXECUTE")]
    assert executes == ["speak"]
    c.command("api uuid_broadcast u1 playback!user_busy::tone_stream://%(200,0,440) aleg")
    h.run_for(0.5)
    frames = events(c)
    assert [f.event["Application"] for f in frames if f.name == "CHANNEL_EXECUTE"] == [
        "playback",
        "hangup",
    ]
    hangup = next(f.event for f in frames if f.name == "CHANNEL_HANGUP")
    assert hangup["Hangup-Cause"] == "USER_BUSY"


def test_loops_repeat_a_command_until_broken():
    """A sendmsg with loops: -1 repeats its playback until uuid_break; the echo comes once."""
    h, c = harness()
    answered(h, c)
    c.send(
        "sendmsg u1\ncall-command: execute\nexecute-app-name: playback\n"
        "execute-app-arg: tone_stream://%(1000,0,440)\nloops: -1\nevent-uuid: loop-1\n\n"
    )
    h.run_for(3.5)
    frames = events(c)
    starts = [f for f in frames if f.name == "CHANNEL_EXECUTE"]
    assert len(starts) == 4
    assert {f.event["Application-UUID"] for f in starts} == {"loop-1"}
    assert [f.event["variable_current_loop"] for f in starts] == ["1", "2", "3", "4"]
    assert "PRIVATE_COMMAND" not in [f.name for f in frames]
    c.command("api uuid_break u1")
    names = [f.name for f in events(c)]
    assert names[-3:] == ["PLAYBACK_STOP", "CHANNEL_EXECUTE_COMPLETE", "PRIVATE_COMMAND"]
    h.run_for(2.0)
    assert [f.name for f in events(c)] == []
