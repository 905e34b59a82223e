"""
ASR on a live call end to end: the simulator's human speaks, utterances go to a local
speech application, results come back as webhooks in order.
"""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.e2e import Stack


class Recognizer(Resource):
    """A speech application: answers each utterance with its number and length."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.utterances: list[dict] = []

    def render_POST(self, request):
        audio = request.content.read()
        headers = {
            k: request.getHeader(k) for k in (b"x-iradialer-call-uuid", b"x-iradialer-utterance")
        }
        self.utterances.append(
            {"bytes": len(audio), **{k.decode(): v.decode() for k, v in headers.items() if v}}
        )
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(
            {"transcript": f"utterance {len(self.utterances)}", "wav_bytes": len(audio)}
        ).encode()


@pytest_twisted.ensureDeferred
async def test_startasr_on_a_live_call(tmp_path):
    recognizer = Recognizer()
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Site(recognizer))
    stack = Stack(tmp_path)
    await stack.start(
        extra=(
            '[asr.applications.Local]\ntype = "http"\n'
            f'url = "http://127.0.0.1:{port.getHost().port}/recognize"\ntimeout = 5.0\n'
        )
    )
    try:
        code, body = await stack.post(
            "setasrparams",
            {
                "config_name": "talk",
                "asr_application": "Local",
                "aggr_mode": "2",
                "total_timeout": 9000,
            },
        )
        assert code == 200, body
        code, body = await stack.post(
            "setasrparams", {"config_name": "x", "asr_application": "Nowhere"}
        )
        assert (code, body["status_code"]) == (400, 139)

        call_uuid = await stack.answered_call("15550000001")
        code, body = await stack.post("startasr", {"call_uuid": call_uuid, "config_name": "nope"})
        assert (code, body["status_code"]) == (400, 140)
        code, body = await stack.post("startasr", {"call_uuid": call_uuid, "config_name": "talk"})
        assert code == 200, body
        result = await stack.wait_for(call_uuid, "asr_result", timeout=15)
        assert result["result"]["transcript"] == "utterance 1"
        assert recognizer.utterances[0]["x-iradialer-call-uuid"] == call_uuid
        code, body = await stack.post("stopasr", {"call_uuid": call_uuid})
        assert code == 200, body
        done = await stack.wait_for(call_uuid, "asr_done")
        names = [n for n in stack.names(call_uuid) if n.startswith("asr_")]
        assert names[0] == "asr_started" and names[-1] == "asr_done"
        assert (
            names.index("asr_speech_start")
            < names.index("asr_speech_end")
            < names.index("asr_result")
        )
        assert done["reason"] == "stopped"
        code, body = await stack.post("stopasr", {"call_uuid": call_uuid})
        assert (code, body["status_code"]) == (400, 128)
    finally:
        await stack.stop()
        await port.stopListening()
