"""
A model, for tests, of how FreeSWITCH (1.11) reads the command text iradialer sends.

Written from reading FreeSWITCH's C (names below), to check L{iradialer.protocols.fscommand}
against FreeSWITCH's behaviour rather than against its own assumptions: whatever a builder
produces, this model must read back exactly the values the builder was given.

 - L{read_packets}: C{mod_event_socket.c} C{read_packet} (command line + headers).
 - L{separate_string}: C{switch_utils.c} C{switch_separate_string},
   C{separate_string_blank_delim}, C{separate_string_char_delim},
   C{cleanup_separated_string}, C{unescape_char}.
 - L{find_end_paren}: C{switch_utils.c} C{switch_find_end_paren}.
 - L{parse_originate}: C{mod_commands.c} C{originate_function}, then
   C{switch_ivr_originate.c} (C{:_:}, C{{...}} via C{switch_event_create_brackets}, C{|},
   C{,}).
 - L{expansion_would_change}: C{switch_utils.h} C{switch_string_var_check_const} and
   C{switch_string_has_escaped_data}, the gate of C{switch_channel_expand_variables}.
"""

from __future__ import annotations

_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def _cleanup(s: str, delim: str) -> str:
    """
    C{cleanup_separated_string}: undo escapes and quotes, trim spaces.
    """
    i = 0
    while i < len(s) and s[i] == " ":
        i += 1
    out: list[str] = []
    end: int | None = None
    inside = False
    while i < len(s):
        c = s[i]
        escaped = False
        if c == "\\":
            e = s[i + 1] if i + 1 < len(s) else "\0"
            if e in ("'", '"', "\\") or (delim and e == delim):
                unescaped = e
            else:
                unescaped = _UNESCAPE.get(e, e)
            if unescaped != e or e in ("'", '"', "\\") or (delim and e == delim):
                i += 1
                out.append(unescaped)
                end = len(out)
                escaped = True
        if not escaped:
            if c == "'" and (inside or "'" in s[i + 1 :]):
                inside = not inside
                if inside:
                    end = len(out)
            else:
                out.append(c)
                if c != " " or inside:
                    end = len(out)
        i += 1
    return "".join(out[:end]) if end is not None else "".join(out)


def separate_string(buf: str, delim: str, arraylen: int) -> list[str]:
    """
    C{switch_separate_string}.
    """
    if buf.startswith("^^") and len(buf) >= 4:
        delim = buf[2]
        buf = buf[3:]
    if delim == " ":
        return _blank_delim(buf, arraylen)
    return _char_delim(buf, delim, arraylen)


def _char_delim(buf: str, delim: str, arraylen: int) -> list[str]:
    starts, cuts = _char_delim_cuts(buf, delim, arraylen)
    return [_cleanup(_piece(buf, starts, cuts, n), delim) for n in range(len(starts))]


def _char_delim_cuts(buf: str, delim: str, arraylen: int) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    cuts: list[int] = []
    i = 0
    inside = False
    state = "START"
    while i < len(buf) and len(starts) < arraylen:
        if state == "START":
            starts.append(i)
            state = "FIND"
            continue
        c = buf[i]
        if c == "\\":
            i += 1
        elif c == "'" and (inside or "'" in buf[i + 1 :]):
            inside = not inside
        elif c == delim and not inside:
            cuts.append(i)
            state = "START"
        i += 1
    return starts, cuts


def _blank_delim(buf: str, arraylen: int) -> list[str]:
    starts: list[int] = []
    cuts: list[int] = []
    i = 0
    inside = False
    state = "START"
    while i < len(buf) and len(starts) < arraylen:
        c = buf[i]
        if state == "START":
            starts.append(i)
            state = "SKIP_INITIAL"
            continue
        if state == "SKIP_INITIAL":
            if c == " ":
                i += 1
            else:
                state = "FIND"
            continue
        if state == "FIND":
            if c == "\\":
                i += 1
            elif c == "'":
                inside = not inside
            elif c == " " and not inside:
                cuts.append(i)
                state = "SKIP_ENDING"
            i += 1
            continue
        if c == " ":
            i += 1
        else:
            state = "START"
    return [_cleanup(_piece(buf, starts, cuts, n), "") for n in range(len(starts))]


def _piece(buf: str, starts: list[int], cuts: list[int], n: int) -> str:
    """
    The C code writes NUL at each cut; a piece runs from its start to the next NUL.
    """
    start = starts[n]
    later = [c for c in cuts if c >= start]
    return buf[start : later[0]] if later else buf[start:]


def find_end_paren(s: str, open_: str, close: str) -> int | None:
    i = 0
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s) or s[i] != open_:
        return None
    depth = 1
    for j in range(i + 1, len(s)):
        if s[j] == open_ and open_ != close:
            depth += 1
        elif s[j] == close:
            depth -= 1
            if not depth:
                return j
    return None


class OriginateParse:
    def __init__(self) -> None:
        self.enterprise = False
        self.variables: list[tuple[str, str]] = []
        self.alternatives: list[list[str]] = []
        self.exten = ""
        self.argc = 0


def parse_originate(arg: str) -> OriginateParse:
    """
    What C{originate <arg>} (API) makes of C{arg}: the C{{}} variables, the destinations
    (C{|} alternatives of C{,} parallel legs) and the extension.
    """
    result = OriginateParse()
    argv = separate_string(arg.strip(), " ", 10)
    result.argc = len(argv)
    if len(argv) < 2:
        return result
    dial, result.exten = argv[0], argv[1]
    if ":_:" in dial:
        result.enterprise = True
        return result
    data = dial.lstrip(" ")
    while data.startswith("{"):
        end = find_end_paren(data, "{", "}")
        if end is None:
            raise ValueError("Parse Error")
        inner = data[1:end]
        delim = ","
        if inner.startswith("^^") and len(inner) >= 3:
            delim = inner[2]
            inner = inner[3:]
        for part in separate_string(inner, delim, 1024):
            pair = separate_string(part, "=", 2)
            if len(pair) == 2:
                result.variables.append((pair[0], pair[1]))
        data = data[end + 1 :].lstrip(" ")
    for alternative in separate_string(data, "|", 128):
        result.alternatives.append(separate_string(alternative, ",", 128))
    return result


def read_packets(data: bytes) -> list[tuple[str, list[tuple[str, str]]]]:
    """
    C{read_packet}: each packet's command line and headers.  Modelled for what iradialer
    sends: no C{\\r} (FreeSWITCH looks for the first C{\\r} of the whole rest of the
    packet when it has one) and no body.
    """
    text = data.decode("utf-8")
    assert "\r" not in text
    packets = []
    i = 0
    while i < len(text):
        while i < len(text) and text[i] in "\r\n":
            i += 1
        if i >= len(text):
            break
        crcount = 0
        j = i
        while j < len(text):
            if text[j] == "\n":
                crcount += 1
            elif text[j] != "\r":
                crcount = 0
            j += 1
            if crcount == 2:
                break
        block = text[i:j]
        i = j
        lines = [line for line in block.replace("\r", "\n").split("\n")]
        command = lines[0]
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            if ":" in line:
                name, _, value = line.partition(":")
                assert name.lower() != "content-length"
                headers.append((name, value.lstrip(" ")))
        packets.append((command, headers))
    return packets


def expansion_would_change(text: str) -> bool:
    """
    Whether C{switch_channel_expand_variables} would process C{text} at all.
    """
    dollar = False
    for c in text:
        if c == "$":
            dollar = True
        elif dollar:
            if c == "{":
                return True
            if c != "\\":
                dollar = False
    i = text.find("\\")
    while i >= 0:
        nxt = text[i + 1 : i + 2]
        if nxt in ("\\", "n", "s", "t", "'"):
            return True
        i = text.find("\\", i + 1)
    return False


def speak_parts(arg: str) -> tuple[str, str, str]:
    """
    C{speak_function}: engine, voice, and the text as it was (not cleaned up).
    """
    assert not arg.startswith((" ", "^^"))
    parts = separate_string(arg, "|", 3)
    if len(parts) != 3:
        raise ValueError("not engine|voice|text")
    starts, _ = _char_delim_cuts(arg, "|", 3)
    start = starts[2]
    while start < len(arg) and arg[start] == " ":
        start += 1
    return parts[0], parts[1], arg[start:]
