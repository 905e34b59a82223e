"""
Call progress analysis on calls: CPA configurations (setcpaparams), and on answer the call's
audio pointed at the CPA engine through FreeSWITCH's C{unicast}, detections reported as
C{cpa_detection}, the end as C{cpa_done}.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from iradialer.config import TenantConfig
from iradialer.cpa.config import CpaConfig
from iradialer.domain.calls import Call
from iradialer.domain.errors import DialerError, Status
from iradialer.protocols.esl import CommandError

if TYPE_CHECKING:
    from iradialer.dialer.core import Dialer

STATUS_TEXT = {
    "LV": "live voice detected",
    "AM": "machine detected",
    "FX": "fax detected",
    "MD": "modem detected",
    "BP": "beep detected",
    "SL": "silence detected",
    "DT": "detection timeout",
}


def beep(ms: int, frequency: float = 1000.0, level: float = 0.25) -> bytes:
    """A sine beep as s16le 8 kHz PCM, with 5 ms ramps so it does not click."""
    samples = ms * 8
    ramp = min(40, samples // 2)
    out = []
    for n in range(samples):
        gain = min(1.0, n / ramp, (samples - 1 - n) / ramp) if ramp else 1.0
        out.append(int(32767 * level * gain * math.sin(2 * math.pi * frequency * n / 8000)))
    return struct.pack(f"<{samples}h", *out)


class CallAnalysis:
    """
    CPA configurations and the CPA session of each call.
    """

    log = Logger()

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self.sessions: set[str] = set()
        self._configs: dict[tuple[str, str], CpaConfig] = {}
        dialer.on_hangup(self._call_ended)

    # -- configurations ---------------------------------------------------------------------

    async def set_params(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        if body["tenant_id"] != tenant.id:
            raise DialerError(Status.INVALID_REQUEST, "tenant_id is not the token's tenant", 401)
        params = {
            k: v for k, v in body.items() if k not in ("request_name", "tenant_id", "event_url")
        }
        try:
            config = CpaConfig.from_params(params)
        except ValueError as e:
            raise DialerError(
                Status.CPA_CONFIG_NOT_SET, f"Not able to set the CPA configuration: {e}"
            ) from None
        name = body["config_name"]
        await self.dialer.records.save_config(
            "cpa", tenant.id, name, config.to_params(), self.dialer.clock.seconds()
        )
        self._configs[(tenant.id, name)] = config
        if body.get("event_url"):
            self.dialer.webhooks.send(
                tenant.id,
                None,
                body["event_url"],
                "cpa_configured",
                "A new CPA configuration has been saved",
                config_name=name,
            )
        return {"config_name": name}

    async def config(self, tenant_id: str, name: str | None) -> CpaConfig:
        """
        @raise DialerError: 100 when the tenant has no configuration of that name.
        """
        if not name:
            raise DialerError(
                Status.NO_CPA_CONFIG, "config_name is required when enable_cpa is yes"
            )
        cached = self._configs.get((tenant_id, name))
        if cached is not None:
            return cached
        params = await self.dialer.records.load_config("cpa", tenant_id, name)
        if params is None:
            raise DialerError(
                Status.NO_CPA_CONFIG, f"Can't pick up CPA configuration {name!r}: it does not exist"
            )
        config = CpaConfig.from_params(params)
        self._configs[(tenant_id, name)] = config
        return config

    async def check_config(self, tenant: TenantConfig, name: str | None) -> None:
        await self.config(tenant.id, name)

    # -- a call's analysis ------------------------------------------------------------------

    def start(self, call: Call) -> None:
        Deferred.fromCoroutine(self._start(call)).addErrback(self._start_failed, call)

    async def _start(self, call: Call) -> None:
        config = await self.config(call.tenant_id, call.cpa_config)
        if not call.live:
            return
        self.sessions.add(call.uuid)
        tap = await self.dialer.audio.open(call, cpa=config)
        self.dialer.emit(
            call, "cpa_setup", "CPA parameter has been loaded", config_name=call.cpa_config
        )
        if config.welcome_beep_ms:
            tap.stream.send_audio(beep(config.welcome_beep_ms))

    def _start_failed(self, failure: Any, call: Call) -> None:
        self._finished(call.uuid)
        if not call.live or (
            isinstance(failure.value, CommandError) and failure.value.no_such_channel
        ):
            self.log.debug("CPA of {call_uuid} not started: the call ended", call_uuid=call.uuid)
            return
        if failure.check(DialerError):
            code, why = failure.value.status, failure.value.message
        else:
            code, why = (
                Status.CPA_INIT_FAILED,
                f"CPA initialization failed! {failure.getErrorMessage()}",
            )
            self.log.failure("CPA start failed for {call_uuid}", failure, call_uuid=call.uuid)
        if call.live:
            self.dialer.emit_error(call, code, why)
            if call.join_conf:
                self.dialer.conferences.join_on_answer(call)

    # -- the media service's listener -------------------------------------------------------

    def cpa_detection(self, call_uuid: str, detection: Any) -> None:
        call = self.dialer.calls.get(call_uuid)
        if call is None:
            return
        kind = detection.event
        fields: dict[str, Any] = {
            "event_data": kind,
            "ms_since_answer": int(detection.decided_ms),
            "onset_ms": int(detection.ms),
        }
        if kind == "DTMF":
            fields["digit"] = detection.digit
            status = f"DTMF {detection.digit} detected"
        else:
            status = STATUS_TEXT.get(kind, f"tone {kind} detected")
        for name, value in detection.extras.items():
            fields.setdefault(name, value)
        call.timeline.append(
            {
                "at": round(self.dialer.clock.seconds(), 3),
                "signal": "cpa",
                "event_data": kind,
                "ms_since_answer": int(detection.decided_ms),
            }
        )
        self.dialer.recorder.record_cpa(
            call.tenant_id, kind, detection.decided_ms - detection.ms, self.dialer.clock.seconds()
        )
        self.dialer.emit(call, "cpa_detection", status, **fields)

    def cpa_done(self, call_uuid: str, ms: int, reason: str) -> None:
        self._finished(call_uuid)
        call = self.dialer.calls.get(call_uuid)
        if call is None:
            return
        self.dialer.emit(
            call, "cpa_done", "CPA process has ended", ms_since_answer=int(ms), reason=reason
        )
        self.dialer.save(call)
        if call.join_conf and call.live:
            self.dialer.conferences.join_on_answer(call)

    # -- cleanup ----------------------------------------------------------------------------

    def _finished(self, call_uuid: str) -> None:
        self.sessions.discard(call_uuid)
        self.dialer.audio.cpa_finished(call_uuid)

    def _call_ended(self, call: Call) -> None:
        self.sessions.discard(call.uuid)
        self.dialer.media.forget_call(call.uuid)
