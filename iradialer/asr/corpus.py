"""
Labelled telephone audio for measuring the voice detector and testing ASR sessions.

Everything is built from recordings Debian ships (no downloads): speech from
C{asterisk-core-sounds-en-wav} (one professional voice, 8 kHz), music from
C{asterisk-moh-opsound-wav}, and tones and noise synthesised here.  Each piece comes with a
per-frame truth: a speech frame is a frame of a recorded prompt within 35 dB of that prompt's
loudest frame (the prompts are studio-clean, so energy on the clean recording is a reliable
reference); music, tones and noise are never speech.  Random choices take a seeded generator,
so a piece is the same on every run.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iradialer.asr.vad import FRAME, FRAME_MS, RATE

SOUND_DIRS = (
    Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
    Path("/usr/share/asterisk/sounds/en"),
)
MOH_DIR = Path("/usr/share/asterisk/moh")
#: Mean square of a 0 dBm0 sine in 16-bit linear.
P0 = (32768 * 10 ** (-3.14 / 20)) ** 2 / 2
#: Line noise under everything (real lines are never digitally silent).
FLOOR_DBM0 = -65.0
#: Speech frames: within this many dB of the prompt's loudest frame.
SPEECH_RANGE_DB = 35.0


@dataclass
class Labelled:
    """
    Audio (int16, 8 kHz) with one truth value per 20 ms frame and the spans (ms) of its
    phrases: speech whose internal pauses are shorter than the pause between phrases.
    """

    samples: np.ndarray
    speech: np.ndarray
    phrases: list[tuple[int, int]]

    def frames(self) -> Iterable[tuple[np.ndarray, int]]:
        for i in range(len(self.samples) // FRAME):
            yield self.samples[i * FRAME : (i + 1) * FRAME], i * FRAME_MS

    @staticmethod
    def join(pieces: Sequence[Labelled]) -> Labelled:
        samples, speech, phrases, offset = [], [], [], 0
        for piece in pieces:
            samples.append(piece.samples)
            speech.append(piece.speech)
            phrases += [(a + offset, b + offset) for a, b in piece.phrases]
            offset += len(piece.speech) * FRAME_MS
        return Labelled(np.concatenate(samples), np.concatenate(speech), phrases)


def sounds_dir() -> Path:
    for path in SOUND_DIRS:
        if (path / "beep.wav").exists():
            return path
    raise FileNotFoundError(
        "no Asterisk sounds: apt-get install asterisk-core-sounds-en-wav (see Makefile TEST_DEBS)"
    )


def read_wav(path: Path) -> np.ndarray:
    """An 8 kHz 16-bit mono WAV file's samples, whole frames only."""
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (RATE, 2, 1):
            raise ValueError(f"{path}: not 8 kHz 16-bit mono")
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return samples[: len(samples) // FRAME * FRAME].copy()


def prompt(name: str) -> np.ndarray:
    return read_wav(sounds_dir() / f"{name}.wav")


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """dBm0 of each whole frame."""
    n = len(samples) // FRAME
    x = samples[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    return 10 * np.log10((x * x).mean(axis=1) / P0 + 1e-12)


def at_level(x: np.ndarray, dbm0: float, reference: np.ndarray | None = None) -> np.ndarray:
    """C{x} (float) scaled so the mean square of C{reference} (default: all of it) is C{dbm0}."""
    x = np.asarray(x, dtype=np.float64)
    ref = x if reference is None else reference
    power = float(np.mean(ref.astype(np.float64) ** 2))
    return x * np.sqrt(P0 * 10 ** (dbm0 / 10) / power) if power > 0 else x


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype("<i2")


def speech_labels(samples: np.ndarray) -> np.ndarray:
    levels = frame_levels(samples)
    return levels >= levels.max() - SPEECH_RANGE_DB


def spans(labels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of true frames as (start, end) ms."""
    out: list[tuple[int, int]] = []
    start = None
    for i, value in enumerate(np.append(labels, False)):
        if value and start is None:
            start = i
        elif not value and start is not None:
            out.append((start * FRAME_MS, i * FRAME_MS))
            start = None
    return out


def max_internal_pause_ms(name: str) -> int:
    """The longest pause inside a prompt's speech (0 for one unbroken stretch)."""
    runs = spans(speech_labels(prompt(name)))
    return max((b[0] - a[1] for a, b in zip(runs, runs[1:])), default=0)


def noise(kind: str, seconds: float, dbm0: float, rng: np.random.Generator) -> np.ndarray:
    """White, pink (-3 dB/octave) or brown (-6 dB/octave) noise, float, at C{dbm0}."""
    n = int(seconds * RATE)
    white = rng.standard_normal(n)
    if kind == "white":
        shaped = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        slope = {"pink": 0.5, "brown": 1.0}[kind]
        shaped = np.fft.irfft(spectrum / f**slope, n)
    return at_level(shaped, dbm0)


def with_floor(
    x: np.ndarray, rng: np.random.Generator, floor_dbm0: float = FLOOR_DBM0
) -> np.ndarray:
    return _to_int16(
        np.asarray(x, dtype=np.float64) + noise("pink", len(x) / RATE, floor_dbm0, rng)
    )


def speech_with_pauses(
    names: Sequence[str],
    rng: np.random.Generator,
    pause_ms: tuple[int, int] = (1200, 2500),
    level_dbm0: float = -20.0,
    noise_kind: str | None = None,
    snr_db: float = 20.0,
) -> Labelled:
    """
    The prompts C{names} one after another, each a phrase, separated by random pauses, the
    speech at C{level_dbm0} (active level), over line noise or C{noise_kind} at C{snr_db}.
    """
    parts: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    phrases: list[tuple[int, int]] = []
    offset = 0
    for name in names:
        gap = int(rng.integers(pause_ms[0], pause_ms[1] + 1)) // FRAME_MS * FRAME
        parts.append(np.zeros(gap))
        labels.append(np.zeros(gap // FRAME, dtype=bool))
        offset += gap
        clip = prompt(name).astype(np.float64)
        truth = speech_labels(clip)
        active = clip.reshape(-1, FRAME)[truth].ravel()
        parts.append(at_level(clip, level_dbm0, reference=active))
        labels.append(truth)
        runs = spans(truth)
        phrases.append((offset // 8 + runs[0][0], offset // 8 + runs[-1][1]))
        offset += len(clip)
    tail = 1000 // FRAME_MS * FRAME
    parts.append(np.zeros(tail))
    labels.append(np.zeros(tail // FRAME, dtype=bool))
    mix = np.concatenate(parts)
    if noise_kind is not None:
        mix = mix + noise(noise_kind, len(mix) / RATE, level_dbm0 - snr_db, rng)
    return Labelled(with_floor(mix, rng), np.concatenate(labels), phrases)


def nothing(x: np.ndarray, rng: np.random.Generator) -> Labelled:
    """C{x} (float) labelled as containing no speech at all, over line noise."""
    samples = with_floor(x[: len(x) // FRAME * FRAME], rng)
    return Labelled(samples, np.zeros(len(samples) // FRAME, dtype=bool), [])


def sine(
    frequencies: Sequence[float], ms: int, dbm0: float, rng: np.random.Generator
) -> np.ndarray:
    """A single or dual tone (float) with 5 ms ramps, each component at C{dbm0}."""
    n = ms * RATE // 1000
    t = np.arange(n) / RATE
    tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in frequencies)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / 40)
    return tone * ramp * np.sqrt(2 * P0 * 10 ** (dbm0 / 10))


def silence(ms: int) -> np.ndarray:
    return np.zeros(ms * RATE // 1000)


#: DTMF (row, column) frequencies.
DTMF = {
    "1": (697, 1209),
    "2": (697, 1336),
    "3": (697, 1477),
    "4": (770, 1209),
    "5": (770, 1336),
    "6": (770, 1477),
    "7": (852, 1209),
    "8": (852, 1336),
    "9": (852, 1477),
    "*": (941, 1209),
    "0": (941, 1336),
    "#": (941, 1477),
}


def tone_events(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """
    The tones a call meets, each with silence around it (float): voicemail beeps, Asterisk's
    beep.wav, call-progress tones, DTMF, fax and SIT tones.
    """
    events: dict[str, np.ndarray] = {}
    for hz in (400, 700, 1000, 1400, 2000):
        for ms in (200, 500, 1000):
            events[f"beep {hz} Hz {ms} ms"] = sine([hz], ms, -15, rng)
    events["beep.wav"] = at_level(prompt("beep").astype(np.float64), -15)
    events["ringback 440+480"] = np.concatenate(
        [sine([440, 480], 2000, -19, rng), silence(4000), sine([440, 480], 2000, -19, rng)]
    )
    events["UK ringback 400+450"] = np.concatenate(
        [sine([400, 450], 400, -19, rng), silence(200), sine([400, 450], 400, -19, rng)]
    )
    events["busy 480+620"] = np.concatenate(
        [np.concatenate([sine([480, 620], 500, -24, rng), silence(500)]) for _ in range(4)]
    )
    events["dial tone 350+440"] = sine([350, 440], 3000, -13, rng)
    for on in (100, 60):
        events[f"DTMF 1234567890*# {on} ms"] = np.concatenate(
            [np.concatenate([sine(DTMF[d], on, -10, rng), silence(on)]) for d in "1234567890*#"]
        )
    events["fax CNG 1100"] = np.concatenate(
        [np.concatenate([sine([1100], 500, -15, rng), silence(3000)]) for _ in range(2)]
    )
    events["fax CED 2100"] = sine([2100], 3000, -12, rng)
    events["SIT"] = np.concatenate(
        [sine([913.8], 330, -24, rng), sine([1370.6], 330, -24, rng), sine([1776.7], 330, -24, rng)]
    )
    return {name: np.concatenate([silence(500), x, silence(1000)]) for name, x in events.items()}


def music(
    seconds: float, level_dbm0: float, rng: np.random.Generator
) -> list[tuple[str, Labelled]]:
    """C{seconds} from the middle of each music-on-hold track, at C{level_dbm0}."""
    out = []
    for path in sorted(MOH_DIR.glob("*.wav")):
        x = read_wav(path).astype(np.float64)
        middle = len(x) // 2
        n = int(seconds * RATE) // FRAME * FRAME
        clip = x[max(0, middle - n // 2) : max(0, middle - n // 2) + n]
        out.append((path.stem, nothing(at_level(clip, level_dbm0), rng)))
    if not out:
        raise FileNotFoundError(f"no music in {MOH_DIR}: apt-get install asterisk-moh-opsound-wav")
    return out
