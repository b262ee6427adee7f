"""The stack's pipeline endpoint: a satellite streams its microphone, the
in-process pipeline answers with events and reply audio (no hub between).

client -> `run-pipeline` (carrying `token` when the endpoint has one; it
must come first then), `audio-start`, `audio-chunk`... (kept up while the
reply plays, so barge-in is heard), `audio-stop`; `played` after a reply.
server -> per turn `voice-started`, `voice-stopped`, `transcript`, `intent`
or `handled-*`/`not-handled`, and the reply as `audio-start`,
`audio-chunk`..., `audio-stop`. Speech over the reply stops it (its
`audio-stop` comes early) and is the next turn.

The pipeline knows no protocol: this handler alone translates its turn
events (`turn_events.py`) to Wyoming (`WyomingTurn`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import uuid
from collections.abc import Callable

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import HandledStop
from wyoming.info import Info
from wyoming.pipeline import RunPipeline
from wyoming.vad import VoiceStarted, VoiceStopped

from .audio import MONO, RATE_16K, WIDTH
from .errors import ErrorCode
from .handle.events import intent_events, reply_events
from .peers import Guesses
from .pipeline import AudioSource, Pipeline
from .reader import Limits
from .server import EventHandler
from .turn_events import (
    AnswerStarted,
    Commands,
    Pcm,
    ReplyStopped,
    SpeechStarted,
    SpeechStopped,
    Transcribed,
    TurnEvent,
)

_LOGGER = logging.getLogger(__name__)


class WyomingTurn:
    """Turn events as the endpoint sends them: an `audio-start` before the
    reply's first audio, the `handled-stop` that a streamed answer's
    `handled-start` makes due."""

    def __init__(self) -> None:
        self._answering = False  # a handled-start was sent, its handled-stop not
        self._speaking = False  # an audio-start was sent, its audio-stop not

    def events(self, event: TurnEvent) -> list[Event]:
        if isinstance(event, SpeechStarted):
            return [VoiceStarted().event()]
        if isinstance(event, SpeechStopped):
            return [VoiceStopped().event()]
        if isinstance(event, Transcribed):
            self._answering = self._speaking = False  # the turn's reply comes
            return [Transcript(text=event.text).event()]
        if isinstance(event, Pcm):
            chunk = AudioChunk(event.rate, event.width, event.channels, event.audio)
            if self._speaking:
                return [chunk.event()]
            self._speaking = True
            start = AudioStart(event.rate, event.width, event.channels)
            return [start.event(), chunk.event()]
        if isinstance(event, ReplyStopped):
            self._speaking = False
            return [AudioStop().event()]
        if isinstance(event, Commands):
            stop = [HandledStop().event()] if self._answering else []
            return stop + intent_events(event.matches, event.answers, None)
        events = reply_events(event, self._answering)
        self._answering = self._answering or isinstance(event, AnswerStarted)
        return events


class PipelineEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        new_pipeline: Callable[[], Pipeline],
        token: str | None,
        guesses: Guesses | None = None,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.pipeline = new_pipeline()
        self._token = token
        self._guesses = guesses or Guesses()
        self._conversation = f"{self.peer}/{uuid.uuid4().hex}"
        self._source: AudioSource | None = None
        self._converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
        self._conversing: asyncio.Task[None] | None = None
        self._dropping = False
        self._turn = WyomingTurn()

    async def handle_event(self, event: Event) -> bool:
        if self._token is not None:
            return await self._authenticate(event)

        if RunPipeline.is_type(event.type):
            return True  # the stack was started with its stages and models

        if AudioStart.is_type(event.type):
            await self._stop_conversing()  # a new stream replaces the old one
            self._source = AudioSource()
            self._converter = AudioChunkConverter(
                rate=RATE_16K, width=WIDTH, channels=MONO
            )
            self._conversing = asyncio.create_task(self._converse(self._source))
            return True

        if AudioChunk.is_type(event.type):
            if self._source is None:
                await self.write_error(
                    "audio-chunk before audio-start", ErrorCode.BAD_ORDER
                )
                return True
            audio = await self.audio_of(event, self._converter)
            if audio is not None:
                await self._put(self._source, audio)
            return True

        if AudioStop.is_type(event.type):
            if self._source is None:
                await self.write_error(
                    "audio-stop before audio-start", ErrorCode.BAD_ORDER
                )
                return True
            self._source.end()  # the turn under way finishes its reply
            self._source = None
            return True

        return True

    async def _authenticate(self, event: Event) -> bool:
        """The first request must be `run-pipeline` with the endpoint's token;
        an address that sent a wrong one waits before its next is compared."""
        wait_s = self._guesses.wait_s(self.peer)
        if wait_s > 0:
            await self.write_error(
                f"wrong token: try again in {wait_s:.0f} s", ErrorCode.UNAUTHORIZED
            )
            return False
        offered = event.data.get("token") if RunPipeline.is_type(event.type) else None
        if isinstance(offered, str) and hmac.compare_digest(
            offered.encode("utf-8", "replace"), str(self._token).encode()
        ):
            self._token = None
            self._guesses.right(self.peer)
            return True
        _LOGGER.warning("Client %s refused: no valid pipeline token", self.peer)
        if isinstance(offered, str):
            self._guesses.wrong(self.peer, offered)
        await self.write_error(
            "this endpoint needs run-pipeline with its token first",
            ErrorCode.UNAUTHORIZED,
        )
        return False

    async def disconnect(self) -> None:
        await self._stop_conversing()
        await self.pipeline.close()

    async def _put(self, source: AudioSource, pcm: bytes) -> None:
        if source.put(pcm):
            self._dropping = False
        elif not self._dropping:  # the pipeline is behind: say so once
            self._dropping = True
            await self.write_error(
                "too much audio waiting; dropped", ErrorCode.TOO_MUCH_AUDIO
            )

    async def _converse(self, source: AudioSource) -> None:
        """Turn after turn until the stream ends; only the first answers silence."""
        first = True
        try:
            while first or not source.exhausted:
                await self.pipeline.run(source, self._conversation, self._send, first)
                first = False
        except ConnectionError:
            _LOGGER.info("Client %s went away mid-turn", self.peer)
        except Exception:  # one failed turn ends this stream, never the server
            _LOGGER.exception("Turn failed for %s", self.peer)
            with contextlib.suppress(ConnectionError):
                await self.write_error("the turn failed", ErrorCode.INTERNAL)

    async def _send(self, event: TurnEvent) -> None:
        for sent in self._turn.events(event):
            await self.write_event(sent)

    async def _stop_conversing(self) -> None:
        if self._source is not None:
            self._source.end()
            self._source = None
        if self._conversing is not None:
            self._conversing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._conversing
            self._conversing = None
