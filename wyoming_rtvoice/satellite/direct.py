"""Direct mode: the satellite talks to the stack's pipeline, no hub between.

One persistent connection to the pipeline endpoint (`--pipeline-uri`).
After the wake word: `run-pipeline`, `audio-start` and the microphone at
real-time pace, kept streaming while the reply plays so the server's VAD
hears a barge-in; `voice-started` while a reply plays stops it at once
(that speech is the next turn). After a reply was played: `played` and
`audio-stop`, and the satellite listens for the wake word again.

With a shared secret (`--pipeline-token-file`), every `run-pipeline` carries
it as `token`, so the first event on each connection proves the satellite is
one the stack may take commands from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.intent import Intent
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.snd import Played
from wyoming.vad import VoiceStarted, VoiceStopped

from ..audio import MONO, RATE_16K, WIDTH, checked_chunk
from .room import Room

_LOGGER = logging.getLogger(__name__)


class PipelineLink:
    streams_while_playing = True

    def __init__(self, uri: str, room: Room, token: str | None = None) -> None:
        self.uri = uri
        self.room = room
        self._token = token
        self._client: AsyncClient | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        if self._client is not None:
            return
        client = AsyncClient.from_uri(self.uri)
        await client.connect()
        self._client = client
        self._reader = asyncio.create_task(self._read(client))
        _LOGGER.info("Connected to the pipeline at %s", self.uri)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._drop()

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def _write(self, event: Event) -> None:
        if self._client is None:
            raise ConnectionError("not connected to the pipeline")
        await self._client.write_event(event)

    # -- Link: what the room sends -----------------------------------------

    async def start_turn(self, wake_word: str | None) -> None:
        await self.connect()
        run = RunPipeline(
            start_stage=PipelineStage.ASR,
            end_stage=PipelineStage.TTS,
            wake_word_name=wake_word,
        )
        event = run.event()
        if self._token is not None:
            event.data["token"] = self._token
        await self._write(event)
        await self._write(AudioStart(rate=RATE_16K, width=WIDTH, channels=MONO).event())

    async def send_audio(self, audio: bytes) -> None:
        chunk = AudioChunk(rate=RATE_16K, width=WIDTH, channels=MONO, audio=audio)
        await self._write(chunk.event())

    async def stop_turn(self) -> None:
        await self._write(AudioStop().event())

    async def played(self) -> None:
        await self._write(Played().event())

    # -- what the pipeline sends -------------------------------------------

    async def _read(self, client: AsyncClient) -> None:
        try:
            while (event := await client.read_event()) is not None:
                await self._on_event(event)
        except (ConnectionError, OSError) as err:
            _LOGGER.warning("Pipeline connection failed: %s", err)
        _LOGGER.warning("The pipeline closed the connection")
        if self._client is client:
            self._client = None
            await self.room.stop_streaming()

    async def _on_event(self, event: Event) -> None:
        if VoiceStarted.is_type(event.type):
            await self.room.voice_started()
        elif VoiceStopped.is_type(event.type):
            self.room.voice_stopped()
        elif Transcript.is_type(event.type):
            _LOGGER.debug("Transcript: %s", Transcript.from_event(event).text)
        elif Intent.is_type(event.type):
            _LOGGER.info("Intent: %s", Intent.from_event(event).name)
        elif Handled.is_type(event.type):
            _LOGGER.debug("Answer: %s", Handled.from_event(event).text)
        elif AudioStart.is_type(event.type):
            await self.room.reply_start(AudioStart.from_event(event))
        elif AudioChunk.is_type(event.type):
            try:
                self.room.reply_chunk(checked_chunk(event))
            except Exception as err:  # audioop: a format change mid-reply...
                _LOGGER.warning("Reply audio not usable: %s", err)
        elif AudioStop.is_type(event.type):
            self.room.reply_stop()
        elif Error.is_type(event.type):
            _LOGGER.warning("Pipeline: %s", Error.from_event(event).text)
            await self.room.stop_streaming()


async def run_direct(room: Room, uri: str, token: str | None) -> None:
    """Listen for the pipeline until cancelled."""
    link = PipelineLink(uri, room, token)
    try:
        with contextlib.suppress(ConnectionError, OSError):
            await link.connect()  # early, so the first turn does not wait for it
        await room.listen(link)
        await asyncio.Event().wait()
    finally:
        await room.stop_listening()
        await link.close()
