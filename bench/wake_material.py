"""Spoken material for `script/bench wake`, made once and cached outside git
(.cache/bench/): wake phrases said fast, normally and slowly, in quiet, fan
noise and babble; and long other speech (the project's Piper voice reading
varied sentences, one in ten starting with "okay") in quiet,
fan noise and babble, plus noise alone. Speech is at -22 dBFS +-6 dB.
"""

from __future__ import annotations

import ast
import itertools
import json
import random
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testing.speech import (
    pink_noise,
    resampled,
    speak,
    speech_rms,
    with_noise,
)
from wyoming_rtvoice.audio import RATE_16K

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
# Bumped when the material changes, so a stale cache is not read.
WAKE_VERSION, OTHER_VERSION = 3, 3
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
LONG_SPEEDS = (0.8, 0.95, 1.1, 1.25)  # Piper length scales of other speech
BLOCK_SENTENCES = 150  # about 10 min of other speech
SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")
PLAIN_WORD = re.compile(r"^[A-Za-z][a-z]*(?:'[a-z]+)?[,;:]?$")
DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)

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

    name: str
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
        return Material(name, np.load(audio), json.loads(index.read_text()))
    return None


def _store(name: str, material: Material) -> Material:
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(CACHE / f"{name}.npy", material.audio)
    (CACHE / f"{name}.json").write_text(json.dumps(material.clips))
    return material


@dataclass(frozen=True)
class Segment:
    """A stretch of other speech or noise on disk, read when it is measured."""

    path: Path
    condition: str  # "quiet", "fan 20 dB", ..., "noise alone"
    samples: int

    @property
    def name(self) -> str:
        return self.path.stem

    def audio(self) -> np.ndarray:  # int16
        return np.load(self.path)


def plain_sentences() -> list[str]:
    """Plain English sentences from the docstrings of Python's standard
    library and its reference manual's text (pydoc_data): words of letters
    only, 6 to 22 of them, each sentence once, in a fixed order."""
    from pydoc_data.topics import topics

    texts = list(topics.values())
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if {"site-packages", "test", "tests"} & set(path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        texts += [
            doc
            for node in ast.walk(tree)
            if isinstance(node, DOCUMENTED) and (doc := ast.get_docstring(node))
        ]
    found: dict[str, None] = {}
    for text in texts:
        for sentence in SENTENCE_END.split(" ".join(text.split())):
            words = sentence[:-1].split()
            if (
                sentence.endswith((".", "?", "!"))
                and 6 <= len(words) <= 22
                and all(PLAIN_WORD.match(word) for word in words)
            ):
                found[sentence] = None
    return list(found)


def long_sentences(rng: random.Random) -> Iterator[str]:
    """Distinct varied text without end: six in ten from the documentation,
    two from the grammar above, one a question or command, one starting with
    "okay" (a fixed near-miss or "Okay, " and a documentation sentence)."""
    documentation = plain_sentences()
    rng.shuffle(documentation)
    docs = itertools.cycle(documentation)
    for index in itertools.count():
        kind = index % 10
        if kind == 0:
            yield rng.choice(QUESTIONS + COMMANDS)
        elif kind == 1:
            sentence = next(docs)
            okay = f"{rng.choice(('Okay', 'OK'))}, {sentence[0].lower()}{sentence[1:]}"
            yield rng.choice((okay, rng.choice(OKAYS)))
        elif kind in (2, 3):
            when = rng.choice(WHEN)
            sentence = f"{rng.choice(WHO)} {rng.choice(DOES)} {rng.choice(WHAT)}"
            yield f"{sentence} {when}.".replace(" .", ".")
        else:
            yield next(docs)


def other_speech(hours: float) -> list[Segment]:
    """At least `hours` of other speech and noise, made (and cached) a block at
    a time: each block is BLOCK_SENTENCES distinct sentences (about 10 min) at
    four speeds, heard quiet, in another voice in fan noise (20 or 10 dB), in
    a third in babble (15 or 5 dB), then a minute of fan noise and babble
    alone: about 32 min. Blocks are the same whatever `hours` asks."""
    segments: list[Segment] = []
    sentences = long_sentences(random.Random(7))
    block = 0
    while sum(s.samples for s in segments) < hours * 3600 * RATE_16K:
        texts = list(itertools.islice(sentences, BLOCK_SENTENCES))
        segments += _block(block, texts)
        block += 1
    return segments


def _block(block: int, texts: list[str]) -> list[Segment]:
    folder = CACHE / f"other-v{OTHER_VERSION}"
    index = folder / f"block-{block:03d}.json"
    if not index.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"  making other speech, block {block} (about 32 min)", file=sys.stderr)
        conditions = _make_block(block, texts, folder)
        index.write_text(json.dumps(conditions))
    segments = []
    for name, condition in json.loads(index.read_text()).items():
        path = folder / f"{name}.npy"
        samples = len(np.load(path, mmap_mode="r"))
        segments.append(Segment(path, condition, samples))
    return segments


def _make_block(block: int, texts: list[str], folder: Path) -> dict[str, str]:
    rng, generator = random.Random(block), np.random.default_rng(block)
    speech = np.concatenate(
        [
            _leveled(_speech(text, rng.choice(LONG_SPEEDS), 0.2, 0.4), generator)
            for text in texts
        ]
    )
    fan, babble = (20.0, 15.0) if block % 2 == 0 else (10.0, 5.0)
    level = 32768 * 10 ** (LEVEL_DBFS / 20)
    alone = 60 * RATE_16K
    parts = {
        "quiet": (_noisy(speech, None, speech, generator), "quiet"),
        "fan": (
            _noisy(resampled(speech, VOICES[1]), ("fan", fan), speech, generator),
            f"fan {fan:g} dB",
        ),
        "babble": (
            _noisy(resampled(speech, 0.95), ("babble", babble), speech, generator),
            f"babble {babble:g} dB",
        ),
        "noise": (
            level
            * np.concatenate(
                [pink_noise(alone, generator), _babble(speech, alone, generator)]
            ),
            "noise alone",
        ),
    }
    conditions = {}
    for kind, (audio, condition) in parts.items():
        name = f"block-{block:03d}-{kind}"
        np.save(folder / f"{name}.npy", np.clip(audio, -32768, 32767).astype(np.int16))
        conditions[name] = condition
    return conditions


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
    return _store(name, Material(name, audio, clips))


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
