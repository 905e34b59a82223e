#!/usr/bin/env python3
# ruff: noqa: E501  (markdown table rows and their format strings read best on one line)
"""
Score the CPA engine on the corpus of C{scripts/cpa_corpus.py} and write the results table.

    python scripts/cpa_corpus.py                 # builds var/cpa-corpus (once)
    python scripts/cpa_evaluate.py               # scores the test split, writes docs/cpa-results.md
    python scripts/cpa_evaluate.py --split train --tune   # the grid search used to pick 1.1's rules

Every file goes through L{iradialer.cpa.cli.analyse}, i.e. the same batched engine as live calls.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from cpa_corpus import NAMED_TONES, P0, RATE, noise, sox_g711  # noqa: E402

from iradialer.cpa.cli import analyse  # noqa: E402
from iradialer.cpa.config import CpaConfig  # noqa: E402
from iradialer.cpa.dtmf import COLUMNS, KEYS, ROWS  # noqa: E402
from iradialer.cpa.engine import Detection  # noqa: E402
from iradialer.cpa.wav import read_wav  # noqa: E402


def run(corpus: Path, items: list[dict], config: CpaConfig) -> dict[str, list[Detection]]:
    files = [item["file"] for item in items]
    audio = [read_wav(corpus / f) for f in files]
    found: dict[str, list[Detection]] = {f: [] for f in files}
    for file, what in analyse(files, config, audio):
        if isinstance(what, Detection):
            found[file].append(what)
    return found


def first_class(events: list[Detection]) -> Detection | None:
    for e in events:
        if e.event in ("LV", "AM", "FX", "MD"):
            return e
    return None


def pct(n: int, d: int) -> str:
    return "n/a" if d == 0 else f"{100 * n / d:.1f}%"


def median(values: list[float]) -> str:
    return "n/a" if not values else f"{statistics.median(values):.0f}"


def p90(values: list[float]) -> str:
    return "n/a" if not values else f"{np.percentile(values, 90):.0f}"


def amd_scores(items: list[dict], found: dict[str, list[Detection]]) -> dict[str, Any]:
    humans = [i for i in items if i["kind"] == "human"]
    machines = [i for i in items if i["kind"] == "machine"]
    correct = 0
    h_as_m = 0
    m_as_h = 0
    undecided = 0
    lv_latency: list[float] = []
    am_time: list[float] = []
    for item in humans + machines:
        decision = first_class(found[item["file"]])
        if decision is None:
            undecided += 1
            continue
        if decision.event == item["label"]:
            correct += 1
            if item["label"] == "LV":
                lv_latency.append(decision.decided_ms - item["first_utterance_end_ms"])
            else:
                am_time.append(decision.decided_ms)
        elif item["kind"] == "human" and decision.event == "AM":
            h_as_m += 1
        elif item["kind"] == "machine" and decision.event == "LV":
            m_as_h += 1
    n = len(humans) + len(machines)
    return {
        "n": n,
        "humans": len(humans),
        "machines": len(machines),
        "accuracy": correct / n if n else 0.0,
        "correct": correct,
        "h_as_m": h_as_m,
        "m_as_h": m_as_h,
        "undecided": undecided,
        "lv_latency": lv_latency,
        "am_time": am_time,
    }


def amd_row(label: str, s: dict[str, Any]) -> str:
    return (
        f"| {label} | {s['n']} | {pct(s['correct'], s['n'])} | {pct(s['h_as_m'], s['humans'])} "
        f"| {pct(s['m_as_h'], s['machines'])} | {s['undecided']} | {median(s['lv_latency'])} "
        f"/ {p90(s['lv_latency'])} | {median(s['am_time'])} / {p90(s['am_time'])} |"
    )


AMD_HEADER = (
    "| set | calls | accuracy | humans taken for machines | machines taken for humans "
    "| undecided | LV decision after end of first utterance, ms (median / p90) "
    "| AM decision after answer, ms (median / p90) |\n|---|---|---|---|---|---|---|---|"
)


def beep_scores(items: list[dict], found: dict[str, list[Detection]]) -> dict[str, Any]:
    eligible = []
    short = []
    for item in items:
        beep = item.get("beep")
        if not beep:
            continue
        snr = beep.get("snr_db")
        (eligible if beep["duration_ms"] >= 200 and (snr is None or snr >= 15) else short).append(
            item
        )
    within = 0
    onset_ok = 0
    latency: list[float] = []
    onset_error: list[float] = []
    for item in eligible:
        onset = item["beep"]["onset_ms"]
        hits = [
            e
            for e in found[item["file"]]
            if e.event == "BP" and onset - 100 <= e.ms <= onset + item["beep"]["duration_ms"]
        ]
        if hits:
            hit = hits[0]
            latency.append(hit.decided_ms - onset)
            onset_error.append(abs(hit.ms - onset))
            within += hit.decided_ms - onset <= 100
            onset_ok += abs(hit.ms - onset) <= 100
    short_found = sum(
        any(e.event == "BP" and abs(e.ms - i["beep"]["onset_ms"]) <= 100 for e in found[i["file"]])
        for i in short
    )
    false_in_calls = 0
    for item in items:
        if item["kind"] not in ("human", "machine"):
            continue
        onset = item.get("beep", {}).get("onset_ms")
        for e in found[item["file"]]:
            if e.event == "BP" and (
                onset is None or not onset - 100 <= e.ms <= onset + item["beep"]["duration_ms"]
            ):
                false_in_calls += 1
    return {
        "eligible": len(eligible),
        "within_100ms": within,
        "onset_within_100ms": onset_ok,
        "found": len(latency),
        "latency": latency,
        "onset_error": onset_error,
        "short_or_noisy": len(short),
        "short_found": short_found,
        "false_in_calls": false_in_calls,
    }


def fax_scores(items: list[dict], found: dict[str, list[Detection]]) -> dict[str, Any]:
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    latency: list[float] = []
    for item in items:
        if item["kind"] != "fax":
            continue
        counts = by_kind[item["category"]]
        counts[1] += 1
        hit = first_class(found[item["file"]])
        if (
            hit is not None
            and hit.event == item["label"]
            and hit.decided_ms - item["onset_ms"] <= 1000
        ):
            counts[0] += 1
            latency.append(hit.decided_ms - item["onset_ms"])
    return {"by_kind": dict(by_kind), "latency": latency}


def false_alarms(items: list[dict], found: dict[str, list[Detection]]) -> dict[str, Any]:
    seconds = {"speech": 0.0, "music": 0.0}
    events: dict[str, int] = defaultdict(int)
    examples: list[str] = []
    for item in items:
        if item["kind"] not in ("speech", "music"):
            continue
        seconds[item["kind"]] += item["seconds"]
        for e in found[item["file"]]:
            if e.event in ("BP", "FX", "MD", "DTMF"):
                events[e.event] += 1
                if len(examples) < 8:
                    examples.append(
                        f"{item['file']} {e.event}{e.digit or ''} at {e.ms} ms {dict(e.extras)}"
                    )
    return {
        "minutes": sum(seconds.values()) / 60,
        "speech_minutes": seconds["speech"] / 60,
        "music_minutes": seconds["music"] / 60,
        "events": dict(events),
        "examples": examples,
    }


def named_scores(items: list[dict], found: dict[str, list[Detection]]) -> dict[str, Any]:
    inside = [0, 0]
    outside = [0, 0]
    for item in items:
        if item["kind"] != "named":
            continue
        hit = any(e.event == item["category"] for e in found[item["file"]])
        if item["inside"]:
            inside[0] += hit
            inside[1] += 1
        else:
            outside[0] += hit
            outside[1] += 1
    return {"inside_hit": inside, "outside_hit": outside}


# --- DTMF to Q.24 -------------------------------------------------------------------------


def dtmf_sequence(
    offsets: tuple[float, float],
    row_dbm0: float,
    col_dbm0: float,
    tone_ms: float,
    pause_ms: float,
    noise_dbm0: float | None,
    rng: np.random.Generator,
) -> np.ndarray:
    parts = [np.zeros(int(0.2 * RATE))]
    for key in KEYS:
        i = KEYS.index(key)
        f_row = ROWS[i // 4] * (1 + offsets[0])
        f_col = COLUMNS[i % 4] * (1 + offsets[1])
        t = np.arange(int(tone_ms * RATE / 1000)) / RATE
        a_row = np.sqrt(2 * P0 * 10 ** (row_dbm0 / 10))
        a_col = np.sqrt(2 * P0 * 10 ** (col_dbm0 / 10))
        parts.append(
            a_row * np.sin(2 * np.pi * f_row * t + rng.uniform(0, 6.28))
            + a_col * np.sin(2 * np.pi * f_col * t + rng.uniform(0, 6.28))
        )
        parts.append(np.zeros(int(pause_ms * RATE / 1000)))
    parts.append(np.zeros(int(0.3 * RATE)))
    x = np.concatenate(parts)
    if noise_dbm0 is not None:
        x = x + noise(rng, len(x), "white") * np.sqrt(P0 * 10 ** (noise_dbm0 / 10))
    return x


def dtmf_cases() -> list[tuple[str, bool, dict]]:
    """
    (name, should_detect, parameters).  Accept edges combine +-1.5% offsets, 40 ms tones and
    40 ms pauses, -25 dBm0 for the weaker tone, 8 dB normal / 4 dB reverse twist, 15 dB SNR
    (noise 15 dB below the weaker tone).  Reject edges: one tone 3.5% off, 23 ms tones,
    -55 dBm0.
    """
    cases = []
    for off in ((0.015, 0.015), (-0.015, -0.015), (0.015, -0.015), (-0.015, 0.015)):
        for twist, (row, col) in (
            ("no twist", (-25, -25)),
            ("normal twist 8 dB", (-17, -25)),
            ("reverse twist 4 dB", (-25, -21)),
        ):
            name = f"accept: offsets {off[0]:+.1%}/{off[1]:+.1%}, {twist}, 40 ms on / 40 ms off, 15 dB SNR"
            cases.append(
                (
                    name,
                    True,
                    {
                        "offsets": off,
                        "row_dbm0": row,
                        "col_dbm0": col,
                        "tone_ms": 40,
                        "pause_ms": 40,
                        "noise_dbm0": min(row, col) - 15,
                    },
                )
            )
    for off in ((0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035)):
        name = f"reject: offsets {off[0]:+.1%}/{off[1]:+.1%}, -10 dBm0, 60 ms"
        cases.append(
            (
                name,
                False,
                {
                    "offsets": off,
                    "row_dbm0": -10,
                    "col_dbm0": -10,
                    "tone_ms": 60,
                    "pause_ms": 60,
                    "noise_dbm0": -40,
                },
            )
        )
    cases.append(
        (
            "reject: 23 ms tones, -10 dBm0",
            False,
            {
                "offsets": (0, 0),
                "row_dbm0": -10,
                "col_dbm0": -10,
                "tone_ms": 23,
                "pause_ms": 60,
                "noise_dbm0": -40,
            },
        )
    )
    cases.append(
        (
            "reject: -55 dBm0 per tone",
            False,
            {
                "offsets": (0, 0),
                "row_dbm0": -55,
                "col_dbm0": -55,
                "tone_ms": 60,
                "pause_ms": 60,
                "noise_dbm0": None,
            },
        )
    )
    return cases


def dtmf_scores(repeats: int = 4) -> list[dict[str, Any]]:
    config = CpaConfig.from_params({"total_timeout": 600000})
    rng = np.random.default_rng(24)
    rows = []
    for name, should, params in dtmf_cases():
        for codec in ("linear", "G.711 mu-law"):
            signals = []
            for _ in range(repeats):
                x = dtmf_sequence(rng=rng, **params)
                if codec != "linear":
                    x = sox_g711(x, "ulaw")
                signals.append(np.clip(np.round(x), -32768, 32767).astype(np.int16))
            names = [f"{name}#{r}" for r in range(repeats)]
            got: dict[str, str] = {n: "" for n in names}
            for file, what in analyse(names, config, signals):
                if isinstance(what, Detection) and what.event == "DTMF":
                    got[file] += what.digit or ""
            expected = KEYS if should else ""
            digits = sum(len(g) for g in got.values())
            right = sum(sum(a == b for a, b in zip(g, KEYS)) if should else 0 for g in got.values())
            rows.append(
                {
                    "case": name,
                    "codec": codec,
                    "should": should,
                    "sent": 16 * repeats,
                    "detected": digits,
                    "right": right,
                    "exact": all(g == expected for g in got.values()),
                }
            )
    return rows


# --- tuning -----------------------------------------------------------------------------


def tune(corpus: Path, items: list[dict]) -> None:
    calls = [i for i in items if i["kind"] in ("human", "machine") and i["group"] == "mix"]
    grid = {
        "greeting": (2000, 2200, 2400, 2600, 2800),
        "after_greeting_silence": (650, 750, 800),
        "speech_snr_db": (6.0, 8.0),
    }
    results = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values))
        s = amd_scores(
            calls, run(corpus, calls, CpaConfig.from_params({"api_version": "1.1", **params}))
        )
        h_as_m = s["h_as_m"] / max(s["humans"], 1)
        # The rule, fixed before the test split was scored: accuracy, minus a penalty for
        # humans taken for machines above 1.5%, among settings whose median LV decision is
        # at most 780 ms after the greeting; ties go to the faster AM decision.
        score = s["accuracy"] - 3 * max(0.0, h_as_m - 0.015)
        allowed = statistics.median(s["lv_latency"] or [10**6]) <= 780
        am = statistics.median(s["am_time"] or [10**6])
        results.append((allowed, round(score, 4), -am, params))
        print(
            f"{params} accuracy {s['accuracy']:.3f} h->m {h_as_m:.3f} lv {median(s['lv_latency'])} am {median(s['am_time'])}",
            flush=True,
        )
    results.sort(key=lambda r: r[:3], reverse=True)
    print("best:", results[0][3])


# --- report -----------------------------------------------------------------------------


def report(corpus: Path, split: str, items: list[dict], bench_streams: int) -> str:
    out: list[str] = []
    manifest = json.loads((corpus / "manifest.json").read_text())
    out.append(
        f"Split **{split}** of the corpus (seed {manifest['seed']}, {manifest['calls']} calls per kind and split), "
        f"built by `scripts/cpa_corpus.py`, scored by `scripts/cpa_evaluate.py` on {time.strftime('%Y-%m-%d')}."
    )
    # Calls whose beep interrupts the greeting are there for the beep detector only.
    calls = [i for i in items if i["kind"] in ("human", "machine") and i["category"] != "interrupt"]
    generation_found = {}
    for version in ("1.0", "1.1"):
        config = CpaConfig.from_params({"api_version": version})
        generation_found[version] = run(corpus, items, config)
    out.append("\n### LV / AM\n")
    out.append(
        "The natural mixture (`mix`): 80% plain calls, 10% of each hard case per class. The hard sets are "
        "extra calls of one hard case each.\n"
    )
    out.append(AMD_HEADER)
    for version in ("1.1", "1.0"):
        found = generation_found[version]
        mix = [i for i in calls if i["group"] == "mix"]
        out.append(amd_row(f"**{version}** mix", amd_scores(mix, found)))
        for label, select in (
            ("human plain", lambda i: i["kind"] == "human" and i["category"] == "plain"),
            ("human says hello twice", lambda i: i["category"] == "repeat"),
            ("human long greeting (1.8-3.0 s)", lambda i: i["category"] == "long"),
            (
                "machine plain (3-12 s)",
                lambda i: i["kind"] == "machine" and i["category"] == "plain",
            ),
            ("machine short greeting (1.4-3.0 s)", lambda i: i["category"] == "short"),
            ("machine word + 0.5-0.9 s pause first", lambda i: i["category"] == "pause"),
            (
                "noisy (SNR < 15 dB), all",
                lambda i: i.get("snr_db") is not None and i["snr_db"] < 15,
            ),
            ("quiet (< -28 dBm0), all", lambda i: i["level_dbm0"] < -28),
        ):
            subset = [i for i in calls if select(i)]
            out.append(amd_row(f"{version} {label}", amd_scores(subset, found)))
    found = generation_found["1.1"]
    b = beep_scores([i for i in items if i.get("category") != "interrupt"], found)
    cut = beep_scores([i for i in items if i.get("category") == "interrupt"], found)
    out.append("\n### Beeps (1.1; beep detection is the same in both generations)\n")
    out.append(
        "Beeps after the greeting and a pause (0.1-1.0 s); below them, extra calls whose beep "
        "interrupts the greeting (cut mid-word, the beep at once).\n"
    )
    out.append("| measure | value |\n|---|---|")
    out.append(f"| beeps of >= 200 ms at >= 15 dB SNR | {b['eligible']} |")
    out.append(
        f"| ... reported (BP) no later than 100 ms after onset | {pct(b['within_100ms'], b['eligible'])} |"
    )
    out.append(
        f"| ... found at all / reported onset within 100 ms of the true onset | {pct(b['found'], b['eligible'])} / {pct(b['onset_within_100ms'], b['eligible'])} |"
    )
    out.append(
        f"| decision latency after onset, ms (median / p90 / max) | {median(b['latency'])} / {p90(b['latency'])} / {max(b['latency'], default=0):.0f} |"
    )
    out.append(
        f"| onset error, ms (median / max) | {median(b['onset_error'])} / {max(b['onset_error'], default=0):.0f} |"
    )
    out.append(
        f"| shorter (100-200 ms) or noisier beeps found | {b['short_found']} of {b['short_or_noisy']} |"
    )
    out.append(f"| BP where there is no beep, in {len(calls)} calls | {b['false_in_calls']} |")
    out.append(
        f"| beeps interrupting the greeting, >= 200 ms at >= 15 dB SNR: reported no later than 100 ms after onset / found at all | {pct(cut['within_100ms'], cut['eligible'])} / {pct(cut['found'], cut['eligible'])} of {cut['eligible']} |"
    )
    out.append(
        f"| ... shorter or noisier ones found | {cut['short_found']} of {cut['short_or_noisy']} |"
    )
    sets = {split: false_alarms(items, found)}
    for other in ("train", "test", "final", "final2"):
        others = [
            i for i in manifest["items"] if i["split"] == other and i["kind"] in ("speech", "music")
        ]
        if other != split and others:
            sets[other] = false_alarms(others, run(corpus, others, CpaConfig()))
    out.append("\n### False alarms on speech and music\n")
    out.append(
        "Default configuration; G.711, -30 to -12 dBm0, one-minute files. train and test: Allison's "
        "prompts in English and Spanish, June's in French, codec2 speakers, hold music and game "
        "music, split by source file. final: Carlo's Italian and a Russian voice's prompts and an "
        "hour of electronic music; final2: Menardi's Italian prompts and 23 minutes of game music; "
        "sources no rule was developed on. The train set was looked at "
        "while the beep rules were developed; docs/cpa.md says how often each set was scored.\n"
    )
    out.append(
        "| event | "
        + " | ".join(
            f"{name}: {fa['minutes']:.1f} min ({fa['speech_minutes']:.1f} speech, {fa['music_minutes']:.1f} music)"
            for name, fa in sets.items()
        )
        + " |\n|---|"
        + "---|" * len(sets)
    )
    for event in ("BP", "FX", "MD", "DTMF"):
        out.append(
            f"| {event} | "
            + " | ".join(str(fa["events"].get(event, 0)) for fa in sets.values())
            + " |"
        )
    examples = [e for fa in sets.values() for e in fa["examples"]]
    if examples:
        out.append("\nThe false alarms: " + "; ".join(examples))
    fx = fax_scores(items, found)
    out.append("\n### Fax and modem (no configuration)\n")
    out.append("| signal | found within 1.0 s of onset, right event |\n|---|---|")
    for kind, (hit, n) in sorted(fx["by_kind"].items()):
        out.append(f"| {kind} | {hit} of {n} |")
    out.append(
        f"\nDecision latency after onset, ms: median {median(fx['latency'])}, max {max(fx['latency'], default=0):.0f}."
    )
    tones_config = CpaConfig.from_params({"tones": {n: f"{f}|{t}" for n, f, t in NAMED_TONES}})
    named = named_scores(
        items, run(corpus, [i for i in items if i["kind"] == "named"], tones_config)
    )
    out.append("\n### Named tones\n")
    out.append(
        "Configuration `tones`: " + ", ".join(f'"{n}": "{f}|{t}"' for n, f, t in NAMED_TONES) + "; "
        "tones at 0.8 x tolerance off (inside) and at 2 x tolerance + 12 Hz off (outside), 20 dB SNR, G.711.\n"
    )
    out.append("| tones | reported under their name |\n|---|---|")
    out.append(f"| inside tolerance | {named['inside_hit'][0]} of {named['inside_hit'][1]} |")
    out.append(
        f"| beyond 2 x tolerance + 10 Hz | {named['outside_hit'][0]} of {named['outside_hit'][1]} |"
    )
    out.append("\n### DTMF (ITU-T Q.24 edges; 16 digits x 4 repetitions per case)\n")
    out.append(
        "| case | codec | digits sent | detected | right | exact sequence |\n|---|---|---|---|---|---|"
    )
    for r in dtmf_scores():
        sent = r["sent"] if r["should"] else f"{r['sent']} (must be 0 detected)"
        out.append(
            f"| {r['case']} | {r['codec']} | {sent} | {r['detected']} | {r['right']} | {'yes' if r['exact'] else 'NO'} |"
        )
    if bench_streams:
        out.append("\n### Throughput (`iradialer-cpa bench`)\n")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "iradialer.cpa.cli",
                "bench",
                "--streams",
                str(bench_streams),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        lines = proc.stdout.strip().splitlines()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        out.append(
            f"Load average before the run: {load} on {os.cpu_count()} cores shared with other "
            "work; the ratio between the two loops is the figure that survives the noise.\n"
        )
        out.append("```\n" + "\n".join(lines[:-1]) + "\n```")
    return "\n".join(out) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "var" / "cpa-corpus")
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument(
        "--tune", action="store_true", help="grid-search 1.1's rules (use on train)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "cpa-results.md")
    parser.add_argument("--bench-streams", type=int, default=2000, help="0: skip the benchmark")
    args = parser.parse_args(list(argv) if argv is not None else None)
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    items = [i for i in manifest["items"] if i["split"] == args.split]
    if args.tune:
        if args.split == "test":
            raise SystemExit("tune on the train split, never on test")
        tune(args.corpus, items)
        return 0
    text = report(args.corpus, args.split, items, args.bench_streams)
    title = "# CPA evaluation results\n\nGenerated by `scripts/cpa_evaluate.py`; see `docs/cpa.md` for how to read it.\n\n"
    args.out.write_text(title + text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
