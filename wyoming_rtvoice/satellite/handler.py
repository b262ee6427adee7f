"""Home Assistant's connection: it says when to listen and sends the replies.

Home Assistant's `wyoming` integration connects, sends `run-satellite` and
pings every few seconds. After the wake word the satellite sends
`detection`, `run-pipeline` (asr to tts) and the microphone audio until Home
Assistant reports the end of speech; the reply comes back as `audio-*` and
is answered with `played`.

Whoever sends `run-satellite` gets the microphone, so it is accepted only
from the trusted peers (`--allow-peer`; by default the first address that
ever sends it, kept in the state directory: Home Assistant, which connects
at once and stays connected, and is still the one after a restart). One
connection is served at a time: the same address reconnecting takes over
(Home Assistant never finds the satellite held by its own stale
connection); any other is refused while it is live. A connection that has
not sent `run-satellite` within RUN_SATELLITE_WITHIN_S is closed (Home
Assistant sends it at once; a silent client must not hold a slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Info
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.snd import Played
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detection

from ..audio import MONO, RATE_16K, WIDTH, check_format, checked_chunk
from ..errors import ErrorCode
from ..peers import Peers
from ..reader import Limits
from ..server import EventHandler
from .room import Room

_LOGGER = logging.getLogger(__name__)

RUN_SATELLITE_WITHIN_S = 5.0


async def admit(peers: Peers, host: str) -> bool:
    """A trusted peer; with none yet (no --allow-peer, nothing kept from an
    earlier run), the first address that asks becomes the one."""
    if peers.allows(host):
        return True
    if peers.allowed or peers.remembered is not None:
        return False
    await peers.remember(host)
    _LOGGER.info(
        "Serving %s from now on, also after a restart (kept in %s); other "
        "addresses are refused (--allow-peer chooses)",
        host,
        peers.path,
    )
    return True


class SatelliteEventHandler(EventHandler):
    streams_while_playing = False

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        room: Room,
        peers: Peers,
        direct: bool,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.room = room
        self.peers = peers
        self.direct = direct
        self.deadline = time.monotonic() + RUN_SATELLITE_WITHIN_S
        self.late = f"no run-satellite within {RUN_SATELLITE_WITHIN_S:.0f} s"

    async def handle_event(self, event: Event) -> bool:
        if RunSatellite.is_type(event.type):
            if self.direct:
                await self.write_error(
                    "this satellite talks to the pipeline (--pipeline-uri)",
                    ErrorCode.DIRECT_MODE,
                )
                return True
            if not await admit(self.peers, self.peer):
                _LOGGER.warning("Refused run-satellite from %s", self.peer)
                await self.write_error(
                    f"run-satellite is accepted from {self.peers} only",
                    ErrorCode.NOT_ALLOWED,
                )
                return False
            live = self.room.link
            if isinstance(live, SatelliteEventHandler) and live.peer != self.peer:
                await self.write_error(f"serving {live.peer}", ErrorCode.BUSY)
                return False
            _LOGGER.info("Listening for %s", self.peer)
            self.deadline = None
            previous = await self.room.listen(self)
            if isinstance(previous, SatelliteEventHandler):
                _LOGGER.info("Closing the older connection from %s", previous.peer)
                previous.writer.close()
            return True

        if PauseSatellite.is_type(event.type):
            _LOGGER.info("Paused by %s", self.peer)
            await self.room.stop_listening(self)
            return True

        if self.room.link is not self:
            return True  # describe/ping only until run-satellite

        if VoiceStarted.is_type(event.type):
            await self.room.voice_started()
            return True

        if VoiceStopped.is_type(event.type):
            self.room.voice_stopped()
            await self.room.stop_streaming()
            return True

        if Transcript.is_type(event.type):
            _LOGGER.debug("Transcript: %s", event.data.get("text"))
            await self.room.stop_streaming()
            return True

        if Error.is_type(event.type):
            _LOGGER.warning("Home Assistant: %s", event.data.get("text"))
            await self.room.stop_streaming()
            return True

        if AudioStart.is_type(event.type):
            try:
                check_format(event.data)
            except ValueError as err:
                await self.write_error(
                    f"reply audio not usable: {err}", ErrorCode.BAD_AUDIO
                )
                return True
            await self.room.reply_start(AudioStart.from_event(event))
            return True

        if AudioChunk.is_type(event.type):
            try:
                self.room.reply_chunk(checked_chunk(event))
            except Exception as err:  # audioop: a format change mid-reply...
                await self.write_error(
                    f"reply audio not usable: {err}", ErrorCode.BAD_AUDIO
                )
            return True

        if AudioStop.is_type(event.type):
            self.room.reply_stop()
            return True

        return True

    async def disconnect(self) -> None:
        if self.room.link is self:
            _LOGGER.info("Home Assistant (%s) went away: not listening", self.peer)
            await self.room.stop_listening(self)

    # -- Link: what the room sends to Home Assistant -----------------------

    async def start_turn(self, wake_word: str | None) -> None:
        if wake_word is not None:
            await self.write_event(Detection(name=wake_word).event())
        run = RunPipeline(
            start_stage=PipelineStage.ASR,
            end_stage=PipelineStage.TTS,
            wake_word_name=wake_word,
        )
        await self.write_event(run.event())
        await self.write_event(
            AudioStart(rate=RATE_16K, width=WIDTH, channels=MONO).event()
        )

    async def send_audio(self, audio: bytes) -> None:
        chunk = AudioChunk(rate=RATE_16K, width=WIDTH, channels=MONO, audio=audio)
        await self.write_event(chunk.event())

    async def stop_turn(self) -> None:
        await self.write_event(AudioStop().event())

    async def played(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.write_event(Played().event())
