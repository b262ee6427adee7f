"""The speaker: clauses to audio chunks, as every reply is sent.

Used by the TTS service and the in-process pipeline alike: one chunk size,
one cache, and phrases rendered at start-up (acknowledgements, apologies),
which play even when synthesis fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Protocol

from .clauses import split_clauses

APOLOGY = "Sorry, something went wrong."


@dataclass(frozen=True)
class Pcm:
    """A piece of the voice's audio (signed little-endian samples)."""

    audio: bytes
    rate: int
    width: int  # bytes a sample
    channels: int = 1


class SynthesisFailed(Exception):
    """The voice could not speak a clause."""


class Cache(Protocol):
    def __contains__(self, text: object) -> bool: ...


class VoiceModel(Protocol):
    """What the speaker needs of a voice (`voice.Voice`, or a stand-in)."""

    name: str
    language: str
    rate: int
    sample_width: int

    @property
    def cache(self) -> Cache: ...

    def stream(self, text: str) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Speaker:
    def __init__(self, voice: VoiceModel, samples_per_chunk: int = 1024) -> None:
        self.voice = voice
        self.samples_per_chunk = samples_per_chunk
        self._phrases: dict[str, bytes] = {}
        self._preparing: dict[str, asyncio.Event] = {}  # set once it is cached

    def seconds(self, pcm_bytes: int) -> float:
        return pcm_bytes / (self.voice.rate * self.voice.sample_width)

    def ready(self, clause: str) -> bool:
        """Its audio is there already (rendered or cached)."""
        return clause in self._phrases or clause in self.voice.cache

    async def render(self, phrases: Iterable[str]) -> None:
        """Synthesise phrases now, while nothing waits, and keep them."""
        for phrase in (APOLOGY, *phrases):
            if phrase not in self._phrases:
                self._phrases[phrase] = b"".join(
                    [pcm async for pcm in self.voice.stream(phrase)]
                )

    async def prepare(self, text: str) -> None:
        """Synthesise `text` into the cache, so saying it later costs nothing."""
        for clause in split_clauses(text):
            if clause in self._preparing:
                continue
            done = self._preparing[clause] = asyncio.Event()
            try:
                async for _ in self.voice.stream(clause):
                    pass
            finally:
                del self._preparing[clause]
                done.set()

    async def chunks(self, clause: str) -> AsyncIterator[Pcm]:
        """The clause's audio in chunks of `samples_per_chunk`; SynthesisFailed
        if the voice fails (after any chunks it had made)."""
        if (preparing := self._preparing.get(clause)) is not None:
            await preparing.wait()  # being made ahead: wait, do not make it twice
        if clause in self._phrases:
            for chunk in self._chunked(self._phrases[clause]):
                yield chunk
            return
        try:
            async for pcm in self.voice.stream(clause):
                for chunk in self._chunked(pcm):
                    yield chunk
        except Exception as err:
            raise SynthesisFailed(f"{type(err).__name__}: {err}") from err

    def apology(self) -> list[Pcm]:
        """The apology rendered at start-up (empty if it never could be)."""
        return list(self._chunked(self._phrases.get(APOLOGY, b"")))

    def _chunked(self, pcm: bytes) -> Iterable[Pcm]:
        voice = self.voice
        step = self.samples_per_chunk * voice.sample_width
        for offset in range(0, len(pcm), step):
            yield Pcm(pcm[offset : offset + step], voice.rate, voice.sample_width)
