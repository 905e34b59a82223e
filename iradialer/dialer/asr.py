"""
ASR on calls (setasrparams, startasr, stopasr): the call's audio goes to an L{AsrSession}
(voice activity detection, utterances to the configured speech application) and its events
become webhooks of the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from iradialer.asr.applications import CallInfo
from iradialer.asr.config import AsrConfig
from iradialer.asr.session import AsrSession
from iradialer.config import TenantConfig
from iradialer.domain.calls import Action, Call
from iradialer.domain.errors import DialerError, Status

if TYPE_CHECKING:
    from iradialer.dialer.core import Dialer


class Recognition:
    log = Logger()

    def __init__(self, dialer: Dialer) -> None:
        self.dialer = dialer
        self.sessions: dict[str, AsrSession] = {}
        dialer.on_hangup(self._call_ended)

    @property
    def applications(self) -> dict[str, Any]:
        return self.dialer.asr_applications

    async def set_params(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        try:
            config = AsrConfig.from_params(body, self.applications)
        except ValueError as e:
            raise DialerError(
                Status.ASR_CONFIG_NOT_SET, f"Not able to set the ASR configuration: {e}"
            ) from None
        name = body["config_name"]
        await self.dialer.records.save_config(
            "asr", tenant.id, name, config.to_params(), self.dialer.clock.seconds()
        )
        return {"config_name": name}

    async def start(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.ASR)
        if call.uuid in self.sessions:
            raise DialerError(Status.INVALID_REQUEST, "ASR is already running on this call")
        name = body["config_name"]
        params = await self.dialer.records.load_config("asr", tenant.id, name)
        if params is None:
            raise DialerError(
                Status.NO_ASR_CONFIG, f"ASR configuration {name!r} does not exist", 400
            )
        try:
            config = AsrConfig.from_params(params, self.applications)
        except ValueError as e:
            raise DialerError(
                Status.NO_ASR_CONFIG, f"ASR configuration {name!r} is no longer usable: {e}"
            ) from None
        url = body.get("event_url")
        session = AsrSession(
            config,
            CallInfo(call.uuid, tenant.id, name),
            self.applications[config.asr_application],
            self.dialer.clock,
            lambda event, fields: self._event(call, url, event, fields),
            log_voice_dir=self._voice_dir(call) if config.log_voice else None,
        )
        self.sessions[call.uuid] = session
        try:
            await self.dialer.audio.open(call)
        except Exception:
            del self.sessions[call.uuid]
            raise
        self.dialer.audio.add_consumer(call.uuid, session.feed)
        session.start()
        session.when_done().addBoth(self._session_done, call, session)
        return {"call_uuid": call.uuid, "config_name": name}

    async def stop(self, tenant: TenantConfig, body: dict[str, Any]) -> dict[str, Any]:
        call = self.dialer.lookup(tenant, body["call_uuid"], Action.DETAILS)
        session = self.sessions.get(call.uuid)
        if session is None:
            raise DialerError(Status.INVALID_REQUEST, "ASR is not running on this call")
        await session.stop()
        return {"call_uuid": call.uuid}

    def _event(self, call: Call, url: str | None, event: str, fields: dict[str, Any]) -> None:
        fields = dict(fields)
        status = fields.pop("status", event)
        self.dialer.emit(call, event, status, url=url, **fields)

    def _voice_dir(self, call: Call) -> Any:
        directory = self.dialer.config.store.path.parent / "asr" / "voice" / call.tenant_id
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _session_done(self, result: Any, call: Call, session: AsrSession) -> None:
        if self.sessions.get(call.uuid) is session:
            del self.sessions[call.uuid]
        self.dialer.audio.remove_consumer(call.uuid, session.feed)
        if isinstance(result, Failure):
            self.log.failure("ASR session of {call_uuid} failed", result, call_uuid=call.uuid)

    def _call_ended(self, call: Call) -> None:
        session = self.sessions.get(call.uuid)
        if session is not None:
            session.stop("call ended")
