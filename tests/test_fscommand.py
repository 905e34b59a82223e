"""
FreeSWITCH command syntax: the builders produce what a real FreeSWITCH accepted, and no
input can make FreeSWITCH read a command differently from what the builder was given
(checked against a model of FreeSWITCH's own parsers, C{tests/freeswitch_model.py}).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iradialer.protocols import fscommand
from iradialer.protocols.fscommand import UnsafeValue
from tests.esl_helpers import CAPTURES
from tests.freeswitch_model import (
    expansion_would_change,
    parse_originate,
    read_packets,
    separate_string,
    speak_parts,
)

U = "c04b35a4-f967-44ba-a1bd-8a963cf231df"
CONF = "d1743649-1413-41cd-b718-5ac71e6a3f9f"

# Characters and sequences that mean something somewhere in FreeSWITCH's syntax.
SPECIAL_CHARACTERS = list(" ,'\"\\{}[]<>|^$=:_%;@/+#*!()&~`.\n\r\t\x00")
SPECIAL = SPECIAL_CHARACTERS + ["${", "$${", ":_:", "^^", "\\s", "\\,", "..", "a", "1"]
nasty = st.text(
    st.sampled_from(SPECIAL_CHARACTERS) | st.characters(codec="utf-8"), max_size=30
) | st.lists(st.sampled_from(SPECIAL), max_size=12).map("".join)


def exercise(check: Callable[[Any], None], strategy: Any, examples: int = 400) -> None:
    """
    Run C{check} on generated inputs; a builder refusing one (UnsafeValue) is fine, but
    enough inputs must get through for the property to mean something.
    """
    accepted = 0

    @settings(max_examples=examples, deadline=None)
    @given(strategy)
    def run(value: Any) -> None:
        nonlocal accepted
        try:
            check(value)
        except UnsafeValue:
            return
        accepted += 1

    run()
    assert accepted >= examples // 20, f"only {accepted} inputs were accepted"


def sent(name: str) -> str:
    return (CAPTURES / f"{name}.sent.raw").read_text()


# -- what real FreeSWITCH accepted -------------------------------------------------------


def test_originate_matches_the_one_freeswitch_ran():
    """
    The originate of the real SIP busy call, rebuilt with the builder, is byte for byte
    the one FreeSWITCH accepted.
    """
    line = fscommand.originate(
        call_uuid="e0faa4ab-b809-4e0f-afe1-7a1f0c1f70cf",
        gateway="sofia/internal",
        destination="15550001111@127.0.0.1:5090",
        timeout_s=20,
    )
    assert f"\napi {line}\n\n" in sent("sip_busy486")


def test_conference_commands_match_the_ones_freeswitch_ran():
    """
    Entering, listing and member actions of the conference capture, rebuilt.
    """
    captured = sent("conference_lifecycle")
    name = fscommand.conference_name(CONF)
    assert name == f"CONF-{CONF}"
    arg = fscommand.conference(name)
    assert f"\napi {fscommand.uuid_transfer_to_conference(U, arg)}\n\n" in captured
    assert f"\nexecute-app-name: conference\nexecute-app-arg: {arg}\n\n" in captured
    assert f"\napi {fscommand.conference_json_list(name)}\n\n" in captured
    for action in ("mute", "unmute", "deaf", "undeaf", "hold", "unhold"):
        assert f"\napi {fscommand.conference_member(name, action, U)}\n\n" in captured
    assert f"\napi {fscommand.uuid_answer(U)}\n\n" in captured
    assert f"\napi {fscommand.uuid_getvar(U, 'other_loopback_leg_uuid')}\n\n" in captured


def test_application_arguments_match_the_ones_freeswitch_ran():
    """
    play_and_get_digits (both regexes), speak and playback arguments, rebuilt.
    """
    captured = sent("play_and_get_digits")
    for regex in (r"\d+", r"^9\d+$"):
        arg = fscommand.play_and_get_digits(
            min_digits=1,
            max_digits=5,
            tries=2,
            timeout_ms=5000,
            terminators="#",
            prompt=fscommand.tone_stream(200, 0, 800),
            invalid_prompt=fscommand.silence_stream(250),
            var_name="my_digits",
            regex=regex,
        )
        assert f"\nexecute-app-arg: {arg}\n" in captured
    assert f"\napi {fscommand.uuid_send_dtmf('49af2110-bbdb-4a14-a0ca-59c53eb9f8ae', '123#')}\n"
    media = sent("media_flite_wav")
    speak = fscommand.speak("flite", "kal", "This is the kal voice, sent with sendmsg.")
    assert f"\nexecute-app-arg: {speak}\n" in media
    path = fscommand.sound_path("/usr/share/asterisk/sounds/en", "tt-monkeys.wav")
    assert f"\nexecute-app-arg: {fscommand.playback(path)}\n" in media


def test_api_lines_match_the_ones_freeswitch_ran():
    """
    uuid_* lines, DTMF with a duration, re-parking, dump, filter and subscription.
    """
    assert "api " + fscommand.uuid_send_dtmf(
        "79978836-cf13-4d45-b366-d703f2049084", "*#", duration_ms=400
    ) in sent("dtmf_plain")
    assert "api " + fscommand.uuid_send_dtmf(
        "79978836-cf13-4d45-b366-d703f2049084", "1*#A"
    ) in sent("dtmf_plain")
    parked = "38df01c1-792b-450a-9c17-415a6da38e3f"
    assert f"\napi {fscommand.uuid_park(parked)}\n\n" in sent("unicast_more_esl")
    assert f"\napi {fscommand.uuid_kill(parked)}\n\n" in sent("unicast_more_esl")
    cycle = "2a073336-48ca-4db9-a3bd-6509c6f7b059"
    assert f"\napi {fscommand.uuid_dump_json(cycle)}\n\n" in sent("event_json_ALL_cycle")
    assert f"\n{fscommand.event_subscription(['ALL'])}\n\n" in sent("event_json_ALL_cycle")
    target = "11111111-2222-3333-4444-555555555555"
    assert f"\n{fscommand.event_filter('Unique-ID', target)}\n\n" in sent("misc_replies")
    assert f"\n{fscommand.event_filter('Unique-ID', target, delete=True)}\n\n" in sent(
        "misc_replies"
    )


# -- originate ----------------------------------------------------------------------------


def test_originate_escapes_spaces_and_commas():
    """
    A caller name with a comma and spaces and a SIP header value with both reach
    FreeSWITCH intact: escaped as \\, and \\s, and read back as such by its parsers.
    """
    line = fscommand.originate(
        call_uuid=U,
        gateway="sofia/gateway/sim",
        destination="+15551234567",
        timeout_s=30,
        caller_id_number="+15550001111",
        caller_id_name="Smith, John",
        sip_headers={"X-Campaign": "spring sale, wave 2"},
    )
    assert line == (
        f"originate {{origination_uuid={U},ignore_early_media=true,originate_timeout=30,"
        r"origination_caller_id_number=+15550001111,origination_caller_id_name=Smith\,\sJohn,"
        r"sip_h_X-Campaign=spring\ssale\,\swave\s2}sofia/gateway/sim/+15551234567 &park()"
    )
    parsed = parse_originate(line.removeprefix("originate "))
    assert parsed.variables == [
        ("origination_uuid", U),
        ("ignore_early_media", "true"),
        ("originate_timeout", "30"),
        ("origination_caller_id_number", "+15550001111"),
        ("origination_caller_id_name", "Smith, John"),
        ("sip_h_X-Campaign", "spring sale, wave 2"),
    ]
    assert parsed.alternatives == [["sofia/gateway/sim/+15551234567"]]
    assert parsed.exten == "&park()"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"destination": "1234|sofia/gateway/evil/999"},
        {"destination": "1234,loopback/9999"},
        {"destination": "1234 &bridge(sofia/gateway/evil/1)"},
        {"destination": "{origination_uuid=x}1234"},
        {"destination": "[leg_timeout=1]1234"},
        {"destination": "123:_:loopback/456"},
        {"destination": "1234'"},
        {"destination": "1234;fs_path=<sip:evil>"},
        {"destination": ""},
        {"gateway": "sofia/gateway/a:_:b"},
        {"gateway": "sofia/gateway/x,loopback"},
        {"gateway": "loopback/1|sofia"},
        {"caller_id_name": "x}loopback/666 &park() {a=b"},
        {"caller_id_name": "a',b='c"},
        {"caller_id_name": "^^:x=y"},
        {"caller_id_name": "evil:_:loopback/1"},
        {"caller_id_name": "a\\"},
        {"caller_id_name": "line\nbreak"},
        {"caller_id_name": " padded"},
        {"caller_id_name": ""},
        {"caller_id_number": "[x=y]"},
        {"caller_id_number": "1|2"},
        {"sip_headers": {"Contact": "x"}},
        {"sip_headers": {"X-A=b,c": "x"}},
        {"sip_headers": {"X-Ok": 'quote"'}},
        {"variables": {"origination_uuid": "0" * 36}},
        {"call_uuid": "not-a-uuid"},
        {"call_uuid": U.upper()},
        {"timeout_s": 0},
        {"timeout_s": "20"},
        {"app": "park() &bridge"},
    ],
)
def test_originate_refuses_what_it_cannot_make_safe(kwargs):
    """
    Dial-string syntax in a destination or gateway, brace/bracket/quote/backslash/^^/:_:
    in a value, a control character, edge spaces, empty values, foreign SIP header names,
    a second origination_uuid, bad uuids and timeouts: all UnsafeValue (a ValueError).
    """
    args = {
        "call_uuid": U,
        "gateway": "sofia/gateway/sim",
        "destination": "15551234567",
        "timeout_s": 30,
    }
    args.update(kwargs)
    with pytest.raises(UnsafeValue) as caught:
        fscommand.originate(**args)
    assert isinstance(caught.value, ValueError)
    assert caught.value.problem


ORIGINATE_FIELDS = ["caller_id_name", "caller_id_number", "X-Tag", "destination"]


def test_originate_either_refuses_or_means_exactly_what_it_was_given():
    """
    For any caller id name or number, SIP header value or destination: the builder
    refuses, or FreeSWITCH's parsing (API argument split, :_:, braces, commas, =) yields
    exactly the given variables, one destination and the park extension; and the ESL
    packet carrying it is one command line.
    """

    def check(drawn: tuple[str, str]) -> None:
        field, value = drawn
        given = {"caller_id_name": "Jane Doe", "caller_id_number": "+15550001", "X-Tag": "t"}
        given["destination"] = "15551234567"
        given[field] = value
        line = fscommand.originate(
            call_uuid=U,
            gateway="sofia/gateway/sim",
            destination=given["destination"],
            timeout_s=20,
            caller_id_number=given["caller_id_number"],
            caller_id_name=given["caller_id_name"],
            sip_headers={"X-Tag": given["X-Tag"]},
        )
        parsed = parse_originate(line.removeprefix("originate "))
        assert not parsed.enterprise
        assert parsed.argc == 2
        assert parsed.variables == [
            ("origination_uuid", U),
            ("ignore_early_media", "true"),
            ("originate_timeout", "20"),
            ("origination_caller_id_number", given["caller_id_number"]),
            ("origination_caller_id_name", given["caller_id_name"]),
            ("sip_h_X-Tag", given["X-Tag"]),
        ]
        assert parsed.alternatives == [[f"sofia/gateway/sim/{given['destination']}"]]
        assert parsed.exten == "&park()"
        packets = read_packets(f"bgapi {line}\nJob-UUID: {U}\n\n".encode())
        assert packets == [(f"bgapi {line}", [("Job-UUID", U)])]

    values = nasty | st.from_regex(
        r"\+?[0-9a-z*._-]{1,12}(@[a-z0-9.]{1,9}(:[0-9]{1,5})?)?", fullmatch=True
    )
    exercise(check, st.tuples(st.sampled_from(ORIGINATE_FIELDS), values), examples=800)


# -- application arguments ----------------------------------------------------------------


def test_speak_either_refuses_or_speaks_exactly_the_text():
    """
    For any text: refused, or speak reads back the engine, the voice and the text (line
    breaks and tabs as spaces), variable expansion leaves it alone, and it fits one
    sendmsg header.
    """

    def check(text: str) -> None:
        arg = fscommand.speak("flite", "slt", text)
        normalised = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
        assert speak_parts(arg) == ("flite", "slt", normalised.lstrip(" "))
        assert not expansion_would_change(arg)
        packet = f"sendmsg {U}\ncall-command: execute\nexecute-app-arg: {arg}\n\n".encode()
        assert read_packets(packet)[0][1][-1] == ("execute-app-arg", arg)

    exercise(check, nasty)


def test_play_and_get_digits_either_refuses_or_splits_into_its_arguments():
    """
    For any regex or spoken prompt: refused, or play_and_get_digits' space split yields
    exactly the intended arguments, and variable expansion leaves the argument alone.
    """

    def check(drawn: tuple[str, str]) -> None:
        field, value = drawn
        regex, prompt = (value, "Enter it") if field == "regex" else ("^[0-9]+$", value)
        arg = fscommand.play_and_get_digits(
            min_digits=1,
            max_digits=4,
            tries=3,
            timeout_ms=8000,
            terminators="#",
            prompt="say:" + prompt,
            invalid_prompt=fscommand.silence_stream(250),
            var_name="digits",
            regex=regex,
            digit_timeout_ms=3000,
        )
        spoken = prompt.replace("\r", " ").replace("\n", " ").replace("\t", " ")
        assert separate_string(arg, " ", 11) == [
            "1",
            "4",
            "3",
            "8000",
            "#",
            "say:" + spoken,
            "silence_stream://250",
            "digits",
            regex,
            "3000",
        ]
        assert not expansion_would_change(arg)

    exercise(check, st.tuples(st.sampled_from(["regex", "prompt"]), nasty))


def test_play_and_get_digits_quotes_prompts_with_spaces():
    """
    A spoken prompt with spaces is one quoted argument; an empty regex is '' (none).
    """
    arg = fscommand.play_and_get_digits(
        min_digits=5,
        max_digits=5,
        tries=1,
        timeout_ms=10000,
        terminators="",
        prompt="say:Please enter your 5 digit code",
        invalid_prompt="say:That is an invalid input",
        var_name="customer_id",
    )
    assert arg == (
        "5 5 1 10000 none 'say:Please enter your 5 digit code' "
        "'say:That is an invalid input' customer_id ''"
    )


def test_say_prompt_with_engine_and_voice_is_a_tts_file():
    """
    FreeSWITCH 1.10+ speaks everything after say: with the channel's tts_engine
    (FS-11237: say:flite:slt:Hi would say "flite:slt:Hi", or nothing when no tts_engine
    is set), so a prompt naming its engine and voice is mod_dptools' tts:// file: the
    play_and_get_digits token splits back into engine, voice and the text, colons kept.
    """
    prompt = fscommand.say_prompt("Press 1: sales", "flite", "slt")
    assert prompt == "tts://flite|slt|Press 1: sales"
    token = separate_string(digits(prompt=prompt), " ", 11)[5]
    assert token == prompt
    assert separate_string(token[len("tts://") :], "|", 3) == ["flite", "slt", "Press 1: sales"]
    assert fscommand.say_prompt("Press 1: sales") == "say:Press 1: sales"
    for engine, voice in (("flite", None), (None, "slt"), ("flite|x", "slt")):
        with pytest.raises(UnsafeValue):
            fscommand.say_prompt("Hi", engine, voice)
    with pytest.raises(UnsafeValue):
        digits(prompt="tts://flite|slt|it's")


def test_tts_prompt_text_is_refused_or_spoken_as_given():
    """
    For any text: say_prompt(text, engine, voice) is refused, or play_and_get_digits'
    space split and tts_file_open's split at | give back the engine, the voice and the
    text (spaces at its start trimmed, as FreeSWITCH trims them), and variable expansion
    leaves the argument alone.
    """

    def check(text: str) -> None:
        arg = digits(prompt=fscommand.say_prompt(text, "flite", "kal"))
        token = separate_string(arg, " ", 11)[5]
        assert token.startswith("tts://")
        normalised = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
        assert separate_string(token[6:], "|", 3) == ["flite", "kal", normalised.strip(" ")]
        assert not expansion_would_change(arg)

    exercise(check, nasty)


def digits(**overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "min_digits": 1,
        "max_digits": 3,
        "tries": 1,
        "timeout_ms": 1000,
        "terminators": "#",
        "prompt": fscommand.silence_stream(1),
        "invalid_prompt": fscommand.silence_stream(1),
        "var_name": "d",
    }
    arguments.update(overrides)
    return fscommand.play_and_get_digits(**arguments)


@pytest.mark.parametrize(
    "build",
    [
        lambda: fscommand.speak("flite", "slt", "${system rm -rf /}"),
        lambda: fscommand.speak("flite", "slt", "$\\{system x}"),
        lambda: fscommand.speak("flite", "slt", "a\\'b"),
        lambda: fscommand.speak("flite|x", "slt", "hi"),
        lambda: fscommand.speak("flite", "slt", "   "),
        lambda: fscommand.speak("flite", "slt", "nul\x00byte"),
        lambda: fscommand.say_prompt("it's ${x}"),
        lambda: fscommand.playback("/sounds/../etc/passwd"),
        lambda: fscommand.playback("/sounds/x.wav aleg"),
        lambda: fscommand.playback("${sound_prefix}/x.wav"),
        lambda: fscommand.playback("http://evil/x.wav"),
        lambda: fscommand.playback("/sounds/.."),
        lambda: fscommand.sound_path("/sounds", "../etc/passwd"),
        lambda: fscommand.sound_path("/sounds", "/etc/passwd"),
        lambda: fscommand.sound_path("/sounds", "a/./b.wav"),
        lambda: fscommand.sound_path("/sounds", "a b.wav"),
        lambda: fscommand.sound_path("sounds", "x.wav"),
        lambda: digits(prompt="say:don't"),
        lambda: digits(regex="\\s+"),
        lambda: digits(terminators="#;"),
        lambda: digits(min_digits=3, max_digits=2),
        lambda: digits(var_name="my digits"),
        lambda: digits(prompt="/sounds/../x.wav"),
        lambda: fscommand.conference("CONF-x@evil"),
        lambda: fscommand.conference("CONF-x", "default+flags{moderator}"),
        lambda: fscommand.conference_name("x"),
        lambda: fscommand.conference_member("CONF-x", "dial", U),
        lambda: fscommand.conference_member("CONF-x", "mute", "all"),
        lambda: fscommand.uuid_transfer_to_conference(U, "conference:x,bridge:y"),
        lambda: fscommand.uuid_send_dtmf(U, "12 3"),
        lambda: fscommand.uuid_send_dtmf(U, "123@500"),
        lambda: fscommand.uuid_send_dtmf(U, "1", duration_ms=5),
        lambda: fscommand.uuid_kill(U, "NORMAL_CLEARING; rm"),
        lambda: fscommand.uuid_getvar(U, "x y"),
        lambda: fscommand.uuid_setvar(U, "x", "it's"),
        lambda: fscommand.uuid_setvar(U, "x", ""),
        lambda: fscommand.tone_stream(100, 0),
        lambda: fscommand.silence_stream(-1),
        lambda: fscommand.event_subscription([]),
        lambda: fscommand.event_filter("delete", "x"),
        lambda: fscommand.header_value("x", "a\nb"),
        lambda: fscommand.command_line(""),
        lambda: fscommand.command_line("api unload mod_event_socket"),
    ],
)
def test_builders_refuse_what_they_cannot_make_safe(build):
    """
    Variable expansion (${...}), rewritten escapes, delimiters in names, path escapes,
    apostrophes where FreeSWITCH would read a quote, bad DTMF, causes and numbers: all
    refused with UnsafeValue.
    """
    with pytest.raises(UnsafeValue):
        build()


def test_setvar_value_is_one_argument():
    """
    For any value: refused, or uuid_setvar's space split gives uuid, name, value.
    """

    def check(value: str) -> None:
        line = fscommand.uuid_setvar(U, "my_var", value)
        assert separate_string(line.removeprefix("uuid_setvar "), " ", 3) == [U, "my_var", value]

    exercise(check, nasty)


def test_sound_path_stays_inside_its_directory():
    """
    For any name: refused, or a normalised absolute path under the directory that
    playback accepts.
    """

    def check(name: str) -> None:
        path = fscommand.sound_path("/srv/sounds", name)
        assert path.startswith("/srv/sounds/")
        assert posixpath.normpath(path) == path
        assert fscommand.playback(path) == path

    exercise(check, nasty | st.from_regex(r"[a-z0-9_./-]{1,20}", fullmatch=True))


def test_command_line_is_one_packet():
    """
    For any text: refused, or the Event Socket reads exactly one command line from it.
    """

    def check(text: str) -> None:
        line = fscommand.command_line("api " + text)
        assert read_packets((line + "\n\n").encode()) == [(line, [])]

    exercise(check, nasty)


def test_dtmf_and_tones():
    """
    Digit strings with pauses, tones and silences in FreeSWITCH's forms.
    """
    assert fscommand.dtmf_digits("0123456789*#ABCDwW") == "0123456789*#ABCDwW"
    assert fscommand.tone_stream(500, 0, 1000) == "tone_stream://%(500,0,1000)"
    assert fscommand.tone_stream(100, 100, 941, 1477) == "tone_stream://%(100,100,941,1477)"
    assert fscommand.playback(fscommand.tone_stream(100, 100, 941, 1477))
    assert fscommand.silence_stream(250) == "silence_stream://250"
    assert fscommand.uuid_break(U, all_queued=True) == f"uuid_break {U} all"
    assert fscommand.uuid_kill(U, "USER_BUSY") == f"uuid_kill {U} USER_BUSY"
    assert fscommand.uuid_exists(U) == f"uuid_exists {U}"
    assert fscommand.SHOW_CHANNELS == "show channels as json"


def test_unicast_headers():
    """
    unicast addresses must be IP addresses and ports, transport udp or tcp.
    """
    assert fscommand.unicast_addresses("127.0.0.1", 17000, "::1", 9000, "udp") == {
        "local-ip": "127.0.0.1",
        "local-port": "17000",
        "remote-ip": "::1",
        "remote-port": "9000",
        "transport": "udp",
    }
    with pytest.raises(UnsafeValue):
        fscommand.unicast_addresses("localhost", 1, "127.0.0.1", 2, "udp")
    with pytest.raises(UnsafeValue):
        fscommand.unicast_flags("native,evil")
