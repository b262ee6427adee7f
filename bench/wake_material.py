"""Spoken material for `script/bench wake`, made once and cached outside git
(.cache/bench/): wake phrases said fast, normally and slowly, in quiet, fan
noise and babble; and long other speech (the project's Piper voice reading
varied sentences, one in ten starting with "okay") in quiet,
fan noise and babble, plus noise alone. Speech is at -22 dBFS +-6 dB.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.speech import (
    pink_noise,
    resampled,
    speak,
    speech_rms,
    with_noise,
)
from wyoming_rtvoice.audio import RATE_16K

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
# Bumped when the material changes, so a stale cache is not read.
WAKE_VERSION, OTHER_VERSION = 3, 2
WAKE_TEXTS = {"okay_nabu": ["Okay Nabu.", "Okay, Nabu!", "Okay Nabu?", "OK Nabu."]}
SPEEDS = {"fast": (0.65, 0.8), "normal": (1.0,), "slow": (1.25, 1.4)}
VOICES = (1.0, 1.06)  # played this much faster: another pitch and pace
CONDITIONS: dict[str, tuple[str, float] | None] = {
    "quiet": None,
    "fan 20 dB": ("fan", 20.0),
    "fan 10 dB": ("fan", 10.0),
    "babble 20 dB": ("babble", 20.0),
    "babble 15 dB": ("babble", 15.0),
    "babble 10 dB": ("babble", 10.0),
}
LEVEL_DBFS = -22.0
TALKERS = (0.8, 0.9, 1.12, 1.25)  # babble: the voice played slower or faster

# fmt: off
WHO = ["My sister", "The neighbours", "Our teacher", "The new manager", "Grandpa",
       "Everyone at work", "The kids", "Your friend from school", "The plumber",
       "Nobody in this town", "The team", "A man on the radio", "Mom", "The doctor"]
DOES = ["is going to", "wants to", "forgot to", "promised to", "decided to",
        "never learned to", "tried to", "will probably", "refuses to",
        "is planning to", "used to"]
WHAT = ["bake a chocolate cake", "fix the old car", "paint the fence green",
        "read the whole newspaper", "call the bank about the card", "plant tomatoes",
        "clean out the garage", "book a table for eight", "learn the piano",
        "walk the dog along the river", "buy a new washing machine",
        "watch the football match", "sell the bicycle", "visit the museum",
        "repair the kitchen tap", "write a long letter", "order pizza for everyone"]
WHEN = ["tomorrow morning", "after lunch", "next weekend", "before the holidays",
        "tonight", "on Tuesday", "when the rain stops", "at half past six",
        "sometime next month", "right after the meeting", ""]
QUESTIONS = ["What is the weather going to be like tomorrow?",
             "How long should I boil an egg?", "What time is it in Tokyo?",
             "Who wrote the book about the white whale?",
             "How far away is the moon?", "Can you recommend a good film?",
             "Why is the sky blue?", "What should I cook for dinner tonight?",
             "Is it going to rain this afternoon?", "How many ounces are in a cup?",
             "What is the capital of Australia?", "When does the bakery open?"]
COMMANDS = ["Turn on the kitchen lights.", "Switch off the fan in the bedroom.",
            "Dim the lamp in the living room.", "Set a timer for ten minutes.",
            "Add milk and bread to the shopping list.", "Lock the front door.",
            "Open the garage door.", "Play some quiet music.",
            "Set the thermostat to twenty one degrees."]
OKAYS = ["Okay, now let's go.", "OK, so what about you?", "Okay, no problem at all.",
         "Okay, not bad.", "Okay, never mind.", "OK, but not now.",
         "Okay, that sounds about right.", "Okay, nobody move."]
# fmt: on


@dataclass
class Material:
    """16 kHz mono audio and, for wake phrases, each clip's place and kind."""

    audio: np.ndarray  # int16
    clips: list[dict[str, object]]  # start, end (samples), speed, condition

    @property
    def minutes(self) -> float:
        return len(self.audio) / RATE_16K / 60


def other_sentences(rng: random.Random) -> list[str]:
    """Endless-ish varied text: one in ten a question, one a command, one
    starting with "okay"."""
    sentences = []
    for index in range(100_000):
        kind = index % 10
        if kind == 0:
            sentences.append(rng.choice(QUESTIONS))
        elif kind == 1:
            sentences.append(rng.choice(COMMANDS))
        elif kind == 2:
            sentences.append(rng.choice(OKAYS))
        else:
            when = rng.choice(WHEN)
            sentence = f"{rng.choice(WHO)} {rng.choice(DOES)} {rng.choice(WHAT)}"
            sentences.append(f"{sentence} {when}.".replace(" .", "."))
    return sentences


def _leveled(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    target = 32768 * 10 ** ((LEVEL_DBFS + rng.uniform(-6, 6)) / 20)
    return samples * (target / speech_rms(samples))


def _speech(text: str, speed: float, lead_s: float, tail_s: float) -> np.ndarray:
    spoken = speak(
        text, speed, noise_db=None, lead_s=lead_s, tail_s=tail_s, natural=True
    )
    return np.frombuffer(spoken.audio, dtype=np.int16).astype(np.float32)


def _babble(pool: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Four other talkers at once (the other-speech pool at four pitches and
    paces, from random places); unit RMS."""
    babble = np.zeros(samples, dtype=np.float32)
    for factor in TALKERS:
        talker = resampled(pool, factor)
        start = int(rng.integers(0, len(talker)))
        babble += np.resize(np.roll(talker, -start), samples)
    return babble / (np.sqrt(np.mean(babble**2)) or 1.0)


def _noisy(
    speech: np.ndarray,
    condition: tuple[str, float] | None,
    pool: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    if condition is None:  # a quiet room still has a little noise
        return speech + rng.normal(0.0, 32768 * 10 ** (-60 / 20), len(speech))
    kind, snr_db = condition
    noise = pink_noise(len(speech), rng) if kind == "fan" else None
    if noise is None:
        noise = _babble(pool, len(speech), rng)
    return with_noise(speech, noise, snr_db)


def _cached(name: str) -> Material | None:
    audio, index = CACHE / f"{name}.npy", CACHE / f"{name}.json"
    if audio.is_file() and index.is_file():
        return Material(np.load(audio), json.loads(index.read_text()))
    return None


def _store(name: str, material: Material) -> Material:
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(CACHE / f"{name}.npy", material.audio)
    (CACHE / f"{name}.json").write_text(json.dumps(material.clips))
    return material


def other_speech(minutes: float) -> Material:
    """`minutes` of distinct sentences, heard three ways (quiet; another
    voice in fan noise at 10 dB; another in babble at 5 dB), then 10% more of
    noise alone (fan, babble)."""
    name = f"other-{minutes:g}min-v{OTHER_VERSION}"
    if (material := _cached(name)) is not None:
        return material
    rng, generator = random.Random(7), np.random.default_rng(7)
    pool: list[np.ndarray] = []
    total = 0
    for text in other_sentences(rng):
        speed = rng.choice((0.8, 0.95, 1.1, 1.25))
        pool.append(_leveled(_speech(text, speed, 0.2, 0.4), generator))
        total += len(pool[-1])
        if total >= minutes * 60 * RATE_16K:
            break
    speech = np.concatenate(pool)
    parts = [
        _noisy(speech, None, speech, generator),
        _noisy(resampled(speech, VOICES[1]), ("fan", 10.0), speech, generator),
        _noisy(resampled(speech, 0.95), ("babble", 5.0), speech, generator),
    ]
    level = 32768 * 10 ** (LEVEL_DBFS / 20)
    alone = int(0.05 * len(speech))
    parts += [
        level * pink_noise(alone, generator),
        level * _babble(speech, alone, generator),
    ]
    audio = np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16)
    return _store(name, Material(audio, []))


def wake_phrases(model: str, repeats: int = 2) -> Material:
    """Each text at each speed `repeats` times (Piper's own variation), in
    each voice and condition; one clip is 1 s of the room, the phrase, 1 s."""
    name = f"wake-{model}-{repeats}-v{WAKE_VERSION}"
    if (material := _cached(name)) is not None:
        return material
    generator = np.random.default_rng(11)
    pool = _noisy_pool()
    clips: list[dict[str, object]] = []
    pieces: list[np.ndarray] = []
    offset = 0
    for text in WAKE_TEXTS[model]:
        for group, speeds in SPEEDS.items():
            for speed in speeds:
                for take in range(repeats):
                    said = _take(text, speed, take)
                    for voice in VOICES:
                        voiced = _leveled(resampled(said, voice), generator)
                        for condition, noise in CONDITIONS.items():
                            clip = _noisy(voiced, noise, pool, generator)
                            pieces.append(clip)
                            clips.append(
                                {
                                    "start": offset,
                                    "end": offset + len(clip),
                                    "speed": group,
                                    "condition": condition,
                                    "voice": voice,
                                    "text": text,
                                }
                            )
                            offset += len(clip)
    audio = np.clip(np.concatenate(pieces), -32768, 32767).astype(np.int16)
    return _store(name, Material(audio, clips))


def _take(text: str, speed: float, take: int) -> np.ndarray:
    """One take of a wake phrase (Piper varies each), kept on disk."""
    path = CACHE / "takes" / f"{text}-{speed}-{take}.npy".replace(" ", "_")
    if path.is_file():
        return np.load(path)
    said = _speech(text, speed, 1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, said)
    return said


def _noisy_pool() -> np.ndarray:
    """Other speech for babble: a minute of it (from the cache when there)."""
    rng, generator = random.Random(3), np.random.default_rng(3)
    pool = [
        _leveled(_speech(text, 1.0, 0.1, 0.1), generator)
        for text in other_sentences(rng)[:25]
    ]
    return np.concatenate(pool)
