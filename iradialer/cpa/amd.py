"""
Live voice / answering machine decision for a batch of streams.

Two stages, each frame:

1. Speech or not.  The I{fixed} detector (generation 1.0) is app_amd's: a frame is speech when
   its mean absolute sample reaches a threshold.  The I{adaptive} detector (1.1) keeps a noise
   floor per band (six bands, 150-3400 Hz): a frame is speech when its mean per-band SNR
   (each band clipped to 0-30 dB) reaches C{speech_snr_db} (60% of it to stay in speech) and its
   level reaches C{speech_min_level_dbm0}.  Floors start from the first steady frame that is
   not digital silence (FreeSWITCH's 0xFF comfort-noise frames never touch them), fall fast,
   follow non-speech quickly and creep up under speech at 2.5 dB/s; a level that stays within
   3 dB for 320 ms is stationary noise, not speech, and resets the floors.
   Frames the tone and DTMF detectors claim are I{neutral}: neither speech nor silence.

2. Timing rules (app_amd's, with tunables from L{iradialer.cpa.config.AmdRules}): a word is a
   speech burst of C{min_word_length}; words are separated by C{between_words_silence}; the
   greeting begins with the first word.  Then, first match wins:
   - no word within C{initial_silence} of analysed audio: C{initial_silence_event};
   - C{maximum_number_of_words} words (when not 0): AM (cause MAXWORDS);
   - the greeting reaches C{greeting} (voiced time, or its span since the first word):
     AM (LONGGREETING);
   - silence of C{after_greeting_silence} after the greeting: LV (HUMAN).

After a decision the same speech detector drives SL: a silence run of C{silence_detect_limit}
(or C{beep_to_silence_gap} after a beep), reported once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iradialer.cpa.config import CpaConfig
from iradialer.cpa.frontend import BANDS, DFT, FRAME_MS, N_BANDS, P0, Frames, dbm0
from iradialer.cpa.state import Columns, Index

WAIT, GREETING, DECIDED = 0, 1, 2
CAUSES = ("INITIALSILENCE", "MAXWORDS", "LONGGREETING", "HUMAN")
_HISTORY = 16
#: The speech score is the mean SNR of the best bands (voiced speech may fill only two).
_TOP_BANDS = 3
_STATIONARY_DB = 3.0
#: Floors before calibration: white noise at -70 dBm0 (a quiet digital line).
_DEFAULT_NOISE_DBM0 = -70.0


def _default_floors() -> np.ndarray:
    window_energy = float((DFT[:, 0] ** 2 + DFT[:, DFT.shape[1] // 2] ** 2).sum())  # sum of w^2
    bins = BANDS.sum(axis=0)
    noise = P0 * 10 ** (_DEFAULT_NOISE_DBM0 / 10)
    return (10 * np.log10(bins * window_energy * noise + 1.0)).astype(np.float32)


DEFAULT_FLOORS = _default_floors()


def _frames(ms: float) -> int:
    return int(-(-ms // FRAME_MS))


@dataclass
class AmdDecisions:
    """
    Rows that decided this frame: C{event} "LV"/"AM" per row, with the cause's index in
    L{CAUSES} and the voiced time of the greeting (ms).
    """

    rows: np.ndarray
    am: np.ndarray
    cause: np.ndarray
    voiced_ms: np.ndarray


class AmdDetector:
    def __init__(self, capacity: int) -> None:
        self.s = Columns(
            {
                # configuration, per stream
                "ignore_ms": ((), np.int64, 0),
                "min_ambient": ((), np.float32, 0),
                "fixed": ((), np.bool_, False),
                "threshold": ((), np.float32, 256),
                "snr_db": ((), np.float32, 6),
                "min_level": ((), np.float32, -52),
                "initial_silence": ((), np.int32, 0),
                "initial_am": ((), np.bool_, False),
                "greeting": ((), np.int32, 0),
                "span": ((), np.bool_, False),
                "after_greeting": ((), np.int32, 0),
                "min_word": ((), np.int32, 0),
                "between_words": ((), np.int32, 0),
                "max_words": ((), np.int32, 0),
                "sl_limit": ((), np.int32, 0),
                "beep_gap": ((), np.int32, 0),
                # state
                "started": ((), np.bool_, False),
                "calibrated": ((), np.bool_, False),
                "phase": ((), np.int8, WAIT),
                "speech": ((), np.bool_, False),
                "speech_run": ((), np.int32, 0),
                "silence_run": ((), np.int32, 0),
                "waited": ((), np.int32, 0),
                "voiced": ((), np.int32, 0),
                "in_word": ((), np.bool_, False),
                "words": ((), np.int32, 0),
                "floors": ((N_BANDS,), np.float32, 0),
                "previous_square": ((), np.float32, 0),
                "history": ((_HISTORY,), np.float32, 0),
                "analysed": ((), np.int32, 0),
                "greeting_at": ((), np.int32, 0),
                "sl_run": ((), np.int32, 0),
                "sl_fired": ((), np.bool_, False),
                "after_beep": ((), np.bool_, False),
            },
            capacity,
        )

    def configure(self, slot: int, config: CpaConfig) -> None:
        s = self.s
        s.reset(slot)
        s.floors[slot] = DEFAULT_FLOORS
        rules = config.rules
        s.ignore_ms[slot] = config.initial_silence_ignore
        s.min_ambient[slot] = config.min_ambient_energy
        s.fixed[slot] = rules.speech_detector == "fixed"
        s.threshold[slot] = rules.silence_threshold
        s.snr_db[slot] = rules.speech_snr_db
        s.min_level[slot] = rules.speech_min_level_dbm0
        s.initial_silence[slot] = _frames(rules.initial_silence)
        s.initial_am[slot] = rules.initial_silence_event == "AM"
        s.greeting[slot] = _frames(rules.greeting)
        s.span[slot] = rules.greeting_measure == "span"
        s.after_greeting[slot] = _frames(rules.after_greeting_silence)
        s.min_word[slot] = _frames(rules.min_word_length)
        s.between_words[slot] = _frames(rules.between_words_silence)
        s.max_words[slot] = rules.maximum_number_of_words
        s.sl_limit[slot] = _frames(config.silence_detect_limit)
        s.beep_gap[slot] = _frames(config.beep_to_silence_gap)

    def decide(self, slot: int) -> None:
        """
        Another detector decided (FX, MD, or AM from a beep): no LV/AM from here on.
        """
        self.s.phase[slot] = DECIDED

    def beep_ended(self, slot: int) -> None:
        self.s.after_beep[slot] = True

    def speech_seen(self, slot: int) -> bool:
        """
        Whether a word has been heard (a tone that follows speech is a beep, not a fax).
        """
        return bool(self.s.phase[slot] != WAIT or self.s.words[slot] > 0)

    def process(
        self, idx: Index, f: Frames, neutral: np.ndarray, ms: np.ndarray
    ) -> tuple[AmdDecisions, np.ndarray, np.ndarray]:
        """
        @return: (decisions, silence rows, speech mask): the LV/AM decisions, the rows
            reporting SL this frame, and which rows' frames were speech.
        """
        s = self.s
        started_before = s.started[idx]
        ignore = ~started_before & (ms < s.ignore_ms[idx]) & (f.mean_abs < s.min_ambient[idx])
        go = ~ignore
        started = started_before | go
        counted = go & ~neutral
        # Floors start from the first steady frame that is not digital silence: a frame half
        # comfort noise (0xFF) and half line noise would set them far too low, and the line
        # noise would then be "speech" for seconds.
        digital = f.mean_abs < np.maximum(s.min_ambient[idx], 2.0)
        q = f.quarters
        steady = q.min(axis=1) * 10.0 >= q.max(axis=1)
        calibrated_before = s.calibrated[idx]
        first = counted & ~digital & steady & ~calibrated_before
        s.calibrated[idx] = calibrated_before | first

        # 1. speech or not
        floors = np.where(first[:, None], f.bands, s.floors[idx])
        smooth = dbm0((f.mean_square + s.previous_square[idx]) / 2)
        s.previous_square[idx] = np.where(digital, s.previous_square[idx], f.mean_square)
        history = np.where(first[:, None], smooth[:, None], s.history[idx])
        analysed = s.analysed[idx]
        slot_in_history = analysed % _HISTORY
        history[np.arange(len(ms)), slot_in_history] = np.where(
            counted & ~digital, smooth, history[np.arange(len(ms)), slot_in_history]
        )
        stationary = (analysed >= _HISTORY) & (
            history.max(axis=1) - history.min(axis=1) <= _STATIONARY_DB
        )
        snr = np.sort(np.clip(f.bands - floors, 0.0, 30.0), axis=1)[:, -_TOP_BANDS:].mean(axis=1)
        was_speech = s.speech[idx]
        needed = np.where(was_speech, 0.6 * s.snr_db[idx], s.snr_db[idx])
        adaptive = (snr >= needed) & (f.level >= s.min_level[idx]) & ~stationary
        fixed = f.mean_abs >= s.threshold[idx]
        speech = np.where(s.fixed[idx], fixed, adaptive) & counted
        silent = counted & ~speech

        rising = np.where(
            speech[:, None],
            floors + np.minimum(0.05, f.bands - floors),
            floors + 0.1 * (f.bands - floors),
        )
        updated = np.where(f.bands < floors, floors + 0.5 * (f.bands - floors), rising)
        updated = np.where(stationary[:, None], f.bands, updated)
        s.floors[idx] = np.where((counted & ~digital)[:, None], updated, floors)
        s.history[idx] = history
        s.analysed[idx] = analysed + (counted & ~digital)
        s.speech[idx] = np.where(counted, speech, was_speech)
        s.started[idx] = started

        # 2. timing
        frozen = ~counted
        speech_run = np.where(speech, s.speech_run[idx] + 1, np.where(frozen, s.speech_run[idx], 0))
        silence_run = np.where(
            silent, s.silence_run[idx] + 1, np.where(frozen, s.silence_run[idx], 0)
        )
        in_word = s.in_word[idx]
        phase = s.phase[idx]
        # Noise that turned out stationary was never a greeting.
        mistaken = (
            stationary & (phase == GREETING) & (s.analysed[idx] - s.greeting_at[idx] <= _HISTORY)
        )
        phase = np.where(mistaken, WAIT, phase)
        in_word = in_word & ~mistaken
        word_start = speech & ~in_word & (speech_run >= s.min_word[idx])
        words = np.where(mistaken, 0, s.words[idx]) + word_start
        in_word = (in_word | word_start) & ~(silence_run >= s.between_words[idx])
        waiting = phase == WAIT
        s.greeting_at[idx] = np.where(waiting & word_start, s.analysed[idx], s.greeting_at[idx])
        greeting = (phase == GREETING) | (waiting & word_start)
        voiced = np.where(
            waiting & word_start,
            speech_run,
            s.voiced[idx]
            + (greeting & ~(waiting & word_start) & np.where(s.span[idx], counted, speech)),
        )
        waited = s.waited[idx] + (waiting & counted & ~word_start)

        initial = waiting & ~word_start & (waited >= s.initial_silence[idx])
        max_words = s.max_words[idx]
        many_words = greeting & (max_words > 0) & (words >= max_words)
        # A span ends at the last speech frame: trailing silence is not greeting.
        length = voiced - np.where(s.span[idx], silence_run, 0)
        long_greeting = greeting & (length >= s.greeting[idx])
        human = greeting & (silence_run >= s.after_greeting[idx])
        cause = np.select(
            [initial, many_words, long_greeting, human], [0, 1, 2, 3], default=-1
        ).astype(np.int8)
        decided = cause >= 0
        am = np.where(initial, s.initial_am[idx], cause != 3)
        new_phase = np.where(decided, DECIDED, np.where(greeting, GREETING, phase))

        s.speech_run[idx] = speech_run
        s.silence_run[idx] = silence_run
        s.in_word[idx] = in_word
        s.words[idx] = words
        s.voiced[idx] = voiced
        s.waited[idx] = waited
        s.phase[idx] = new_phase

        # 3. silence after a decision or a beep
        sl_run = np.where(silent, s.sl_run[idx] + 1, np.where(go, 0, s.sl_run[idx]))
        after_beep = s.after_beep[idx] & ~speech
        fired = s.sl_fired[idx] & (sl_run > 0)
        sl_limit = s.sl_limit[idx]
        beep_gap = s.beep_gap[idx]
        silence = ~fired & (
            ((new_phase == DECIDED) & (sl_limit > 0) & (sl_run >= sl_limit))
            | (after_beep & (beep_gap > 0) & (sl_run >= beep_gap))
        )
        s.sl_run[idx] = sl_run
        s.sl_fired[idx] = fired | silence
        s.after_beep[idx] = after_beep

        rows = np.nonzero(decided)[0]
        decisions = AmdDecisions(
            rows=rows,
            am=am[rows],
            cause=cause[rows],
            voiced_ms=voiced[rows] * FRAME_MS,
        )
        return decisions, np.nonzero(silence)[0], speech
