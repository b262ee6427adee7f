"""The stack's pipeline endpoint: a satellite streams its microphone, the
in-process pipeline answers with events and reply audio (no hub between).

client -> `audio-start`, `audio-chunk`... (kept up while the reply plays,
so barge-in is heard), `audio-stop`; optionally `run-pipeline` first and
`played` after a reply.
server -> per turn `voice-started`, `voice-stopped`, `transcript`, `intent`
or `handled-*`/`not-handled`, and the reply as `audio-start`,
`audio-chunk`..., `audio-stop`. Speech over the reply stops it (its
`audio-stop` comes early) and is the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Info
from wyoming.pipeline import RunPipeline
from wyoming.snd import Played

from .audio import MONO, RATE_16K, WIDTH
from .pipeline import AudioSource, Pipeline
from .server import EventHandler, Limits

_LOGGER = logging.getLogger(__name__)


class PipelineEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        new_pipeline: Callable[[], Pipeline],
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.pipeline = new_pipeline()
        self._conversation_id = uuid.uuid4().hex
        self._source: AudioSource | None = None
        self._converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
        self._conversing: asyncio.Task[None] | None = None
        self._dropping = False

    async def handle_event(self, event: Event) -> bool:
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
                await self.write_error("audio-chunk before audio-start", "bad-order")
                return True
            audio = await self.audio_of(event, self._converter)
            if audio is not None:
                await self._put(self._source, audio)
            return True

        if AudioStop.is_type(event.type):
            if self._source is None:
                await self.write_error("audio-stop before audio-start", "bad-order")
                return True
            self._source.end()  # the turn under way finishes its reply
            self._source = None
            return True

        if Played.is_type(event.type):
            return True

        return True

    async def disconnect(self) -> None:
        await self._stop_conversing()
        await self.pipeline.close()

    async def _put(self, source: AudioSource, pcm: bytes) -> None:
        if source.put(pcm):
            self._dropping = False
        elif not self._dropping:  # the pipeline is behind: say so once
            self._dropping = True
            await self.write_error("too much audio waiting; dropped", "too-much-audio")

    async def _converse(self, source: AudioSource) -> None:
        """Turn after turn until the stream ends; only the first answers silence."""
        first = True
        try:
            while first or not source.exhausted:
                await self.pipeline.run(
                    source, self._conversation_id, self.write_event, first
                )
                first = False
        except ConnectionError:
            _LOGGER.info("Client %s went away mid-turn", self.peer)

    async def _stop_conversing(self) -> None:
        if self._source is not None:
            self._source.end()
            self._source = None
        if self._conversing is not None:
            self._conversing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._conversing
            self._conversing = None
