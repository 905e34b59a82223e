"""
Simulated channels: the state FreeSWITCH reports in every channel event, the application
stack a channel runs, and its hangup.

One L{Channel} stands for the outbound leg FreeSWITCH creates for an C{originate} (a sofia
channel in the captures); the callee beyond it is the scenario.  The headers and their order
follow C{switch_channel_event_set_basic_data} and C{_extended_data} (switch_channel.c) and the
C{sip_*} captures: the same event names, in the same order, with the states FreeSWITCH shows.

Applications (park, playback, conference, ...) live in L{iradialer.sim.apps}; a channel keeps
them on a stack: the extension's application at the bottom, commands that arrived by
C{sendmsg} or C{uuid_broadcast} nested above while a lower one services its private events.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from iradialer.sim.wire import CAUSES, Event, cause_name, cause_q850, header, separate_string

if TYPE_CHECKING:
    from iradialer.sim.apps import App
    from iradialer.sim.scenarios import Scenario
    from iradialer.sim.simulator import Simulator

STATE_NUMBERS = {
    "CS_NEW": 0,
    "CS_INIT": 1,
    "CS_ROUTING": 2,
    "CS_SOFT_EXECUTE": 3,
    "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5,
    "CS_PARK": 6,
    "CS_CONSUME_MEDIA": 7,
    "CS_HIBERNATE": 8,
    "CS_RESET": 9,
    "CS_HANGUP": 10,
    "CS_REPORTING": 11,
    "CS_DESTROY": 12,
    "CS_NONE": 13,
}
CALLSTATE_NUMBERS = {"DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HANGUP": 7}

# (file, function, line) FreeSWITCH reports as Event-Calling-* for each channel event.
CALLING = {
    "CHANNEL_OUTGOING": ("switch_core_session.c", "switch_core_session_outgoing_channel", 768),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", 2409),
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", 626),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", 632),
    "CHANNEL_UUID": ("switch_core_session.c", "switch_core_session_set_uuid", 2056),
    "CHANNEL_PROGRESS": (
        "switch_channel.c",
        "switch_channel_perform_mark_ring_ready_value",
        3507,
    ),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", 302),
    "CODEC": ("switch_core_codec.c", "switch_core_session_set_real_read_codec", 189),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", 3848),
    "CALL_UPDATE": ("switch_core_state_machine.c", "switch_core_standard_on_routing", 242),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", 2949),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", 2972),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", 1002),
    "CHANNEL_UNPARK": ("switch_ivr.c", "switch_ivr_park", 1262),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", 1649),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", 2023),
    "PRIVATE_COMMAND": ("switch_ivr.c", "switch_ivr_parse_next_event", 804),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", 678),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", 3578),
    "CHANNEL_HANGUP_COMPLETE": (
        "switch_core_state_machine.c",
        "switch_core_session_reporting_state",
        943,
    ),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", 1588),
    "CHANNEL_DATA": ("mod_commands.c", "uuid_dump_function", 6495),
    "MEDIA_BUG_START": ("switch_core_media_bug.c", "switch_core_media_bug_add", 1012),
    "MEDIA_BUG_STOP": ("switch_core_media_bug.c", "switch_core_media_bug_close", 684),
}

# Events FreeSWITCH fills with every channel variable (switch_channel_event_set_extended_data).
EXTENDED = frozenset(
    "CHANNEL_CREATE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_ANSWER CHANNEL_PARK CHANNEL_UNPARK "
    "CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_HANGUP "
    "CHANNEL_HANGUP_COMPLETE REQUEST_PARAMS CHANNEL_DATA CHANNEL_EXECUTE "
    "CHANNEL_EXECUTE_COMPLETE CHANNEL_DESTROY SESSION_HEARTBEAT API RECORD_START RECORD_STOP "
    "PLAYBACK_START PLAYBACK_STOP CALL_UPDATE MEDIA_BUG_START MEDIA_BUG_STOP CHANNEL_HOLD "
    "CHANNEL_UNHOLD TEXT CUSTOM".split()
)


@dataclass
class Profile:
    """The caller profile (Caller-* headers)."""

    caller_id_name: str
    caller_id_number: str
    destination_number: str
    channel_name: str
    uuid: str
    created_us: int
    source: str = "src/switch_ivr_originate.c"
    dialplan: str = ""
    context: str = "default"
    logical_direction: str = "outbound"
    orig_caller_id_name: str = ""
    orig_caller_id_number: str = ""
    callee_id_name: str = "Outbound Call"
    callee_id_number: str = ""
    ani: str = ""
    network_addr: str = ""
    transfer_source: str = ""
    index: int = 1
    profile_created_us: int = 0
    times: dict[str, int] = field(default_factory=dict)

    def headers(self) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = [
            ("Caller-Direction", "outbound"),
            ("Caller-Logical-Direction", self.logical_direction),
            ("Caller-Dialplan", self.dialplan),
            ("Caller-Caller-ID-Name", self.caller_id_name),
            ("Caller-Caller-ID-Number", self.caller_id_number),
        ]
        if self.caller_id_name:
            out.append(("Caller-Orig-Caller-ID-Name", self.orig_caller_id_name))
        if self.caller_id_number:
            out.append(("Caller-Orig-Caller-ID-Number", self.orig_caller_id_number))
        out += [
            ("Caller-Callee-ID-Name", self.callee_id_name),
            ("Caller-Callee-ID-Number", self.callee_id_number),
            ("Caller-Network-Addr", self.network_addr),
            ("Caller-ANI", self.ani),
            ("Caller-Destination-Number", self.destination_number),
            ("Caller-Unique-ID", self.uuid),
            ("Caller-Source", self.source),
            ("Caller-Transfer-Source", self.transfer_source),
            ("Caller-Context", self.context),
            ("Caller-Channel-Name", self.channel_name),
            ("Caller-Profile-Index", self.index),
            ("Caller-Profile-Created-Time", self.profile_created_us or self.created_us),
            ("Caller-Channel-Created-Time", self.created_us),
        ]
        for key in (
            "Answered",
            "Progress",
            "Progress-Media",
            "Hangup",
            "Transfer",
            "Resurrect",
            "Bridged",
        ):
            out.append((f"Caller-Channel-{key}-Time", self.times.get(key, 0)))
        out += [
            ("Caller-Channel-Last-Hold", 0),
            ("Caller-Channel-Hold-Accum", 0),
            ("Caller-Screen-Bit", "true"),
            ("Caller-Privacy-Hide-Name", "false"),
            ("Caller-Privacy-Hide-Number", "false"),
        ]
        return out


class Variables:
    """
    Channel variables in FreeSWITCH's order: setting one moves it to the end, None unsets.
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def set(self, name: str, value: object) -> None:
        self._values.pop(name, None)
        if value is not None and str(value) != "":
            self._values[name] = str(value)

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def items(self) -> Iterable[tuple[str, str]]:
        return self._values.items()

    def __contains__(self, name: str) -> bool:
        return name in self._values


@dataclass
class PrivateCommand:
    """A queued C{sendmsg} (or C{uuid_broadcast}) for the channel, headers as received."""

    headers: list[tuple[str, str]]
    body: str | None = None
    from_sendmsg: bool = True

    def get(self, name: str) -> str | None:
        return header(self.headers, name)


class Channel:
    """
    One simulated outbound channel.  All changes happen on the reactor thread; timers use
    the simulator's injected clock.
    """

    log = Logger()

    def __init__(
        self,
        sim: Simulator,
        uuid: str,
        name: str,
        number: str,
        scenario: Scenario,
        variables: list[tuple[str, str]],
        endpoint: str,
        caller_id_name: str,
        caller_id_number: str,
    ) -> None:
        self.sim = sim
        self.uuid = uuid
        self.name = name
        self.number = number
        self.scenario = scenario
        self.endpoint = endpoint
        self.created = sim.clock.seconds()
        self.session_id = sim.next_session_id()
        created_us = _us(self.created)
        self.running_state = "CS_NONE"
        self.state = "CS_INIT"
        self.callstate = "DOWN"
        self.answered = False
        # A sofia leg negotiates PCMU at answer; a loopback leg has L16 from the start.
        self.codec = ("L16", 8000, 128000) if endpoint == "loopback" else ("PCMU", 8000, 64000)
        self.media_up = endpoint == "loopback"
        self.hit_dialplan = False
        self.hangup_cause: int | None = None
        self.destroyed = False
        self.stamps: dict[str, float] = {"start": self.created}
        self.profile = Profile(
            caller_id_name=caller_id_name,
            caller_id_number=caller_id_number,
            destination_number=number,
            channel_name=name,
            uuid=uuid,
            created_us=created_us,
            orig_caller_id_name=caller_id_name,
            orig_caller_id_number=caller_id_number,
            callee_id_number=number,
            ani=caller_id_number,
        )
        self.vars = Variables()
        self.sip_call_id = str(uuidlib.uuid4())
        initial: list[tuple[str, object]] = [
            ("direction", "outbound"),
            ("is_outbound", "true"),
            ("uuid", uuid),
            ("call_uuid", uuid),
            ("session_id", self.session_id),
            ("channel_name", name),
        ]
        if endpoint == "sofia":
            initial += sofia_variables(self)
        initial += variables
        initial += [
            ("originate_early_media", "true" if endpoint == "loopback" else "false"),
            ("originate_endpoint", endpoint),
        ]
        if endpoint == "sofia":
            initial += sofia_media_variables(self, sim.media_port())
        for key, value in initial:
            self.vars.set(key, value)
        self.stack: list[App] = []
        self.extension: list[tuple[str, str]] = []
        self.no_route = False
        self.unwinding = False
        self.private: deque[PrivateCommand] = deque()
        self.dtmf_queue: deque[tuple[str, int, str]] = deque()
        self.dtmf_sent: list[str] = []
        self.played: list[tuple[float, str, str]] = []
        self.hangup_disposition: str | None = None
        self.timers: list[Any] = []

    # Events

    def event(
        self,
        name: str,
        pre: Iterable[tuple[str, object]] = (),
        post: Iterable[tuple[str, object]] = (),
        extended: bool | None = None,
    ) -> Event:
        """A channel event with this channel's data, as FreeSWITCH builds it."""
        event = Event(name)
        event.extend(pre)
        event.extend(self.basic_data())
        if extended if extended is not None else name in EXTENDED:
            event.extend(("variable_" + k, v) for k, v in self.vars.items())
        event.extend(post)
        return event

    def basic_data(self) -> list[tuple[str, object]]:
        if self.hangup_cause is not None:
            answer_state = "hangup"
        elif self.answered:
            answer_state = "answered"
        else:
            answer_state = "ringing"
        data: list[tuple[str, object]] = [
            ("Channel-State", self.running_state),
            ("Channel-Call-State", self.callstate),
            ("Channel-State-Number", STATE_NUMBERS[self.state]),
            ("Channel-Name", self.name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", "outbound"),
            ("Presence-Call-Direction", "outbound"),
            ("Channel-HIT-Dialplan", "true" if self.hit_dialplan else "false"),
            ("Channel-Call-UUID", self.vars.get("call_uuid") or self.uuid),
            ("Answer-State", answer_state),
        ]
        if self.hangup_cause is not None:
            data.append(("Hangup-Cause", cause_name(self.hangup_cause)))
        if self.media_up:
            name, rate, bits = self.codec
            data += [
                ("Channel-Read-Codec-Name", name),
                ("Channel-Read-Codec-Rate", rate),
                ("Channel-Read-Codec-Bit-Rate", bits),
                ("Channel-Write-Codec-Name", name),
                ("Channel-Write-Codec-Rate", rate),
                ("Channel-Write-Codec-Bit-Rate", bits),
            ]
        data += self.profile.headers()
        return data

    def fire(self, name: str, **kwargs: Any) -> Event:
        event = self.event(name, **kwargs)
        self.sim.fire(event, CALLING.get(name))
        return event

    def fire_codec(self) -> None:
        """CODEC: the read codec was (re)set (answer, entering or leaving a conference)."""
        name, rate, bits = self.codec
        self.fire(
            "CODEC",
            post=[
                ("channel-read-codec-name", name),
                ("channel-read-codec-rate", rate),
                ("channel-read-codec-bit-rate", bits),
            ],
        )

    def set_running_state(self, state: str, number_state: str | None = None) -> None:
        self.running_state = state
        if number_state is not None:
            self.state = number_state
        self.fire("CHANNEL_STATE")

    def set_callstate(self, callstate: str) -> None:
        original = self.callstate
        self.callstate = callstate
        self.fire(
            "CHANNEL_CALLSTATE",
            pre=[
                ("Original-Channel-Call-State", original),
                ("Channel-Call-State-Number", CALLSTATE_NUMBERS[callstate]),
            ],
        )

    def now_us(self) -> int:
        return _us(self.sim.clock.seconds())

    @property
    def alive(self) -> bool:
        return self.hangup_cause is None

    # Originate progress

    def mark_ring_ready(self) -> None:
        now = self.sim.clock.seconds()
        self.stamps["progress"] = now
        self.profile.times["Progress"] = _us(now)
        self.profile.network_addr = "127.0.0.1"
        for key, value in sofia_reply_variables(self):
            self.vars.set(key, value)
        self.fire("CHANNEL_PROGRESS")
        self.set_callstate("RINGING")

    def mark_answered(self) -> None:
        now = self.sim.clock.seconds()
        self.stamps["answer"] = now
        self.profile.times["Answered"] = _us(now)
        name, rate, _ = self.codec
        if self.endpoint == "sofia":
            self.profile.network_addr = "127.0.0.1"
            for key, value in sofia_answer_variables(self):
                self.vars.set(key, value)
        for key, value in (
            ("read_codec", name),
            ("read_rate", rate),
            ("write_codec", name),
            ("write_rate", rate),
        ):
            self.vars.set(key, value)
        if not self.media_up:
            self.media_up = True
            self.fire_codec()
            self.fire("CODEC", post=[("Channel-Write-codec-bit-rate", self.codec[2])])
        self.answered = True
        self.fire("CHANNEL_ANSWER")
        self.set_callstate("ACTIVE")
        self.vars.set("endpoint_disposition", "ANSWER")
        self.vars.set("pre_transfer_caller_id_number", self.profile.caller_id_number)
        self.vars.set("channel_cid_flipped", "yes")
        # FreeSWITCH flips the caller id of an answered outbound leg.
        profile = self.profile
        profile.callee_id_name, profile.callee_id_number = "", profile.caller_id_number
        profile.caller_id_name, profile.caller_id_number = "Outbound Call", self.number
        self.hit_dialplan = True
        self.fire("CALL_UPDATE")

    def begin_execute(self) -> None:
        """After answer: run the originate's extension (C{&park()} and the like)."""
        self.set_running_state("CS_EXECUTE", "CS_EXECUTE")
        self.next_extension_app()

    def next_extension_app(self) -> None:
        """The next application of the extension; FreeSWITCH hangs up when none is left."""
        if self.extension:
            name, arg = self.extension.pop(0)
            self.sim.apps.execute(self, name, arg, origin=None)
        elif self.no_route:
            self.log.info(
                "Channel {uuid}: the simulator has no dialplan for {dest!r}; hanging up",
                uuid=self.uuid,
                dest=self.profile.destination_number,
            )
            self.hangup(CAUSES["NO_ROUTE_DESTINATION"])
        else:
            self.hangup(CAUSES["NORMAL_CLEARING"])

    # The application stack

    def top(self) -> App | None:
        return self.stack[-1] if self.stack else None

    def event_locked(self) -> bool:
        return any(app.locked for app in self.stack)

    def queue_private(self, command: PrivateCommand) -> None:
        self.private.append(command)
        self.service_private()

    def service_private(self) -> None:
        """Run queued commands while the application on top services private events."""
        while self.private and self.alive:
            top = self.top()
            if top is None or not top.services_private or self.event_locked():
                return
            command = self.private.popleft()
            self.sim.apps.run_private(self, command)

    def app_finished(self, app: App) -> None:
        """C{app} completed: resume what ran below it, or go on with the extension."""
        if app in self.stack:
            self.stack.remove(app)
        if not self.alive or self.unwinding:
            return
        below = self.top()
        if below is None:
            self.next_extension_app()
            return
        below.resume()
        self.service_private()
        self.drain_dtmf()

    # DTMF

    def receive_dtmf(self, digits: str, source: str = "RTP", duration: int = 2000) -> None:
        """
        Digits from the far end (RFC 2833 by default): queued until an application reads
        them, which is when FreeSWITCH fires the DTMF event.
        """
        if not self.alive:
            return
        self.dtmf_queue.extend((digit, duration, source) for digit in digits)
        self.drain_dtmf()

    def drain_dtmf(self) -> None:
        while self.dtmf_queue and self.alive:
            top = self.top()
            if top is None or not top.reads_dtmf():
                return
            digit, duration, source = self.dtmf_queue.popleft()
            self.fire(
                "DTMF",
                post=[
                    ("DTMF-Digit", digit),
                    ("DTMF-Duration", duration),
                    ("DTMF-Source", source),
                ],
            )
            top.on_dtmf(digit)

    def prompt_started(self) -> None:
        """A prompt began to play: the scenario may answer it with digits."""
        for dtmf in self.scenario.dtmf:
            if dtmf.after_prompt_ms is not None:
                self.sim.callee.schedule_digits(self, dtmf.after_prompt_ms, dtmf.digits)

    # Transfer

    def transfer(self, dest: str, dialplan: str | None, context: str | None) -> None:
        """C{uuid_transfer}: leave whatever runs and start the new extension."""
        now = self.sim.clock.seconds()
        self.state = "CS_ROUTING"
        self.unwinding = True
        for app in list(reversed(self.stack)):
            app.interrupt("transfer")
        self.unwinding = False
        self.stack.clear()
        self.private.clear()
        stamp = f"{int(now)}:{uuidlib.uuid4()}:bl_xfer:{dest}/{context or 'default'}/"
        stamp += dialplan or "XML"
        self.vars.set("max_forwards", 69)
        self.vars.set("transfer_history", stamp)
        self.vars.set("transfer_source", stamp)
        profile = self.profile
        profile.index += 1
        profile.profile_created_us = _us(now)
        profile.transfer_source = stamp
        profile.dialplan = dialplan or "XML"
        profile.logical_direction = "inbound"
        self.set_running_state("CS_ROUTING", "CS_ROUTING")
        self.set_running_state("CS_EXECUTE", "CS_EXECUTE")
        self.extension, self.no_route = parse_extension(dest, dialplan)
        if self.no_route:
            profile.destination_number = dest
        self.next_extension_app()

    # Hangup

    def hangup(
        self,
        cause: int,
        disposition: str | None = None,
        sip_status: int | None = None,
        sip_phrase: str | None = None,
        remote: bool = False,
        echo: PrivateCommand | None = None,
    ) -> None:
        """
        End the channel with C{cause}: CHANNEL_HANGUP, every running application unwound,
        then the reporting and destroy states (and the CDR variables) as FreeSWITCH does.
        """
        if not self.alive or self.destroyed:
            return
        now = self.sim.clock.seconds()
        self.stamps["end"] = now
        if disposition is None:
            disposition = "send_bye" if self.answered else "send_cancel"
        self.hangup_disposition = disposition
        if sip_status is not None:
            if not self.answered:
                self.vars.set("sip_hangup_disposition", disposition)
                self.vars.set("sip_invite_failure_status", sip_status)
                self.vars.set("sip_invite_failure_phrase", sip_phrase)
            if remote or not self.answered:
                if sip_status != 487:
                    self.vars.set("sip_term_status", sip_status)
                    self.vars.set("proto_specific_hangup_cause", f"sip:{sip_status}")
                    self.vars.set("sip_term_cause", cause)
        self.hangup_cause = cause
        self.state = "CS_HANGUP"
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        self.timers.clear()
        self.sim.media.stop(self)
        self.fire("CHANNEL_HANGUP")
        if echo is not None:
            self.sim.apps.echo(self, echo)
        # The session thread does the rest a moment later (after an api reply, a
        # bgapi's BACKGROUND_JOB), as in the captures.
        self.sim.clock.callLater(0, self._finish_hangup)

    def _finish_hangup(self) -> None:
        now = self.stamps["end"]
        cause = self.hangup_cause or 0
        for app in list(reversed(self.stack)):
            app.interrupt("hangup")
        self.stack.clear()
        self.private.clear()
        self.set_running_state("CS_HANGUP")
        self.set_callstate("HANGUP")
        self.profile.times["Hangup"] = _us(now)
        self._set_cdr_variables()
        self.set_running_state("CS_REPORTING", "CS_REPORTING")
        self.fire("CHANNEL_HANGUP_COMPLETE", pre=[("Hangup-Cause", cause_name(cause))])
        self.sim.channel_hung_up(self)
        self.state = "CS_DESTROY"
        self.fire("CHANNEL_DESTROY")
        self.set_running_state("CS_DESTROY")
        self.destroyed = True
        self.sim.channel_destroyed(self)

    def _set_cdr_variables(self) -> None:
        cause = self.hangup_cause or 0
        stamps = self.stamps
        start, end = stamps["start"], stamps["end"]
        answer = stamps.get("answer")
        progress = stamps.get("progress")
        v = self.vars
        v.set("hangup_cause", cause_name(cause))
        v.set("hangup_cause_q850", cause_q850(cause))
        v.set("digits_dialed", "none")
        v.set("start_stamp", _stamp(start))
        v.set("profile_start_stamp", _stamp(start))
        if answer is not None:
            v.set("answer_stamp", _stamp(answer))
        if progress is not None:
            v.set("progress_stamp", _stamp(progress))
        v.set("end_stamp", _stamp(end))
        for key, value in (
            ("start", start),
            ("profile_start", start),
            ("answer", answer),
            ("bridge", None),
            ("last_hold", None),
        ):
            v.set(f"{key}_epoch", int(value) if value else 0)
            v.set(f"{key}_uepoch", _us(value) if value else 0)
        v.set("hold_accum_seconds", 0)
        v.set("hold_accum_usec", 0)
        v.set("hold_accum_ms", 0)
        for key, value in (
            ("resurrect", None),
            ("progress", progress),
            ("progress_media", None),
            ("end", end),
        ):
            v.set(f"{key}_epoch", int(value) if value else 0)
            v.set(f"{key}_uepoch", _us(value) if value else 0)
        if v.get("current_application"):
            v.set("last_app", v.get("current_application"))
        if v.get("current_application_data"):
            v.set("last_arg", v.get("current_application_data"))
        v.set("caller_id", f'"{self.profile.caller_id_name}" <{self.profile.caller_id_number}>')
        durations = {
            "duration": end - start,
            "billsec": end - answer if answer is not None else 0.0,
            "progresssec": progress - start if progress is not None else 0.0,
            "answersec": answer - start if answer is not None else 0.0,
            "waitsec": 0.0,
            "progress_mediasec": 0.0,
            "flow_billsec": end - start if answer is not None else 0.0,
        }
        for name, seconds in durations.items():
            v.set(name, int(seconds))
        milli = {"duration": "mduration"}
        for name, seconds in durations.items():
            key = milli.get(name, name.replace("sec", "msec"))
            v.set(key, int(seconds * 1000))
        micro = {"duration": "uduration"}
        for name, seconds in durations.items():
            key = micro.get(name, name.replace("sec", "usec"))
            v.set(key, int(round(seconds * 1_000_000)))
        if self.endpoint == "sofia":
            v.set("sip_hangup_disposition", self.hangup_disposition)
        if answer is not None:
            self._set_rtp_statistics(end - answer)

    def _set_rtp_statistics(self, seconds: float) -> None:
        packets = int(seconds * 50)
        v = self.vars
        stats: list[tuple[str, object]] = [
            ("in_raw_bytes", packets * 172),
            ("in_media_bytes", packets * 172),
            ("in_packet_count", packets),
            ("in_media_packet_count", packets),
            ("in_skip_packet_count", 0),
            ("in_jitter_packet_count", 0),
            ("in_dtmf_packet_count", 0),
            ("in_cng_packet_count", 0),
            ("in_flush_packet_count", 0),
            ("in_largest_jb_size", 0),
            ("in_jitter_min_variance", "0.00"),
            ("in_jitter_max_variance", "0.00"),
            ("in_jitter_loss_rate", "0.00"),
            ("in_jitter_burst_rate", "0.00"),
            ("in_mean_interval", "20.00"),
            ("in_flaw_total", 0),
            ("in_quality_percentage", "100.00"),
            ("in_mos", "4.50"),
            ("out_raw_bytes", packets * 172),
            ("out_media_bytes", packets * 172),
            ("out_packet_count", packets),
            ("out_media_packet_count", packets),
            ("out_skip_packet_count", 0),
            ("out_dtmf_packet_count", len(self.dtmf_sent)),
            ("out_cng_packet_count", 0),
            ("rtcp_packet_count", 0),
            ("rtcp_octet_count", 0),
        ]
        for key, value in stats:
            v.set(f"rtp_audio_{key}", value)

    def later(self, seconds: float, function: Any, *args: Any) -> Any:
        """A timer that dies with the channel."""
        self.timers = [t for t in self.timers if t.active()]
        call = self.sim.clock.callLater(seconds, function, *args)
        self.timers.append(call)
        return call


def sofia_variables(channel: Channel) -> list[tuple[str, object]]:
    """What mod_sofia sets on a new outbound leg (a representative subset)."""
    number = channel.number
    return [
        ("sip_profile_name", "external"),
        ("video_media_flow", "disabled"),
        ("text_media_flow", "disabled"),
        ("sip_destination_url", f"sip:{number}@127.0.0.1"),
    ]


def sofia_media_variables(channel: Channel, local_port: int) -> list[tuple[str, object]]:
    sdp = (
        f"v=0\r\no=FreeSWITCH {local_port} {local_port + 1} IN IP4 127.0.0.1\r\n"
        "s=FreeSWITCH\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {local_port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        "a=ptime:20\r\na=sendrecv\r\n"
    )
    return [
        ("rtp_use_codec_string", "PCMU,PCMA"),
        ("local_media_ip", "127.0.0.1"),
        ("local_media_port", local_port),
        ("advertised_media_ip", "127.0.0.1"),
        ("audio_media_flow", "sendrecv"),
        ("rtp_local_sdp_str", sdp),
        ("sip_outgoing_contact_uri", "<sip:mod_sofia@127.0.0.1:5080>"),
        ("sip_req_uri", f"{channel.number}@127.0.0.1"),
        ("sofia_profile_name", "external"),
        ("recovery_profile_name", "external"),
        ("sofia_profile_url", "sip:mod_sofia@127.0.0.1:5080"),
    ]


def sofia_reply_variables(channel: Channel) -> list[tuple[str, object]]:
    """Set from the far end's first reply (180 Ringing)."""
    if channel.endpoint != "sofia":
        return []
    number = channel.number
    caller = channel.profile.orig_caller_id_number
    tag = channel.sip_call_id[:13]
    return [
        ("sip_local_network_addr", "127.0.0.1"),
        ("sip_reply_host", "127.0.0.1"),
        ("sip_reply_port", 5060),
        ("sip_network_ip", "127.0.0.1"),
        ("sip_network_port", 5060),
        ("sip_recover_contact", "<sip:127.0.0.1:5060;transport=UDP>"),
        ("sip_full_via", f"SIP/2.0/UDP 127.0.0.1;rport;branch=z9hG4bK{tag}"),
        ("sip_recover_via", f"SIP/2.0/UDP 127.0.0.1;rport;branch=z9hG4bK{tag}"),
        ("sip_full_from", f"<sip:{caller}@127.0.0.1>;tag={tag}"),
        ("sip_full_to", f"<sip:{number}@127.0.0.1>;tag={tag[::-1]}"),
        ("sip_from_user", caller),
        ("sip_from_uri", f"{caller}@127.0.0.1"),
        ("sip_from_host", "127.0.0.1"),
        ("sip_to_user", number),
        ("sip_to_port", 5060),
        ("sip_to_uri", f"{number}@127.0.0.1"),
        ("sip_to_host", "127.0.0.1"),
        ("sip_contact_params", "transport=UDP"),
        ("sip_contact_user", number),
        ("sip_contact_port", 5060),
        ("sip_contact_uri", f"{number}@127.0.0.1:5060"),
        ("sip_contact_host", "127.0.0.1"),
        ("sip_to_tag", tag[::-1]),
        ("sip_from_tag", tag),
        ("sip_cseq", 1),
        ("sip_call_id", channel.sip_call_id),
    ]


def sofia_answer_variables(channel: Channel) -> list[tuple[str, object]]:
    """Set from the 200 OK and its SDP."""
    sdp = (
        "v=0\r\no=callee 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
    )
    return [
        ("switch_r_sdp", sdp),
        ("ep_codec_string", "CORE_PCM_MODULE.PCMU@8000h@20i@64000b"),
        ("rtp_use_codec_name", "PCMU"),
        ("rtp_use_codec_rate", 8000),
        ("rtp_use_codec_ptime", 20),
        ("rtp_use_codec_channels", 1),
        ("remote_video_media_flow", "inactive"),
        ("remote_text_media_flow", "inactive"),
        ("remote_audio_media_flow", "sendrecv"),
        ("rtp_audio_recv_pt", 0),
        ("rtp_last_audio_codec_string", "PCMU@8000h@20i@1c"),
        ("original_read_codec", "PCMU"),
        ("original_read_rate", 8000),
        ("dtmf_type", "rfc2833"),
        ("rtp_use_timer_name", "soft"),
        ("rtp_use_pt", 0),
        ("rtp_use_ssrc", int(channel.sip_call_id[:8], 16)),
        ("rtp_2833_send_payload", 101),
        ("rtp_2833_recv_payload", 101),
        ("remote_media_ip", "127.0.0.1"),
        ("remote_media_port", 6000),
    ]


def parse_extension(dest: str, dialplan: str | None) -> tuple[list[tuple[str, str]], bool]:
    """
    The applications an C{inline} dialplan names (C{app:arg,app}); any other dialplan is
    one the simulator does not have (the second value: no route).
    """
    if (dialplan or "").lower() != "inline":
        return [], True
    apps = []
    for item in separate_string(dest, ","):
        if item.strip():
            name, _, arg = item.strip().partition(":")
            apps.append((name.strip(), arg))
    return apps, False


def _us(seconds: float | None) -> int:
    return int(round((seconds or 0) * 1_000_000))


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
