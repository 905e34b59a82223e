"""
The batched engine, the offline tool, WAV reading and G.711.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from iradialer.cpa import g711
from iradialer.cpa.cli import analyse, as_json, main
from iradialer.cpa.config import CpaConfig
from iradialer.cpa.engine import CpaEngine
from iradialer.cpa.wav import read_wav, write_wav
from tests.cpa_signals import dual, join, noise, pcm, silence, tone, voice


def calls() -> list[np.ndarray]:
    """Five different calls: human, machine with beep, fax, DTMF, silence."""
    n = lambda x: x + noise(len(x) / 8, -60, seed=len(x))  # noqa: E731
    return [
        pcm(n(join(silence(500), voice(700, seed=1), silence(4000)))),
        pcm(
            n(
                join(
                    silence(300),
                    voice(4000, seed=2),
                    silence(300),
                    tone(1000, 400, -18),
                    silence(1000),
                )
            )
        ),
        pcm(n(join(silence(800), tone(2100, 3000, -15), silence(1000)))),
        pcm(
            n(
                join(
                    silence(400),
                    dual(852, 1477, 80, -15, -15),
                    silence(100),
                    dual(941, 1336, 80, -15, -15),
                    silence(800),
                )
            )
        ),
        pcm(n(silence(4000))),
    ]


def test_batched_equals_one_at_a_time() -> None:
    """
    Five streams analysed together in one batch per frame give exactly what each gives alone.
    """
    audio = calls()
    names = [f"call{i}" for i in range(len(audio))]
    together = analyse(names, CpaConfig(), audio)
    alone = [r for name, a in zip(names, audio) for r in analyse([name], CpaConfig(), [a])]
    key = lambda r: (r[0], repr(r[1]))  # noqa: E731
    assert sorted(together, key=key) == sorted(alone, key=key)
    events = {
        name: [getattr(w, "event", "done") for f, w in together if f == name] for name in names
    }
    assert "LV" in events["call0"]
    assert "AM" in events["call1"] and "BP" in events["call1"]
    assert "FX" in events["call2"]
    assert [w.digit for f, w in together if f == "call3" and getattr(w, "event", "") == "DTMF"] == [
        "9",
        "0",
    ]


def test_slots_are_reused_clean() -> None:
    """
    A slot closed and reopened starts from a clean state (no decision carried over).
    """
    engine = CpaEngine(capacity=1)
    config = CpaConfig()
    slot = engine.open(config)
    frames = pcm(join(silence(300), voice(4000))).reshape(-1, 160)
    for i, frame in enumerate(frames):
        engine.step([slot], frame[None, :], [i * 20])
    assert engine.s.classified[slot]
    engine.close(slot)
    again = engine.open(config)
    assert again == slot
    assert not engine.s.classified[again] and not engine.is_done(again)


def test_engine_grows_and_skips_done_streams() -> None:
    """
    Opening more streams than the capacity grows every detector; a done stream is skipped.
    """
    engine = CpaEngine(capacity=2)
    slots = [engine.open(CpaConfig.from_params({"total_timeout": 1000})) for _ in range(5)]
    assert engine.capacity >= 5
    quiet = np.zeros((5, 160), dtype=np.int16)
    outcomes = []
    for t in range(60):
        outcomes += engine.step(slots, quiet, [t * 20] * 5)
    done = [slot for slot, what in outcomes if getattr(what, "reason", None) == "total_timeout"]
    assert sorted(done) == sorted(slots)
    assert engine.step(slots, quiet, [2000] * 5) == []


def test_cli_json_lines(tmp_path: Path) -> None:
    """
    analyse --json prints one JSON object per line and nothing else, ending with cpa_done.
    """
    path = tmp_path / "hello.wav"
    write_wav(path, calls()[0])
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"total_timeout": 3000}))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "iradialer.cpa.cli",
            "analyse",
            "--json",
            "--config",
            str(config),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["file"] == str(path)
    assert lines[0]["event"] == "LV" and isinstance(lines[0]["ms"], int)
    assert lines[-1] == {
        "file": str(path),
        "event": "cpa_done",
        "ms": 3000,
        "reason": "total_timeout",
    }


def test_cli_dtmf_json_shape() -> None:
    """
    A DTMF detection is {"file", "event": "DTMF", "digit", "ms"}.
    """
    [(name, dtmf)] = [
        r for r in analyse(["d"], CpaConfig(), [calls()[3]]) if getattr(r[1], "event", "") == "DTMF"
    ][:1]
    line = as_json(name, dtmf)
    assert list(line)[:4] == ["file", "event", "digit", "ms"]
    assert line["digit"] == "9"


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """
    A file that is not a WAV or a bad configuration: exit status 2 and a message on stderr.
    """
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not a wav")
    assert main(["analyse", str(bad)]) == 2
    assert "RIFF" in capsys.readouterr().err
    cfg = tmp_path / "c.json"
    cfg.write_text('{"silence_detect_limit": 5}')
    good = tmp_path / "g.wav"
    write_wav(good, calls()[4])
    assert main(["analyse", "--config", str(cfg), str(good)]) == 2


def test_bench_runs() -> None:
    """
    bench reports batched and one-at-a-time costs from the same run (small sizes here).
    """
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "iradialer.cpa.cli",
            "bench",
            "--streams",
            "50",
            "--seconds",
            "1",
            "--single",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    figures = json.loads(out[-1])
    assert figures["streams"] == 50
    assert figures["batching_speedup"] > 1
    assert "real-time streams" in out[0]


@pytest.mark.parametrize(
    "rate, width, channels",
    [(8000, 2, 1), (16000, 2, 2), (44100, 2, 1), (48000, 4, 1), (11025, 1, 1)],
)
def test_any_pcm_wav_is_read_as_8khz(tmp_path: Path, rate: int, width: int, channels: int) -> None:
    """
    8/16/32-bit PCM at any rate, mono or stereo: 8 kHz int16 out, a 1 kHz tone still 1 kHz and
    the same length.
    """
    t = np.arange(rate) / rate
    x = np.sin(2 * np.pi * 1000 * t) * 0.5
    if width == 1:
        data = (x * 127 + 128).astype(np.uint8).tobytes()
    elif width == 2:
        data = (x * 32767).astype("<i2").tobytes()
    else:
        data = (x * 2**31).astype("<i4").tobytes()
    if channels == 2:
        mono = np.frombuffer(data, dtype=f"<i{width}")
        data = np.repeat(mono, 2).tobytes()
    path = tmp_path / "t.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    y = read_wav(path)
    assert y.dtype == np.int16 and abs(len(y) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(y[1000:7000].astype(float)))
    assert abs(np.argmax(spectrum) * 8000 / 6000 - 1000) < 3
    assert 14000 < np.abs(y[1000:7000]).max() < 18000


def test_g711_matches_itu_values() -> None:
    """
    Decoding tables match G.711 (mu-law 0x00 -> -32124, 0xFF -> 0; A-law 0xD5 -> 8), and
    encode(decode(c)) == c for every code except mu-law's negative zero.
    """
    assert g711.ULAW_DECODE[0x00] == -32124 and g711.ULAW_DECODE[0xFF] == 0
    assert g711.ALAW_DECODE[0xD5] == 8 and g711.ALAW_DECODE[0x55] == -8
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(g711.alaw_encode(g711.ALAW_DECODE[codes]), codes)
    mu = g711.ulaw_encode(g711.ULAW_DECODE[codes])
    assert np.array_equal(mu[codes != 0x7F], codes[codes != 0x7F])


ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")


def test_real_recordings() -> None:
    """
    Recorded speech (asterisk-core-sounds-en-wav, in TEST_DEBS): "hello" on a quiet line is LV;
    the voicemail prompt "please leave your message after the tone" followed by Asterisk's own
    beep.wav is AM, then BP at the beep's onset (700 Hz).
    """
    hello = read_wav(ALLISON / "hello.wav").astype(float)
    prompt = read_wav(ALLISON / "vm-intro.wav").astype(float)
    beep = read_wav(ALLISON / "beep.wav").astype(float)
    human = pcm(join(silence(400), hello, silence(3000)) + noise((len(hello) + 27200) / 8, -60))
    lead = join(silence(500), prompt, silence(300))
    machine = pcm(join(lead, beep, silence(2000)) + noise((len(lead) + len(beep) + 16000) / 8, -60))
    found = analyse(["human", "machine"], CpaConfig(), [human, machine])
    first = {name: next(w for f, w in found if f == name) for name in ("human", "machine")}
    assert first["human"].event == "LV"
    assert first["machine"].event == "AM"
    bp = next(w for f, w in found if f == "machine" and getattr(w, "event", "") == "BP")
    assert abs(bp.ms - len(lead) / 8) <= 30
    assert abs(bp.extras["frequency"] - 700) < 5
