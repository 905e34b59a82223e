"""
Playing into calls: files under C{files_dir}, text-to-speech, URLs; C{loop_count},
C{stop_on_key}, C{stopplay}; one C{play_done} per request.

Each request is a sequence of C{execute} messages on the parked channel (FreeSWITCH queues
them in order); the C{CHANNEL_EXECUTE_COMPLETE} of each, matched by its C{Application-UUID},
says how it ended, and the C{PLAYBACK_STOP} just before it whether it was broken off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.config import TenantConfig
from iradialer.domain.calls import Action, Call
from iradialer.domain.errors import DialerError, Status
from iradialer.protocols import fscommand
from iradialer.protocols.esl import CommandError, Event

if TYPE_CHECKING:
    from iradialer.dialer.core import Dialer

FLITE_VOICES = ("slt", "rms", "awb", "kal")
PLAYABLE = (".wav", ".mp3")
ALL_KEYS = "0123456789*#"


def resolve_file(files_dir: Path, filename: str) -> str:
    """
    The path FreeSWITCH plays for C{filename}, which must stay inside C{files_dir}.

    @raise DialerError: 128 for a name that is absolute, climbs out, holds characters
        other than C{[A-Za-z0-9_.-/]}, or is not wav/mp3; 103 for a file missing from
        C{files_dir} when that directory is visible here (FreeSWITCH on this machine).
    """
    try:
        path = fscommand.sound_path(str(files_dir), filename)
    except fscommand.UnsafeValue as e:
        raise DialerError(Status.INVALID_REQUEST, f"filename {filename!r}: {e.problem}") from None
    if not path.lower().endswith(PLAYABLE):
        raise DialerError(
            Status.INVALID_REQUEST, f"filename {filename!r} is not a .wav or .mp3 file"
        )
    base = Path(files_dir)
    if base.is_dir():
        local = Path(path)
        if not local.is_file():
            raise DialerError(
                Status.FILE_NOT_FOUND, f"File specified for playing was not found: {filename}"
            )
        if not local.resolve().is_relative_to(base.resolve()):
            raise DialerError(Status.INVALID_REQUEST, f"filename {filename!r} is outside files_dir")
    return path


def url_source(url: str) -> str:
    """C{http://} is assumed without a scheme; only http and https are played."""
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DialerError(Status.INVALID_REQUEST, f"url {url!r} is not an http(s) URL")
    try:
        return fscommand.url_source(url)
    except fscommand.UnsafeValue as e:
        raise DialerError(Status.INVALID_REQUEST, f"url: {e.problem}") from None


def spoken(text: str) -> str:
    """
    Text for a spoken prompt inside an argument list (play_and_get_digits): an apostrophe
    is FreeSWITCH's quote character there and cannot be escaped, so it becomes the
    typographic one, which the voice reads the same.
    """
    return text.replace("'", "’")


@dataclass
class Play:
    """One play request: what to run, how many times, and how it is going."""

    play_id: str
    call: Call
    steps: list[tuple[str, str]]  # (application, argument) per loop
    url: str | None
    stopped: bool = False
    current: Deferred[Any] | None = None
    results: list[str] = field(default_factory=list)


class Playbacks:
    log = Logger()

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self.playing: dict[str, list[Play]] = {}
        self._last_stop: dict[str, str] = {}
        dialer.on_event("PLAYBACK_STOP", self._playback_stopped)
        dialer.on_hangup(self._call_ended)

    # -- requests ---------------------------------------------------------------------------

    async def play(self, tenant: TenantConfig, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.PLAY)
        if kind == "file":
            step = ("playback", resolve_file(self.dialer.config.media.files_dir, body["filename"]))
        elif kind == "url":
            step = ("playback", url_source(body["url"]))
        else:
            step = await self._tts_step(body)
        play = Play(
            play_id=self.dialer.new_uuid(),
            call=call,
            steps=[step] * body["loop_count"],
            url=body.get("event_url"),
        )
        node = self.dialer.node_of(call)
        terminators = ALL_KEYS if body["stop_on_key"] else "none"
        try:
            await node.api(fscommand.uuid_setvar(call.uuid, "playback_terminators", terminators))
        except CommandError as e:
            raise DialerError(Status.PLAY_MEDIA_ERROR, f"could not play: {e.text}") from None
        self.playing.setdefault(call.uuid, []).append(play)
        Deferred.fromCoroutine(self._run(play)).addErrback(self._run_failed, play)
        return {"call_uuid": call.uuid, "play_id": play.play_id}

    async def _tts_step(self, body: dict[str, Any]) -> tuple[str, str]:
        engine = body["tts_engine"].lower()
        voice = body["tts_voice"]
        if engine == "flite":
            if voice.lower() not in FLITE_VOICES:
                raise DialerError(
                    Status.INVALID_REQUEST,
                    f"tts_voice {voice!r} is not a flite voice ({', '.join(FLITE_VOICES)})",
                )
            try:
                return ("speak", fscommand.speak("flite", voice.lower(), body["text"]))
            except fscommand.UnsafeValue as e:
                raise DialerError(Status.INVALID_REQUEST, f"text: {e.problem}") from None
        tts = self.dialer.tts.get(engine)
        if tts is None:
            raise DialerError(
                Status.PLAY_MEDIA_ERROR, f"TTS engine {engine!r} is not configured on this server"
            )
        path = await tts.synthesize(body["text"], voice)
        return ("playback", fscommand.playback(str(path)))

    async def _run(self, play: Play) -> None:
        node = self.dialer.node_of(play.call)
        outcome = "done"
        for app, arg in play.steps:
            if play.stopped or not play.call.live:
                break
            self._last_stop.pop(play.call.uuid, None)
            play.current = node.execute(play.call.uuid, app, arg)
            complete: Event = await play.current
            outcome = self._outcome(play, complete)
            if outcome != "done":
                break
        self._finish(play, outcome)

    def _outcome(self, play: Play, complete: Event) -> str:
        response = (complete.get("Application-Response") or "").upper()
        if "NOT FOUND" in response:
            return "not_found"
        if complete.get("variable_playback_terminator_used"):
            return "key"
        if self._last_stop.pop(play.call.uuid, None) == "break" or play.stopped:
            return "stopped"
        if "ERROR" in response:
            return "hangup" if not play.call.live else "error"
        return "done"

    def _run_failed(self, failure: Failure, play: Play) -> None:
        if not play.call.live:
            self._finish(play, "hangup")
            return
        self.log.failure("Play {play_id} failed", failure, play_id=play.play_id)
        self._finish(play, "error", detail=failure.getErrorMessage())

    def _finish(self, play: Play, outcome: str, detail: str = "") -> None:
        queue = self.playing.get(play.call.uuid, [])
        if play not in queue:
            return
        queue.remove(play)
        if not queue:
            self.playing.pop(play.call.uuid, None)
        fields: dict[str, Any] = {"play_id": play.play_id}
        status = {
            "done": "Play API completed playing",
            "stopped": "Play was stopped",
            "key": "Play was stopped by a key press",
            "not_found": "File specified for playing was not found",
            "hangup": "Call disconnected while play was playing",
            "error": "Error returned by the media handler while playing"
            + (f": {detail}" if detail else ""),
        }[outcome]
        code = {
            "not_found": Status.FILE_NOT_FOUND,
            "hangup": Status.PLAY_CALL_DISCONNECTED,
            "error": Status.PLAY_MEDIA_ERROR,
        }.get(outcome)
        if code is not None:
            fields["status_code"] = int(code)
        self.dialer.emit(play.call, "play_done", status, url=play.url, **fields)

    # -- stopplay ---------------------------------------------------------------------------

    async def stop(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.STOP_PLAY)
        plays = list(self.playing.get(call.uuid, []))
        for play in plays:
            play.stopped = True
        try:
            await self.dialer.node_of(call).api(fscommand.uuid_break(call.uuid, all_queued=True))
        except CommandError as e:
            raise DialerError(Status.STOP_PLAY_FAILED, f"Error stopping play: {e.text}") from None
        return {"call_uuid": call.uuid, "stopped": [p.play_id for p in plays]}

    # -- events -----------------------------------------------------------------------------

    def _playback_stopped(self, call: Call, event: Event) -> None:
        self._last_stop[call.uuid] = event.get("Playback-Status") or "done"

    def _call_ended(self, call: Call) -> None:
        self._last_stop.pop(call.uuid, None)
        for play in list(self.playing.get(call.uuid, [])):
            play.stopped = True
            self._finish(play, "hangup")
