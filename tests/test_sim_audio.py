"""
Built-in callee audio and playback durations: realistic enough for call-progress analysis.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from iradialer.sim.audio import (
    CNG_FRAME,
    AudioError,
    PlaybackError,
    builtin_audio,
    load_wav,
    playback_ms,
    speak_ms,
    tone_stream_ms,
    ulaw,
)


def write_wav(
    path: Path, seconds: float, rate: int = 8000, channels: int = 1, freq: float = 440
) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    mono = (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2")
    data = np.repeat(mono, channels) if channels > 1 else mono
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / 8000)[np.argmax(spectrum)])


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def windows(samples: np.ndarray, seconds: float = 0.1) -> np.ndarray:
    n = int(seconds * 8000)
    return np.array([rms(samples[i : i + n]) for i in range(0, len(samples) - n + 1, n)])


def test_human_says_hello_then_listens():
    """human: a short greeting (under 1.5 s of speech) then line noise, no tones."""
    audio = builtin_audio("human").samples(5.0)
    active = windows(audio) > 300
    speech = np.flatnonzero(active)
    assert 0.3 <= speech[0] * 0.1 <= 0.7
    assert 0.4 <= active.sum() * 0.1 <= 1.5
    assert rms(audio[int(2.0 * 8000) :]) < 60


def test_machine_greets_for_seconds_then_beeps():
    """machine_beep: several seconds of speech, then a ~1 kHz beep; machine_nobeep has no beep."""
    audio = builtin_audio("machine_beep").samples(12.0)
    active = windows(audio) > 300
    assert active[: int(6 / 0.1)].sum() * 0.1 > 4.0
    beep_start = np.flatnonzero(active)[-1] * 0.1 - 0.4
    beep = audio[int(beep_start * 8000) : int((beep_start + 0.3) * 8000)]
    assert abs(dominant_hz(beep) - 1000) < 20
    quiet = builtin_audio("machine_nobeep").samples(12.0)
    tail = quiet[int(9.5 * 8000) :]
    assert rms(tail) < 60


def test_fax_answers_with_ced_then_v21():
    """fax: CED at 2100 Hz for about 3 s, then V.21 flags (1650/1850 Hz)."""
    audio = builtin_audio("fax").samples(6.0)
    ced = audio[int(0.5 * 8000) : int(3.0 * 8000)]
    assert abs(dominant_hz(ced) - 2100) < 10
    v21 = audio[int(3.4 * 8000) : int(4.2 * 8000)]
    assert 1600 < dominant_hz(v21) < 1900


def test_modem_sends_ansam():
    """modem: 2100 Hz amplitude-modulated at 15 Hz (ANSam)."""
    audio = builtin_audio("modem").samples(3.0)
    ansam = audio[int(0.5 * 8000) : int(2.5 * 8000)].astype(np.float64)
    assert abs(dominant_hz(ansam) - 2100) < 10
    envelope = windows(ansam, 0.005)
    assert envelope.max() / envelope.min() > 1.2


def test_silence_is_comfort_noise_and_music_keeps_playing():
    """
    silence: FreeSWITCH's 0xFF comfort-noise frames; music: sustained sound for the whole
    call.
    """
    assert builtin_audio("silence").frame(0) == CNG_FRAME
    assert builtin_audio("silence").frame(10_000) == CNG_FRAME
    music = builtin_audio("music").samples(30.0)
    assert (windows(music, 1.0) > 500).all()


def test_load_wav_resamples_and_rejects(tmp_path):
    """WAVs at other rates or in stereo become 8 kHz mono; broken files are refused."""
    stereo = write_wav(tmp_path / "s.wav", 1.0, rate=16000, channels=2, freq=500)
    data = load_wav(stereo)
    assert len(data) == 8000
    assert abs(dominant_hz(data) - 500) < 5
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(AudioError):
        load_wav(tmp_path / "bad.wav")
    with pytest.raises(AudioError):
        load_wav(tmp_path / "missing.wav")


def test_playback_durations(tmp_path):
    """Prompts last what FreeSWITCH plays: WAV length, tone_stream segments, silence_stream."""
    wav = write_wav(tmp_path / "p.wav", 1.25)
    assert playback_ms(str(wav), tmp_path) == 1250
    assert playback_ms("p.wav", tmp_path) == 1250
    assert playback_ms("tone_stream://%(1000,0,1000)", tmp_path) == 1000
    assert playback_ms("tone_stream://%(100,100,697,1209);%(100,100,941,1477)", tmp_path) == 400
    assert playback_ms("tone_stream://L=3;%(100,50,440)", tmp_path) == 450
    assert playback_ms("tone_stream://L=-1;%(100,50,440)", tmp_path) is None
    assert playback_ms("silence_stream://250", tmp_path) == 250
    assert playback_ms("local_stream://moh", tmp_path) is None
    assert playback_ms(f"file_string://{wav}!silence_stream://250", tmp_path) == 1500
    with pytest.raises(PlaybackError):
        playback_ms("/no/such.wav", tmp_path)
    assert tone_stream_ms("v=-7;%(500,0,300,200)") == 500
    assert speak_ms("hello") > speak_ms("hi")


def test_ulaw_native_frames():
    """flags: native: 160-byte G.711 mu-law frames (silence encodes to 0xFF)."""
    frame = ulaw(np.zeros(160, "<i2").tobytes())
    assert frame == b"\xff" * 160
    loud = ulaw((np.ones(160) * 32000).astype("<i2").tobytes())
    assert len(loud) == 160 and loud[0] == 0x80
