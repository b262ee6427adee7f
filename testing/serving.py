"""A service served in this process on a loopback port, and a Wyoming
client streaming audio to it as Home Assistant does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from wyoming_rtvoice.reader import Limits
from wyoming_rtvoice.server import Server
from wyoming_rtvoice.service import Service

from .engines import chunks

TIMEOUT = 10


@contextlib.asynccontextmanager
async def serving(service: Service) -> AsyncIterator[int]:
    """The service on a loopback port of this process."""
    limits = Limits()
    server = Server(
        "tcp://127.0.0.1:0", lambda r, w: service.handler_factory(r, w, limits), limits
    )
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


async def stream(
    port: int, audio: bytes, read_first: bool = True, request: Transcribe | None = None
) -> tuple[list[Event], int]:
    """Send `audio` (then audio-stop) as Home Assistant 2026.5+ does, reading
    while sending; or (read_first false) as older clients, reading after
    audio-stop. The events and how many chunks were sent before the transcript.

    Each chunk is followed by a ping whose pong is awaited: the server has
    taken the chunk before the next is sent, as at real-time pace."""
    events: list[Event] = []
    sent = 0
    pong = asyncio.Event()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event((request or Transcribe()).event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())

        async def read() -> None:
            while (event := await client.read_event()) is not None:
                if event.type == "pong":
                    pong.set()
                    continue
                events.append(event)
                if event.type == "transcript-stop":
                    pong.set()  # the pong of a ping sent meanwhile is not read
                    return

        reading = asyncio.create_task(read()) if read_first else None
        for chunk in chunks(audio):
            if any(e.type == "transcript" for e in events):
                break  # the newest Home Assistant stops at the first transcript
            await client.write_event(AudioChunk(16000, 2, 1, chunk).event())
            sent += 1
            if reading is not None:
                pong.clear()
                await client.write_event(Event("ping"))
                await asyncio.wait_for(pong.wait(), TIMEOUT)
        await client.write_event(AudioStop().event())
        await asyncio.wait_for(reading or read(), TIMEOUT)
    return events, sent


def transcripts(events: list[Event]) -> list[str]:
    return [e.data["text"] for e in events if e.type == "transcript"]
