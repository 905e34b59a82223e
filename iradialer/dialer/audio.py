"""
A call's audio from FreeSWITCH to the media service, shared by CPA and ASR.

FreeSWITCH sends a parked call's audio with the C{unicast} call-command to a FreeSWITCH-side
port of ours.  The stream stops for good once an application (a playback, speak,
play_and_get_digits, conference) runs on the leg, and only a re-park
(C{uuid_transfer <uuid> park inline}) followed by a new C{unicast} on a new port brings it
back (the contract, and the unicast captures).  A L{Tap} remembers who needs the audio;
when an interrupting application is over and somebody still does, L{AudioTaps.resume}
re-parks and starts a new stream.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.cpa.config import CpaConfig
from iradialer.domain.calls import Call, Place
from iradialer.domain.errors import DialerError, Status
from iradialer.protocols import fscommand
from iradialer.protocols.esl import CommandError, Event

if TYPE_CHECKING:
    from iradialer.dialer.core import Dialer

# Seconds to wait for the first datagram of a new stream before trying another port, and
# how many ports to try: FreeSWITCH answers +OK to a unicast it then cannot bind (the port is
# taken), and only silence says so.
FIRST_AUDIO_WITHIN = 2.0
PORTS_TRIED = 3

# Applications that stop a leg's unicast stream while (and after) they run.
INTERRUPTING = frozenset(
    {"playback", "speak", "play_and_get_digits", "conference", "endless_playback", "read"}
)

Consumer = Callable[[Any, int], None]


@dataclass
class Tap:
    call_uuid: str
    port: int
    stream: Any
    cpa: CpaConfig | None
    consumers: list[Consumer] = field(default_factory=list)
    interrupted: bool = False
    resuming: bool = False
    attempt: int = 1


class AudioTaps:
    log = Logger()

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self.taps: dict[str, Tap] = {}
        dialer.on_event("CHANNEL_EXECUTE", self._application_started)
        dialer.on_event("CHANNEL_EXECUTE_COMPLETE", self._application_done)
        dialer.on_event("CHANNEL_PARK", self._parked)
        dialer.on_hangup(lambda call: self.close(call.uuid))

    async def open(self, call: Call, cpa: CpaConfig | None = None) -> Tap:
        """
        The call's audio stream, started now unless it runs already; with C{cpa}, the stream
        is analysed (a stream without analysis is replaced by one with it).
        """
        tap = self.taps.get(call.uuid)
        if tap is not None and not tap.interrupted and (cpa is None or tap.cpa is not None):
            return tap
        consumers = tap.consumers if tap is not None else []
        cpa = cpa if cpa is not None else (tap.cpa if tap is not None else None)
        if tap is not None:
            tap.resuming = True
            self._drop(tap)
            if tap.interrupted:
                await self.dialer.node_of(call).api(fscommand.uuid_park(call.uuid))
        return await self._start(call, cpa, consumers)

    async def _start(
        self, call: Call, cpa: CpaConfig | None, consumers: list[Consumer], attempt: int = 1
    ) -> Tap:
        node = self.dialer.node_of(call)
        freeswitch_ip = node.config.host
        try:
            ipaddress.ip_address(freeswitch_ip)
        except ValueError:
            raise DialerError(
                Status.CPA_INIT_FAILED,
                f"CPA initialization failed! FreeSWITCH node {node.name} has host "
                f"{freeswitch_ip!r}; unicast needs an IP address there",
            ) from None
        media = self.dialer.media
        port = media.allocate_port()
        try:
            stream = media.open_stream(
                call.uuid,
                (freeswitch_ip, port),
                cpa,
                listener=self.dialer.analysis,
                log_voice=self._log_path(call, cpa, "voice", ".wav"),
                rtp_log=self._log_path(call, cpa, "rtp", ".log", history=True),
            )
        except Exception:
            media.release_port(port)
            raise
        tap = Tap(call.uuid, port, stream, cpa, list(consumers), attempt=attempt)
        for consumer in tap.consumers:
            stream.add_consumer(consumer)
        self.taps[call.uuid] = tap
        receiver_ip, receiver_port = media.address
        try:
            await node.unicast(call.uuid, freeswitch_ip, port, receiver_ip, receiver_port)
        except Exception:
            self.close(call.uuid)
            raise
        self.dialer.clock.callLater(FIRST_AUDIO_WITHIN, self._check_audio, call, tap)
        return tap

    def _check_audio(self, call: Call, tap: Tap) -> None:
        """
        No datagram since the unicast: FreeSWITCH could not bind its side's port.  Try the
        next port (re-parking first, as for any new stream); after L{PORTS_TRIED}, give up
        with an error event.
        """
        if self.taps.get(call.uuid) is not tap or tap.stream.frames or tap.interrupted:
            return
        if not call.live or tap.resuming:
            return
        self.log.warn(
            "No audio from FreeSWITCH for {call_uuid} on port {port} (try {n})",
            call_uuid=call.uuid,
            port=tap.port,
            n=tap.attempt,
        )
        self._drop(tap)
        del self.taps[call.uuid]
        if tap.attempt >= PORTS_TRIED:
            self.dialer.emit_error(
                call,
                Status.CPA_INIT_FAILED,
                f"CPA initialization failed! no audio from FreeSWITCH on {PORTS_TRIED} ports",
            )
            if tap.cpa is not None:
                self.dialer.analysis.cpa_done(call.uuid, 0, "no_audio")
            return

        async def retry() -> None:
            await self.dialer.node_of(call).api(fscommand.uuid_park(call.uuid))
            await self._start(call, tap.cpa, tap.consumers, tap.attempt + 1)

        Deferred.fromCoroutine(retry()).addErrback(
            lambda f: self.log.failure(
                "Retrying the audio of {call_uuid} failed", f, call_uuid=call.uuid
            )
        )

    def _log_path(
        self, call: Call, cpa: CpaConfig | None, kind: str, suffix: str, history: bool = False
    ) -> Any:
        wanted = cpa is not None and (cpa.log_rtp_history if history else cpa.log_voice)
        if not wanted:
            return None
        directory = self.dialer.config.store.path.parent / "cpa" / kind / call.tenant_id
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{call.uuid}{suffix}"

    def add_consumer(self, call_uuid: str, consumer: Consumer) -> None:
        tap = self.taps[call_uuid]
        tap.consumers.append(consumer)
        tap.stream.add_consumer(consumer)

    def remove_consumer(self, call_uuid: str, consumer: Consumer) -> None:
        """The consumer no longer needs the audio; the stream ends when nobody does."""
        tap = self.taps.get(call_uuid)
        if tap is None:
            return
        if consumer in tap.consumers:
            tap.consumers.remove(consumer)
        self._close_if_unused(tap)

    def cpa_finished(self, call_uuid: str) -> None:
        tap = self.taps.get(call_uuid)
        if tap is not None:
            tap.cpa = None
            self._close_if_unused(tap)

    def _close_if_unused(self, tap: Tap) -> None:
        if tap.cpa is None and not tap.consumers:
            self.close(tap.call_uuid)
            self._stop_sending(tap)

    def _stop_sending(self, tap: Tap) -> None:
        """
        Nobody needs the live call's audio any more, but FreeSWITCH keeps sending it for as
        long as the call stays in the park that started the stream (at 1,000 calls that is
        tens of thousands of datagrams a second, each dropped here as from an unknown
        source).  Leaving park ends a unicast stream, so re-park, unless something already
        ended the stream or is about to: a playback, a collection, the conference a
        C{join_conf} call joins once its CPA is done.
        """
        call = self.dialer.calls.get(tap.call_uuid)
        if call is None or not call.live or tap.interrupted or call.join_conf:
            return
        if not self._idle_in_park(call):
            return
        node = self.dialer.pool.node_for(call.uuid)
        if node is None:
            return
        d = node.api(fscommand.uuid_park(call.uuid))
        d.addErrback(
            lambda f: self.log.info(
                "Could not stop the audio of {call_uuid}: {why}",
                call_uuid=call.uuid,
                why=f.getErrorMessage(),
            )
        )

    def _idle_in_park(self, call: Call) -> bool:
        """The call waits in park with nothing of ours playing or collecting on it."""
        return (
            call.place is Place.PARKED
            and not self.dialer.playbacks.playing.get(call.uuid)
            and call.uuid not in self.dialer.digits.collecting
        )

    def close(self, call_uuid: str) -> None:
        tap = self.taps.pop(call_uuid, None)
        if tap is not None:
            self._drop(tap)

    def _drop(self, tap: Tap) -> None:
        tap.stream.close()
        self.dialer.media.release_port(tap.port)

    # -- interruptions ----------------------------------------------------------------------

    def _application_started(self, call: Call, event: Event) -> None:
        tap = self.taps.get(call.uuid)
        if tap is not None and event.get("Application") in INTERRUPTING:
            tap.interrupted = True

    def _application_done(self, call: Call, event: Event) -> None:
        if event.get("Application") in INTERRUPTING:
            self._maybe_resume(call)

    def _parked(self, call: Call, event: Event) -> None:
        self._maybe_resume(call)

    def _maybe_resume(self, call: Call) -> None:
        """
        Nothing of ours is playing or collecting any more, and CPA or ASR still needs the
        audio: re-park and start a new stream.
        """
        tap = self.taps.get(call.uuid)
        if tap is None or not tap.interrupted or tap.resuming or not call.live:
            return
        if not self._idle_in_park(call):
            return
        tap.resuming = True

        def failed(failure: Failure) -> None:
            if not call.live or (
                isinstance(failure.value, CommandError) and failure.value.no_such_channel
            ):
                self.log.debug(
                    "Audio of {call_uuid} not resumed: the call ended", call_uuid=call.uuid
                )
                return
            self.log.failure(
                "Resuming the audio of {call_uuid} failed", failure, call_uuid=call.uuid
            )
            if call.live:
                self.dialer.emit_error(
                    call,
                    Status.CPA_INIT_FAILED,
                    f"the call's audio could not be restarted: {failure.getErrorMessage()}",
                )

        Deferred.fromCoroutine(self.open(call)).addErrback(failed)
