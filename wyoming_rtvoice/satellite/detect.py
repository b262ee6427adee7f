"""What the satellite listens for itself: the wake word (speech onset, for
barge-in, is `turn.SpeechOnset`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncClient
from wyoming.wake import Detect, Detection

from ..audio import MONO, RATE_16K, WIDTH
from ..wake.engines import Stream, WakeModel

_LOGGER = logging.getLogger(__name__)


class Wake(Protocol):
    async def process(self, audio: bytes) -> Detection | None:
        """Feed 16 kHz 16-bit mono; the wake word once it is heard: its name,
        and where it was heard as `timestamp`, in ms of the audio fed since
        the detector was opened (None from a service that does not say)."""

    async def close(self) -> None: ...


class LocalWake:
    """In-process microWakeWord/openWakeWord (wyoming_rtvoice.wake.engines)."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    @classmethod
    async def open(cls, model: WakeModel) -> LocalWake:
        loop = asyncio.get_running_loop()
        return cls(await loop.run_in_executor(None, Stream, [model], None, 1, 2.0))

    async def process(self, audio: bytes) -> Detection | None:
        loop = asyncio.get_running_loop()
        detections = await loop.run_in_executor(None, self._stream.process, audio)
        if not detections:
            return None
        name, position = detections[0]
        return Detection(name=name, timestamp=position * 1000 // RATE_16K)

    async def close(self) -> None:
        pass


class RemoteWake:
    """A wake word service (`--wake-uri`): audio out, detections read by a task.

    The service's timestamps count from the `audio-start` sent when it is
    opened, as the audio fed here does."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
        self._name = name
        self._heard: list[Detection] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, uri: str, name: str) -> RemoteWake:
        client = AsyncClient.from_uri(uri)
        await client.connect()
        await client.write_event(Detect(names=[name]).event())
        await client.write_event(
            AudioStart(rate=RATE_16K, width=WIDTH, channels=MONO).event()
        )
        return cls(client, name)

    async def _read(self) -> None:
        while (event := await self._client.read_event()) is not None:
            if Detection.is_type(event.type):
                heard = Detection.from_event(event)
                heard.name = heard.name or self._name
                self._heard.append(heard)

    async def process(self, audio: bytes) -> Detection | None:
        if self._reader.done():
            raise ConnectionError("wake service went away")
        chunk = AudioChunk(rate=RATE_16K, width=WIDTH, channels=MONO, audio=audio)
        await self._client.write_event(chunk.event())
        return self._heard.pop(0) if self._heard else None

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._reader
        await self._client.disconnect()
