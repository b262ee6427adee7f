"""Stand-ins for the models, so the turn's behaviour is tested in milliseconds.

Fake speech is loud noise, silence is zeros. `FakeFrames` calls a frame
speech when it is loud; `FakeDecoder` "hears" one word of its sentence per
`WORD_S` of loud audio, so a transcript depends only on how much was said.
`FakeVoice` speaks 1 ms of silence per character (or fails on request).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from bench.fake_llm import FakeLlm
from wyoming_rtvoice.converse import DEMO_HOUSE
from wyoming_rtvoice.house.matcher import Matcher
from wyoming_rtvoice.house.model import House
from wyoming_rtvoice.house.vocabulary import frames_for, word_edits, words_of
from wyoming_rtvoice.pipeline import AudioSource, Pipeline, Turn
from wyoming_rtvoice.turn import FRAME_BYTES
from wyoming_rtvoice.turn_events import TurnEvent

RATE = 16000
WORD_S = 0.25
# Named the way Home Assistant names a house: areas begin device names.
NAMED_HOUSE = {
    "areas": ["Office", "Nursery", "Kitchen", "Garage", "Hallway"],
    "floors": [],
    "entities": [
        {"name": "Office Lamp", "domain": "light", "area": "Office"},
        {"name": "Office Lamp Shelf", "domain": "light", "area": "Office"},
        {"name": "Office Blinds", "domain": "cover", "area": "Office"},
        {"name": "Nursery Fan", "domain": "fan", "area": "Nursery"},
        {"name": "Kitchen Speaker", "domain": "media_player", "area": "Kitchen"},
        {"name": "Garage Thermostat", "domain": "climate", "area": "Garage"},
        {"name": "Garage Door", "domain": "cover", "area": "Garage"},
        {"name": "Front Door", "domain": "lock", "area": "Hallway"},
    ],
}
_RNG = np.random.default_rng(0)


def speech(words: int) -> bytes:
    """Loud audio for `words` words (16 kHz, 16-bit mono)."""
    samples = int(words * WORD_S * RATE)
    return (_RNG.normal(0, 8000, samples).clip(-32000, 32000)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * RATE))


def chunks(audio: bytes, size: int = 640) -> Iterator[bytes]:
    for offset in range(0, len(audio), size):
        yield audio[offset : offset + size]


async def one_turn(
    pipeline: Pipeline, audio: bytes, conversation: str = "pipeline"
) -> tuple[list[TurnEvent], Turn]:
    """One turn of `audio`, all of it queued at once (the pipeline's rules go
    by audio time, not wall time): its events, and the turn."""
    source = AudioSource()
    for chunk in chunks(audio):
        source.put(chunk)
    source.end()
    events: list[TurnEvent] = []

    async def sink(event: TurnEvent) -> None:
        events.append(event)

    turn = await asyncio.wait_for(pipeline.run(source, conversation, sink), 10)
    return events, turn


class FakeFrames:
    """A frame is speech when it is loud."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def reset(self) -> None:
        self._pending.clear()

    def frames(self, audio: bytes) -> Iterator[bool]:
        self._pending += audio
        while len(self._pending) >= FRAME_BYTES:
            frame = np.frombuffer(bytes(self._pending[:FRAME_BYTES]), "<i2")
            del self._pending[:FRAME_BYTES]
            yield float(np.abs(frame.astype(np.float32)).mean()) > 1000


class FakeDecoder:
    """Hears the first N words of `sentence`, N from the loud audio's length.

    What was really `said` (by default the sentence) is what its scores
    favour: a text scores -2 per word it differs from it by."""

    language = "en"

    def __init__(
        self, sentence: str = "", delay_s: float = 0.0, said: str | None = None
    ) -> None:
        self.sentence = sentence
        self._said = said
        self.delay_s = delay_s
        self.prompts: list[str | None] = []
        self.scored: list[list[str]] = []
        self.decodes = 0
        self.longest_s = 0.0  # the most audio one decode was given
        self.cancelled: list[float] = []  # seconds of audio of each decode cancelled
        self.running = 0
        self.most_running = 0

    @property
    def busy(self) -> bool:
        return self.running > 0

    @property
    def said(self) -> str:
        return self.sentence if self._said is None else self._said

    async def decode(self, audio: np.ndarray, prompt: str | None) -> str:
        self.prompts.append(prompt)
        self.decodes += 1
        self.longest_s = max(self.longest_s, len(audio) / RATE)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled.append(len(audio) / RATE)
            raise
        finally:
            self.running -= 1
        loud = float(np.count_nonzero(np.abs(audio) > 0.01)) / RATE
        words = self.sentence.split()
        return " ".join(words[: round(loud / WORD_S + 0.49)])

    async def score(self, audio: np.ndarray, texts: list[str]) -> list[float]:
        self.scored.append(texts)
        said = tuple(words_of(self.said))
        return [-2.0 * word_edits(tuple(words_of(text)), said) for text in texts]


class FakeCache(set[str]):
    pass


class FakeVoice:
    """1 ms of silence per character at 16 kHz; `fail` makes synthesis raise."""

    name = "fake"
    language = "en_US"
    rate = 16000
    sample_width = 2

    def __init__(self) -> None:
        self.fail = False
        self.spoken: list[str] = []
        self._cache = FakeCache()

    @property
    def cache(self) -> FakeCache:
        return self._cache

    async def stream(self, text: str) -> AsyncIterator[bytes]:
        if self.fail and text not in self._cache:
            raise RuntimeError("the voice broke")
        self.spoken.append(text)
        self._cache.add(text)
        await asyncio.sleep(0)
        yield bytes(2 * 16 * len(text))

    def close(self) -> None:
        pass


@pytest.fixture(scope="session")
def demo_matcher() -> Matcher:
    """The demo house's matcher, compiled once (a house store copies it),
    and the command sentences, expanded once."""
    frames_for("en")
    return Matcher("en", House.from_file(DEMO_HOUSE))


@pytest.fixture(scope="session")
def named_matcher(demo_matcher: Matcher) -> Matcher:
    """A matcher for NAMED_HOUSE (sharing the demo matcher's sentences)."""
    matcher = copy.copy(demo_matcher)
    matcher.update(House.from_json(NAMED_HOUSE))
    return matcher


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    """The fake Messages API, answering at once (tests set what they need)."""
    fake = FakeLlm(first_token_s=0.0, token_s=0.0)
    fake.start_in_thread()
    yield fake
    fake.stop_thread()
