"""Spoken material for `script/bench accuracy` and `script/bench e2e`:
device commands of the test house (tests/data/house.json, 203 entities,
named the Home Assistant way: areas begin device names) with what they
mean, and other speech (questions, chatter, near-misses that name a device
but cannot be done), in a quiet room and in fan noise, at three speeds.

`clips()` (accuracy): every utterance at every speed in every noise, by two
voices (the project's Piper voice, and the same played 6% faster: another
pitch and pace). `e2e_clips()`: every command and question once, with the
voice, speed and noise rotated across them, the voices including Debian's
own synthesizers (flite, festival: other voices altogether), and commands
said with a pause inside. Made once and cached outside git
(.cache/bench/accuracy/), each with the moment its speech ends.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from testing.houses import TEST_HOUSE
from testing.speech import (
    VOICED,
    pink_noise,
    resampled,
    speak,
    speak_with_pause,
    speech_rms,
    with_noise,
)
from wyoming_rtvoice.audio import RATE_16K

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
HOUSE = TEST_HOUSE
LABELLED = REPO / "tests" / "data" / "commands.json"
CACHE = REPO / ".cache" / "bench" / "accuracy"
VERSION = 2  # bumped when the audio is made differently
SPEEDS = {"fast": 0.8, "normal": 1.0, "slow": 1.25}  # Piper length_scale
NOISES: dict[str, float | None] = {"quiet": None, "fan 10 dB": 10.0}  # SNR
VOICES = ("piper", "piper +6%")  # the accuracy material's
PLAYED_FASTER = {"piper": 1.0, "piper +6%": 1.06}
LEVEL_DBFS = -24.0
LEAD_S, TAIL_S = 0.3, 1.2
PAUSES = (0.3, 0.45, 0.6)  # inside a paused command
# Beyond tests/data/commands.json: names tiny.en mishears, the phrasings of
# the project's sentence file, and more of the house.
# fmt: off
MORE_COMMANDS: list[tuple[str, str, dict[str, Any]]] = [
    ("Turn off the living room lamp.", "HassTurnOff", {"name": "Living Room Lamp"}),
    ("Turn on the living room lamp.", "HassTurnOn", {"name": "Living Room Lamp"}),
    ("Is the back door locked?", "HassGetState", {"name": "Back Door"}),
    ("Is the patio door locked?", "HassGetState", {"name": "Patio Door"}),
    ("Dim the desk lamp.", "HassLightSet", {"name": "Desk Lamp", "brightness": 25}),
    ("Brighten the reading lamp.", "HassLightSet", {"name": "Reading Lamp", "brightness": 100}),  # noqa: E501
    ("Dim the lights in the kitchen.", "HassLightSet", {"area": "Kitchen", "brightness": 25}),  # noqa: E501
    ("Dim the dining room lights.", "HassLightSet", {"area": "Dining Room", "brightness": 25}),  # noqa: E501
    ("Brighten the living room lights.", "HassLightSet", {"area": "Living Room", "brightness": 100}),  # noqa: E501
    ("Dim the chandelier to 40%.", "HassLightSet", {"name": "Chandelier", "brightness": 40}),  # noqa: E501
    ("Make the floor lamp dimmer.", "HassLightSet", {"name": "Floor Lamp", "brightness": 25}),  # noqa: E501
    ("How many minutes are left on my timer?", "HassTimerStatus", {}),
    ("How much time is left on the timer?", "HassTimerStatus", {}),
    ("Turn off the hallway runner lights.", "HassTurnOff", {"name": "Hallway Runner Lights"}),  # noqa: E501
    ("Turn on the kitchen island lights.", "HassTurnOn", {"name": "Kitchen Island Lights"}),  # noqa: E501
    ("Turn off the master nightstand lamp.", "HassTurnOff", {"name": "Master Nightstand Lamp"}),  # noqa: E501
    ("Turn on the guest nightstand lamp.", "HassTurnOn", {"name": "Guest Nightstand Lamp"}),  # noqa: E501
    ("Turn on the stairs light.", "HassTurnOn", {"name": "Stairs Light"}),
    ("Turn off the monitor light.", "HassTurnOff", {"name": "Monitor Light"}),
    ("Switch on the garage workbench outlet.", "HassTurnOn", {"name": "Garage Workbench Outlet"}),  # noqa: E501
    ("Turn off the laundry room ceiling light.", "HassTurnOff", {"name": "Laundry Room Ceiling Light"}),  # noqa: E501
    ("Turn on the dining room lamp.", "HassTurnOn", {"name": "Dining Room Lamp"}),
    ("Turn off the den lamp.", "HassTurnOff", {"name": "Den Lamp"}),
    ("Turn on the workshop lamp.", "HassTurnOn", {"name": "Workshop Lamp"}),
    ("Turn off the porch lamp.", "HassTurnOff", {"name": "Porch Lamp"}),
    ("Turn on the bathroom ceiling light.", "HassTurnOn", {"name": "Bathroom Ceiling Light"}),  # noqa: E501
    ("Turn off the mirror light.", "HassTurnOff", {"name": "Mirror Light"}),
    ("Turn on the Christmas tree.", "HassTurnOn", {"name": "Christmas Tree"}),
    ("Turn on the pool pump.", "HassTurnOn", {"name": "Pool Pump"}),
    ("Turn off the coffee maker.", "HassTurnOff", {"name": "Coffee Maker"}),
    ("Turn on the hallway lamp.", "HassTurnOn", {"name": "Hallway Lamp"}),
    ("Turn off the attic lamp.", "HassTurnOff", {"name": "Attic Lamp"}),
    ("Turn on the nursery lamp.", "HassTurnOn", {"name": "Nursery Lamp"}),
    ("Open the living room blinds.", "HassTurnOn", {"name": "Living Room Blinds"}),
    ("Close the nursery blinds.", "HassTurnOff", {"name": "Nursery Blinds"}),
    ("Open the guest room blinds.", "HassTurnOn", {"name": "Guest Room Blinds"}),
    ("Lock the back door.", "HassTurnOn", {"name": "Back Door"}),
    ("Unlock the patio door.", "HassTurnOff", {"name": "Patio Door"}),
    ("Turn on the nursery fan.", "HassTurnOn", {"name": "Nursery Fan"}),
    ("Turn off the office fan.", "HassTurnOff", {"name": "Office Fan"}),
    ("Set the living room thermostat to 22 degrees.", "HassClimateSetTemperature", {"name": "Living Room Thermostat", "temperature": 22}),  # noqa: E501
    ("What is the temperature in the living room?", "HassClimateGetTemperature", {"area": "Living Room"}),  # noqa: E501
    ("Turn off garden spotlight seven.", "HassTurnOff", {"name": "Garden Spotlight 7"}),  # noqa: E501
    ("Turn on the lights in the master bedroom.", "HassTurnOn", {"area": "Master Bedroom", "domain": "light"}),  # noqa: E501
    ("Turn off the lights in the guest room.", "HassTurnOff", {"area": "Guest Room", "domain": "light"}),  # noqa: E501
    ("Turn off the attic lights.", "HassTurnOff", {"area": "Attic", "domain": "light"}),  # noqa: E501
    ("Set a timer for ten minutes.", "HassStartTimer", {"minutes": 10}),
    ("Cancel the timer.", "HassCancelTimer", {}),
    ("Turn off the guest room fan.", "HassTurnOff", {"name": "Guest Room Fan"}),
    ("Turn on the kitchen ceiling light.", "HassTurnOn", {"name": "Kitchen Ceiling Light"}),  # noqa: E501
    ("Turn off the workshop outlet.", "HassTurnOff", {"name": "Workshop Outlet"}),
]

# Near-misses name a device of the house, or sound like a command, and are
# none: a device action here is a false action.
OTHERS: list[str] = [
    "Lock the kitchen lights.",
    "Open the kitchen lights.",
    "Unlock the living room lamp.",
    "Turn on the front door.",
    "Close the coffee maker.",
    "Turn on the kitchen sink.",
    "Turn off the bedroom heater.",
    "Open the fridge.",
    "Turn on the oven.",
    "Lock the window.",
    "Turn on the jacuzzi.",
    "Did you turn off the living room lamp?",
    "I already turned on the porch light.",
    "Don't open the garage door.",
    "The kitchen lights look nice today.",
    "I left the front door open yesterday.",
    "My sister bought a new desk lamp.",
    "Where did I put the TV remote?",
    "The coffee maker is broken again.",
    "Who left the lights on in the attic?",
    "I think the dishwasher is leaking.",
    "Thanks, that's all for now.",
    "I'm going to bed now.",
    "What a lovely day it is.",
    "Can you hear me?",
    "My sister is coming over tonight.",
    "We should paint the living room green.",
    "Remind me to call the plumber.",
    "How do I fix a squeaky door?",
    "What is the best way to clean a carpet?",
    "Tell me something interesting.",
    "Play the song I liked yesterday.",
    "What's the weather like tomorrow?",
    "How long does it take to bake bread?",
    "The lamp in the office is too bright.",
    "Turn on the moon.",
    "Dim sum for dinner.",
    "Unlock your potential.",
]
# fmt: on


@dataclass(frozen=True)
class Utterance:
    text: str
    intent: str | None = None  # None: not a device command
    slots: dict[str, Any] | None = None


def utterances() -> list[Utterance]:
    labelled = json.loads(LABELLED.read_text(encoding="utf-8"))
    commands = [
        Utterance(c["text"], c["intent"], c["slots"]) for c in labelled["commands"]
    ]
    commands += [
        Utterance(text, intent, slots) for text, intent, slots in MORE_COMMANDS
    ]
    others = [Utterance(text) for text in labelled["questions"] + OTHERS]
    return commands + others


@dataclass(frozen=True)
class Clip:
    utterance: Utterance
    speed: str
    noise: str
    voice: str
    audio: bytes  # 16 kHz 16-bit mono
    speech_end_s: float  # the last spoken sample's place in `audio`
    pause_s: float | None = None  # a pause inside the command


@dataclass(frozen=True)
class DebianVoice:
    """A synthesizer Debian packages (script/setup installs it where it may)."""

    package: str
    # (length scale, text file, WAV file to write) -> command
    argv: Callable[[float, str, str], list[str]]

    def available(self) -> bool:
        return shutil.which(self.argv(1.0, "", "")[0]) is not None

    def speech(self, text: str, length_scale: float) -> np.ndarray:
        """`text` said, as float samples at 16 kHz."""
        with tempfile.TemporaryDirectory() as folder:
            said, wav_path = Path(folder) / "said.txt", Path(folder) / "said.wav"
            said.write_text(text, encoding="utf-8")
            argv = self.argv(length_scale, str(said), str(wav_path))
            subprocess.run(argv, capture_output=True, check=True)
            with wave.open(str(wav_path)) as wav:
                if wav.getframerate() != RATE_16K or wav.getnchannels() != 1:
                    raise ValueError(f"{argv[0]}: not 16 kHz mono")
                frames = wav.readframes(wav.getnframes())
        return np.frombuffer(frames, np.int16).astype(np.float32)


DEBIAN_VOICES = {
    "flite slt": DebianVoice(
        "flite",
        lambda scale, said, wav: [
            "flite", "-voice", "slt", "--setf", f"duration_stretch={scale}",
            "-f", said, "-o", wav,
        ],
    ),
    "festival kal": DebianVoice(
        "festival",
        lambda scale, said, wav: [
            "text2wave", "-eval", f"(Parameter.set 'Duration_Stretch {scale})",
            said, "-o", wav,
        ],
    ),
}  # fmt: skip


def _said(text: str, length_scale: float, voice: str) -> tuple[np.ndarray, float]:
    """`text` said by `voice` between silences; and where its speech ends (s)."""
    if voice in PLAYED_FASTER:
        spoken = speak(
            text,
            length_scale,
            noise_db=None,
            lead_s=LEAD_S,
            tail_s=TAIL_S,
            natural=True,
        )
        factor = PLAYED_FASTER[voice]
        samples = np.frombuffer(spoken.audio, np.int16).astype(np.float32)
        return resampled(samples, factor), spoken.speech_end_s / factor
    speech = DEBIAN_VOICES[voice].speech(text, length_scale)
    voiced = np.flatnonzero(np.abs(speech) > min(VOICED, np.abs(speech).max() / 30))
    speech = speech[: voiced[-1] + 1]
    lead, tail = np.zeros(int(LEAD_S * RATE_16K)), np.zeros(int(TAIL_S * RATE_16K))
    signal = np.concatenate([lead, speech, tail]).astype(np.float32)
    return signal, (len(lead) + len(speech)) / RATE_16K


def clip(
    utterance: Utterance,
    speed: str,
    noise: str,
    voice: str,
    pause_s: float | None = None,
) -> Clip:
    """One utterance said one way (from the cache when there); with
    `pause_s`, the project's voice pausing after the command's verb and
    article ("Turn on the ... kitchen lights")."""
    key = json.dumps([VERSION, utterance.text, speed, noise, voice, pause_s])
    path = CACHE / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".npz")
    if path.is_file():
        saved = np.load(path)
        pcm, speech_end_s = saved["pcm"], float(saved["speech_end_s"])
        return Clip(
            utterance, speed, noise, voice, pcm.tobytes(), speech_end_s, pause_s
        )
    if pause_s is None:
        signal, speech_end_s = _said(utterance.text, SPEEDS[speed], voice)
    else:
        first, second = _halves(utterance.text)
        spoken = speak_with_pause(
            first, pause_s, second, SPEEDS[speed], None, LEAD_S, TAIL_S
        )
        signal = np.frombuffer(spoken.audio, np.int16).astype(np.float32)
        speech_end_s = spoken.speech_end_s
    signal *= 32768 * 10 ** (LEVEL_DBFS / 20) / speech_rms(signal)
    seed = int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "little")
    rng = np.random.default_rng(seed)
    snr = NOISES[noise]
    if snr is None:  # a quiet room still has a little noise
        signal = signal + rng.normal(0.0, 32768 * 10 ** (-60 / 20), len(signal))
    else:
        signal = with_noise(signal, pink_noise(len(signal), rng), snr)
    pcm = np.clip(signal, -32768, 32767).astype(np.int16)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, pcm=pcm, speech_end_s=speech_end_s)
    return Clip(utterance, speed, noise, voice, pcm.tobytes(), speech_end_s, pause_s)


def _halves(text: str) -> tuple[str, str]:
    """A command cut after its first "the" ("Turn on the", "kitchen lights.")."""
    words = text.split()
    cut = next((i + 1 for i, word in enumerate(words) if word.lower() == "the"), 1)
    return " ".join(words[:cut]), " ".join(words[cut:])


def clips(every: int = 1) -> list[Clip]:
    """Every utterance at every speed in every noise, the voices alternating;
    or every `every`-th of those (only those are made)."""
    said = [
        (utterance, speed, noise, VOICES[index % len(VOICES)])
        for index, utterance in enumerate(utterances())
        for speed in SPEEDS
        for noise in NOISES
    ]
    return [clip(*how) for how in said[::every]]


def e2e_voices() -> tuple[str, ...]:
    """The voices of `e2e_clips`: the accuracy material's and Debian's that
    are installed (those missing are said)."""
    missing = [v for v, d in DEBIAN_VOICES.items() if not d.available()]
    for voice in missing:
        print(
            f"voice {voice!r} missing: not in this run "
            f"(script/setup installs it as root; apt-get install "
            f"{DEBIAN_VOICES[voice].package})"
        )
    return VOICES + tuple(v for v in DEBIAN_VOICES if v not in missing)


def evenly(items: list[T], count: int) -> list[T]:
    """`count` of `items` spread evenly over them, first one first (all of
    them when there are no more)."""
    if count >= len(items):
        return items
    return [items[index * len(items) // count] for index in range(count)]


def e2e_clips(voices: tuple[str, ...], paused: int = 24) -> list[Clip]:
    """Every device command and question the matcher answers, and the
    labelled questions for the LLM, once each, the voices, speeds and
    noises rotated across them (every combination in turn, in a shuffled
    order); then `paused` commands with a pause inside (the project's voice,
    PAUSES rotated)."""
    conditions = list(itertools.product(voices, SPEEDS, NOISES))
    random.Random(0).shuffle(conditions)
    labelled = json.loads(LABELLED.read_text(encoding="utf-8"))
    said = [u for u in utterances() if u.intent is not None]
    said += [Utterance(text) for text in labelled["questions"]]
    made = []
    for index, utterance in enumerate(said):
        voice, speed, noise = conditions[index % len(conditions)]
        made.append(clip(utterance, speed, noise, voice))
    commands = [u for u in said if u.intent is not None and " the " in u.text]
    for index, utterance in enumerate(random.Random(1).sample(commands, paused)):
        speed, noise = list(SPEEDS)[index % 3], list(NOISES)[index % 2]
        made.append(clip(utterance, speed, noise, "piper", PAUSES[index % 3]))
    return made
