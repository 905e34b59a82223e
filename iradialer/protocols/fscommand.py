"""
FreeSWITCH command syntax: the one module that turns values into command text.

Everything iradialer sends to FreeSWITCH that contains a value (an originate string, an
application argument, an API command line, a C{sendmsg} header) is built here, and every
builder either escapes a value so FreeSWITCH reads back exactly that value, or refuses it
with L{UnsafeValue}.  Nothing else in the project formats FreeSWITCH syntax.

What FreeSWITCH does with the text, read from its source (1.11, the version of the
captures in C{tests/fixtures/esl/}):

 - C{mod_event_socket.c} C{read_packet}: a command is one line; a blank line ends the
   packet, and every further line up to it is a C{name: value} header (split at the first
   C{:}, leading spaces of the value skipped).  C{\\r} ends a line as well as C{\\n}.  So a
   line break inside any value would start a new header or a new command: refused.
   C{parse_command} also rewrites any command containing C{unload}/C{reload} together
   with C{mod_event_socket} into an unload of the module itself: refused.
 - C{switch_utils.c} C{switch_separate_string}: the argument splitter every API and most
   applications use.  A string starting with C{^^X} switches the delimiter to C{X}; a
   C{'} opens a quoted run; C{\\} escapes the next character and C{cleanup_separated_string}
   turns C{\\'} C{\\"} C{\\\\} C{\\n} C{\\r} C{\\t} C{\\s} (a space) and C{\\<delim>}
   into that character, keeps any other C{\\x}, and trims spaces at both ends.
 - C{switch_ivr_originate.c}: C{:_:} anywhere in a dial string (even inside C{{}}) makes
   it an enterprise originate; C{{...}} is found by counting braces with no regard for
   quotes or escapes (C{switch_find_end_paren}), its content is split at C{,} and each
   part at the first C{=} by C{switch_separate_string} (so escapes and quotes are undone
   at each of the three levels: the API's split at spaces, the split at commas, the split
   at C{=}); a part with an empty value is dropped; after the braces C{|} and C{,}
   separate alternative and parallel destinations and C{[...]} opens per-leg variables.
 - C{switch_core_session.c} C{switch_core_session_execute_application_get_flags}: an
   application argument is run through C{switch_channel_expand_variables} first, which
   calls any API named in C{${api args}} and rewrites C{\\\\}, C{\\'} and C{\\$}, but only
   when the text contains C{${} (C{switch_string_var_check_const}, which also sees
   C{$\\{}) or an escape C{\\\\ \\n \\s \\t \\'} (C{switch_string_has_escaped_data}).  An
   argument starting C{%[} sets scoped variables.  The builders here produce only text
   that expansion leaves untouched, so the argument means the same with expansion on or
   off.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterable, Mapping

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z0-9_]+")
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_SIP_HEADER = re.compile(r"X-[A-Za-z0-9_-]+")
_GATEWAY = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.@:-]+)*")
_DESTINATION = re.compile(r"\+?[A-Za-z0-9*._-]+(@[A-Za-z0-9.-]+(:[0-9]{1,5})?)?")
_HANGUP_CAUSE = re.compile(r"[A-Z][A-Z0-9_]{2,63}")
_DTMF = re.compile(r"[0-9A-Da-d*#wW]+")
_TERMINATORS = re.compile(r"[0-9A-D*#]+")
_PATH_PART = re.compile(r"[A-Za-z0-9_.-]+")
_EVENT_NAME = re.compile(r"[A-Za-z0-9_:]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")
_CONFERENCE_ACTIONS = frozenset(
    {"mute", "unmute", "deaf", "undeaf", "hold", "unhold", "kick", "hup"}
)

MAX_VALUE_LENGTH = 1024
MAX_TEXT_LENGTH = 4096


class UnsafeValue(ValueError):
    """
    A value cannot be put into FreeSWITCH command text without changing its meaning.

    @ivar what: which value (e.g. C{"destination"}).
    @ivar problem: why it was refused, in words a user can act on.
    """

    def __init__(self, what: str, value: object, problem: str) -> None:
        self.what = what
        self.value = value
        self.problem = problem
        super().__init__(f"{what} {value!r}: {problem}")


# ---------------------------------------------------------------------------------------
# Event Socket framing (used by iradialer.protocols.esl)


def command_line(text: str) -> str:
    """
    Check one Event Socket command line (C{api ...}, C{sendmsg <uuid>}, C{event ...}).
    """
    if not text:
        raise UnsafeValue("command", text, "is empty")
    if "\n" in text or "\r" in text or "\x00" in text:
        raise UnsafeValue("command", text, "a line break would start another command")
    lowered = text.lower()
    if "mod_event_socket" in lowered and ("unload" in lowered or "reload" in lowered):
        raise UnsafeValue("command", text, "mod_event_socket rewrites it into an unload of itself")
    return text


def header_value(name: str, value: str) -> str:
    """
    Check one C{sendmsg} header value: one line, and no leading space (FreeSWITCH drops it).
    """
    if "\n" in value or "\r" in value or "\x00" in value:
        raise UnsafeValue(name, value, "a line break would start another header")
    if value.startswith(" "):
        raise UnsafeValue(name, value, "FreeSWITCH strips leading spaces from header values")
    return value


def uuid(value: str, what: str = "uuid") -> str:
    """
    A channel or job UUID in FreeSWITCH's canonical form (lower-case, hyphenated).
    """
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise UnsafeValue(what, value, "is not a lower-case hyphenated UUID")
    return value


def application_name(app: str) -> str:
    if not _NAME.fullmatch(app):
        raise UnsafeValue("application", app, "is not an application name")
    return app


def hangup_cause(cause: str) -> str:
    """
    A FreeSWITCH hangup cause name such as C{NORMAL_CLEARING}.
    """
    if not _HANGUP_CAUSE.fullmatch(cause):
        raise UnsafeValue("hangup cause", cause, "is not a cause name like NORMAL_CLEARING")
    return cause


def event_subscription(events: Iterable[str]) -> str:
    """
    C{event json <names>}; after C{CUSTOM} the names are event subclasses.
    """
    names = list(events)
    if not names:
        raise UnsafeValue("events", names, "at least one event is needed")
    for name in names:
        if not _EVENT_NAME.fullmatch(name):
            raise UnsafeValue("event", name, "is not an event or subclass name")
    return "event json " + " ".join(names)


def event_filter(header: str, value: str, delete: bool = False) -> str:
    """
    C{filter <header> <value>} (or C{filter delete ...}); the value runs to the end of
    the line, spaces included (C{parse_command}, C{filter}).
    """
    if not _HEADER_NAME.fullmatch(header) or header.lower() in {"delete", "add"}:
        raise UnsafeValue("filter header", header, "is not a header name")
    _check_line_text("filter value", value)
    if not value or value != value.strip(" "):
        raise UnsafeValue("filter value", value, "must be non-empty without edge spaces")
    return f"filter {'delete ' if delete else ''}{header} {value}"


def unicast_addresses(
    local_ip: str, local_port: int, remote_ip: str, remote_port: int, transport: str
) -> dict[str, str]:
    """
    The headers of a C{sendmsg} C{unicast} call-command (C{switch_ivr_parse_event}).
    """
    headers = {}
    for what, ip, port in (("local", local_ip, local_port), ("remote", remote_ip, remote_port)):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise UnsafeValue(f"{what}-ip", ip, "is not an IP address") from None
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise UnsafeValue(f"{what}-port", port, "is not a port number")
        headers[f"{what}-ip"] = ip
        headers[f"{what}-port"] = str(port)
    if transport not in ("udp", "tcp"):
        raise UnsafeValue("transport", transport, "must be udp or tcp")
    headers["transport"] = transport
    return headers


def unicast_flags(flags: str) -> str:
    if flags != "native":
        raise UnsafeValue("unicast flags", flags, "the only flag FreeSWITCH knows is native")
    return flags


# ---------------------------------------------------------------------------------------
# originate


def originate(
    *,
    call_uuid: str,
    gateway: str,
    destination: str,
    timeout_s: int,
    caller_id_number: str | None = None,
    caller_id_name: str | None = None,
    ignore_early_media: bool = True,
    sip_headers: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    app: str = "park",
) -> str:
    """
    The API command (for C{api}/C{bgapi}) that places one call and parks it:

    C{originate {origination_uuid=U,ignore_early_media=true,originate_timeout=N,
    origination_caller_id_number=...,sip_h_X-Key=value}<gateway>/<destination> &park()}

    @param sip_headers: extra SIP headers of the INVITE, names C{X-...}.
    @param variables: further channel variables (names of our choosing, not a user's).
    """
    if not isinstance(timeout_s, int) or isinstance(timeout_s, bool) or not 1 <= timeout_s <= 3600:
        raise UnsafeValue("originate timeout", timeout_s, "must be 1-3600 seconds")
    pairs = [
        ("origination_uuid", uuid(call_uuid, "call uuid")),
        ("ignore_early_media", "true" if ignore_early_media else "false"),
        ("originate_timeout", str(timeout_s)),
    ]
    if caller_id_number is not None:
        pairs.append(("origination_caller_id_number", caller_id_number))
    if caller_id_name is not None:
        pairs.append(("origination_caller_id_name", caller_id_name))
    for name, value in (sip_headers or {}).items():
        if not _SIP_HEADER.fullmatch(name):
            raise UnsafeValue("SIP header name", name, "must be X- followed by [A-Za-z0-9_-]")
        pairs.append(("sip_h_" + name, value))
    pairs.extend((variables or {}).items())
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise UnsafeValue("channel variable", name, "is given twice")
        seen.add(name)
    block = ",".join(channel_variable(name, value) for name, value in pairs)
    return f"originate {{{block}}}{dial_string(gateway, destination)} &{application_name(app)}()"


def dial_string(gateway: str, destination: str) -> str:
    """
    C{<gateway>/<destination>}: plain names only, since C{| , [ ] { } ' " :_:} and spaces
    all mean something in a dial string and sofia reads C{;} parameters from it.
    """
    if not _GATEWAY.fullmatch(gateway) or ":_:" in gateway:
        raise UnsafeValue("gateway", gateway, "is not a plain gateway name like sofia/gateway/x")
    if not _DESTINATION.fullmatch(destination):
        raise UnsafeValue(
            "destination", destination, "must be digits/letters (optionally +, @host[:port])"
        )
    return f"{gateway}/{destination}"


def channel_variable(name: str, value: str) -> str:
    """
    C{name=value} for the C{{...}} block of an originate string.

    Spaces become C{\\s} and commas C{\\,}: the API's split at spaces turns C{\\s} into a
    space and leaves C{\\,} alone, the split at commas turns C{\\,} into a comma.  Anything
    that the three splitting levels or the brace counting would read differently is
    refused: C{{ } [ ] | ' " \\ ^}, C{:_:}, control characters, empty values (dropped by
    FreeSWITCH) and spaces at either end (trimmed by FreeSWITCH).
    """
    if not _VARIABLE_NAME.fullmatch(name):
        raise UnsafeValue("channel variable name", name, "is not a variable name")
    what = f"channel variable {name}"
    if not isinstance(value, str) or not value:
        raise UnsafeValue(what, value, "must be a non-empty string")
    if len(value) > MAX_VALUE_LENGTH:
        raise UnsafeValue(what, value[:40] + "...", f"is longer than {MAX_VALUE_LENGTH}")
    if _CONTROL.search(value):
        raise UnsafeValue(what, value, "contains a control character")
    bad = set(value) & set("{}[]|'\"\\^")
    if bad:
        raise UnsafeValue(what, value, f"contains {''.join(sorted(bad))}")
    if ":_:" in value:
        raise UnsafeValue(what, value, "contains :_: (FreeSWITCH's enterprise delimiter)")
    if value != value.strip():
        raise UnsafeValue(what, value, "FreeSWITCH trims spaces at either end")
    return name + "=" + value.replace(" ", "\\s").replace(",", "\\,")


# ---------------------------------------------------------------------------------------
# application arguments (sendmsg execute)


def sound_path(files_dir: str, name: str) -> str:
    """
    The absolute path of C{name} inside C{files_dir}, as FreeSWITCH sees it; a name that
    would leave the directory, or that holds characters other than C{[A-Za-z0-9_.-/]},
    is refused.  Pure path logic: the files live on the FreeSWITCH host.
    """
    base = _absolute_path("files_dir", files_dir)
    if not name or name.startswith("/"):
        raise UnsafeValue("file name", name, "must be a relative name")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _PATH_PART.fullmatch(part):
            raise UnsafeValue(
                "file name", name, "must be [A-Za-z0-9_.-] names joined by / with no .."
            )
    return posixpath.join(base, *parts)


def silence_stream(ms: int) -> str:
    _check_int("silence", ms, 1, 600_000)
    return f"silence_stream://{ms}"


def tone_stream(on_ms: int, off_ms: int, *frequencies: int) -> str:
    """
    A TGML tone, e.g. C{tone_stream://%(500,0,1000)} for a 500 ms 1 kHz beep.
    """
    _check_int("tone on", on_ms, 1, 60_000)
    _check_int("tone off", off_ms, 0, 60_000)
    if not 1 <= len(frequencies) <= 4:
        raise UnsafeValue("tone frequencies", frequencies, "one to four frequencies")
    for frequency in frequencies:
        _check_int("tone frequency", frequency, 1, 20_000)
    return "tone_stream://%(" + ",".join(map(str, (on_ms, off_ms, *frequencies))) + ")"


_SOURCE = re.compile(
    r"/(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+"
    r"|silence_stream://[0-9]{1,6}"
    r"|tone_stream://%\([0-9]{1,5}(?:,[0-9]{1,5}){2,5}\)"
    r"|http_cache://https?://[A-Za-z0-9._~:/?#@&=%+-]+"
)
# What a recording URL may hold: RFC 3986's unreserved and the delimiters a path and query
# need; not ! $ ' ( ) * , ; [ ] { } | ^ \ or spaces, which file strings, variable
# expansion or the argument splitter would read.
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~:/?#@&=%+-]*)?")


def url_source(url: str) -> str:
    """
    C{http_cache://<url>}: a recording fetched (and cached) by FreeSWITCH's mod_http_cache.
    """
    if not isinstance(url, str) or len(url) > 2048 or not _URL.fullmatch(url):
        raise UnsafeValue(
            "url",
            url,
            "must be http(s)://host[:port]/path with no spaces, quotes, ! $ , ; or brackets",
        )
    return "http_cache://" + url


def playback(source: str) -> str:
    """
    The argument of C{playback}: a path from L{sound_path}, a L{url_source}, or a
    L{silence_stream} or L{tone_stream}.
    """
    if not _SOURCE.fullmatch(source) or {".", ".."} & set(source.split("/")):
        raise UnsafeValue(
            "playback source", source, "use sound_path, silence_stream or tone_stream"
        )
    return source


def speak(engine: str, voice: str, text: str) -> str:
    """
    The argument of C{speak}: C{engine|voice|text}.

    C{speak} splits at the first two C{|} and takes the rest verbatim, C{|} included
    (C{mod_dptools.c} C{speak_function}).  Line breaks and tabs become spaces (one line
    per header, and the voice reads them as pauses anyway); text that variable expansion
    would rewrite (C{${}, a backslash) and other control characters are refused.
    """
    for what, name in (("tts engine", engine), ("tts voice", voice)):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise UnsafeValue(what, name, "is not a plain name")
    return f"{engine}|{voice}|{_spoken_text(text)}"


def say_prompt(text: str, engine: str | None = None, voice: str | None = None) -> str:
    """
    A spoken prompt for L{play_and_get_digits}.

    With C{engine} and C{voice}: C{tts://<engine>|<voice>|<text>}, the TTS file format
    of C{mod_dptools} (C{tts_file_open} splits at the first two C{|}; the text keeps the
    rest), played like any file (PLAYBACK_START/STOP).  Without them: C{say:<text>},
    spoken with the channel's C{tts_engine}/C{tts_voice} variables; with no
    C{tts_engine} set FreeSWITCH logs "Invalid Args" and plays nothing.

    Since 1.10 (FS-11237) C{switch_ivr_play_file} takes everything after C{say:} as the
    text, so C{say:flite:slt:Hello} would speak "flite:slt:Hello" with the channel's
    engine, or nothing at all: an engine and voice cannot travel in a C{say:} prompt.
    The text of the C{tts://} form may not hold C{'}, the quote character of that split.
    """
    if engine is None and voice is None:
        return "say:" + _spoken_text(text)
    for what, name in (("tts engine", engine), ("tts voice", voice)):
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise UnsafeValue(what, name, "is not a plain name")
    spoken = _spoken_text(text)
    if "'" in spoken:
        raise UnsafeValue("text", text, "contains ', the quote character of a tts:// prompt")
    return f"tts://{engine}|{voice}|{spoken}"


def play_and_get_digits(
    *,
    min_digits: int,
    max_digits: int,
    tries: int,
    timeout_ms: int,
    terminators: str,
    prompt: str,
    invalid_prompt: str,
    var_name: str,
    regex: str = "",
    digit_timeout_ms: int | None = None,
) -> str:
    """
    The argument of C{play_and_get_digits}: C{min max tries timeout terminators prompt
    invalid var regex [digit_timeout]}, split at spaces by C{switch_separate_string}.

    Prompts come from L{playback}'s sources or L{say_prompt} (C{say:} or C{tts://}); each
    token is quoted when it holds a space.  An empty C{regex} accepts any digits;
    C{terminators} C{""} means none.
    """
    _check_int("min digits", min_digits, 1, 100)
    _check_int("max digits", max_digits, min_digits, 100)
    _check_int("tries", tries, 1, 20)
    _check_int("timeout", timeout_ms, 1, 600_000)
    if terminators and not _TERMINATORS.fullmatch(terminators):
        raise UnsafeValue("terminators", terminators, "must be DTMF keys like # or *")
    if not _NAME.fullmatch(var_name):
        raise UnsafeValue("variable name", var_name, "is not a variable name")
    prompts = []
    for what, source in (("prompt", prompt), ("invalid prompt", invalid_prompt)):
        if source.startswith("say:"):
            prompts.append(say_prompt(source[4:]))
        elif source.startswith("tts://"):
            engine, _, rest = source[6:].partition("|")
            voice, _, text = rest.partition("|")
            prompts.append(say_prompt(text, engine, voice))
        else:
            try:
                prompts.append(playback(source))
            except UnsafeValue as e:
                raise UnsafeValue(what, source, e.problem) from None
    tokens = [
        str(min_digits),
        str(max_digits),
        str(tries),
        str(timeout_ms),
        terminators or "none",
        *prompts,
        var_name,
        regex,
    ]
    if digit_timeout_ms is not None:
        _check_int("digit timeout", digit_timeout_ms, 1, 600_000)
        tokens.append(str(digit_timeout_ms))
    return " ".join(_argument_token(what, token) for what, token in zip(_PAGD_NAMES, tokens))


_PAGD_NAMES = (
    "min",
    "max",
    "tries",
    "timeout",
    "terminators",
    "prompt",
    "invalid prompt",
    "variable",
    "regex",
    "digit timeout",
)


def conference(name: str, profile: str = "default") -> str:
    """
    The argument of C{conference}: C{<name>@<profile>} (names like C{CONF-<uuid>}).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise UnsafeValue("conference name", name, "must be [A-Za-z0-9_-]")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", profile):
        raise UnsafeValue("conference profile", profile, "must be [A-Za-z0-9_-]")
    return f"{name}@{profile}"


def conference_name(conf_uuid: str) -> str:
    """
    C{CONF-<uuid>}: the name of a conference iradialer creates.
    """
    return "CONF-" + uuid(conf_uuid, "conference uuid")


# ---------------------------------------------------------------------------------------
# API command lines


def uuid_kill(call_uuid: str, cause: str | None = None) -> str:
    line = "uuid_kill " + uuid(call_uuid)
    return line + (" " + hangup_cause(cause) if cause else "")


def uuid_exists(call_uuid: str) -> str:
    return "uuid_exists " + uuid(call_uuid)


def uuid_answer(call_uuid: str) -> str:
    return "uuid_answer " + uuid(call_uuid)


def uuid_break(call_uuid: str, all_queued: bool = False) -> str:
    """
    Stop the application (e.g. a playback) running on the call; C{all} also drops queued
    ones.
    """
    return "uuid_break " + uuid(call_uuid) + (" all" if all_queued else "")


def uuid_getvar(call_uuid: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UnsafeValue("variable name", name, "is not a variable name")
    return f"uuid_getvar {uuid(call_uuid)} {name}"


def uuid_setvar(call_uuid: str, name: str, value: str) -> str:
    """
    C{uuid_setvar <uuid> <name> <value>}; the value is the API's third space-separated
    argument (quoted when it holds spaces).
    """
    if not _NAME.fullmatch(name):
        raise UnsafeValue("variable name", name, "is not a variable name")
    if not value:
        raise UnsafeValue("variable value", value, "is empty (that would unset it)")
    return f"uuid_setvar {uuid(call_uuid)} {name} {_argument_token('variable value', value)}"


def uuid_dump_json(call_uuid: str) -> str:
    return f"uuid_dump {uuid(call_uuid)} json"


def uuid_send_dtmf(call_uuid: str, digits: str, duration_ms: int | None = None) -> str:
    """
    C{uuid_send_dtmf <uuid> <digits>[@<ms>]}: the far end hears the digits.
    """
    line = f"uuid_send_dtmf {uuid(call_uuid)} {dtmf_digits(digits)}"
    if duration_ms is not None:
        _check_int("DTMF duration", duration_ms, 40, 10_000)
        line += f"@{duration_ms}"
    return line


def dtmf_digits(digits: str) -> str:
    """
    DTMF keys C{0-9 A-D * #}, and C{w}/C{W} for half-second/one-second pauses.
    """
    if not isinstance(digits, str) or not 1 <= len(digits) <= 128 or not _DTMF.fullmatch(digits):
        raise UnsafeValue("DTMF digits", digits, "must be 0-9 A-D * # (w/W to pause)")
    return digits


def uuid_transfer_to_conference(call_uuid: str, conference_arg: str, then_park: bool = True) -> str:
    """
    C{uuid_transfer <uuid> 'conference:<name>@<profile>,park' inline}: the call leaves
    its park for the conference and, once kicked out, parks again.  The single quotes
    keep the inline dialplan one argument (C{switch_separate_string} strips them).
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+@[A-Za-z0-9_-]+", conference_arg):
        raise UnsafeValue("conference", conference_arg, "build it with conference()")
    apps = f"conference:{conference_arg}" + (",park" if then_park else "")
    return f"uuid_transfer {uuid(call_uuid)} '{apps}' inline"


def uuid_park(call_uuid: str) -> str:
    """
    C{uuid_transfer <uuid> park inline}: re-park (ends a conference, restarts unicast).
    """
    return f"uuid_transfer {uuid(call_uuid)} park inline"


def conference_member(conference_name: str, action: str, call_uuid: str) -> str:
    """
    C{conference <name> <action> uuid=<call uuid>}, e.g. C{mute}; FreeSWITCH finds the
    member by its channel variable C{uuid} (C{conference_api.c}, member target C{var=val}).
    """
    if action not in _CONFERENCE_ACTIONS:
        raise UnsafeValue(
            "conference action", action, f"must be one of {sorted(_CONFERENCE_ACTIONS)}"
        )
    conference(conference_name)
    return f"conference {conference_name} {action} uuid={uuid(call_uuid)}"


def conference_json_list(conference_name: str) -> str:
    conference(conference_name)
    return f"conference {conference_name} json_list"


SHOW_CHANNELS = "show channels as json"
STATUS = "status"


# ---------------------------------------------------------------------------------------


def _absolute_path(what: str, path: str) -> str:
    if not path.startswith("/"):
        raise UnsafeValue(what, path, "must be an absolute path")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", "..") or not _PATH_PART.fullmatch(part):
            raise UnsafeValue(what, path, "must be [A-Za-z0-9_.-] names joined by /")
    return "/" + "/".join(parts)


def _check_int(what: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise UnsafeValue(what, value, f"must be a whole number {low}-{high}")


def _check_line_text(what: str, text: str) -> None:
    if not isinstance(text, str):
        raise UnsafeValue(what, text, "must be a string")
    if _CONTROL.search(text):
        raise UnsafeValue(what, text, "contains a control character")


def _check_not_expanded(what: str, text: str) -> None:
    """
    Refuse what C{switch_channel_expand_variables} would rewrite: a C{$} followed (maybe
    after backslashes) by C{{}, and any backslash (C{\\\\ \\n \\s \\t \\'} switch
    expansion on; C{\\$} and C{\\\\} are then rewritten).
    """
    if re.search(r"\$\\*\{", text):
        raise UnsafeValue(what, text, "contains ${, which FreeSWITCH would expand")
    if "\\" in text:
        raise UnsafeValue(what, text, "contains a backslash, which FreeSWITCH would rewrite")


def _spoken_text(text: str) -> str:
    if not isinstance(text, str):
        raise UnsafeValue("text", text, "must be a string")
    text = re.sub(r"[\r\n\t]", " ", text)
    _check_line_text("text", text)
    _check_not_expanded("text", text)
    if not text.strip():
        raise UnsafeValue("text", text, "is empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise UnsafeValue("text", text[:40] + "...", f"is longer than {MAX_TEXT_LENGTH}")
    return text


def _argument_token(what: str, value: str) -> str:
    """
    One argument of a space-separated argument list (C{switch_separate_string} with C{' '}),
    quoted with C{'...'} when it holds a space or is empty.

    Refused: C{'}; a backslash before C{\\ ' " n r t s $}, a space or the end (the
    splitter or variable expansion would rewrite it; C{\\d} and the like pass through
    unchanged, as the C{play_and_get_digits} capture shows for C{\\d+}); C{${}; control
    characters; spaces at either end; C{^^} at the start.
    """
    _check_line_text(what, value)
    if "'" in value:
        raise UnsafeValue(what, value, "contains ', FreeSWITCH's quote character")
    if re.search(r"\\([\\'\"nrts$ ]|$)", value):
        raise UnsafeValue(what, value, "contains a backslash escape FreeSWITCH would rewrite")
    if re.search(r"\$\\*\{", value):
        raise UnsafeValue(what, value, "contains ${, which FreeSWITCH would expand")
    if value != value.strip(" "):
        raise UnsafeValue(what, value, "FreeSWITCH trims spaces at either end")
    if value.startswith("^^"):
        raise UnsafeValue(what, value, "^^ first in an argument list switches the delimiter")
    if not value or " " in value:
        return f"'{value}'"
    return value
