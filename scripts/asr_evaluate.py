#!/usr/bin/env python3
"""
Measure the ASR voice detector on labelled telephone audio: frame precision and recall per
aggr_mode, with the tone gate (what iradialer runs) and WebRTC's VAD alone, plus the
utterances the segmenter makes.

    .venv/bin/python scripts/asr_evaluate.py [--prompts 40] [--seed 1]

Needs the Debian packages asterisk-core-sounds-en-wav and asterisk-moh-opsound-wav (see
TEST_DEBS in the Makefile).  Prints Markdown tables (docs/asr.md holds a run's output).
Speech truth: frames of the clean prompts within 35 dB of each prompt's loudest frame (see
iradialer/asr/corpus.py); music, tones and noise are all non-speech.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webrtcvad

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iradialer.asr import corpus  # noqa: E402
from iradialer.asr.segmenter import Segmenter, SpeechEnded, Utterance  # noqa: E402
from iradialer.asr.vad import FRAME_MS, RATE, Decision, VoiceDetector  # noqa: E402

Detector = Callable[[corpus.Labelled], list[Decision]]


def ours(aggr_mode: int) -> Detector:
    def run(audio: corpus.Labelled) -> list[Decision]:
        detector = VoiceDetector(aggr_mode)
        out: list[Decision] = []
        for frame, ms in audio.frames():
            out += detector.push(frame, ms)
        return out + detector.flush()

    return run


def webrtc_alone(mode: int) -> Detector:
    def run(audio: corpus.Labelled) -> list[Decision]:
        vad = webrtcvad.Vad(mode)
        return [
            Decision(frame, ms, vad.is_speech(frame.astype("<i2").tobytes(), RATE))
            for frame, ms in audio.frames()
        ]

    return run


def one_phrase_prompts(count: int) -> list[str]:
    """Prompts of 0.8-6 s with no pause inside over 300 ms, in name order."""
    names = []
    for path in sorted(corpus.sounds_dir().glob("*.wav")):
        if any(word in path.stem for word in ("beep", "tone", "dial", "ring")):
            continue
        seconds = path.stat().st_size / (2 * RATE)
        if 0.8 <= seconds <= 6 and corpus.max_internal_pause_ms(path.stem) <= 300:
            names.append(path.stem)
    step = max(1, len(names) // count)
    return names[::step][:count]


@dataclass
class Outcome:
    said: np.ndarray
    truth: np.ndarray
    utterances: list[Utterance]
    phrases: list[tuple[int, int]]
    seconds: float

    def recall(self) -> float:
        return float((self.said & self.truth).sum() / max(1, self.truth.sum()))

    def precision(self) -> float:
        return float((self.said & self.truth).sum() / max(1, self.said.sum()))

    def called_speech(self) -> float:
        return float(self.said.mean())

    def phrases_whole(self) -> int:
        """Phrases lying entirely inside one utterance's audio."""
        whole = 0
        for start, end in self.phrases:
            for u in self.utterances:
                audio_start = u.start_ms - 300
                if audio_start <= start and end <= audio_start + u.audio_ms:
                    whole += 1
                    break
        return whole


def evaluate(detector: Detector, audio: corpus.Labelled) -> Outcome:
    decisions = detector(audio)
    segmenter = Segmenter()
    utterances = []
    for d in decisions:
        utterances += [e.utterance for e in segmenter.push(d) if isinstance(e, SpeechEnded)]
    utterances += [e.utterance for e in segmenter.finish("end") if isinstance(e, SpeechEnded)]
    said = np.array([d.speech for d in decisions])
    return Outcome(said, audio.speech, utterances, audio.phrases, len(said) * FRAME_MS / 1000)


def conditions(prompts: int, rng: np.random.Generator) -> dict[str, corpus.Labelled]:
    names = one_phrase_prompts(prompts)
    speech = {
        "speech, clean line": corpus.speech_with_pauses(names, rng),
        "speech, quiet talker (-35 dBm0)": corpus.speech_with_pauses(names, rng, level_dbm0=-35),
        "speech + pink noise, SNR 20 dB": corpus.speech_with_pauses(
            names, rng, noise_kind="pink", snr_db=20
        ),
        "speech + white noise, SNR 10 dB": corpus.speech_with_pauses(
            names, rng, noise_kind="white", snr_db=10
        ),
    }
    tones = corpus.tone_events(rng)
    other = {
        "music on hold (5 tracks x 60 s)": corpus.Labelled.join(
            [piece for _, piece in corpus.music(60, -20, rng)]
        ),
        "tones (beeps, call progress, DTMF, fax, SIT)": corpus.nothing(
            np.concatenate(list(tones.values())), rng
        ),
    }
    for kind in ("white", "pink", "brown"):
        for level in (-45, -30):
            key = f"{kind} noise {level} dBm0"
            other[key] = corpus.nothing(corpus.noise(kind, 20, level, rng), rng)
    return {**speech, **other}


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=40, help="spoken phrases per condition")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    audio = conditions(args.prompts, np.random.default_rng(args.seed))
    detectors: dict[str, Detector] = {f"aggr_mode {m}": ours(m) for m in (1, 2, 3)}
    detectors.update({f"WebRTC mode {m} alone": webrtc_alone(m) for m in (0, 1, 2, 3)})
    results: dict[tuple[str, str], Outcome] = {}
    cost: dict[str, float] = {}
    for dname, detector in detectors.items():
        started = time.perf_counter()
        frames = 0
        for cname, piece in audio.items():
            results[(dname, cname)] = evaluate(detector, piece)
            frames += len(piece.speech)
        cost[dname] = (time.perf_counter() - started) / frames * 1e6
    speech_names = [c for c in audio if c.startswith("speech")]
    other_names = [c for c in audio if not c.startswith("speech")]

    print("### Speech with pauses: frame precision / recall, utterances\n")
    print(f"{args.prompts} one-phrase prompts per condition, 1.2-2.5 s pauses.\n")
    rows = []
    for dname in detectors:
        for cname in speech_names:
            r = results[(dname, cname)]
            rows.append(
                [
                    dname,
                    cname,
                    f"{r.precision():.3f}",
                    f"{r.recall():.3f}",
                    f"{len(r.utterances)} / {len(r.phrases)}",
                    f"{r.phrases_whole()}",
                ]
            )
    print(
        table(
            ["detector", "audio", "precision", "recall", "utterances / phrases", "phrases whole"],
            rows,
        )
    )
    print("\n### No speech at all: share of frames called speech, utterances per minute\n")
    rows = []
    for dname in detectors:
        row = [dname]
        for cname in other_names:
            r = results[(dname, cname)]
            row.append(f"{100 * r.called_speech():.1f}% / {len(r.utterances) / r.seconds * 60:.1f}")
        rows.append(row)
    print(table(["detector", *other_names], rows))
    print("\n### Everything pooled: frame precision / recall, cost\n")
    rows = []
    for dname in detectors:
        said = np.concatenate([results[(dname, c)].said for c in audio])
        truth = np.concatenate([results[(dname, c)].truth for c in audio])
        tp = (said & truth).sum()
        rows.append(
            [
                dname,
                f"{tp / max(1, said.sum()):.3f}",
                f"{tp / max(1, truth.sum()):.3f}",
                f"{cost[dname]:.1f}",
            ]
        )
    print(table(["detector", "precision", "recall", "us per 20 ms frame"], rows))


if __name__ == "__main__":
    main()
