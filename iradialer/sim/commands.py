"""
The API commands (C{api} and C{bgapi}) the simulator answers, with mod_commands' argument
parsing and reply texts: C{originate}, C{uuid_*}, C{show channels}, C{status}, C{conference}.

A command returns its reply text, or a Deferred of it (only C{originate} waits).  A command
the simulator does not have answers like FreeSWITCH without that module:
C{-ERR <cmd> Command not found!}.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from iradialer.sim.channels import CALLING, Channel, PrivateCommand
from iradialer.sim.simulator import VERSION_HUMAN, Simulator
from iradialer.sim.wire import CAUSES, Event, separate_string, str2cause

if TYPE_CHECKING:
    Reply = str | Deferred[str]

SHOW_COLUMNS = (
    "uuid,direction,created,created_epoch,name,state,cid_name,cid_num,ip_addr,dest,application,"
    "application_data,dialplan,context,read_codec,read_rate,read_bit_rate,write_codec,write_rate,"
    "write_bit_rate,secure,hostname,presence_id,presence_data,accountcode,callstate,callee_name,"
    "callee_num,callee_direction,call_uuid,sent_callee_name,sent_callee_num,initial_cid_name,"
    "initial_cid_num,initial_ip_addr,initial_dest,initial_dialplan,initial_context"
).split(",")


def _dtmf_string(data: str) -> list[tuple[str, int]]:
    """C{switch_channel_queue_dtmf_string}: digits, each optionally C{@<ms>} long."""
    out = []
    for part in data.split("+") if "+" in data else [data]:
        digits, _, ms = part.partition("@")
        duration = int(ms) * 8 if ms.isdigit() else 2000
        out += [(d, duration) for d in digits if d in "0123456789*#ABCDabcd"]
    return out


class ApiCommands:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.table: dict[str, Callable[[str | None], Reply]] = {
            "originate": sim.originate,
            "uuid_kill": self.uuid_kill,
            "uuid_broadcast": self.uuid_broadcast,
            "uuid_break": self.uuid_break,
            "uuid_send_dtmf": self.uuid_send_dtmf,
            "uuid_recv_dtmf": self.uuid_recv_dtmf,
            "uuid_transfer": self.uuid_transfer,
            "uuid_park": self.uuid_park,
            "uuid_answer": self.uuid_answer,
            "uuid_exists": self.uuid_exists,
            "uuid_getvar": self.uuid_getvar,
            "uuid_setvar": self.uuid_setvar,
            "uuid_dump": self.uuid_dump,
            "show": self.show,
            "status": self.status,
            "conference": sim.conferences.api,
        }

    def execute(self, command: str, arg: str | None) -> Reply | None:
        """The reply, or None when there is no such command (the caller words the error)."""
        function = self.table.get(command.lower())
        if function is None:
            return None
        api = Event("API")
        api.add("API-Command", command)
        api.add("API-Command-Argument", arg)
        self.sim.fire(api, ("switch_loadable_module.c", "switch_api_execute", 3140))
        return function(arg)

    def _locate(self, uuid: str | None) -> Channel | None:
        return self.sim.channel(uuid)

    def uuid_kill(self, arg: str | None) -> str:
        if not arg:
            return "-USAGE: <uuid> [cause]\n"
        uuid, _, cause = arg.partition(" ")
        channel = self._locate(uuid)
        if channel is None or channel.destroyed:
            return "-ERR No such channel!\n"
        channel.hangup(str2cause(cause) if cause else CAUSES["NORMAL_CLEARING"])
        return "+OK\n"

    def uuid_broadcast(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 4) if arg else []
        if not arg or len(argv) < 2:
            return "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
        channel = self._locate(argv[0])
        if channel is None:
            return "-ERR invalid uuid\n"
        legs = argv[2].lower() if len(argv) > 2 else ""
        path = argv[1]
        app = "playback"
        colon = path.find(":")
        if colon >= 0 and path[colon + 1 : colon + 2] == ":":
            app, path = path[:colon], path[colon + 2 :]
        app, bang, cause = app.partition("!")
        if not legs or "aleg" in legs or "both" in legs:
            headers = [
                ("call-command", "execute"),
                ("execute-app-name", app),
                ("execute-app-arg", path),
                ("event-lock", "true"),
                ("lead-frames", "5"),
            ]
            if not legs or ("holdb" in legs and "bleg" not in legs):
                headers.append(("hold-bleg", "true"))
            channel.queue_private(PrivateCommand(headers, from_sendmsg=False))
        if bang:
            hangup = [
                ("call-command", "execute"),
                ("execute-app-name", "hangup"),
                ("execute-app-arg", cause or "normal_clearing"),
                ("event-lock", "true"),
            ]
            channel.queue_private(PrivateCommand(hangup, from_sendmsg=False))
        return "+OK Message sent\n"

    def uuid_break(self, arg: str | None) -> str:
        if not arg:
            return "-USAGE: <uuid> [all]\n"
        uuid, _, flag = arg.partition(" ")
        channel = self._locate(uuid)
        if channel is None:
            return "-ERR No such channel!\n"
        if "all" in flag:
            channel.private.clear()
        top = channel.top()
        if top is not None:
            top.stopped = True
            top.break_()
        return "+OK\n"

    def _dtmf_target(self, arg: str | None) -> tuple[Channel, str, str] | str:
        """C{<uuid> <dtmf_data>}: the channel, the uuid and the digits, or the error reply."""
        argv = separate_string(arg, " ", 2) if arg else []
        if len(argv) < 2 or not argv[0] or not argv[1]:
            return "-USAGE: <uuid> <dtmf_data>\n"
        channel = self._locate(argv[0])
        if channel is None:
            return "-ERR Cannot locate session!\n"
        return channel, argv[0], argv[1]

    def uuid_send_dtmf(self, arg: str | None) -> str:
        target = self._dtmf_target(arg)
        if isinstance(target, str):
            return target
        channel, uuid, digits = target
        channel.dtmf_sent.append(digits)
        return f"+OK {uuid} sent DTMF {digits}.\n"

    def uuid_recv_dtmf(self, arg: str | None) -> str:
        """Digits as if the far end sent them (DTMF-Source APP, C{digit@ms} lengths)."""
        target = self._dtmf_target(arg)
        if isinstance(target, str):
            return target
        channel, uuid, digits = target
        for digit, duration in _dtmf_string(digits):
            channel.receive_dtmf(digit, source="APP", duration=duration)
        return f"+OK {uuid} received DTMF {digits}.\n"

    def uuid_transfer(self, arg: str | None) -> str:
        usage = "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        argv = separate_string(arg, " ", 5) if arg else []
        if len(argv) < 2:
            return usage
        channel = self._locate(argv[0])
        if channel is None or not channel.alive:
            return "-ERR No such channel!\n"
        rest = argv[1:]
        if rest[0].startswith("-"):
            rest = rest[1:]  # no bridged legs in the simulator: -bleg/-both act on this leg
        if not rest:
            return usage
        dest = rest[0]
        dialplan = rest[1] if len(rest) > 1 else None
        context = rest[2] if len(rest) > 2 else None
        channel.transfer(dest, dialplan, context)
        return "+OK\n"

    def uuid_park(self, arg: str | None) -> str:
        if arg is None:
            return "-USAGE: <uuid>\n"
        channel = self._locate(arg)
        if channel is None or not channel.alive:
            return "-ERR No such channel!\n"
        channel.transfer("park", "inline", None)
        return "+OK\n"

    def uuid_answer(self, arg: str | None) -> str:
        if not arg:
            return "-USAGE: <uuid>\n"
        channel = self._locate(arg)
        if channel is None:
            return "-ERR No such channel!\n"
        return "+OK\n" if channel.answered else "-ERR Not answered\n"

    def uuid_exists(self, arg: str | None) -> str:
        channel = self._locate(arg)
        return "true" if channel is not None and not channel.destroyed else "false"

    def uuid_getvar(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 4) if arg else []
        if len(argv) < 2 or not argv[0]:
            return "-USAGE: <uuid> <var>\n"
        channel = self._locate(argv[0])
        if channel is None:
            return "-ERR No such channel!\n"
        if not argv[1]:
            return "-ERR No variable name specified!\n"
        value = channel.vars.get(argv[1])
        return value if value is not None else "_undef_"

    def uuid_setvar(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 3) if arg else []
        if len(argv) not in (2, 3) or not argv[0]:
            return "-USAGE: <uuid> <var> [value]\n"
        channel = self._locate(argv[0])
        if channel is None:
            return "-ERR No such channel!\n"
        if not argv[1]:
            return "-ERR No variable specified\n"
        channel.vars.set(argv[1], argv[2] if len(argv) == 3 else None)
        return "+OK\n"

    def uuid_dump(self, arg: str | None) -> str:
        argv = separate_string(arg, " ", 2) if arg else []
        if not argv or not argv[0]:
            return "-USAGE: <uuid> [format]\n"
        channel = self._locate(argv[0])
        if channel is None:
            return "-ERR No such channel!\n"
        fmt = argv[1].lower() if len(argv) > 1 else "txt"
        event = channel.event("CHANNEL_DATA", extended=True)
        self.sim.stamp(event, CALLING["CHANNEL_DATA"])
        if fmt == "xml":
            return event.xml().decode("utf-8", "surrogateescape")
        if fmt == "json":
            return event.json().decode("utf-8", "surrogateescape")
        return event.plain(encode=fmt != "plain").decode("utf-8", "surrogateescape")

    def show(self, arg: str | None) -> str:
        argv = (arg or "").split()
        if not argv or argv[0].lower() not in ("channels", "calls"):
            return "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules|nat_map|say|interfaces|interface_types|tasks|limits|status\n"  # noqa: E501
        rows = [self._row(c) for c in self.sim.channels.values() if not c.destroyed]
        if len(argv) > 1 and argv[1].lower() == "count":
            return f"\n{len(rows)} total.\n"
        if len(argv) > 2 and argv[1].lower() == "like":
            rows = [r for r in rows if any(argv[2] in v for v in r.values())]
        if "as" in [a.lower() for a in argv] and argv[-1].lower() == "json":
            if not rows:
                return '{"row_count": 0}\n'
            return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
        if not rows:
            return "\n0 total.\n"
        lines = [",".join(SHOW_COLUMNS)]
        lines += [",".join(row[c] for c in SHOW_COLUMNS) for row in rows]
        return "\n".join(lines) + f"\n\n{len(rows)} total.\n"

    def _row(self, channel: Channel) -> dict[str, str]:
        profile = channel.profile
        created = channel.created
        codec, rate, bits = (str(x) for x in channel.codec) if channel.media_up else ("", "", "")
        return {
            "uuid": channel.uuid,
            "direction": "outbound",
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)),
            "created_epoch": str(int(created)),
            "name": channel.name,
            "state": channel.running_state,
            "cid_name": profile.caller_id_name,
            "cid_num": profile.caller_id_number,
            "ip_addr": profile.network_addr,
            "dest": channel.number,
            "application": channel.vars.get("current_application") or "",
            "application_data": channel.vars.get("current_application_data") or "",
            "dialplan": profile.dialplan,
            "context": profile.context,
            "read_codec": codec,
            "read_rate": rate,
            "read_bit_rate": bits,
            "write_codec": codec,
            "write_rate": rate,
            "write_bit_rate": bits,
            "secure": "",
            "hostname": self.sim.hostname,
            "presence_id": "",
            "presence_data": "",
            "accountcode": "",
            "callstate": channel.callstate,
            "callee_name": profile.callee_id_name,
            "callee_num": profile.callee_id_number,
            "callee_direction": "RECV" if channel.answered else "",
            "call_uuid": channel.uuid,
            "sent_callee_name": "",
            "sent_callee_num": "",
            "initial_cid_name": profile.orig_caller_id_name,
            "initial_cid_num": profile.orig_caller_id_number,
            "initial_ip_addr": "",
            "initial_dest": channel.number,
            "initial_dialplan": "xml",
            "initial_context": "default",
        }

    def status(self, arg: str | None) -> str:
        sim = self.sim
        count = len(sim.channels)
        return (
            f"UP {sim.uptime_text()}\n"
            f"FreeSWITCH (Version {VERSION_HUMAN}) is ready\n"
            f"{sim.sessions_since_startup} session(s) since startup\n"
            f"{count} session(s) - peak {sim.peak_sessions}, last 5min {sim.peak_sessions} \n"
            "0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n"
            "1000 session(s) max\n"
            "min idle cpu 0.00/100.00\n"
            "Current Stack Size/Max 240K/8192K\n"
        )
