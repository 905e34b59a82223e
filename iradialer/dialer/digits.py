"""
DTMF: sending digits (senddtmf) and collecting them (getsimpledtmf, getvaliddtmf) with
FreeSWITCH's C{play_and_get_digits}.

The result of a collection is read from the C{CHANNEL_EXECUTE_COMPLETE} whose
C{Application-UUID} matches, under a channel variable unique to the request (earlier runs
leave stale variables on the channel; see the play_and_get_digits capture):
C{<var>} set means collected; C{<var>_invalid} set means the digits failed the pattern;
neither means too few digits (some DTMF was heard) or a timeout (none was).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.config import TenantConfig
from iradialer.dialer.playback import FLITE_VOICES, resolve_file, spoken, url_source
from iradialer.domain.calls import Action, Call
from iradialer.domain.errors import DialerError, DtmfStatus, Status
from iradialer.protocols import fscommand
from iradialer.protocols.esl import CommandError, Event

if TYPE_CHECKING:
    from iradialer.dialer.core import Dialer

NO_PROMPT = fscommand.silence_stream(250)
ANY_DIGITS = r"^[0-9A-D*#]+$"


@dataclass
class Collection:
    call: Call
    variable: str
    var_name: str
    url: str | None
    heard: int = 0


class Digits:
    log = Logger()

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self.collecting: dict[str, Collection] = {}
        dialer.on_event("DTMF", self._dtmf)
        dialer.on_hangup(self._call_ended)

    async def send(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.SEND_DTMF)
        try:
            await self.dialer.node_of(call).api(fscommand.uuid_send_dtmf(call.uuid, body["digits"]))
        except CommandError as e:
            raise DialerError(Status.SEND_DTMF_FAILED, f"Send DTMF failed: {e.text}") from None
        return {"call_uuid": call.uuid}

    async def simple(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        count = body["digit_count"]
        return await self._collect(
            tenant,
            body,
            minimum=count,
            maximum=count,
            tries=1,
            prompt=NO_PROMPT,
            invalid=NO_PROMPT,
            pattern=ANY_DIGITS,
        )

    async def valid(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        if body["minimum_digits"] > body["maximum_digits"]:
            raise DialerError(Status.INVALID_REQUEST, "minimum_digits is more than maximum_digits")
        pattern = body["reg_expr"] or ANY_DIGITS
        try:
            re.compile(pattern)
        except re.error as e:
            raise DialerError(
                DtmfStatus.BAD_REGEX, f"reg_expr is not a valid regular expression: {e}"
            ) from None
        self.dialer.lookup(tenant, body["call_uuid"], Action.COLLECT_DTMF)
        kind = body["audio_type"].lower()
        prompt = await self._prompt(kind, body["prompt_message"], body)
        invalid = (
            await self._prompt(kind, body["error_message"], body)
            if body["error_message"]
            else NO_PROMPT
        )
        return await self._collect(
            tenant,
            body,
            minimum=body["minimum_digits"],
            maximum=body["maximum_digits"],
            tries=body["maximum_tries"],
            prompt=prompt,
            invalid=invalid,
            pattern=pattern,
        )

    async def _prompt(self, kind: str, message: str, body: dict[str, Any]) -> str:
        """
        A prompt for play_and_get_digits: a file, a URL, C{tts://flite|<voice>|<text>}, or a
        file synthesized by another TTS engine.
        """
        if kind in ("filename", "file"):
            return resolve_file(self.dialer.config.media.files_dir, message)
        if kind == "url":
            return url_source(message)
        engine = body["tts_engine"].lower()
        if engine == "flite":
            voice = body["tts_voice"].lower()
            if voice not in FLITE_VOICES:
                raise DialerError(
                    Status.INVALID_REQUEST, f"tts_voice {voice!r} is not a flite voice"
                )
            try:
                return fscommand.say_prompt(spoken(message), "flite", voice)
            except fscommand.UnsafeValue as e:
                raise DialerError(Status.INVALID_REQUEST, f"prompt: {e.problem}") from None
        tts = self.dialer.tts.get(engine)
        if tts is None:
            raise DialerError(Status.PLAY_MEDIA_ERROR, f"TTS engine {engine!r} is not configured")
        return fscommand.playback(str(await tts.synthesize(message, body["tts_voice"])))

    async def _collect(
        self,
        tenant: TenantConfig,
        body: dict[str, Any],
        *,
        minimum: int,
        maximum: int,
        tries: int,
        prompt: str,
        invalid: str,
        pattern: str,
    ) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.COLLECT_DTMF)
        if call.uuid in self.collecting:
            raise DialerError(
                Status.INVALID_REQUEST, "digits are already being collected on this call"
            )
        variable = "iradialer_dtmf_" + self.dialer.new_uuid().replace("-", "")[:12]
        timeout_ms = body["timeout"] * 1000
        try:
            arg = fscommand.play_and_get_digits(
                min_digits=minimum,
                max_digits=maximum,
                tries=tries,
                timeout_ms=timeout_ms,
                terminators=body["term_keys"],
                prompt=prompt,
                invalid_prompt=invalid,
                var_name=variable,
                regex=pattern,
                digit_timeout_ms=timeout_ms,
            )
        except fscommand.UnsafeValue as e:
            raise DialerError(Status.INVALID_REQUEST, f"{e.what}: {e.problem}") from None
        collection = Collection(call, variable, body["var_name"], body.get("event_url"))
        node = self.dialer.node_of(call)
        self.collecting[call.uuid] = collection
        d = node.execute(call.uuid, "play_and_get_digits", arg)
        d.addCallbacks(
            self._complete, self._failed, callbackArgs=(collection,), errbackArgs=(collection,)
        )
        return {"call_uuid": call.uuid}

    def _complete(self, event: Event, collection: Collection) -> None:
        if self.collecting.get(collection.call.uuid) is not collection:
            return
        del self.collecting[collection.call.uuid]
        digits = event.get("variable_" + collection.variable)
        rejected = event.get("variable_" + collection.variable + "_invalid")
        if digits and not collection.call.live:
            # FreeSWITCH keeps what was keyed before a hangup, with read_result failure.
            self._report(collection, digits, "timeout", DtmfStatus.CALL_ENDED)
        elif digits and event.get("variable_read_result") != "failure":
            self._report(collection, digits, "collected", None)
        elif digits:
            self._report(collection, digits, "invalid", DtmfStatus.TOO_FEW_DIGITS)
        elif rejected:
            self._report(collection, rejected, "invalid", DtmfStatus.NO_MATCH)
        elif collection.heard:
            self._report(collection, "", "invalid", DtmfStatus.TOO_FEW_DIGITS)
        elif not collection.call.live:
            self._report(collection, "", "timeout", DtmfStatus.CALL_ENDED)
        else:
            self._report(collection, "", "timeout", DtmfStatus.TIMEOUT)

    def _failed(self, failure: Failure, collection: Collection) -> None:
        if self.collecting.get(collection.call.uuid) is not collection:
            return
        del self.collecting[collection.call.uuid]
        error = failure.value
        if isinstance(error, CommandError):
            self._report(
                collection, "", "invalid", DtmfStatus.FREESWITCH_REFUSED, detail=error.text
            )
        elif not collection.call.live:
            self._report(collection, "", "timeout", DtmfStatus.CALL_ENDED)
        else:
            self.log.failure("DTMF collection failed", failure)
            self._report(
                collection, "", "invalid", DtmfStatus.INTERRUPTED, detail=failure.getErrorMessage()
            )

    def _report(
        self, collection: Collection, digits: str, status: str, code: int | None, detail: str = ""
    ) -> None:
        """One C{dtmf} event; the contract's C{status} is collected, timeout or invalid."""
        fields: dict[str, Any] = {"digits": digits, "var_name": collection.var_name}
        if code is not None:
            fields["status_code"] = int(code)
            reason = DtmfStatus(code).name.lower().replace("_", " ")
            fields["reason"] = f"{reason} ({detail})" if detail else reason
        self.dialer.emit(collection.call, "dtmf", status, url=collection.url, **fields)

    def _dtmf(self, call: Call, event: Event) -> None:
        collection = self.collecting.get(call.uuid)
        if collection is not None:
            collection.heard += 1

    def _call_ended(self, call: Call) -> None:
        collection = self.collecting.pop(call.uuid, None)
        if collection is not None:
            self._report(collection, "", "timeout", DtmfStatus.CALL_ENDED)
