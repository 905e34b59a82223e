"""
Audio for the simulator: what simulated callees sound like, and how long the caller's
prompts take to play.

Callee audio is 8 kHz 16-bit mono.  Speech comes from recordings shipped in C{sounds/}
(Allison Smith's Asterisk prompts, CC-BY-SA 3.0, see C{sounds/README.md}); tones, modem
and fax signals, line noise and music are generated here, deterministically.  Each callee
has an C{intro} played once from answer and a C{tail} looped after it (None: the far end
goes quiet and FreeSWITCH sends comfort-noise frames, runs of C{0xFF}).
"""

from __future__ import annotations

import io
import re
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from iradialer.sim.wire import separate_string

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2
CNG_FRAME = b"\xff" * FRAME_BYTES  # what FreeSWITCH writes when no audio is read
SOUNDS = Path(__file__).resolve().parent / "sounds"


class AudioError(Exception):
    """A WAV file that cannot be used."""


def load_wav(path: Path) -> np.ndarray:
    """
    A PCM WAV file as 8 kHz mono int16 (other rates are resampled, channels averaged).
    """
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, count = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(count)
    except FileNotFoundError:
        raise AudioError("no such file") from None
    except (OSError, wave.Error, EOFError) as e:
        raise AudioError(f"not a PCM WAV file ({e})") from None
    if width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float64)
    elif width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) * 256.0
    else:
        raise AudioError(f"{8 * width}-bit samples are not supported (use 16-bit PCM)")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    if rate != RATE and len(data):
        positions = np.arange(0, len(data) * RATE / rate) * rate / RATE
        data = np.interp(positions, np.arange(len(data)), data)
    return _int16(data)


def _int16(data: np.ndarray) -> np.ndarray:
    return np.clip(np.round(data), -32768, 32767).astype(np.int16)


def _seconds(n: float) -> int:
    return int(round(n * RATE))


def _noise(seconds: float, seed: int, level: float = 18.0) -> np.ndarray:
    """Line noise around -65 dBFS, gently low-passed like a telephone channel."""
    rng = np.random.default_rng(seed)
    white = rng.normal(0.0, level, _seconds(seconds) + 2)
    return white[2:] * 0.5 + white[1:-1] * 0.35 + white[:-2] * 0.15


def _tone(freq: float, seconds: float, amplitude: float, ramp: float = 0.005) -> np.ndarray:
    t = np.arange(_seconds(seconds)) / RATE
    signal = amplitude * 32767 * np.sin(2 * np.pi * freq * t)
    n = min(_seconds(ramp), len(signal) // 2)
    if n:
        window = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
        signal[:n] *= window
        signal[-n:] *= window[::-1]
    return signal


def _speech(name: str) -> np.ndarray:
    return load_wav(SOUNDS / name).astype(np.float64)


def _concat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def _over_noise(signal: np.ndarray, seed: int) -> np.ndarray:
    return signal + _noise(len(signal) / RATE, seed)[: len(signal)]


def _fsk(bits: list[int], mark: float, space: float, baud: int, amplitude: float) -> np.ndarray:
    """Continuous-phase FSK, as V.21 sends its HDLC flags."""
    per_bit = RATE / baud
    total = int(round(len(bits) * per_bit))
    index = (np.arange(total) / per_bit).astype(int)
    freqs = np.where(np.asarray(bits)[np.minimum(index, len(bits) - 1)] == 1, mark, space)
    phase = 2 * np.pi * np.cumsum(freqs) / RATE
    return amplitude * 32767 * np.sin(phase)


def _v21_flags(seconds: float) -> np.ndarray:
    flag = [0, 1, 1, 1, 1, 1, 1, 0]
    bits = flag * int(seconds * 300 / 8)
    return _fsk(bits, mark=1650.0, space=1850.0, baud=300, amplitude=0.2)


def _ansam(seconds: float) -> np.ndarray:
    """V.8 ANSam/: 2100 Hz, 15 Hz amplitude modulation (0.8-1.2), reversals every 450 ms."""
    t = np.arange(_seconds(seconds)) / RATE
    reversals = np.floor(t / 0.45) % 2
    carrier = np.sin(2 * np.pi * 2100 * t + np.pi * reversals)
    envelope = 1.0 + 0.2 * np.sin(2 * np.pi * 15 * t)
    return 0.2 * 32767 * envelope * carrier


def _modem_data(seconds: float, seed: int) -> np.ndarray:
    """Band-limited (roughly 600-3000 Hz) noise: what a training data modem sounds like."""
    rng = np.random.default_rng(seed)
    n = _seconds(seconds)
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 600) | (freqs > 3000)] = 0
    signal = np.fft.irfft(spectrum, n)
    return signal / np.max(np.abs(signal)) * 0.25 * 32767


def _music(seconds: float) -> np.ndarray:
    """A plain chord progression with a melody: enough harmonic, sustained content to be music."""
    n = _seconds(seconds)
    out = np.zeros(n)
    beat = 0.5
    chords = [
        (261.6, 329.6, 392.0),
        (196.0, 246.9, 293.7),
        (220.0, 261.6, 329.6),
        (174.6, 220.0, 261.6),
    ]
    melody = [523.3, 587.3, 659.3, 587.3, 523.3, 493.9, 440.0, 493.9]
    step = 0
    start = 0
    while start < n:
        length = min(_seconds(beat), n - start)
        t = np.arange(length) / RATE
        decay = np.exp(-t * 3.0)
        chord = chords[(step // 4) % len(chords)]
        note = sum(np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t) for f in chord)
        lead = melody[step % len(melody)]
        note = note * 0.12 + 0.25 * np.sin(2 * np.pi * lead * t) * decay
        out[start : start + length] += note * decay * 32767 * 0.5
        start += length
        step += 1
    return out


@dataclass(frozen=True)
class CalleeAudio:
    """
    What one kind of callee sends from answer on, as L16 little-endian bytes: C{intro} once,
    then C{tail} looped; without a tail, comfort noise.
    """

    intro: bytes
    tail: bytes | None

    @classmethod
    def build(cls, intro: np.ndarray, tail: np.ndarray | None) -> CalleeAudio:
        return cls(_frames_bytes(intro), None if tail is None else _frames_bytes(tail))

    def frame(self, index: int) -> bytes:
        """The 20 ms frame C{index} frames after answer (raw L16, 320 bytes)."""
        start = index * FRAME_BYTES
        if start < len(self.intro):
            return self.intro[start : start + FRAME_BYTES]
        if self.tail is None:
            return CNG_FRAME
        offset = (start - len(self.intro)) % len(self.tail)
        return self.tail[offset : offset + FRAME_BYTES]

    def samples(self, seconds: float) -> np.ndarray:
        """The first C{seconds} of what the callee sends (for tests and inspection)."""
        count = int(round(seconds * RATE / FRAME_SAMPLES))
        return np.frombuffer(b"".join(self.frame(i) for i in range(count)), "<i2")


def _frames_bytes(signal: np.ndarray) -> bytes:
    data = _int16(signal)
    pad = (-len(data)) % FRAME_SAMPLES
    if pad:
        data = np.concatenate([data, np.zeros(pad, np.int16)])
    return data.astype("<i2").tobytes()


@cache
def builtin_audio(kind: str) -> CalleeAudio:
    """The built-in callee C{kind} (one of scenarios.BUILTIN_AUDIO)."""
    noise_tail = _noise(1.0, seed=7)
    if kind == "human":
        hello = _speech("hello.wav")
        intro = _concat(
            _noise(0.5, 1), _over_noise(hello, 2), _noise(4.7, 3), _over_noise(hello * 0.9, 4)
        )
        return CalleeAudio.build(intro, noise_tail)
    if kind in ("machine_beep", "machine_nobeep"):
        greeting = _concat(
            _noise(0.4, 5),
            _over_noise(_speech("vm-nobodyavail.wav"), 6),
            _noise(0.35, 8),
            _over_noise(_speech("vm-intro.wav"), 9),
        )
        if kind == "machine_beep":
            greeting = _concat(greeting, _noise(0.6, 10), _tone(1000.0, 0.5, 0.3))
        return CalleeAudio.build(greeting, noise_tail)
    if kind == "fax":
        intro = _concat(_noise(0.2, 11), _tone(2100.0, 3.0, 0.25), np.zeros(_seconds(0.075)))
        tail = _concat(_v21_flags(1.0), _noise(2.0, 12))
        return CalleeAudio.build(intro, tail)
    if kind == "modem":
        return CalleeAudio.build(_concat(_noise(0.2, 13), _ansam(3.3)), _modem_data(4.0, 14))
    if kind == "silence":
        return CalleeAudio.build(np.zeros(0), None)
    if kind == "music":
        return CalleeAudio.build(np.zeros(0), _music(16.0))
    raise ValueError(f"unknown built-in audio {kind!r}")


@cache
def file_audio(path: Path) -> CalleeAudio:
    """A scenario's own WAV file: played once from answer, then comfort noise."""
    return CalleeAudio.build(load_wav(path).astype(np.float64), None)


def callee_audio(source: str | Path) -> CalleeAudio:
    return file_audio(source) if isinstance(source, Path) else builtin_audio(source)


def ulaw(frame: bytes) -> bytes:
    """G.711 mu-law of an L16 frame (C{unicast} with C{flags: native} on a PCMU call)."""
    pcm = np.frombuffer(frame, "<i2").astype(np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


# How long the caller's prompts take.

_SEGMENT = re.compile(r"%\(([^)]*)\)")


def tone_stream_ms(spec: str) -> int | None:
    """
    Length of a C{tone_stream://} (TGML): each C{%(on,off,freqs)} segment, C{l=N} repeating
    the next one, C{L=N} the whole; C{L=-1} or C{l=-1} is endless (None).
    """
    total = 0
    loops_whole = 1
    next_loops = 1
    for part in spec.split(";"):
        part = part.strip()
        lowered = part.lower()
        if lowered.startswith("l=") and part[0] == "L":
            loops_whole = _int(part[2:], 1)
            if loops_whole < 0:
                return None
        elif lowered.startswith("l="):
            next_loops = _int(part[2:], 1)
            if next_loops < 0:
                return None
        else:
            match = _SEGMENT.search(part)
            if match:
                fields = [f.strip() for f in match.group(1).split(",")]
                on = _int(fields[0], 0) if fields else 0
                off = _int(fields[1], 0) if len(fields) > 1 else 0
                total += (max(on, 0) + max(off, 0)) * max(next_loops, 1)
                next_loops = 1
    return total * max(loops_whole, 1)


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


class PlaybackError(Exception):
    """FreeSWITCH could not open the file (FILE NOT FOUND)."""


def playback_ms(target: str, sounds_dir: Path) -> int | None:
    """
    How long C{playback <target>} plays, in milliseconds (None: until stopped).

    @raise PlaybackError: the file does not exist or is not something the simulator reads.
    """
    lowered = target.lower()
    if lowered.startswith("tone_stream://"):
        return tone_stream_ms(target[len("tone_stream://") :])
    if lowered.startswith("silence_stream://"):
        first = target[len("silence_stream://") :].split(",")[0]
        ms = _int(first, 0)
        return None if ms <= 0 else ms
    if lowered.startswith("local_stream://"):
        return None
    if lowered.startswith("tts://"):
        # mod_dptools tts_file_open: engine|voice|text, split at the first two "|".
        fields = separate_string(target[len("tts://") :], "|", 3)
        if len(fields) != 3 or not fields[2]:
            raise PlaybackError(f"{target}: tts:// takes engine|voice|text")
        return speak_ms(fields[2])
    if lowered.startswith("file_string://"):
        parts = [playback_ms(p, sounds_dir) for p in target[len("file_string://") :].split("!")]
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
    path = Path(target)
    if not path.is_absolute():
        path = sounds_dir / path
    return _file_ms(path)


@cache
def _file_ms(path: Path) -> int:
    try:
        with wave.open(str(path), "rb") as w:
            return int(w.getnframes() * 1000 / w.getframerate())
    except FileNotFoundError:
        raise PlaybackError(f"{path}: no such file") from None
    except (OSError, wave.Error, EOFError) as e:
        raise PlaybackError(f"{path}: the simulator plays PCM WAV files only ({e})") from None


def wav_ms(data: bytes) -> int:
    """
    How long a WAV file held in memory (a fetched recording) plays, in milliseconds.

    @raise PlaybackError: not a PCM WAV file.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return int(w.getnframes() * 1000 / w.getframerate())
    except (wave.Error, EOFError) as e:
        raise PlaybackError(f"the simulator plays PCM WAV files only ({e})") from None


def speak_ms(text: str) -> int:
    """A TTS estimate: flite reads about 12 characters a second (media_flite_wav capture)."""
    return 150 + 80 * len(text)
