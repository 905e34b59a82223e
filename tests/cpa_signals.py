"""
Synthetic telephone signals for the CPA tests: tones, DTMF, speech-like bursts, noise.
Levels are dBm0; everything is int16 at 8 kHz.
"""

from __future__ import annotations

import numpy as np

from iradialer.cpa.cli import analyse
from iradialer.cpa.config import CpaConfig
from iradialer.cpa.engine import Detection, Done
from iradialer.cpa.frontend import P0

RATE = 8000


def amplitude(dbm0: float) -> float:
    return float(np.sqrt(2 * P0 * 10 ** (dbm0 / 10)))


def silence(ms: float) -> np.ndarray:
    return np.zeros(int(ms * RATE / 1000))


def tone(freq: float, ms: float, dbm0: float = -15, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(ms * RATE / 1000)) / RATE
    return amplitude(dbm0) * np.sin(2 * np.pi * freq * t + phase)


def dual(f1: float, f2: float, ms: float, db1: float, db2: float) -> np.ndarray:
    return tone(f1, ms, db1, 0.3) + tone(f2, ms, db2, 1.1)


def voice(ms: float, dbm0: float = -20, seed: int = 0) -> np.ndarray:
    """
    Speech-like sound: a harmonic series with a moving pitch under a syllabic (4-5 Hz)
    envelope that never falls silent for long, like connected speech.
    """
    rng = np.random.default_rng(seed)
    n = int(ms * RATE / 1000)
    t = np.arange(n) / RATE
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    x = sum(np.sin(h * phase + rng.uniform(0, 6)) / h for h in range(1, 20))
    syllables = 0.35 + 0.65 * np.abs(np.sin(2 * np.pi * 2.3 * t + rng.uniform(0, 3)))
    x = x * syllables + rng.normal(0, 0.05, n)
    return x * amplitude(dbm0) / np.sqrt(np.mean(x**2) * 2)


def noise(ms: float, dbm0: float, seed: int = 1) -> np.ndarray:
    n = int(ms * RATE / 1000)
    return np.random.default_rng(seed).normal(0, 1, n) * np.sqrt(P0 * 10 ** (dbm0 / 10))


def join(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)


def pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def run(x: np.ndarray, config: CpaConfig | None = None, **params: object) -> list[Detection | Done]:
    """
    Everything the engine reports for one signal (the first sample is the answer).
    """
    if config is None:
        config = CpaConfig.from_params(params)
    return [what for _, what in analyse(["x"], config, [pcm(x)])]


def events(x: np.ndarray, **params: object) -> list[str]:
    return [w.event if isinstance(w, Detection) else f"done:{w.reason}" for w in run(x, **params)]


def first(x: np.ndarray, event: str, **params: object) -> Detection | None:
    for what in run(x, **params):
        if isinstance(what, Detection) and what.event == event:
            return what
    return None
