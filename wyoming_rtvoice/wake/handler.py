"""Wyoming wake handler: `detect`, then audio; `detection` as soon as a model fires."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass

from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Info
from wyoming.wake import Detect, Detection, NotDetected

from ..audio import MONO, RATE_16K, WIDTH, is_names
from ..errors import ErrorCode
from ..reader import Limits
from ..server import EventHandler
from ..trace import Metrics, Trace
from .engines import Stream, WakeModel

_LOGGER = logging.getLogger(__name__)

MAX_MODELS = 8  # listened for at once on one stream (each has its interpreter)


@dataclass(frozen=True)
class WakeSettings:
    default_models: tuple[WakeModel, ...]
    available: dict[str, WakeModel]
    threshold: float | None = None
    trigger_level: int = 1
    refractory_s: float = 2.0
    max_seconds: float = 3600.0  # one stream; a satellite then starts another


class WakeEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        settings: WakeSettings,
        executor: Executor,
        metrics: Metrics,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.settings = settings
        self._executor = executor
        self.metrics = metrics
        self._models = list(settings.default_models)
        self._stream: Stream | None = None
        self._converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
        self._detected = False
        self._trace = Trace("wake")

    async def handle_event(self, event: Event) -> bool:
        if Detect.is_type(event.type):
            names = Detect.from_event(event).names
            if not is_names(names):
                await self.write_error(
                    "names must be a list of strings", ErrorCode.BAD_NAMES
                )
                return True
            wanted = list(dict.fromkeys(names or []))
            models = [
                self.settings.available[n]
                for n in wanted
                if n in self.settings.available
            ][:MAX_MODELS]
            if wanted and not models:
                await self.write_error(
                    f"no such wake word: {', '.join(wanted[:MAX_MODELS])}",
                    ErrorCode.UNKNOWN_MODEL,
                )
                return True
            self._models = models or list(self.settings.default_models)
            self._stream = None
            return True

        if AudioStart.is_type(event.type):
            self._stream = await self._new_stream()
            self._converter = AudioChunkConverter(
                rate=RATE_16K, width=WIDTH, channels=MONO
            )
            self._detected = False
            self._trace = Trace("wake")
            self._trace.mark("audio_start")
            return True

        if AudioChunk.is_type(event.type):
            if self._stream is None:
                await self.write_error(
                    "audio-chunk before audio-start", ErrorCode.BAD_ORDER
                )
                return True
            audio = await self.audio_of(event, self._converter)
            if audio is None:
                return True
            if self._stream.samples >= self.settings.max_seconds * RATE_16K:
                await self.write_error(
                    f"stream is over {self.settings.max_seconds:.0f} s: "
                    "start a new one",
                    ErrorCode.TOO_LONG,
                )
                return False
            loop = asyncio.get_running_loop()
            detections = await loop.run_in_executor(
                self._executor, self._stream.process, audio
            )
            for name, position in detections:
                self._detected = True
                self._trace.mark("detection")
                timestamp = position * 1000 // RATE_16K
                await self.write_event(
                    Detection(name=name, timestamp=timestamp).event()
                )
                self._trace.notes.append(f"{name} at {timestamp} ms of audio")
            return True

        if AudioStop.is_type(event.type):
            if self._stream is None:
                await self.write_error(
                    "audio-stop before audio-start", ErrorCode.BAD_ORDER
                )
                return True
            if not self._detected:
                await self.write_event(NotDetected().event())
            self._trace.mark("audio_stop")
            self._trace.notes.append(f"{self._stream.samples / RATE_16K:.1f} s audio")
            self.metrics.record(self._trace)
            _LOGGER.info(self._trace.waterfall())
            self._stream = None
            return True

        return True

    async def _new_stream(self) -> Stream:
        """Models load their interpreters per stream: their state is the stream's."""
        by_engine = [m for m in self._models if m.engine == self._models[0].engine]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor,
            Stream,
            by_engine,
            self.settings.threshold,
            self.settings.trigger_level,
            self.settings.refractory_s,
        )
