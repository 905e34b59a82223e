"""
WAV in and out for the offline tool and C{log_voice}: any PCM WAV (8/16/24/32-bit integer,
32/64-bit float, or G.711 mu-law/A-law; any rate, any channel count) read as 8 kHz mono int16.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np

from iradialer.cpa.g711 import ALAW_DECODE, ULAW_DECODE

RATE = 8000


class WavError(ValueError):
    pass


def read_wav(path: str | Path) -> np.ndarray:
    """
    The samples of C{path} as 8 kHz mono int16 (channels averaged, resampled if needed).
    """
    with open(path, "rb") as f:
        data = f.read()
    rate, channels, samples = _decode(data)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return to_int16(resample(samples, rate, RATE))


def _decode(data: bytes) -> tuple[int, int, np.ndarray]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    fmt = None
    payload = None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = struct.unpack("<4sI", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        if chunk == b"fmt ":
            fmt = body
        elif chunk == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or payload is None or len(fmt) < 16:
        raise WavError("no fmt or data chunk")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    if channels < 1 or rate < 1000:
        raise WavError(f"unusable format: {channels} channels at {rate} Hz")
    width = bits // 8
    usable = len(payload) - len(payload) % (width * channels or 1)
    payload = payload[:usable]
    if tag == 1 and bits == 8:
        samples = (np.frombuffer(payload, np.uint8).astype(np.float64) - 128) * 256
    elif tag == 1 and bits == 16:
        samples = np.frombuffer(payload, "<i2").astype(np.float64)
    elif tag == 1 and bits == 24:
        raw = np.frombuffer(payload, np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / 256).astype(np.float64)
    elif tag == 1 and bits == 32:
        samples = np.frombuffer(payload, "<i4").astype(np.float64) / 65536
    elif tag in (6, 7) and bits == 8:
        table = ALAW_DECODE if tag == 6 else ULAW_DECODE
        samples = table[np.frombuffer(payload, np.uint8)].astype(np.float64)
    elif tag == 3 and bits in (32, 64):
        samples = np.frombuffer(payload, "<f4" if bits == 32 else "<f8").astype(np.float64) * 32768
    else:
        raise WavError(f"unsupported sample format (tag {tag}, {bits} bits): PCM, float or G.711")
    return rate, channels, samples


def resample(samples: np.ndarray, rate: int, target: int = RATE) -> np.ndarray:
    """
    Band-limited resampling (windowed-sinc low-pass below the lower Nyquist, then linear
    interpolation on the filtered signal, which is accurate because the filter leaves it
    oversampled) -- enough for telephone-band analysis.
    """
    if rate == target or len(samples) == 0:
        return np.asarray(samples, dtype=np.float64)
    if rate > target:
        cutoff = 0.45 * target / rate
        taps = 64 * int(np.ceil(rate / target)) + 1
        n = np.arange(taps) - (taps - 1) / 2
        kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
        kernel /= kernel.sum()
        samples = np.convolve(samples, kernel, mode="same")
    duration = len(samples) / rate
    positions = np.arange(int(round(duration * target))) * (rate / target)
    return np.interp(positions, np.arange(len(samples)), samples)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_int16(np.asarray(samples)).astype("<i2").tobytes())


class WavWriter:
    """
    A mono 16-bit WAV written as frames arrive (C{log_voice}); the header is completed on
    L{close}, so a crash leaves a file with the audio but a zero length in its header.
    """

    def __init__(self, path: str | Path, rate: int = RATE) -> None:
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._wave = wave.open(self._file, "wb")
        self._wave.setnchannels(1)
        self._wave.setsampwidth(2)
        self._wave.setframerate(rate)

    def write(self, samples: np.ndarray) -> None:
        self._wave.writeframesraw(to_int16(samples).astype("<i2").tobytes())

    def close(self) -> None:
        self._wave.close()
        self._file.close()
