"""
The FreeSWITCH simulator's built-in callees, analysed by the default (1.1) CPA engine the way a
user would analyse a recording of them: written to WAV files and run through
C{iradialer-cpa analyse --json}, the offline tool's own streaming path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iradialer.cpa.cli import main
from iradialer.cpa.g711 import ulaw_decode
from iradialer.cpa.wav import write_wav
from iradialer.sim.audio import builtin_audio, ulaw

KINDS = ("human", "machine_beep", "machine_nobeep", "fax", "modem", "silence", "music")
#: How much of each callee's audio is analysed: the default total_timeout (15 s) and a little.
SECONDS = 16.0


def _callee(kind: str, codec: str) -> np.ndarray:
    """What the simulator sends for C{kind} from answer on (linear, or through mu-law)."""
    samples = builtin_audio(kind).samples(SECONDS)
    if codec == "pcmu":
        samples = ulaw_decode(ulaw(samples.astype("<i2").tobytes())).astype(np.int16)
    return samples


def _analyse(tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str) -> dict:
    files = []
    for kind in KINDS:
        path = tmp_path / f"{kind}.wav"
        write_wav(path, _callee(kind, codec))
        files.append(str(path))
    assert main(["analyse", "--json", *files]) == 0
    found: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for line in capsys.readouterr().out.splitlines():
        event = json.loads(line)
        found[Path(event["file"]).stem].append(event)
    return found


@pytest.mark.parametrize("codec", ["l16", "pcmu"])
def test_simulator_callees_are_classified_as_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str
) -> None:
    """
    human -> LV (HUMAN) soon after its "hello"; machine_beep -> AM then BP at the 1 kHz beep;
    machine_nobeep -> AM and no BP; fax -> FX (ANS), modem -> MD (ANSam), each within a second
    of the tone; silence -> only the documented initial-silence rule (LV, INITIALSILENCE, 3 s
    of analysed audio after the 750 ms of ignored digital silence); music -> never BP, FX, MD,
    DTMF or LV.  The same with the simulator's mu-law frames (C{unicast} with C{native}).
    """
    found = _analyse(tmp_path, capsys, codec)

    def events(kind: str) -> list[str]:
        return [e["event"] for e in found[kind]]

    def only(kind: str, event: str) -> dict:
        [match] = [e for e in found[kind] if e["event"] == event]
        return match

    for kind in KINDS:
        assert found[kind][-1] == {
            "file": str(tmp_path / f"{kind}.wav"),
            "event": "cpa_done",
            "ms": 15000,
            "reason": "total_timeout",
        }
        assert "DT" not in events(kind)
        assert "DTMF" not in events(kind)

    lv = only("human", "LV")
    assert lv["cause"] == "HUMAN" and lv["ms"] <= 2500  # "Hello." ends about 1.2 s in
    assert not {"AM", "BP", "FX", "MD"} & set(events("human"))

    for kind in ("machine_beep", "machine_nobeep"):
        am = [e for e in found[kind] if e["event"] == "AM"][0]
        assert am["cause"] == "LONGGREETING" and am["ms"] <= 4000
        assert not {"LV", "FX", "MD"} & set(events(kind))
    bp = only("machine_beep", "BP")
    # The greeting lasts about 8.6 s, then 0.6 s of line and the beep.
    assert 9000 <= bp["ms"] <= 10500 and abs(bp["frequency"] - 1000) <= 1
    assert bp["decided_ms"] - bp["ms"] <= 100
    assert "BP" not in events("machine_nobeep")

    fx = only("fax", "FX")
    assert fx["signal"] == "ANS" and fx["decided_ms"] - fx["ms"] <= 1000
    md = only("modem", "MD")
    assert md["signal"] == "ANSam" and md["decided_ms"] - md["ms"] <= 1000
    for kind in ("fax", "modem"):
        assert not {"LV", "AM", "BP"} & set(events(kind))

    assert events("silence")[0] == "LV"
    silent = only("silence", "LV")
    assert silent["cause"] == "INITIALSILENCE" and 3700 <= silent["ms"] <= 3800
    assert not {"AM", "BP", "FX", "MD"} & set(events("silence"))

    assert not {"BP", "FX", "MD", "LV"} & set(events("music"))
