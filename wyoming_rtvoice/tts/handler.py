"""Wyoming TTS handler: one synthesis queue per connection, audio per clause."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from ..server import EventHandler, Limits
from ..trace import Metrics, Trace
from .clauses import ClauseSplitter, split_clauses

if TYPE_CHECKING:
    from .voice import Voice

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TtsSettings:
    samples_per_chunk: int = 1024
    max_text_chars: int = 10_000


@dataclass
class Utterance:
    """One audio-start..audio-stop: clauses arrive in `clauses`, None ends it."""

    trace: Trace
    clauses: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    after_stop: list[Event] = field(default_factory=list)
    chars: int = 0


class TtsEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        voice: Voice,
        settings: TtsSettings,
        metrics: Metrics,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.voice = voice
        self.settings = settings
        self.metrics = metrics
        self._utterances: asyncio.Queue[Utterance] = asyncio.Queue()
        self._speaker: asyncio.Task[None] | None = None
        self._stream: Utterance | None = None
        self._splitter = ClauseSplitter()

    async def handle_event(self, event: Event) -> bool:
        if Synthesize.is_type(event.type):
            if self._stream is not None:
                # Home Assistant repeats the whole text for servers that do not
                # stream; inside a streaming session it has been spoken already.
                return True
            text = await self._checked_text(event.data, allow_empty=False)
            if text is not None and await self._checked_voice(event.data):
                utterance = self._start_utterance()
                utterance.trace.mark("text_complete")
                for clause in split_clauses(text):
                    utterance.clauses.put_nowait(clause)
                utterance.clauses.put_nowait(None)
            return True

        if SynthesizeStart.is_type(event.type):
            if self._stream is not None:
                await self.write_error("synthesize-start inside a session", "bad-order")
            elif await self._checked_voice(event.data):
                self._stream = self._start_utterance()
                self._splitter = ClauseSplitter()
            return True

        if SynthesizeChunk.is_type(event.type):
            if self._stream is None:
                await self.write_error(
                    "synthesize-chunk without synthesize-start", "bad-order"
                )
                return True
            text = await self._checked_text(event.data, allow_empty=True)
            if text is None:
                return True
            self._stream.chars += len(text)
            if self._stream.chars > self.settings.max_text_chars:
                await self.write_error(
                    f"streamed text is over {self.settings.max_text_chars} characters",
                    "text-too-long",
                )
                return False
            for clause in self._splitter.feed(text):
                self._stream.clauses.put_nowait(clause)
            return True

        if SynthesizeStop.is_type(event.type):
            if self._stream is None:
                await self.write_error(
                    "synthesize-stop without synthesize-start", "bad-order"
                )
                return True
            self._stream.trace.mark("text_complete")
            for clause in self._splitter.flush():
                self._stream.clauses.put_nowait(clause)
            self._stream.after_stop.append(SynthesizeStopped().event())
            self._stream.clauses.put_nowait(None)
            self._stream = None
            return True

        return True

    async def disconnect(self) -> None:
        if self._speaker is not None:
            self._speaker.cancel()
            await asyncio.wait({self._speaker})

    def _start_utterance(self) -> Utterance:
        utterance = Utterance(trace=Trace("tts"))
        utterance.trace.mark("request")
        self._utterances.put_nowait(utterance)
        if self._speaker is None:
            self._speaker = asyncio.create_task(self._speak_forever(), name="tts speak")
        return utterance

    async def _checked_text(
        self, data: dict[str, Any], allow_empty: bool
    ) -> str | None:
        text = data.get("text")
        problem = None
        if not isinstance(text, str):
            problem, code = "text must be a string", "bad-text"
        elif not allow_empty and not text.strip():
            problem, code = "text is empty", "empty-text"
        elif len(text) > self.settings.max_text_chars:
            problem = f"text is over {self.settings.max_text_chars} characters"
            code = "text-too-long"
        else:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                problem, code = "text is not valid UTF-8", "bad-text"
        if problem is not None:
            await self.write_error(problem, code)
            return None
        return text

    async def _checked_voice(self, data: dict[str, Any]) -> bool:
        voice = data.get("voice") or {}
        if not isinstance(voice, dict):
            await self.write_error("voice must be an object", "bad-voice")
            return False
        name, language = voice.get("name"), voice.get("language")
        if name is not None and name != self.voice.name:
            await self.write_error(
                f"unknown voice {name!r}; this server has {self.voice.name}",
                "unknown-voice",
            )
            return False
        if language is not None and not self.voice.language.startswith(
            str(language).replace("-", "_")
        ):
            await self.write_error(
                f"no voice for language {language!r}; this server speaks "
                f"{self.voice.language}",
                "unknown-voice",
            )
            return False
        return True

    async def _speak_forever(self) -> None:
        while True:
            utterance = await self._utterances.get()
            await self._speak(utterance)

    async def _send_audio(self, audio: bytes, audio_format: dict[str, int]) -> None:
        step = self.settings.samples_per_chunk * self.voice.sample_width
        for offset in range(0, len(audio), step):
            chunk = AudioChunk(audio=audio[offset : offset + step], **audio_format)
            await self.write_event(chunk.event())

    async def _speak(self, utterance: Utterance) -> None:
        trace = utterance.trace
        audio_format = {
            "rate": self.voice.rate,
            "width": self.voice.sample_width,
            "channels": self.voice.channels,
        }
        await self.write_event(AudioStart(**audio_format).event())
        seconds = 0.0
        while (clause := await utterance.clauses.get()) is not None:
            trace.mark("first_clause")
            if clause in self.voice.cache and "first_audio" not in trace.marks:
                trace.notes.append("cache hit")
            try:
                async for audio in self.voice.stream(clause):
                    await self._send_audio(audio, audio_format)
                    trace.mark("first_audio")
                    seconds += len(audio) / (self.voice.rate * self.voice.sample_width)
            except Exception as err:  # a bad clause must not end the utterance
                _LOGGER.exception("Synthesis failed for %r", clause)
                await self.write_error(f"synthesis failed: {err}", "synthesis-failed")
        await self.write_event(AudioStop().event())
        for event in utterance.after_stop:
            await self.write_event(event)
        trace.mark("audio_stop")
        if "first_audio" in trace.marks:
            trace.stage("tts", "first_clause", "first_audio")
        trace.notes.append(f"{seconds:.2f} s audio")
        self.metrics.record(trace)
        _LOGGER.info(trace.waterfall())
