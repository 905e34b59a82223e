"""
Dialplan applications a simulated channel runs, with FreeSWITCH's events and variables:
C{park}, C{playback}, C{speak}, C{play_and_get_digits}, C{conference}, and the small ones
(C{answer}, C{hangup}, C{sleep}, C{set}, C{unset}, C{start_dtmf}, C{stop_dtmf}).

Each runs on the channel's stack.  C{switch_core_session_exec} is L{Applications.execute}
(CHANNEL_EXECUTE, then CHANNEL_EXECUTE_COMPLETE with C{Application-Response}); C{sendmsg}
and C{uuid_broadcast} commands go through L{Applications.run_private}, which echoes each
as a PRIVATE_COMMAND event once it has run, as C{switch_ivr_parse_next_event} does.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.sim.audio import PlaybackError, playback_ms, speak_ms
from iradialer.sim.channels import CALLING, Channel, PrivateCommand
from iradialer.sim.wire import CAUSES, Event, separate_string, str2cause

if TYPE_CHECKING:
    from iradialer.sim.simulator import Simulator


@dataclass(frozen=True)
class Source:
    """
    What C{switch_ivr_play_file} makes of a target: a C{file} played for C{ms} (None:
    until stopped) between PLAYBACK_START and PLAYBACK_STOP, C{speech} spoken for C{ms}
    with no PLAYBACK events, or C{nothing} at all.
    """

    kind: str
    ms: int | None = 0


class Countdown:
    """A timer that can be paused while a nested application runs."""

    def __init__(self, channel: Channel, ms: int | None, callback: Any) -> None:
        self.channel = channel
        self.remaining = None if ms is None else ms / 1000.0
        self.callback = callback
        self.started = channel.sim.clock.seconds()
        self.elapsed = 0.0
        self.call: Any = None
        self.paused = False
        self._arm()

    def _arm(self) -> None:
        self.started = self.channel.sim.clock.seconds()
        if self.remaining is not None:
            self.call = self.channel.later(self.remaining, self._fire)

    def _fire(self) -> None:
        self.call = None
        self.elapsed += self.channel.sim.clock.seconds() - self.started
        self.callback()

    def pause(self) -> None:
        if self.paused:
            return
        self.paused = True
        spent = self.channel.sim.clock.seconds() - self.started
        self.elapsed += spent
        if self.call is not None and self.call.active():
            self.call.cancel()
            self.call = None
            if self.remaining is not None:
                self.remaining = max(self.remaining - spent, 0.0)

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._arm()

    def cancel(self) -> float:
        """Stop; returns the seconds it ran."""
        if self.call is not None and self.call.active():
            self.call.cancel()
            self.elapsed += self.channel.sim.clock.seconds() - self.started
        self.call = None
        self.paused = True
        return self.elapsed


class App:
    """One running application on a channel's stack."""

    services_private = True
    media = False  # playing to the channel stops a unicast stream

    def __init__(
        self,
        channel: Channel,
        name: str,
        arg: str,
        origin: PrivateCommand | None,
        locked: bool,
        app_uuid: str,
        loop: int = 1,
    ) -> None:
        self.channel = channel
        self.name = name
        self.arg = arg
        self.origin = origin
        self.locked = locked
        self.uuid = app_uuid
        self.loop = loop
        self.done = False
        self.stopped = False  # uuid_break: no further loops
        self.started_at = channel.sim.clock.seconds()

    @property
    def sim(self) -> Simulator:
        return self.channel.sim

    def start(self) -> None:
        self.complete()

    def suspend(self, above: App) -> None:
        """A nested application starts on top of this one."""

    def resume(self) -> None:
        """The nested application finished."""

    def reads_dtmf(self) -> bool:
        return False

    def on_dtmf(self, digit: str) -> None:
        pass

    def interrupt(self, reason: str) -> None:
        """The channel hangs up or is transferred: finish now."""
        self.complete()

    def break_(self) -> None:
        """C{uuid_break}."""

    def complete(self, response: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        channel = self.channel
        if response is not None:
            channel.vars.set("current_application_response", response)
        channel.fire(
            "CHANNEL_EXECUTE_COMPLETE",
            post=[
                ("Application", self.name),
                ("Application-Data", self.arg),
                (
                    "Application-Response",
                    channel.vars.get("current_application_response") or "_none_",
                ),
                ("Application-UUID", self.uuid),
            ],
        )
        if self.origin is not None:
            if self.sim.apps.loop_again(self):
                return
            channel.vars.set("current_loop", None)
            channel.vars.set("total_loops", None)
            self.sim.apps.echo(channel, self.origin)
        channel.app_finished(self)


class Park(App):
    """
    C{park}: the loop that services private events and, while nothing has played on it,
    a C{unicast} stream (unicast_more capture: after a playback, only a new park streams).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.unicast_usable = True

    def start(self) -> None:
        self.channel.fire("CHANNEL_PARK")
        self.channel.service_private()
        self.channel.drain_dtmf()

    def suspend(self, above: App) -> None:
        if above.media:
            self.unicast_usable = False
            self.sim.media.stop(self.channel)

    def reads_dtmf(self) -> bool:
        return True

    def interrupt(self, reason: str) -> None:
        self.sim.media.stop(self.channel)
        self.channel.fire("CHANNEL_UNPARK")
        self.complete()


class Playback(App):
    """
    C{playback}: real durations, PLAYBACK_START/STOP, C{*} and C{uuid_break} stop it.  A
    C{say:} target is spoken (no PLAYBACK events); an C{http_cache://} one is fetched
    first, and until then the channel reads neither digits nor queued commands.
    """

    media = True

    def start(self) -> None:
        self.timer: Countdown | None = None
        self.source = Source("nothing")
        self.opening = True
        self.services_private = False
        opened = maybeDeferred(self.sim.apps.source, self.channel, self.arg)
        opened.addCallbacks(self._opened, self._not_opened)
        opened.addErrback(self.sim.apps.failed, self)

    def _opened(self, source: Source) -> None:
        self.opening = False
        self.services_private = True
        if self.done:
            return
        self.source = source
        if source.kind == "nothing":
            self.complete("FILE PLAYED")
            return
        playback_started(self.channel, self.arg, prompt=True, events=source.kind == "file")
        self.timer = Countdown(self.channel, source.ms, lambda: self._stop("done"))
        if self.stopped:
            self._stop("break")
            return
        self.channel.service_private()
        self.channel.drain_dtmf()

    def _not_opened(self, failure: Failure) -> None:
        failure.trap(PlaybackError)
        self.opening = False
        self.services_private = True
        if not self.done:
            self.sim.log.warn("playback: {problem}", problem=failure.getErrorMessage())
            self.complete("FILE NOT FOUND")

    def _stop(self, status: str, response: str = "FILE PLAYED") -> None:
        if self.done or self.timer is None:
            return
        seconds = self.timer.cancel()
        if self.source.kind == "file":
            whole = status == "done" and response == "FILE PLAYED"
            length = self.source.ms if whole else None
            playback_stopped(self.channel, self.arg, length, seconds, status)
        self.complete(response)

    def suspend(self, above: App) -> None:
        if self.timer is not None:
            self.timer.pause()

    def resume(self) -> None:
        if self.timer is not None:
            self.timer.resume()

    def reads_dtmf(self) -> bool:
        return not self.opening

    def on_dtmf(self, digit: str) -> None:
        if _terminates(self.channel, digit):
            self._stop("break")

    def break_(self) -> None:
        self._stop("break")

    def interrupt(self, reason: str) -> None:
        if self.timer is None:
            self.complete("PLAYBACK ERROR" if self.opening and reason == "hangup" else None)
        elif reason == "hangup":
            self._stop("done", "PLAYBACK ERROR")
        else:
            self._stop("break")


def _terminates(channel: Channel, digit: str) -> bool:
    terminators = channel.vars.get("playback_terminators") or "*"
    if terminators.lower() == "any":
        terminators = "1234567890*#"
    if terminators.lower() == "none":
        return False
    if digit in terminators:
        channel.vars.set("playback_terminator_used", digit)
        return True
    return False


class Speak(App):
    """C{speak engine|voice|text}: no PLAYBACK events, an estimated duration."""

    media = True

    def start(self) -> None:
        text = self.arg.split("|", 2)[-1]
        self.channel.played.append((self.sim.clock.seconds(), "speak", self.arg))
        self.channel.prompt_started()
        self.timer = Countdown(self.channel, speak_ms(text), self.complete)
        self.channel.drain_dtmf()

    def suspend(self, above: App) -> None:
        self.timer.pause()

    def resume(self) -> None:
        self.timer.resume()

    def reads_dtmf(self) -> bool:
        return True

    def on_dtmf(self, digit: str) -> None:
        if _terminates(self.channel, digit):
            self.break_()

    def break_(self) -> None:
        self.timer.cancel()
        self.complete()

    def interrupt(self, reason: str) -> None:
        self.break_()


class PlayAndGetDigits(App):
    """
    C{play_and_get_digits min max tries timeout terminators prompt invalid var [regex]
    [digit_timeout]}, following switch_play_and_get_digits / switch_ivr_read: the variables
    it sets (C{read_result}, the digits variable, C{<var>_invalid},
    C{read_terminator_used}) and the invalid-file replay between tries.
    """

    media = True

    def start(self) -> None:
        argv = separate_string(self.arg, " ", 11)
        if not argv or not argv[0]:
            self.complete()
            return

        def arg(i: int, default: str = "") -> str:
            return argv[i] if len(argv) > i else default

        self.min = max(_atoi(arg(0)), 0)
        self.max = max(_atoi(arg(1)), self.min)
        self.tries = _atoi(arg(2))
        self.timeout = max(_atoi(arg(3, "1000")), 1000)
        self.terminators = arg(4) or "#"
        self.prompt = arg(5)
        self.invalid = arg(6)
        self.var = arg(7) or None
        self.regex = arg(8) or None
        self.digit_timeout = _atoi(arg(9)) or self.timeout
        self.phase = "idle"
        self.buffer = ""
        self.current_file = ""
        self.current_source = Source("nothing")
        self.playing: Countdown | None = None
        self.waiting: Countdown | None = None
        if self.regex and self.var:
            self.channel.vars.set(f"{self.var}_invalid", None)
        self._next_try()

    def _next_try(self) -> None:
        if self.tries <= 0 or not self.channel.alive:
            self.complete()
            return
        self.buffer = ""
        self.terminator = ""
        self.channel.vars.set("read_result", None)
        if self.var:
            self.channel.vars.set(self.var, None)
        if self.prompt and self.prompt.lower() != "silence":
            self._play(self.prompt, prompt=True)
        else:
            self._collect()

    def _play(self, target: str, prompt: bool) -> None:
        self.phase = "opening prompt" if prompt else "opening invalid"
        self.services_private = False
        opened = maybeDeferred(self.sim.apps.source, self.channel, target)
        opened.addCallbacks(
            self._opened, self._not_opened, callbackArgs=(target, prompt), errbackArgs=(prompt,)
        )
        opened.addErrback(self.sim.apps.failed, self)

    def _opened(self, source: Source, target: str, prompt: bool) -> None:
        self.services_private = True
        if self.done:
            return
        self.phase = "prompt" if prompt else "invalid"
        if source.kind == "nothing":
            self._next()
            return
        self.current_file = target
        self.current_source = source
        playback_started(self.channel, target, prompt, events=source.kind == "file")
        self.playing = Countdown(self.channel, source.ms, lambda: self._played("done"))
        self.channel.service_private()
        self.channel.drain_dtmf()

    def _not_opened(self, failure: Failure, prompt: bool) -> None:
        failure.trap(PlaybackError)
        self.services_private = True
        if self.done:
            return
        self.sim.log.warn("play_and_get_digits: {problem}", problem=failure.getErrorMessage())
        self.phase = "idle"
        if prompt:
            self._after_read("notfound")
        else:
            self._after_invalid()

    def _played(self, status: str) -> None:
        if self.playing is None:
            return
        seconds = self.playing.cancel()
        self.playing = None
        if self.current_source.kind == "file":
            whole = status == "done"
            length = self.current_source.ms if whole else None
            playback_stopped(self.channel, self.current_file, length, seconds, status)
        self._next()

    def _next(self) -> None:
        if self.phase == "prompt":
            self._collect()
        elif self.phase == "invalid":
            self._after_invalid()

    def _collect(self) -> None:
        if self.terminator or len(self.buffer) >= self.max:
            self._after_read("success")
            return
        self.phase = "collect"
        timeout = self.digit_timeout if self.buffer else self.timeout
        self.waiting = Countdown(self.channel, timeout, lambda: self._after_read("timeout"))
        self.channel.drain_dtmf()

    def reads_dtmf(self) -> bool:
        return self.phase in ("prompt", "collect")

    def on_dtmf(self, digit: str) -> None:
        if self.phase == "prompt":
            if digit in self.terminators:
                self.terminator = digit
            else:
                self.buffer += digit
            self._played("break")
            return
        if self.phase != "collect":
            return
        if digit in self.terminators:
            self.terminator = digit
            self._stop_waiting()
            self._after_read("success")
            return
        self.buffer += digit
        self._stop_waiting()
        if len(self.buffer) >= self.max:
            self._after_read("success")
        else:
            self.waiting = Countdown(
                self.channel, self.digit_timeout, lambda: self._after_read("timeout")
            )

    def _stop_waiting(self) -> None:
        if self.waiting is not None:
            self.waiting.cancel()
            self.waiting = None

    def _after_read(self, status: str) -> None:
        """The end of one switch_ivr_read and the checks of switch_play_and_get_digits."""
        self.waiting = None
        self.phase = "idle"
        v = self.channel.vars
        if status != "notfound":
            if self.terminator:
                v.set("read_terminator_used", self.terminator)
            if self.min and len(self.buffer) < self.min:
                status = "too_small"
            v.set(
                "read_result",
                {"success": "success", "timeout": "timeout"}.get(status, "failure"),
            )
            if self.var and self.buffer:
                v.set(self.var, self.buffer)
        if status == "timeout" and len(self.buffer) >= self.min:
            status = "success"
        if self.min == 0 and not self.buffer and v.get("read_terminator_used") is not None:
            self.complete()
            return
        if not (status == "too_small" and not self.buffer) and status == "success" and self.buffer:
            if not self.regex or _regex_matches(self.regex, self.buffer):
                self.complete()
                return
            if self.var:
                v.set(self.var, None)
                v.set(f"{self.var}_invalid", self.buffer)
        if self.invalid:
            self._play(self.invalid, prompt=False)
        else:
            self._after_invalid()

    def _after_invalid(self) -> None:
        self.phase = "idle"
        self.tries -= 1
        self._next_try()

    def suspend(self, above: App) -> None:
        for timer in (self.playing, self.waiting):
            if timer is not None:
                timer.pause()

    def resume(self) -> None:
        for timer in (self.playing, self.waiting):
            if timer is not None:
                timer.resume()

    def break_(self) -> None:
        if self.playing is not None:
            self._played("break")

    def interrupt(self, reason: str) -> None:
        """
        A hangup ends switch_ivr_read where it is: the digits keyed so far are stored in
        the variable, and read_result is failure while collecting (during the prompt it
        stays unset: switch_ivr_read leaves before setting it).
        """
        reading = self.phase in ("opening prompt", "prompt", "collect")
        collecting = self.phase == "collect"
        self._stop_waiting()
        if self.playing is not None:
            seconds = self.playing.cancel()
            self.playing = None
            if self.current_source.kind == "file":
                playback_stopped(self.channel, self.current_file, None, seconds, "done")
        if reason == "hangup" and reading:
            if collecting:
                self.channel.vars.set("read_result", "failure")
            if self.var and self.buffer:
                self.channel.vars.set(self.var, self.buffer)
        self.complete()


def playback_started(channel: Channel, target: str, prompt: bool, events: bool = True) -> None:
    """
    PLAYBACK_START (a file; spoken text has no PLAYBACK events); a prompt also lets the
    scenario's callee answer it.
    """
    channel.played.append((channel.sim.clock.seconds(), "playback" if events else "speak", target))
    if events:
        channel.fire("PLAYBACK_START", post=_file_headers(target))
    if prompt:
        channel.prompt_started()


def playback_stopped(
    channel: Channel, target: str, whole_ms: int | None, seconds: float, status: str
) -> None:
    """
    The variables switch_ivr_play_file leaves (the whole file, or what played), then
    PLAYBACK_STOP with C{Playback-Status} done or break.
    """
    samples = whole_ms * 8 if whole_ms is not None else int(seconds * 8000)
    v = channel.vars
    v.set("playback_last_offset_pos", samples)
    v.set("playback_seconds", samples // 8000)
    v.set("playback_ms", samples // 8)
    v.set("playback_samples", samples)
    channel.fire("PLAYBACK_STOP", post=_file_headers(target) + [("Playback-Status", status)])


def _file_headers(target: str) -> list[tuple[str, object]]:
    lowered = target.lower()
    kind = None
    if lowered.startswith("local_stream:"):
        kind = "local_stream"
    elif lowered.startswith("tone_stream:"):
        kind = "tone_stream"
    return [("Playback-File-Type", kind), ("Playback-File-Path", target)]


def _regex_matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _atoi(text: str) -> int:
    match = re.match(r"\s*[-+]?\d+", text or "")
    return int(match.group()) if match else 0


class ConferenceApp(App):
    """C{conference name[@profile]}: a member until kicked, hung up or transferred away."""

    media = True

    def start(self) -> None:
        self.member = self.sim.conferences.join(self.channel, self)

    def reads_dtmf(self) -> bool:
        return True

    def left(self) -> None:
        """The conference let the member go (kick, hup): the application returns."""
        self.complete()

    def interrupt(self, reason: str) -> None:
        self.sim.conferences.leave(self.member, "hangup" if reason == "hangup" else "transfer")
        self.complete()


class Answer(App):
    services_private = False


class Hangup(App):
    services_private = False

    def start(self) -> None:
        self.channel.hangup(str2cause(self.arg) if self.arg else CAUSES["NORMAL_CLEARING"])


class Sleep(App):
    def start(self) -> None:
        self.timer = Countdown(self.channel, max(_atoi(self.arg), 0), self.complete)

    def suspend(self, above: App) -> None:
        self.timer.pause()

    def resume(self) -> None:
        self.timer.resume()

    def interrupt(self, reason: str) -> None:
        self.timer.cancel()
        self.complete()


class Set(App):
    services_private = False

    def start(self) -> None:
        name, _, value = self.arg.partition("=")
        if name:
            self.channel.vars.set(name.strip(), value or None)
        self.complete()


class Unset(App):
    services_private = False

    def start(self) -> None:
        if self.arg:
            self.channel.vars.set(self.arg.strip(), None)
        self.complete()


class MediaBug(App):
    """C{start_dtmf} / C{stop_dtmf}: the events only (callee digits arrive as RFC 2833)."""

    services_private = False

    def start(self) -> None:
        self.channel.fire("MEDIA_BUG_START" if self.name == "start_dtmf" else "MEDIA_BUG_STOP")
        self.complete()


APPS: dict[str, type[App]] = {
    "park": Park,
    "playback": Playback,
    "speak": Speak,
    "play_and_get_digits": PlayAndGetDigits,
    "conference": ConferenceApp,
    "answer": Answer,
    "pre_answer": Answer,
    "hangup": Hangup,
    "sleep": Sleep,
    "set": Set,
    "unset": Unset,
    "start_dtmf": MediaBug,
    "stop_dtmf": MediaBug,
}

_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class Applications:
    """How channels run applications and private commands."""

    log = Logger()

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def execute(
        self,
        channel: Channel,
        name: str,
        arg: str,
        origin: PrivateCommand | None,
        locked: bool = False,
        app_uuid: str | None = None,
        loop: int = 1,
    ) -> None:
        """C{switch_core_session_exec}."""
        cls = APPS.get(name.lower())
        if cls is None:
            self.log.warn(
                "Channel {uuid}: the simulator has no application {app!r}; like FreeSWITCH "
                "without it, the call is hung up (DESTINATION_OUT_OF_ORDER)",
                uuid=channel.uuid,
                app=name,
            )
            channel.hangup(CAUSES["DESTINATION_OUT_OF_ORDER"], echo=origin)
            return
        arg = _VARIABLE.sub(lambda m: channel.vars.get(m.group(1)) or "", arg or "")
        app = cls(
            channel, name.lower(), arg, origin, locked, app_uuid or str(uuidlib.uuid4()), loop
        )
        below = channel.top()
        if below is not None:
            below.suspend(app)
        channel.stack.append(app)
        v = channel.vars
        v.set("current_application", app.name)
        v.set("current_application_data", arg or None)
        v.set("current_application_response", None)
        channel.fire(
            "CHANNEL_EXECUTE",
            post=[
                ("Application", app.name),
                ("Application-Data", arg),
                ("Application-UUID", app.uuid),
            ],
        )
        v.set("current_application", app.name)
        app.start()

    def source(self, channel: Channel, target: str) -> Source | Deferred[Source]:
        """
        What C{switch_ivr_play_file} plays for C{target}: C{say:<text>} is spoken with
        the channel's C{tts_engine} (FreeSWITCH 1.10+ takes all of the rest as the text;
        with no C{tts_engine} it logs "Invalid Args" and plays nothing); C{http_cache://}
        is fetched first (a Deferred); anything else is a file.

        @raise PlaybackError: FreeSWITCH could not open it (FILE NOT FOUND).
        """
        lowered = target.lower()
        if lowered.startswith("say:"):
            text = target[len("say:") :]
            if not channel.vars.get("tts_engine") or not text:
                self.log.warn(
                    "Channel {uuid}: {target!r} without a tts_engine variable: like "
                    "FreeSWITCH (Invalid Args), nothing is played",
                    uuid=channel.uuid,
                    target=target,
                )
                return Source("nothing")
            return Source("speech", speak_ms(text))
        if lowered.startswith("http_cache://"):
            fetched = self.sim.http_cache.length_ms(target[len("http_cache://") :])
            return fetched.addCallback(lambda ms: Source("file", ms))
        return Source("file", playback_ms(target, self.sim.sounds_dir))

    def failed(self, failure: Failure, app: App) -> None:
        """A bug in an application's callbacks: logged, and the application ends."""
        self.log.failure("Application {app} failed", failure, app=app.name)
        app.complete()

    def run_private(self, channel: Channel, command: PrivateCommand) -> None:
        """C{switch_ivr_parse_event} for one dequeued command."""
        what = (command.get("call-command") or "").lower()
        if what == "execute":
            name = command.get("execute-app-name") or ""
            arg = command.get("execute-app-arg") or ""
            if not arg and (command.get("content-type") or "").lower() == "text/plain":
                arg = command.body or ""
            locked = _true(command.get("event-lock")) or _true(command.get("event-lock-pri"))
            channel.vars.set("current_loop", 1)
            channel.vars.set("total_loops", command.get("loops") or 1)
            self.execute(
                channel,
                name,
                arg,
                origin=command,
                locked=locked,
                app_uuid=command.get("event-uuid"),
            )
        elif what == "hangup":
            channel.hangup(str2cause(command.get("hangup-cause")), echo=command)
        elif what == "unicast":
            self.sim.media.activate(channel, command)
            self.echo(channel, command)
        else:
            self.log.warn(
                "Channel {uuid}: call-command {what!r} is not simulated",
                uuid=channel.uuid,
                what=what,
            )
            self.echo(channel, command)

    def loop_again(self, app: App) -> bool:
        """
        A command's C{loops} header repeats its application (-1: until stopped), as
        switch_ivr_parse_event does; a run shorter than 0.5 s, a uuid_break, a hangup or a
        transfer ends the loop.
        """
        channel = app.channel
        assert app.origin is not None
        loops = _int(app.origin.get("loops"), 1)
        ran = channel.sim.clock.seconds() - app.started_at
        if (
            not channel.alive
            or channel.unwinding
            or app.stopped
            or ran < 0.5
            or (loops >= 0 and app.loop >= loops)
        ):
            return False
        channel.stack.remove(app)
        channel.vars.set("current_loop", app.loop + 1)
        self.execute(
            channel,
            app.name,
            app.arg,
            origin=app.origin,
            locked=app.locked,
            app_uuid=app.origin.get("event-uuid"),
            loop=app.loop + 1,
        )
        return True

    def echo(self, channel: Channel, command: PrivateCommand) -> None:
        """The PRIVATE_COMMAND event: the command's own headers, then the channel's."""
        event = Event("PRIVATE_COMMAND")
        event.extend(command.headers)
        event.extend(channel.basic_data())
        if command.body:
            event.body = command.body
        prefix = len(command.headers) if command.from_sendmsg else 0
        self.sim.fire(event, CALLING["PRIVATE_COMMAND"], prefix=prefix)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or "")
    except ValueError:
        return default


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "yes", "on", "enabled", "active", "allow", "1")
