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

from ..errors import ErrorCode
from ..reader import Limits
from ..server import EventHandler
from ..trace import Metrics, Trace
from .clauses import ClauseSplitter, split_clauses
from .speaker import Speaker, SynthesisFailed

if TYPE_CHECKING:
    from . import TtsConfig

_LOGGER = logging.getLogger(__name__)


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
        speaker: Speaker,
        config: TtsConfig,
        metrics: Metrics,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.speaker = speaker
        self.config = config
        self.metrics = metrics
        # Bounded: a client that does not read its audio cannot queue work.
        self._utterances: asyncio.Queue[Utterance] = asyncio.Queue(config.max_queued)
        self._speaking: asyncio.Task[None] | None = None
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
                utterance = await self._start_utterance()
                if utterance is not None:
                    utterance.trace.mark("text_complete")
                    for clause in split_clauses(text):
                        utterance.clauses.put_nowait(clause)
                    utterance.clauses.put_nowait(None)
            return True

        if SynthesizeStart.is_type(event.type):
            if self._stream is not None:
                await self.write_error(
                    "synthesize-start inside a session", ErrorCode.BAD_ORDER
                )
            elif await self._checked_voice(event.data):
                self._stream = await self._start_utterance()
                self._splitter = ClauseSplitter()
            return True

        if SynthesizeChunk.is_type(event.type):
            if self._stream is None:
                await self.write_error(
                    "synthesize-chunk without synthesize-start", ErrorCode.BAD_ORDER
                )
                return True
            text = await self._checked_text(event.data, allow_empty=True)
            if text is None:
                return True
            self._stream.chars += len(text)
            if self._stream.chars > self.config.max_text_chars:
                await self.write_error(
                    f"streamed text is over {self.config.max_text_chars} characters",
                    ErrorCode.TEXT_TOO_LONG,
                )
                return False
            for clause in self._splitter.feed(text):
                self._stream.clauses.put_nowait(clause)
            return True

        if SynthesizeStop.is_type(event.type):
            if self._stream is None:
                await self.write_error(
                    "synthesize-stop without synthesize-start", ErrorCode.BAD_ORDER
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
        if self._speaking is not None:
            self._speaking.cancel()
            await asyncio.wait({self._speaking})

    async def _start_utterance(self) -> Utterance | None:
        utterance = Utterance(trace=Trace("tts"))
        utterance.trace.mark("request")
        try:
            self._utterances.put_nowait(utterance)
        except asyncio.QueueFull:
            await self.write_error(
                f"{self.config.max_queued} requests are waiting for synthesis; "
                "read their audio first",
                ErrorCode.TOO_MANY_REQUESTS,
            )
            return None
        if self._speaking is None:
            self._speaking = asyncio.create_task(self._speak_forever(), name="tts")
        return utterance

    async def _checked_text(
        self, data: dict[str, Any], allow_empty: bool
    ) -> str | None:
        text = data.get("text")
        problem = None
        if not isinstance(text, str):
            problem, code = "text must be a string", ErrorCode.BAD_TEXT
        elif not allow_empty and not text.strip():
            problem, code = "text is empty", ErrorCode.EMPTY_TEXT
        elif len(text) > self.config.max_text_chars:
            problem = f"text is over {self.config.max_text_chars} characters"
            code = ErrorCode.TEXT_TOO_LONG
        else:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                problem, code = "text is not valid UTF-8", ErrorCode.BAD_TEXT
        if problem is not None:
            await self.write_error(problem, code)
            return None
        return text

    async def _checked_voice(self, data: dict[str, Any]) -> bool:
        voice = data.get("voice") or {}
        own = self.speaker.voice
        if not isinstance(voice, dict):
            await self.write_error("voice must be an object", ErrorCode.BAD_VOICE)
            return False
        name, language = voice.get("name"), voice.get("language")
        if name is not None and name != own.name:
            await self.write_error(
                f"unknown voice {name!r}; this server has {own.name}",
                ErrorCode.UNKNOWN_VOICE,
            )
            return False
        if language is not None and not own.language.startswith(
            str(language).replace("-", "_")
        ):
            await self.write_error(
                f"no voice for language {language!r}; this server speaks "
                f"{own.language}",
                ErrorCode.UNKNOWN_VOICE,
            )
            return False
        return True

    async def _speak_forever(self) -> None:
        while True:
            utterance = await self._utterances.get()
            await self._speak(utterance)

    async def _speak(self, utterance: Utterance) -> None:
        trace = utterance.trace
        voice = self.speaker.voice
        start = AudioStart(rate=voice.rate, width=voice.sample_width, channels=1)
        await self.write_event(start.event())
        audio_bytes = 0
        while (clause := await utterance.clauses.get()) is not None:
            trace.mark("first_clause")
            if "first_audio" not in trace.marks and self.speaker.ready(clause):
                trace.notes.append("cache hit")
            try:
                async for pcm in self.speaker.chunks(clause):
                    chunk = AudioChunk(pcm.rate, pcm.width, pcm.channels, pcm.audio)
                    await self.write_event(chunk.event())
                    trace.mark("first_audio")
                    audio_bytes += len(chunk.audio)
            except SynthesisFailed as err:  # a bad clause must not end the utterance
                _LOGGER.warning("Synthesis failed: %s", err)
                await self.write_error(
                    f"synthesis failed: {err}", ErrorCode.SYNTHESIS_FAILED
                )
        await self.write_event(AudioStop().event())
        for event in utterance.after_stop:
            await self.write_event(event)
        trace.mark("audio_stop")
        if "first_audio" in trace.marks:
            trace.stage("tts", "first_clause", "first_audio")
        trace.notes.append(f"{self.speaker.seconds(audio_bytes):.2f} s audio")
        self.metrics.record(trace)
        _LOGGER.info(trace.waterfall())
