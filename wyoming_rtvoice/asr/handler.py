"""Wyoming ASR handler: partial transcripts while the user speaks; the final
transcript as soon as the turn is over (or at `audio-stop` when the client
ends the turn itself).

Events out, for every request: `transcript-start`, `transcript-chunk`...,
`transcript`, `transcript-stop`. Audio that arrives after the transcript is
read and dropped until `audio-stop`, so a client that reads only after
`audio-stop` still gets exactly one transcript, already finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace

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
from ..errors import ErrorCode
from ..house.store import HouseStore
from ..reader import Limits
from ..server import EventHandler
from ..trace import Metrics, Trace
from ..turn import Frames, SpeechFrames, TurnRule
from .config import AsrConfig
from .prompt import house_prompt
from .session import AsrSession, AsrSettings, Decoder, Prompt

_LOGGER = logging.getLogger(__name__)

PIECE_BYTES = RATE_16K * WIDTH // 2  # 0.5 s: what the session takes at once

# Home Assistant's VAD sensitivity: how much sooner or later a turn ends.
SENSITIVITY = {"aggressive": 0.5, "default": 1.0, "relaxed": 2.0}


def prompt_for(request: Transcribe, house: HouseStore) -> Prompt:
    """Names the decoder is biased towards: the house's, and the request's."""
    asked = (request.transcript_names or []) + (request.transcript_terms or [])
    return house_prompt(house, asked)


def rule_for(rule: TurnRule, request: Transcribe) -> TurnRule:
    # A known value arrives as wyoming's VadSensitivity, whose str() is its name.
    sensitivity = getattr(request.vad_sensitivity, "value", request.vad_sensitivity)
    scale = SENSITIVITY.get(str(sensitivity or "default"), 1.0)
    return replace(rule, silence_s=rule.silence_s * scale, pause_s=rule.pause_s * scale)


class AsrEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        decoder: Decoder,
        house: HouseStore,
        settings: AsrSettings,
        rule: TurnRule,
        config: AsrConfig,
        metrics: Metrics,
        new_frames: Callable[[], Frames] | None = None,
        ahead: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.decoder = decoder
        self.house = house
        self.settings = settings
        self.rule = rule
        self.config = config
        self.metrics = metrics
        self._new_frames = new_frames or (lambda: SpeechFrames(rule.vad_threshold))
        self._ahead = ahead  # told each final transcript as it is sent
        self._frames: Frames | None = None
        self._request = Transcribe()
        self._session: AsrSession | None = None
        self._converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
        self._sent_words: list[str] = []
        self._turn_over = False  # the transcript is on its way: drop more audio
        # The final decode runs beside the reader, which notices a client that
        # goes away meanwhile (and answers ping).
        self._finishing: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[bool] | None = None
        self._looking = asyncio.Lock()

    async def handle_event(self, event: Event) -> bool:
        if Transcribe.is_type(event.type):
            request = Transcribe.from_event(event)
            if not (
                is_names(request.transcript_names)
                and is_names(request.transcript_terms)
            ):
                await self.write_error(
                    "transcript_names and transcript_terms must be lists of strings",
                    ErrorCode.BAD_NAMES,
                )
                return True
            self._request = request
            return True

        if AudioStart.is_type(event.type):
            await self._start()
            return True

        if AudioChunk.is_type(event.type):
            if self._session is None:
                if not self._turn_over:
                    await self.write_error(
                        "audio-chunk before audio-start", ErrorCode.BAD_ORDER
                    )
                return True
            audio = await self.audio_of(event, self._converter)
            if audio is None:
                return True
            # A big chunk goes in by pieces, so the turn ends where the rule
            # says (the longest speech, not the whole chunk, is decoded).
            for start in range(0, len(audio), PIECE_BYTES):
                if not await self._add(audio[start : start + PIECE_BYTES]):
                    break
            return True

        if AudioStop.is_type(event.type):
            if self._session is not None:
                self._end_turn()
            elif not self._turn_over:
                await self.write_error(
                    "audio-stop before audio-start", ErrorCode.BAD_ORDER
                )
            self._turn_over = False
            return True

        return True

    async def _add(self, audio: bytes) -> bool:
        """Feed the session; False once the turn is over."""
        session = self._session
        if session is None:  # ended as its final decode came in
            return False
        new_words = await session.add(audio)
        if new_words:
            await self._send_words(new_words)
        return not await self._ended(session)

    async def _ended(self, session: AsrSession) -> bool:
        """Whether the turn is over, ending it here if it is."""
        if self.config.external_vad:
            return False
        async with self._looking:  # one look at a time: the next one is cached
            if session is not self._session:
                return True
            why = await session.turn_over()
        if why is None:
            return False
        session.trace.notes.append(f"turn over: {why}")
        self._end_turn()
        return True

    def _decoded(self) -> None:
        """A final decode came in: the turn may be over before more audio."""
        if self._checking is None or self._checking.done():
            session = self._session
            if session is not None:
                self._checking = asyncio.create_task(self._ended(session))

    async def disconnect(self) -> None:
        if self._session is not None:
            self._session.cancel()
        if self._checking is not None:
            self._checking.cancel()
        if self._finishing is not None:
            self._finishing.cancel()
            await asyncio.wait({self._finishing})

    async def _start(self) -> None:
        if self._session is not None:
            self._session.cancel()
        if self._finishing is not None:  # the last transcript goes first
            await asyncio.wait({self._finishing})
        if self._frames is None:  # Silero loads off the event loop
            self._frames = await asyncio.to_thread(self._new_frames)
        trace = Trace("asr")
        trace.mark("audio_start")
        self._session = AsrSession(
            self.decoder,
            self._frames,
            self.settings,
            rule_for(self.rule, self._request),
            prompt_for(self._request, self.house),
            trace,
            self.house.ending,
            self.house.closest,
            self._decoded,
        )
        self._converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
        self._sent_words = []
        self._turn_over = False

    def _end_turn(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        session.trace.mark("audio_stop")
        self._turn_over = True
        self._finishing = asyncio.create_task(self._finish(session))

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
                    ErrorCode.TRANSCRIPTION_FAILED,
                )
            return
        if text and self._ahead is not None:
            self._ahead(text)
        try:
            await self._send_transcript(text, session)
        except ConnectionError:
            _LOGGER.info("Client %s went away before its transcript", self.peer)

    async def _send_words(self, new_words: list[str]) -> None:
        if not self._sent_words:
            await self.write_event(
                TranscriptStart(language=self.decoder.language).event()
            )
        text = (" " if self._sent_words else "") + " ".join(new_words)
        await self.write_event(TranscriptChunk(text=text).event())
        self._sent_words += new_words

    async def _send_transcript(self, text: str, session: AsrSession) -> None:
        trace = session.trace
        trace.mark("transcript")
        language = self.decoder.language
        if not self._sent_words:
            await self.write_event(TranscriptStart(language=language).event())
        sent = " ".join(self._sent_words)
        rest = text[len(sent) :] if text.startswith(sent) else ""
        if rest.strip():
            await self.write_event(TranscriptChunk(text=rest).event())
        await self.write_event(Transcript(text=text, language=language).event())
        await self.write_event(TranscriptStop().event())
        trace.stage("asr", "audio_stop", "transcript")
        trace.notes.append(f"{session.seconds:.2f} s audio")
        self.metrics.record(trace)
        _LOGGER.info(trace.waterfall())
