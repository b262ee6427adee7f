"""Spoken material for `script/bench accuracy`: device commands of the test
house (tests/data/house.json, 203 entities) with what they mean, and other
speech (questions, chatter, near-misses that name a device but cannot be
done), each said by the project's Piper voice at three speeds, in a quiet
room and in fan noise, by two voices (the second is the first played 6%
faster: another pitch and pace). Made once and cached outside git
(.cache/bench/accuracy/).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.speech import pink_noise, resampled, speak, speech_rms, with_noise
from wyoming_rtvoice.audio import RATE_16K

REPO = Path(__file__).resolve().parents[1]
HOUSE = REPO / "tests" / "data" / "house.json"
LABELLED = REPO / "tests" / "data" / "commands.json"
CACHE = REPO / ".cache" / "bench" / "accuracy"
VERSION = 1  # bumped when the audio is made differently
SPEEDS = {"fast": 0.8, "normal": 1.0, "slow": 1.25}  # Piper length_scale
NOISES: dict[str, float | None] = {"quiet": None, "fan 10 dB": 10.0}  # SNR
VOICES = (1.0, 1.06)  # played this much faster
LEVEL_DBFS = -24.0

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
    voice: float
    audio: bytes  # 16 kHz 16-bit mono


def clip(utterance: Utterance, speed: str, noise: str, voice: float) -> Clip:
    """One utterance said one way (from the cache when there)."""
    key = json.dumps([VERSION, utterance.text, speed, noise, voice])
    path = CACHE / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".npy")
    if path.is_file():
        return Clip(utterance, speed, noise, voice, np.load(path).tobytes())
    spoken = speak(
        utterance.text,
        SPEEDS[speed],
        noise_db=None,
        lead_s=0.3,
        tail_s=1.2,
        natural=True,
    )
    signal = resampled(np.frombuffer(spoken.audio, np.int16).astype(np.float32), voice)
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
    np.save(path, pcm)
    return Clip(utterance, speed, noise, voice, pcm.tobytes())


def clips() -> list[Clip]:
    """Every utterance at every speed in every noise; the voices alternate."""
    made = []
    for index, utterance in enumerate(utterances()):
        voice = VOICES[index % len(VOICES)]
        for speed in SPEEDS:
            for noise in NOISES:
                made.append(clip(utterance, speed, noise, voice))
    _ = RATE_16K
    return made
