"""
The simulator engine: channels, conferences, media and the event stream, on one injected
clock.  Event Socket connections (L{iradialer.sim.server}) are its listeners; tests may
drive it directly and inspect its channels.
"""

from __future__ import annotations

import re
import socket
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from iradialer.sim.apps import Applications
from iradialer.sim.channels import Channel
from iradialer.sim.conference import Conferences
from iradialer.sim.http_cache import HttpCache
from iradialer.sim.media import MediaEngine
from iradialer.sim.scenarios import ScenarioPlan
from iradialer.sim.wire import CAUSES, Event, cause_name, separate_string

VERSION = "1.11.3-dev+git~20260821T141014Z~cc93a683ca~64bit"
VERSION_HUMAN = "1.11.3-dev git cc93a68 2026-08-21 14:10:14Z 64bit"
ORIGINATE_USAGE = (
    "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] "
    "[<cid_name>] [<cid_num>] [<timeout_sec>]\n"
)
HEARTBEAT_SECONDS = 20.0
DIGIT_SPACING = 0.3  # seconds between the digits a simulated callee presses


class EventListener(Protocol):
    def deliver(self, event: Event) -> None: ...


class Simulator:
    """
    A stand-in for one FreeSWITCH node.

    @param reactor: provides C{seconds}/C{callLater} (the clock) and C{listenUDP} (media).
    @param sounds_dir: where relative C{playback} paths are looked up.
    @param record_seconds: how much audio written back to each call is kept.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        scenarios: ScenarioPlan | None = None,
        sounds_dir: Path | None = None,
        record_seconds: float = 30.0,
    ) -> None:
        self.reactor = reactor
        self.clock = reactor
        self.plan = scenarios or ScenarioPlan()
        self.sounds_dir = sounds_dir or Path.cwd()
        self.core_uuid = str(uuidlib.uuid4())
        self.hostname = socket.gethostname()
        self.started = self.clock.seconds()
        self.sequence = 0
        self.sessions_since_startup = 0
        self.peak_sessions = 0
        self.channels: dict[str, Channel] = {}
        self.listeners: list[EventListener] = []
        self.pending: dict[str, Deferred[str]] = {}
        self.apps = Applications(self)
        self.conferences = Conferences(self)
        self.media = MediaEngine(self, reactor, record_seconds)
        self.http_cache = HttpCache(reactor)
        self.callee = Callee(self)
        self._heartbeat: LoopingCall | None = None

    # Lifecycle

    def start(self) -> None:
        """Begin the HEARTBEAT every 20 s (the first one 20 s from now)."""
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = self.clock
        self._heartbeat.start(HEARTBEAT_SECONDS, now=False)

    def stop(self) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        for channel in list(self.channels.values()):
            channel.hangup(CAUSES["SYSTEM_SHUTDOWN"])
        self.media.stop_all()

    # Events

    def fire(self, event: Event, calling: tuple[str, str, int] | None, prefix: int = 0) -> None:
        """
        Stamp C{event} (L{stamp}) and hand it to every listener.
        """
        self.stamp(event, calling, prefix)
        for listener in list(self.listeners):
            listener.deliver(event)

    def stamp(self, event: Event, calling: tuple[str, str, int] | None, prefix: int = 0) -> None:
        """
        Add the headers every FreeSWITCH event starts with.  The first C{prefix} headers stay
        in front (a C{sendmsg}'s own headers in its PRIVATE_COMMAND echo).
        """
        self.sequence += 1
        now = self.clock.seconds()
        file, function, line = calling or ("switch_event.c", "switch_event_fire_detailed", 0)
        standard = [
            ("Event-Name", event.name if event.subclass is None else "CUSTOM"),
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", "127.0.0.1"),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))),
            ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))),
            ("Event-Date-Timestamp", str(int(round(now * 1_000_000)))),
            ("Event-Calling-File", file),
            ("Event-Calling-Function", function),
            ("Event-Calling-Line-Number", str(line)),
            ("Event-Sequence", str(self.sequence)),
        ]
        if event.subclass is not None:
            standard.insert(0, ("Event-Subclass", event.subclass))
        event.headers = event.headers[:prefix] + standard + event.headers[prefix:]

    def heartbeat(self) -> None:
        now = self.clock.seconds()
        event = Event("HEARTBEAT")
        event.extend(
            [
                ("Event-Info", "System Ready"),
                ("Up-Time", self.uptime_text()),
                ("FreeSWITCH-Version", VERSION),
                ("Uptime-msec", int((now - self.started) * 1000)),
                ("Session-Count", len(self.channels)),
                ("Max-Sessions", 1000),
                ("Session-Per-Sec", 30),
                ("Session-Per-Sec-Last", 0),
                ("Session-Per-Sec-Max", 0),
                ("Session-Per-Sec-FiveMin", 0),
                ("Session-Since-Startup", self.sessions_since_startup),
                ("Session-Peak-Max", self.peak_sessions),
                ("Session-Peak-FiveMin", self.peak_sessions),
                ("Idle-CPU", "100.000000"),
            ]
        )
        self.fire(event, ("switch_core.c", "send_heartbeat", 95))
        schedule = Event("RE_SCHEDULE")
        schedule.extend(
            [
                ("Task-ID", 1),
                ("Task-Desc", "heartbeat"),
                ("Task-Group", "core"),
                ("Task-Runtime", int(now + HEARTBEAT_SECONDS)),
            ]
        )
        self.fire(schedule, ("switch_scheduler.c", "switch_scheduler_execute", 73))

    def uptime_text(self) -> str:
        total_us = int((self.clock.seconds() - self.started) * 1_000_000)
        seconds, us = divmod(total_us, 1_000_000)
        ms, us = divmod(us, 1000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        years, days = divmod(days, 365)
        parts = [
            (years, "year"),
            (days, "day"),
            (hours, "hour"),
            (minutes, "minute"),
            (seconds, "second"),
            (ms, "millisecond"),
            (us, "microsecond"),
        ]
        return ", ".join(f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts)

    # Channels

    def media_port(self) -> int:
        """The RTP port FreeSWITCH would advertise (rtp-start-port 16384, even ports)."""
        self._rtp_port = getattr(self, "_rtp_port", 16382) + 2
        if self._rtp_port > 32766:
            self._rtp_port = 16384
        return self._rtp_port

    def next_session_id(self) -> int:
        self.sessions_since_startup += 1
        return self.sessions_since_startup

    def written_back(self, uuid: str) -> bytes:
        """What the caller sent to the call's unicast port(s): the audio it played."""
        return self.media.written_back(uuid)

    def channel(self, uuid: str | None) -> Channel | None:
        return self.channels.get(uuid or "")

    def channel_hung_up(self, channel: Channel) -> None:
        """Between CHANNEL_HANGUP_COMPLETE and CHANNEL_DESTROY: a failed originate reports."""
        pending = self.pending.pop(channel.uuid, None)
        if pending is not None:
            pending.callback(f"-ERR {cause_name(channel.hangup_cause or 0)}\n")

    def channel_destroyed(self, channel: Channel) -> None:
        self.channels.pop(channel.uuid, None)
        self.conferences.forget(channel)

    # originate

    def originate(self, arg: str | None) -> str | Deferred[str]:
        """
        C{originate <call url> <exten> [...]}: the reply now (usage, an immediate failure)
        or a Deferred that fires with C{+OK <uuid>} at answer or C{-ERR <CAUSE>}.
        """
        if not arg:
            return ORIGINATE_USAGE
        argv = separate_string(arg, " ", 10)
        if len(argv) < 2 or len(argv) > 7:
            return ORIGINATE_USAGE
        args: list[str | None] = [None if a.lower() == "undef" else a for a in argv]
        args += [None] * (7 - len(args))
        url, exten, dialplan, context, cid_name, cid_num, timeout_arg = args
        if url is None or exten is None:
            return ORIGINATE_USAGE
        variables, target = parse_dial_string(url)
        endpoint, _, rest = target.partition("/")
        if endpoint == "error":
            return f"-ERR {cause_name(_cause_from(rest))}\n"
        number = dialed_number(endpoint, rest)
        scenario = self.plan.for_number(number)
        if scenario.outcome.name == "gateway_down":
            return "-ERR GATEWAY_DOWN\n"
        var = dict(variables)
        uuid = var.get("origination_uuid") or str(uuidlib.uuid4())
        if uuid in self.channels:
            return "-ERR DESTINATION_OUT_OF_ORDER\n"
        timelimit = _int(var.get("originate_timeout")) or _int(timeout_arg) or 60
        if timelimit <= 0:
            timelimit = 60
        name = f"loopback/{number}-a" if endpoint == "loopback" else target
        channel = Channel(
            self,
            uuid=uuid,
            name=name,
            number=number,
            scenario=scenario,
            variables=variables,
            endpoint=endpoint,
            caller_id_name=var.get("origination_caller_id_name") or cid_name or "",
            caller_id_number=var.get("origination_caller_id_number") or cid_num or "0000000000",
        )
        if endpoint == "loopback":
            channel.profile.dialplan, channel.profile.source = "xml", "mod_loopback"
        if exten.startswith("&") and len(exten) > 1:
            app = exten[1:].split(")", 1)[0]
            app_name, _, app_arg = app.partition("(")
            channel.extension = [(app_name, app_arg)]
        else:
            channel.extension, channel.no_route = [], True
            channel.profile.destination_number = exten
        self.channels[uuid] = channel
        self.peak_sessions = max(self.peak_sessions, len(self.channels))
        result: Deferred[str] = Deferred()
        self.pending[uuid] = result
        self._start_call(channel, timelimit, old_uuid=str(uuidlib.uuid4()))
        return result

    def _start_call(self, channel: Channel, timelimit: int, old_uuid: str) -> None:
        if channel.endpoint == "loopback" and channel.vars.get("origination_uuid"):
            channel.fire("CHANNEL_UUID", pre=[("Old-Unique-ID", old_uuid)])
        channel.fire("CHANNEL_OUTGOING")
        channel.set_running_state("CS_INIT")
        channel.state = "CS_ROUTING"
        channel.fire("CHANNEL_CREATE")
        channel.fire("CHANNEL_ORIGINATE")
        channel.set_running_state("CS_ROUTING")
        channel.set_running_state("CS_CONSUME_MEDIA", "CS_CONSUME_MEDIA")
        outcome = channel.scenario.outcome
        if outcome.rings and channel.endpoint != "loopback":
            channel.mark_ring_ready()
        # switch_ivr_originate compares whole epoch seconds: the limit ends on a second tick.
        start = channel.created
        deadline = (int(start) + timelimit) - start
        channel.later(deadline, self._originate_timeout, channel)
        if outcome.name != "no_answer":
            channel.later(channel.scenario.ring_ms / 1000.0, self._far_end_decides, channel)

    def _far_end_decides(self, channel: Channel) -> None:
        if not channel.alive or channel.answered:
            return
        outcome = channel.scenario.outcome
        if outcome.cause is None:
            self._answer(channel)
        else:
            channel.hangup(
                CAUSES[outcome.cause],
                disposition="recv_refuse",
                sip_status=outcome.sip_status,
                sip_phrase=outcome.sip_phrase,
            )

    def _originate_timeout(self, channel: Channel) -> None:
        if channel.alive and not channel.answered:
            channel.hangup(
                CAUSES["NO_ANSWER"], disposition="send_cancel", sip_status=487, sip_phrase="CANCEL"
            )

    def _answer(self, channel: Channel) -> None:
        for timer in channel.timers:
            if timer.active():
                timer.cancel()
        channel.timers.clear()
        channel.mark_answered()
        pending = self.pending.pop(channel.uuid, None)
        if pending is not None:
            pending.callback(f"+OK {channel.uuid}\n")
        if channel.alive:
            self.callee.answered(channel)
            channel.begin_execute()


class Callee:
    """The scenario's far end after answer: digits it presses, when it hangs up."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def answered(self, channel: Channel) -> None:
        scenario = channel.scenario
        for dtmf in scenario.dtmf:
            if dtmf.at_ms is not None:
                self.schedule_digits(channel, dtmf.at_ms, dtmf.digits)
        if scenario.hangup_after_ms is not None:
            channel.later(scenario.hangup_after_ms / 1000.0, self.hang_up, channel)

    def schedule_digits(self, channel: Channel, after_ms: int, digits: str) -> None:
        for i, digit in enumerate(digits):
            channel.later(after_ms / 1000.0 + i * DIGIT_SPACING, channel.receive_dtmf, digit)

    def hang_up(self, channel: Channel) -> None:
        """The far end sends BYE."""
        channel.hangup(
            CAUSES["NORMAL_CLEARING"], disposition="recv_bye", sip_status=200, remote=True
        )


def parse_dial_string(url: str) -> tuple[list[tuple[str, str]], str]:
    """
    C{{a=b,c=d}[e=f]endpoint/...}: the channel variables (as C{switch_event_create_brackets}
    reads them) and the first destination.
    """
    variables: list[tuple[str, str]] = []
    rest = url
    while rest[:1] in ("{", "[", "<"):
        close = {"{": "}", "[": "]", "<": ">"}[rest[0]]
        end = _closing(rest, close)
        if end < 0:
            break
        body, rest = rest[1:end], rest[end + 1 :]
        for item in separate_string(body, ","):
            pair = separate_string(item, "=", 2)
            if len(pair) == 2:
                variables.append((pair[0], pair[1]))
    for separator in (",", "|", ":_:"):
        rest = rest.split(separator)[0]
    return variables, rest


def _closing(text: str, close: str) -> int:
    inside = False
    for i, char in enumerate(text):
        if char == "'":
            inside = not inside
        elif char == close and not inside:
            return i
    return -1


def dialed_number(endpoint: str, rest: str) -> str:
    """The number a dial string calls: C{sofia/gateway/gw/NUM}, C{sofia/profile/NUM@host}..."""
    parts = rest.split("/")
    if endpoint == "sofia" and parts[0] == "gateway" and len(parts) >= 3:
        target = "/".join(parts[2:])
    else:
        target = parts[-1] if parts else ""
    if endpoint == "loopback":
        target = parts[0]
    target = re.sub(r"^sips?:", "", target)
    return target.split("@")[0].split(";")[0]


def _cause_from(text: str) -> int:
    return CAUSES.get(text.upper(), CAUSES["NORMAL_CLEARING"])


def _int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return 0
