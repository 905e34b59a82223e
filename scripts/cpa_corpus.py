#!/usr/bin/env python3
"""
Build the CPA evaluation corpus from real recorded speech and music plus synthesized tones.

Sources (Debian packages; only this script needs them, the test suite does not):
- asterisk-core-sounds-en-wav: one professional female voice (Allison), 8 kHz prompts;
- codec2-examples: a dozen other speakers (male and female, some over radio links);
- asterisk-moh-opsound-wav: five music tracks (hold music);
- for the false-alarm set only: asterisk-core-sounds-fr-wav (another voice, June, Canadian
  French) and asterisk-core-sounds-es-wav (Allison in Spanish), and drascula-music (31 tracks
  of instrumental game music, 47 minutes of Ogg Vorbis);
- for the final false-alarm sets only: asterisk-core-sounds-it-wav (Carlo, a male voice),
  asterisk-core-sounds-ru-wav (a Russian female voice) and singularity-music (16 tracks of
  electronic music, 63 minutes); asterisk-prompt-it-menardi-wav (Menardi, an Italian female
  voice) and hyperrogue-music (17 tracks, 23 minutes);
- sox: G.711 mu-law/A-law round trips (an implementation independent of ours), and Ogg decoding.

    apt-get install sox codec2-examples asterisk-core-sounds-en-wav asterisk-moh-opsound-wav \
        asterisk-core-sounds-fr-wav asterisk-core-sounds-es-wav drascula-music \
        asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav singularity-music \
        asterisk-prompt-it-menardi-wav hyperrogue-music

How calls are made (every choice is seeded; the manifest records all of it):
- live answer (LV): 0.2-1.2 s of line noise, a short greeting -- "hello", "hello" plus one or
  two words, or the first words of a sentence of another speaker, 0.3-1.8 s from its first to
  its last sound -- then silence while the person waits for the caller; some say "hello" again
  after 1.2-3 s.  Hard cases: long human greetings (1.8-3.0 s).
- machine (AM): 0.1-1.5 s, then a continuous greeting of 3-12 s (voicemail prompts strung
  together with natural pauses, or a stretch of another speaker's reading), usually followed by
  a beep (200-1000 ms, 400-2000 Hz) and silence.  Hard cases: short machine greetings
  (1.4-3 s) and greetings that begin with one word and a 500-900 ms pause ("Hi. ... You've
  reached ..."); and, for the beep detector, beeps that interrupt the greeting (cut 1.5 s or
  more into it, the beep at once).
- every call: active speech level -10 to -35 dBm0; noise (white, pink or brown) at 10-30 dB SNR
  below it (15% of calls noiseless); G.711 round trip (70% mu-law, 30% A-law) through sox; 20%
  start with FreeSWITCH's 0xFF comfort-noise frames (value -1).
- fax/modem: CED (with and without phase reversals), CNG cadence, V.21 HDLC preamble, ANSam
  (15 Hz AM, with and without reversals), Bell 2225 Hz; -10 to -30 dBm0, 15-30 dB SNR, G.711.
- named tones: a tone inside each configured tolerance, and one beyond twice it plus 10 Hz.
- speech and music for false alarms: every prompt in the three languages (minus the files
  that are tones), every codec2 recording, all the hold music and the game music, G.711, at
  varied levels, in one-minute files; and splits C{final} and C{final2} of false alarms only.

Splits: sources are divided between C{train} and C{test} (prompts by a hash of their name, so
one prompt is on the same side in every language; codec2 speakers and hold-music tracks by a
fixed list; game-music tracks by a hash of their name), so test calls are built from recordings
tuning never heard.  One exception is said plainly: there is a single recording of "hello",
used in both.

    python scripts/cpa_corpus.py [--out DIR] [--calls N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from iradialer.cpa.wav import read_wav  # noqa: E402

RATE = 8000
P0 = (32768 * 10 ** (-3.14 / 20)) ** 2 / 2
ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
CODEC2 = Path("/usr/share/codec2")
MOH = Path("/usr/share/asterisk/moh")
#: More voices for the false-alarm set (not used to build calls: tuning never heard them).
OTHER_PROMPTS = (
    Path("/usr/share/asterisk/sounds/fr_CA_f_June"),
    Path("/usr/share/asterisk/sounds/es_MX_f_Allison"),
)
GAME_MUSIC = Path("/usr/share/scummvm/drascula/audio")
#: False-alarm sets of sources no rule was developed on, each built when the beep rules of
#: the moment were fixed and then scored (docs/cpa.md, "Splits and tuning"): voices, music.
FINAL_SETS = {
    "final": (
        (
            Path("/usr/share/asterisk/sounds/it_IT_m_Carlo"),
            Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU"),
        ),
        Path("/usr/share/games/singularity/music"),
    ),
    "final2": (
        (Path("/usr/share/asterisk/sounds/it_IT_f_Menardi"),),
        Path("/usr/share/hyperrogue/music"),
    ),
}
DEFAULT_OUT = Path("var/cpa-corpus")
#: Prompts that are tones, not speech.
TONE_PROMPTS = {
    "beep",
    "beeperr",
    "ascending-2tone",
    "descending-2tone",
    "confbridge-join",
    "confbridge-leave",
    "spy-jingle",
    "at-tone-time-exactly",
}
#: codec2 recordings by split (distinct speakers; all.wav, f2400/m2400 repeat others).
CODEC2_SPLIT = {
    "train": [
        "wav/david4.wav",
        "wav/vk5qi.wav",
        "wav/hts1a.wav",
        "wav/morig.wav",
        "raw/kristoff.raw",
        "wav/big_dog.wav",
    ],
    "test": [
        "wav/ve9qrp.wav",
        "wav/vk2tpm_004.wav",
        "wav/hts2a.wav",
        "wav/forig.wav",
        "wav/mmt1.wav",
        "raw/cq_ref.raw",
        "raw/g3plx.raw",
        "wav/cross.wav",
    ],
}
MOH_SPLIT = {
    "train": [
        "macroform-cold_day.wav",
        "macroform-robot_dity.wav",
        "manolo_camp-morning_coffee.wav",
    ],
    "test": ["macroform-the_simplicity.wav", "reno_project-system.wav"],
}
BEEP_FREQUENCIES = (440, 500, 600, 700, 800, 850, 900, 1000, 1100, 1200, 1400, 1800, 2000)


def read_any(path: Path) -> np.ndarray:
    if path.suffix == ".raw":
        return np.fromfile(path, dtype="<i2").astype(np.float64)
    if path.suffix == ".ogg":
        linear = "-t raw -r 8000 -e signed -b 16 -c 1 -".split()
        return np.frombuffer(_sox(["-D", str(path), *linear], b""), dtype="<i2").astype(np.float64)
    return read_wav(path).astype(np.float64)


def frame_energy(x: np.ndarray, frame: int = 80) -> np.ndarray:
    n = len(x) // frame
    return (x[: n * frame].reshape(n, frame) ** 2).mean(axis=1)


def speech_regions(x: np.ndarray, min_gap_ms: int = 150) -> list[tuple[int, int]]:
    """
    Sample ranges of speech: 10 ms frames within 35 dB of the loudest, gaps under
    C{min_gap_ms} bridged, regions under 80 ms dropped.
    """
    e = frame_energy(x)
    if len(e) == 0 or e.max() <= 0:
        return []
    db = 10 * np.log10(e + 1e-3)
    active = db >= max(db.max() - 35, np.percentile(db, 10) + 12)
    regions: list[list[int]] = []
    for i, a in enumerate(active):
        if not a:
            continue
        if regions and i - regions[-1][1] <= min_gap_ms // 10:
            regions[-1][1] = i + 1
        else:
            regions.append([i, i + 1])
    return [(s * 80, e_ * 80) for s, e_ in regions if (e_ - s) >= 8]


def active_power(x: np.ndarray) -> float:
    e = frame_energy(x)
    if len(e) == 0:
        return 1.0
    loud = e[e >= e.max() * 10 ** (-25 / 10)]
    return float(loud.mean()) if len(loud) else 1.0


def scale_to(x: np.ndarray, dbm0: float) -> np.ndarray:
    return x * np.sqrt(P0 * 10 ** (dbm0 / 10) / active_power(x))


def noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    white = rng.normal(0, 1, n + 1)
    if kind == "white":
        out = white[:n]
    elif kind == "pink":
        spectrum = np.fft.rfft(white)
        f = np.arange(len(spectrum))
        spectrum[1:] /= np.sqrt(f[1:])
        spectrum[0] = 0
        out = np.fft.irfft(spectrum, n + 1)[:n]
    else:  # brown-ish, high-passed at ~100 Hz like a phone line
        out = np.cumsum(white)[:n]
        out = out - np.convolve(out, np.ones(80) / 80, mode="same")
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def sox_g711(x: np.ndarray, law: str) -> np.ndarray:
    """
    A G.711 round trip through sox (encode, then decode), without dither.
    """
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    encoding = {"ulaw": "u-law", "alaw": "a-law"}[law]
    linear = "-t raw -r 8000 -e signed -b 16 -c 1 -".split()
    coded = f"-t raw -r 8000 -e {encoding} -b 8 -c 1 -".split()
    encoded = _sox(["-D", *linear, *coded], pcm)
    return np.frombuffer(_sox([*coded, *linear], encoded), dtype="<i2").astype(np.float64)


def _sox(arguments: list[str], data: bytes) -> bytes:
    return subprocess.run(["sox", *arguments], input=data, capture_output=True, check=True).stdout


def tone(freq: float, ms: float, dbm0: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(ms * RATE / 1000)) / RATE
    amp = np.sqrt(2 * P0 * 10 ** (dbm0 / 10))
    return amp * np.sin(2 * np.pi * freq * t + phase)


def write(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # trimmed to speech
    regions: list[tuple[int, int]]  # speech ranges inside audio


class Sources:
    """
    Speech clips of one split.
    """

    def __init__(self, split: str) -> None:
        self.split = split
        self.prompts: list[Clip] = []
        self.words: list[Clip] = []
        for path in (
            sorted(ALLISON.glob("*.wav"))
            + sorted((ALLISON / "digits").glob("*.wav"))
            + sorted((ALLISON / "letters").glob("*.wav"))
        ):
            if path.stem in TONE_PROMPTS or path.stem == "hello":
                continue
            if _split_of(path.name) != split:
                continue
            clip = _clip(path.stem, read_any(path))
            if clip is None:
                continue
            duration = len(clip.audio) / RATE
            (self.words if duration <= 0.9 else self.prompts).append(clip)
        hello = _clip("hello", read_any(ALLISON / "hello.wav"))
        assert hello is not None
        self.hello = hello
        self.speakers: list[Clip] = []
        for rel in CODEC2_SPLIT[split]:
            clip = _clip(Path(rel).stem, read_any(CODEC2 / rel))
            if clip is not None:
                self.speakers.append(clip)


def _split_of(name: str) -> str:
    return "train" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "test"


def _clip(name: str, x: np.ndarray) -> Clip | None:
    regions = speech_regions(x)
    if not regions:
        return None
    start = max(regions[0][0] - 80, 0)
    end = min(regions[-1][1] + 80, len(x))
    return Clip(name, x[start:end], [(s - start, e - start) for s, e in regions])


def _first(phrase: tuple[np.ndarray, list] | None) -> np.ndarray | None:
    return None if phrase is None else phrase[0]


class CallBuilder:
    def __init__(self, sources: Sources, rng: np.random.Generator) -> None:
        self.src = sources
        self.rng = rng

    def speaker_phrase(
        self, low: float, high: float
    ) -> tuple[np.ndarray, list[tuple[int, int]]] | None:
        """
        The first words of some speaker's sentence: consecutive regions whose span is within
        [low, high] seconds.
        """
        rng = self.rng
        for _ in range(50):
            clip = self.src.speakers[rng.integers(len(self.src.speakers))]
            regions = speech_regions(clip.audio, min_gap_ms=120)
            if not regions:
                continue
            i = int(rng.integers(len(regions)))
            ends = [
                j
                for j in range(i, len(regions))
                if low <= (regions[j][1] - regions[i][0]) / RATE <= high
            ]
            if ends:
                j = ends[int(rng.integers(len(ends)))]
                s, e = regions[i][0], regions[j][1]
                return clip.audio[s:e], [(a - s, b - s) for a, b in regions[i : j + 1]]
        return None

    def allison_greeting(self, words: int) -> np.ndarray:
        parts = [self.src.hello.audio]
        for _ in range(words):
            parts.append(np.zeros(int(self.rng.uniform(0.05, 0.2) * RATE)))
            clip = self.src.words[self.rng.integers(len(self.src.words))]
            parts.append(clip.audio)
        return np.concatenate(parts)

    def human(self, category: str) -> tuple[np.ndarray, dict]:
        rng = self.rng
        low, high = (1.8, 3.0) if category == "long" else (0.3, 1.8)
        greeting = self.src.hello.audio
        for _ in range(100):
            choice = rng.random()
            if category == "long":
                candidate = (
                    self.allison_greeting(int(rng.integers(2, 5)))
                    if choice < 0.5
                    else _first(self.speaker_phrase(low, high))
                )
            elif choice < 0.35:
                candidate = self.src.hello.audio
            elif choice < 0.65:
                candidate = self.allison_greeting(int(rng.integers(1, 3)))
            else:
                candidate = _first(self.speaker_phrase(low, high))
            if candidate is not None and low <= len(candidate) / RATE <= high:
                greeting = candidate
                break
        lead = rng.uniform(0.2, 1.2)
        wait_1 = rng.uniform(1.2, 3.0)
        parts = [np.zeros(int(lead * RATE)), greeting]
        first_end = lead + len(greeting) / RATE
        if category == "repeat":
            parts += [np.zeros(int(wait_1 * RATE)), self.src.hello.audio]
        total = 7.0
        used = sum(len(p) for p in parts) / RATE
        parts.append(np.zeros(int(max(total - used, 1.0) * RATE)))
        speech = np.concatenate(parts)
        return speech, {
            "label": "LV",
            "speech_start_ms": round(lead * 1000),
            "first_utterance_end_ms": round(first_end * 1000),
            "greeting_ms": round(len(greeting) / RATE * 1000),
        }

    def machine(self, category: str) -> tuple[np.ndarray, dict]:
        rng = self.rng
        if category == "short":
            target = rng.uniform(1.4, 3.0)
        else:
            target = rng.uniform(3.0, 12.0)
        if rng.random() < 0.5 or category == "short":
            greeting = self._prompt_chain(target)
        else:
            phrase = self.speaker_phrase(target * 0.8, min(target * 1.2, 12.0))
            greeting = phrase[0] if phrase else self._prompt_chain(target)
        greeting = greeting[: int(12.5 * RATE)]
        if category == "interrupt":
            greeting = greeting[
                : int(rng.uniform(1.5, max(len(greeting) / RATE - 0.2, 1.6)) * RATE)
            ]
        if category == "pause":
            first = self.src.words[rng.integers(len(self.src.words))].audio
            gap = np.zeros(int(rng.uniform(0.5, 0.9) * RATE))
            greeting = np.concatenate([first, gap, greeting])
        lead = rng.uniform(0.1, 1.5)
        greeting = greeting[: int((13.0 - lead) * RATE)]  # any beep starts before 14 s
        parts = [np.zeros(int(lead * RATE)), greeting]
        info: dict = {"label": "AM", "speech_start_ms": round(lead * 1000)}
        info["greeting_ms"] = round(len(greeting) / RATE * 1000)
        position = lead + len(greeting) / RATE
        if category == "interrupt" or rng.random() < 0.75:
            gap = 0.0 if category == "interrupt" else rng.uniform(0.1, 1.0)
            duration = rng.uniform(0.2, 1.0) if rng.random() < 0.85 else rng.uniform(0.1, 0.2)
            freq = float(
                BEEP_FREQUENCIES[rng.integers(len(BEEP_FREQUENCIES))] + rng.uniform(-15, 15)
            )
            parts.append(np.zeros(int(gap * RATE)))
            info["beep"] = {
                "onset_ms": round((position + gap) * 1000),
                "duration_ms": round(duration * 1000),
                "frequency": round(freq, 1),
                "relative_db": round(float(rng.uniform(-6, 3)), 1),
            }
            parts.append(np.zeros(int(duration * RATE)))  # the beep is added after levelling
            position += gap + duration
        parts.append(np.zeros(int(rng.uniform(2.5, 4.0) * RATE)))
        return np.concatenate(parts), info

    def _prompt_chain(self, target: float) -> np.ndarray:
        parts: list[np.ndarray] = []
        length = 0.0
        while length < target:
            pool = self.src.prompts if self.rng.random() < 0.7 else self.src.words
            clip = pool[self.rng.integers(len(pool))].audio
            if parts:
                gap = np.zeros(int(self.rng.uniform(0.08, 0.45) * RATE))
                parts.append(gap)
                length += len(gap) / RATE
            parts.append(clip)
            length += len(clip) / RATE
        return np.concatenate(parts)


def degrade(
    x: np.ndarray, rng: np.random.Generator, info: dict, snr_range=(10.0, 30.0)
) -> np.ndarray:
    """
    Level, beep, noise, comfort-noise start, G.711: the line between the callee and us.
    """
    level = float(rng.uniform(-35, -10))
    x = scale_to(x, level)
    if "beep" in info:
        b = info["beep"]
        onset = int(b["onset_ms"] * RATE / 1000)
        beep = tone(
            b["frequency"], b["duration_ms"], level + b["relative_db"], rng.uniform(0, 6.28)
        )
        ramp = min(40, len(beep) // 4)
        beep[:ramp] *= np.linspace(0, 1, ramp)
        beep[-ramp:] *= np.linspace(1, 0, ramp)
        x[onset : onset + len(beep)] += beep
    clean = rng.random() < 0.15
    snr = None if clean else float(rng.uniform(*snr_range))
    if snr is not None:
        kind = ("white", "pink", "brown")[rng.integers(3)]
        x = x + noise(rng, len(x), kind) * np.sqrt(P0 * 10 ** ((level - snr) / 10))
        info["noise"] = kind
    if "beep" in info:
        info["beep"]["snr_db"] = (
            None if snr is None else round(snr + info["beep"]["relative_db"], 1)
        )
    law = "ulaw" if rng.random() < 0.7 else "alaw"
    info.update(
        {
            "level_dbm0": round(level, 1),
            "snr_db": None if snr is None else round(snr, 1),
            "codec": law,
        }
    )
    x = sox_g711(x, law)
    if rng.random() < 0.2:
        cn = int(rng.uniform(0.1, 0.4) * RATE)
        cn = min(cn, max(info.get("speech_start_ms", 10**9) * RATE // 1000 - 400, 0))
        x[:cn] = -1.0
        info["comfort_noise_ms"] = round(cn * 1000 / RATE)
    return x


def fsk_v21(ms: float, dbm0: float, rng: np.random.Generator) -> np.ndarray:
    """
    V.21 channel 2 HDLC flags (0x7E) at 300 bit/s: mark (1) 1650 Hz, space (0) 1850 Hz,
    continuous phase.
    """
    bits = np.tile([0, 1, 1, 1, 1, 1, 1, 0], int(ms / 1000 * 300 / 8) + 1)
    per_bit = RATE / 300
    n = int(ms * RATE / 1000)
    index = (np.arange(n) / per_bit).astype(int)
    freq = np.where(bits[index] == 1, 1650.0, 1850.0)
    phase = 2 * np.pi * np.cumsum(freq) / RATE + rng.uniform(0, 6.28)
    return np.sqrt(2 * P0 * 10 ** (dbm0 / 10)) * np.sin(phase)


def fax_signal(kind: str, rng: np.random.Generator, level: float) -> tuple[np.ndarray, str]:
    if kind in ("CED", "CED_reversals", "ANSam", "ANSam_reversals"):
        ms = rng.uniform(2600, 4000)
        t = np.arange(int(ms * RATE / 1000)) / RATE
        phase = np.zeros_like(t)
        if kind.endswith("reversals"):
            phase = np.pi * (np.floor(t / 0.45) % 2)
        x = np.sin(2 * np.pi * 2100 * t + phase)
        if kind.startswith("ANSam"):
            x *= 1 + 0.2 * np.sin(2 * np.pi * 15 * t)
        x *= np.sqrt(2 * P0 * 10 ** (level / 10))
        return x, ("MD" if kind.startswith("ANSam") else "FX")
    if kind == "Bell":
        return tone(2225, rng.uniform(2000, 3000), level), "MD"
    if kind == "CNG":
        burst = tone(1100, 500, level)
        gap = np.zeros(3 * RATE)
        return np.concatenate([burst, gap, burst, gap]), "FX"
    if kind == "V21":
        return fsk_v21(rng.uniform(1000, 1600), level, rng), "FX"
    raise ValueError(kind)


FAX_KINDS = ("CED", "CED_reversals", "CNG", "V21", "ANSam", "ANSam_reversals", "Bell")

#: Named-tone specs used by the evaluation (name, frequency, tolerance).
NAMED_TONES = (("FX", 2100, 5), ("MD", 1662, 5), ("BP", 1000, 10), ("XA", 850, 20), ("XB", 440, 15))


def false_alarm_set(
    d: Path,
    split: str,
    prompts: list[np.ndarray],
    tracks: list[np.ndarray],
    rng: np.random.Generator,
) -> list[dict]:
    """
    Speech (the prompts, 0.3 s apart) and music (the tracks, back to back) in one-minute files
    for false alarms: G.711, -30 to -12 dBm0, white noise 30 dB below.
    """
    speech = np.concatenate([np.concatenate([p, np.zeros(int(0.3 * RATE))]) for p in prompts])
    music = np.concatenate(tracks)
    items = []
    for kind, signal in (("speech", speech), ("music", music)):
        minute = 60 * RATE
        for j in range(len(signal) // minute + 1):
            chunk = signal[j * minute : (j + 1) * minute]
            if len(chunk) < RATE:
                continue
            level = float(rng.uniform(-30, -12))
            x = scale_to(chunk, level)
            x = x + noise(rng, len(x), "white") * np.sqrt(P0 * 10 ** ((level - 30) / 10))
            name = f"{kind}-{j:03d}.wav"
            write(d / name, sox_g711(x, "ulaw" if j % 3 else "alaw"))
            items.append(
                {
                    "file": f"{split}/{name}",
                    "split": split,
                    "kind": kind,
                    "category": kind,
                    "seconds": round(len(chunk) / RATE, 2),
                }
            )
    return items


def build(out: Path, calls: int, seed: int = 2026) -> dict:
    if shutil.which("sox") is None:
        raise SystemExit("sox is needed (apt-get install sox)")
    finals = [path for voices, music in FINAL_SETS.values() for path in (*voices, music)]
    for path in (ALLISON, CODEC2, MOH, *OTHER_PROMPTS, GAME_MUSIC, *finals):
        if not path.exists():
            raise SystemExit(f"{path} is missing: install the packages this script's help lists")
    out.mkdir(parents=True, exist_ok=True)
    items: list[dict] = []
    for split in ("train", "test"):
        rng = np.random.default_rng(seed + (split == "test"))
        sources = Sources(split)
        builder = CallBuilder(sources, rng)
        d = out / split
        d.mkdir(exist_ok=True)
        # The natural mixture: 80% plain, 10% each hard case; the hard sets on top of it.
        plan = []
        for kind, cats in (
            ("human", ("plain", "repeat", "long")),
            ("machine", ("plain", "short", "pause")),
        ):
            n_plain = int(calls * 0.8)
            n_hard = (calls - n_plain) // 2
            plan += [(kind, cats[0], "mix")] * n_plain
            plan += [(kind, cats[1], "mix")] * n_hard + [(kind, cats[2], "mix")] * n_hard
            plan += [(kind, cats[1], "hard")] * (calls // 4) + [(kind, cats[2], "hard")] * (
                calls // 4
            )
        for i, (kind, category, group) in enumerate(plan):
            audio, info = builder.human(category) if kind == "human" else builder.machine(category)
            audio = degrade(audio, rng, info)
            name = f"{kind}-{category}-{group}-{i:04d}.wav"
            write(d / name, audio)
            items.append(
                {
                    "file": f"{split}/{name}",
                    "split": split,
                    "kind": kind,
                    "category": category,
                    "group": group,
                    **info,
                }
            )
        # Beeps that interrupt the greeting (it stops where the beep starts): extra calls made
        # with a generator of their own, so that every call above stays as it was.
        extra = CallBuilder(sources, np.random.default_rng(seed + 10 + (split == "test")))
        for i in range(calls // 4):
            audio, info = extra.machine("interrupt")
            audio = degrade(audio, extra.rng, info)
            name = f"machine-interrupt-hard-{i:04d}.wav"
            write(d / name, audio)
            items.append(
                {
                    "file": f"{split}/{name}",
                    "split": split,
                    "kind": "machine",
                    "category": "interrupt",
                    "group": "hard",
                    **info,
                }
            )
        for i in range(calls // 2):
            fax_kind = FAX_KINDS[i % len(FAX_KINDS)]
            level = float(rng.uniform(-30, -10))
            signal, label = fax_signal(fax_kind, rng, level)
            lead = rng.uniform(0.3, 2.5)
            x = np.concatenate([np.zeros(int(lead * RATE)), signal, np.zeros(RATE)])
            snr = float(rng.uniform(15, 30))
            x = x + noise(rng, len(x), "white") * np.sqrt(P0 * 10 ** ((level - snr) / 10))
            law = "ulaw" if rng.random() < 0.7 else "alaw"
            name = f"fax-{fax_kind}-{i:04d}.wav"
            write(d / name, sox_g711(x, law))
            items.append(
                {
                    "file": f"{split}/{name}",
                    "split": split,
                    "kind": "fax",
                    "category": fax_kind,
                    "label": label,
                    "onset_ms": round(lead * 1000),
                    "level_dbm0": round(level, 1),
                    "snr_db": round(snr, 1),
                    "codec": law,
                }
            )
        for i, (name_, f0, tol) in enumerate(NAMED_TONES * 4):
            for inside in (True, False):
                sign = 1 if rng.random() < 0.5 else -1
                offset = sign * (0.8 * tol if inside else 2 * tol + 10 + 2)
                level = float(rng.uniform(-30, -10))
                lead = rng.uniform(0.3, 1.5)
                x = np.concatenate(
                    [np.zeros(int(lead * RATE)), tone(f0 + offset, 800, level), np.zeros(RATE // 2)]
                )
                x = x + noise(rng, len(x), "white") * np.sqrt(P0 * 10 ** ((level - 20) / 10))
                name = f"named-{name_}-{'in' if inside else 'out'}-{i:03d}.wav"
                write(d / name, sox_g711(x, "ulaw"))
                items.append(
                    {
                        "file": f"{split}/{name}",
                        "split": split,
                        "kind": "named",
                        "category": name_,
                        "inside": inside,
                        "frequency": f0 + offset,
                        "onset_ms": round(lead * 1000),
                    }
                )
        pool = [
            read_any(p)
            for voice in (ALLISON, *OTHER_PROMPTS)
            for p in sorted(voice.rglob("*.wav"))
            if p.stem not in TONE_PROMPTS and _split_of(p.name) == split
        ]
        pool += [read_any(CODEC2 / rel) for rel in CODEC2_SPLIT[split]]
        tracks = [read_any(MOH / m) for m in MOH_SPLIT[split]]
        tracks += [
            read_any(p)
            for p in sorted(GAME_MUSIC.glob("*.ogg"), key=lambda p: int(p.stem[5:]))
            if _split_of(p.name) == split
        ]
        items += false_alarm_set(d, split, pool, tracks, rng)
    for n, (split, (voices, music_dir)) in enumerate(FINAL_SETS.items()):
        rng = np.random.default_rng(seed + 2 + n)
        d = out / split
        d.mkdir(exist_ok=True)
        pool = [
            read_any(p)
            for voice in voices
            for p in sorted(voice.rglob("*.wav"))
            if p.stem not in TONE_PROMPTS
        ]
        tracks = [read_any(p) for p in sorted(music_dir.rglob("*.ogg"))]
        items += false_alarm_set(d, split, pool, tracks, rng)
    manifest = {"seed": seed, "calls": calls, "items": items}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--calls", type=int, default=200, help="human (and machine) calls per split"
    )
    args = parser.parse_args()
    manifest = build(args.out, args.calls)
    counts: dict[str, int] = {}
    for item in manifest["items"]:
        key = f"{item['split']}/{item['kind']}"
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
