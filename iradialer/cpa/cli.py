"""
C{iradialer-cpa}: the CPA engine on recordings, and its throughput.

    iradialer-cpa analyse [--config CFG.json] [--json] FILE.wav [FILE.wav ...]
    iradialer-cpa bench [--streams N] [--seconds S] [--single N]

C{analyse} streams each file through the same engine as live calls (all files together, one
batch per 20 ms frame); the first sample of a file is the moment of answer.  With C{--json}
stdout has one JSON object per line and nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

from iradialer.cpa.config import CpaConfig
from iradialer.cpa.engine import CpaEngine, Detection, Done, Outcome
from iradialer.cpa.frontend import FRAME, FRAME_MS, RATE
from iradialer.cpa.wav import WavError, read_wav


def analyse(
    files: Sequence[str], config: CpaConfig, samples: Sequence[np.ndarray] | None = None
) -> list[tuple[str, Detection | Done]]:
    """
    The detections of every file, in the order the engine made them.  C{samples} (8 kHz
    int16, one array per file) skips reading the files.
    """
    audio = list(samples) if samples is not None else [read_wav(f) for f in files]
    engine = CpaEngine(capacity=max(len(files), 1))
    slots = [engine.open(config) for _ in files]
    name_of = dict(zip(slots, files))
    frames = [a[: len(a) - len(a) % FRAME].reshape(-1, FRAME) for a in audio]
    results: list[tuple[str, Detection | Done]] = []

    def collect(outcomes: list[Outcome]) -> None:
        results.extend((name_of[slot], what) for slot, what in outcomes)

    longest = max((len(f) for f in frames), default=0)
    for t in range(longest):
        live = [i for i, f in enumerate(frames) if t < len(f) and not engine.is_done(slots[i])]
        if not live:
            break
        batch = np.stack([frames[i][t] for i in live])
        collect(engine.step([slots[i] for i in live], batch, [t * FRAME_MS] * len(live)))
    for i, slot in enumerate(slots):
        collect(engine.finish(slot, len(frames[i]) * FRAME_MS))
    return results


def as_json(file: str, what: Detection | Done) -> dict[str, Any]:
    if isinstance(what, Done):
        return {"file": file, "event": "cpa_done", "ms": what.ms, "reason": what.reason}
    line: dict[str, Any] = {"file": file, "event": what.event}
    if what.digit is not None:
        line["digit"] = what.digit
    line["ms"] = what.ms
    if what.decided_ms != what.ms:
        line["decided_ms"] = what.decided_ms
    line.update(what.extras)
    return line


def as_text(file: str, what: Detection | Done) -> str:
    if isinstance(what, Done):
        return f"{file}\t{what.ms / 1000:8.3f} s\tcpa_done ({what.reason})"
    label = what.event if what.digit is None else f"DTMF {what.digit}"
    extras = " ".join(f"{k}={v}" for k, v in what.extras.items())
    when = f"{what.ms / 1000:8.3f} s"
    if what.decided_ms != what.ms:
        when += f" (decided {what.decided_ms / 1000:.3f} s)"
    return f"{file}\t{when}\t{label}\t{extras}".rstrip()


def _load_config(path: str | None) -> CpaConfig:
    if path is None:
        return CpaConfig()
    with open(path, encoding="utf-8") as f:
        params = json.load(f)
    if not isinstance(params, dict):
        raise ValueError("the configuration must be a JSON object (a setcpaparams body)")
    return CpaConfig.from_params(params)


def bench_audio(seconds: float, seed: int = 7) -> np.ndarray:
    """
    Telephone-like test audio for the benchmark: noise, syllable-shaped bursts of harmonic
    "voice", beeps and DTMF, so every detector works as it would on calls.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    noise = rng.normal(0, 30, n)
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(h * phase) / h for h in range(1, 12)) * 2500
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) * (np.sin(2 * np.pi * 0.2 * t) > -0.3)
    audio = noise + voice * envelope
    for start in np.arange(1.0, seconds - 1, 3.7):
        i = int(start * RATE)
        audio[i : i + 2400] += 8000 * np.sin(2 * np.pi * 1000 * t[:2400])
        j = i + 6000
        audio[j : j + 800] += 4000 * (
            np.sin(2 * np.pi * 770 * t[:800]) + np.sin(2 * np.pi * 1336 * t[:800])
        )
    return np.clip(audio, -32768, 32767).astype(np.int16)


def bench(streams: int, seconds: float, single: int, out: TextIO) -> dict[str, float]:
    """
    Time the engine on C{streams} concurrent streams batched per tick, and C{single} streams
    stepped one at a time (what the batching saves), in the same process.
    """
    audio = bench_audio(max(seconds, 4.0) + 1)
    frames = audio[: len(audio) - len(audio) % FRAME].reshape(-1, FRAME)
    ticks = int(seconds * 1000 / FRAME_MS)
    config = CpaConfig.from_params({"total_timeout": 600000})
    offsets = np.random.default_rng(1).integers(0, len(frames) - ticks, size=max(streams, single))

    engine = CpaEngine(capacity=streams)
    slots = np.array([engine.open(config) for _ in range(streams)])
    batch_times = []
    for t in range(ticks):
        batch = frames[offsets[:streams] + t]
        start = time.perf_counter()
        engine.step(slots, batch, np.full(streams, t * FRAME_MS))
        batch_times.append(time.perf_counter() - start)
    per_tick = float(np.median(batch_times))
    batched_us = per_tick / streams * 1e6

    engine = CpaEngine(capacity=single)
    one_slots = [engine.open(config) for _ in range(single)]
    single_ticks = max(ticks // 5, 20)
    start = time.perf_counter()
    for t in range(single_ticks):
        for i, slot in enumerate(one_slots):
            engine.step([slot], frames[offsets[i] + t][None, :], [t * FRAME_MS])
    single_us = (time.perf_counter() - start) / (single_ticks * single) * 1e6

    result = {
        "streams": streams,
        "tick_ms_median": per_tick * 1e3,
        "tick_ms_p99": float(np.percentile(batch_times, 99)) * 1e3,
        "batched_us_per_stream_frame": batched_us,
        "realtime_streams_one_core": FRAME_MS * 1e3 / batched_us,
        "single_us_per_stream_frame": single_us,
        "single_realtime_streams_one_core": FRAME_MS * 1e3 / single_us,
        "batching_speedup": single_us / batched_us,
    }
    print(
        f"batched: {streams} streams, {ticks} ticks of 20 ms: median tick "
        f"{result['tick_ms_median']:.2f} ms (p99 {result['tick_ms_p99']:.2f} ms), "
        f"{batched_us:.2f} us per stream-frame -> "
        f"{result['realtime_streams_one_core']:.0f} real-time streams on one core",
        file=out,
    )
    print(
        f"one stream at a time: {single} streams: {single_us:.1f} us per stream-frame -> "
        f"{result['single_realtime_streams_one_core']:.0f} real-time streams; "
        f"batching is {result['batching_speedup']:.1f}x faster",
        file=out,
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="iradialer-cpa", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyse", help="run CPA on WAV files (first sample = answer)")
    a.add_argument("--config", help="a setcpaparams body as a JSON file")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a.add_argument("files", nargs="+", metavar="FILE.wav")
    b = sub.add_parser("bench", help="concurrent real-time streams one core sustains")
    b.add_argument("--streams", type=int, default=2000)
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--single", type=int, default=200, help="streams in the one-at-a-time loop")
    b.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)

    if args.command == "bench":
        result = bench(args.streams, args.seconds, args.single, sys.stdout)
        if args.json:
            print(json.dumps(result))
        return 0
    try:
        config = _load_config(args.config)
        audio = [read_wav(f) for f in args.files]
    except (OSError, ValueError, WavError) as e:
        print(f"iradialer-cpa: {e}", file=sys.stderr)
        return 2
    for file, what in analyse(args.files, config, audio):
        if args.json:
            print(json.dumps(as_json(file, what)))
        else:
            print(as_text(file, what))
    return 0


if __name__ == "__main__":
    sys.exit(main())
