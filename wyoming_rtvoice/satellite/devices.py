"""Microphone and speaker: an external command (arecord/aplay) or a WAV file.

The microphone yields 16 kHz 16-bit mono chunks of 32 ms (one Silero VAD
frame). A reply is played through a `Playback`: its own task and queue, so
the caller never waits on the speaker, and `stop()` silences it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
import wave
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import BinaryIO, Protocol

from ..audio import MONO, RATE_16K, WIDTH, convert, read_wav

_LOGGER = logging.getLogger(__name__)

MIC_CHUNK_BYTES = 1024  # 512 samples, 32 ms
MIC_BYTES_PER_S = RATE_16K * WIDTH * MONO
PLAY_BLOCK_S = 0.04  # playback is cut at this granularity
RESTART_S = 1.0


async def command_mic(command: str) -> AsyncGenerator[bytes, None]:
    """Raw 16 kHz 16-bit mono from a command's stdout; restarted if it ends."""
    while True:
        process = await asyncio.create_subprocess_exec(
            *shlex.split(command), stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        try:
            while True:
                yield await process.stdout.readexactly(MIC_CHUNK_BYTES)
        except asyncio.IncompleteReadError:
            _LOGGER.warning("Microphone command ended (%s); restarting", command)
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
        await asyncio.sleep(RESTART_S)


async def wav_mic(path: str) -> AsyncGenerator[bytes, None]:
    """A WAV file at real-time pace, then silence: a microphone for tests."""
    pcm, rate, width, channels = await asyncio.to_thread(read_wav, path)
    audio = convert(pcm, rate, width, channels)
    started = time.monotonic()
    offset = 0
    while True:
        chunk = audio[offset : offset + MIC_CHUNK_BYTES]
        offset += MIC_CHUNK_BYTES
        # A chunk is there once it has been "recorded".
        await asyncio.sleep(started + offset / (RATE_16K * WIDTH) - time.monotonic())
        yield chunk.ljust(MIC_CHUNK_BYTES, b"\0")


class Sink(Protocol):
    """Where one reply's audio goes."""

    async def play(self, pcm: bytes) -> None:
        """Returns when the device has taken the audio."""

    async def finish(self) -> None:
        """Returns when the last sample has been heard."""

    async def abort(self) -> None:
        """Silence now; queued audio is dropped."""


class CommandSink:
    """One process per reply (e.g. aplay): its exit is the end of playback,
    and killing it drops whatever the device still held."""

    def __init__(self, argv: list[str]) -> None:
        self._argv = argv
        self._process: asyncio.subprocess.Process | None = None

    async def play(self, pcm: bytes) -> None:
        if self._process is None:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv, stdin=asyncio.subprocess.PIPE
            )
        assert self._process.stdin is not None
        self._process.stdin.write(pcm)
        await self._process.stdin.drain()

    async def finish(self) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            await self._process.wait()

    async def abort(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


class WavSink:
    """Plays in real time into a WAV file (for tests), or into nothing."""

    def __init__(self, wav: wave.Wave_write | None, bytes_per_second: int) -> None:
        self._wav = wav
        self._bytes_per_second = bytes_per_second
        self._until = time.monotonic()

    async def play(self, pcm: bytes) -> None:
        # A block is written when it starts playing: the previous one must end.
        now = time.monotonic()
        await asyncio.sleep(self._until - now)
        if self._wav is not None:
            self._wav.writeframes(pcm)
        self._until = max(now, self._until) + len(pcm) / self._bytes_per_second

    async def finish(self) -> None:
        await asyncio.sleep(self._until - time.monotonic())

    async def abort(self) -> None:
        self._until = time.monotonic()


class Speaker:
    """The speaker's format and device; replies are converted to the format.

    With neither a command nor a WAV file, replies are timed but not heard.
    """

    def __init__(
        self,
        rate: int,
        width: int,
        channels: int,
        command: str | None = None,
        wav_path: str | None = None,
    ) -> None:
        self.rate = rate
        self.width = width
        self.channels = channels
        self._command = command
        self._file: BinaryIO | None = None
        self._wav: wave.Wave_write | None = None
        if wav_path is not None:
            # Unbuffered, header first: the file can be read while it grows.
            self._file = open(wav_path, "wb", buffering=0)
            self._wav = wave.open(self._file, "wb")
            self._wav.setframerate(rate)
            self._wav.setsampwidth(width)
            self._wav.setnchannels(channels)
            self._wav.writeframes(b"")

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.width * self.channels

    def close(self) -> None:
        if self._wav is not None and self._file is not None:
            self._wav.close()
            self._file.close()
            self._wav = self._file = None

    def sink(self) -> Sink:
        if self._command is not None:
            return CommandSink(shlex.split(self._command))
        return WavSink(self._wav, self.bytes_per_second)


class Playback:
    """One reply on the speaker: queued audio played by its own task.

    `on_played` runs after the last sample of a reply that was not stopped.
    """

    def __init__(
        self, speaker: Speaker, on_played: Callable[[Playback], Awaitable[None]]
    ) -> None:
        self._sink = speaker.sink()
        self._block = _frames(speaker, PLAY_BLOCK_S)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._on_played = on_played
        self.started: float | None = None  # monotonic time of the first sample
        self._task = asyncio.create_task(self._run())

    def put(self, pcm: bytes) -> None:
        self._queue.put_nowait(pcm)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._sink.abort()

    async def _run(self) -> None:
        try:
            while (pcm := await self._queue.get()) is not None:
                for offset in range(0, len(pcm), self._block):
                    if self.started is None:
                        self.started = time.monotonic()
                    await self._sink.play(pcm[offset : offset + self._block])
            await self._sink.finish()
        except OSError as err:  # no such command, or it died
            _LOGGER.warning("Speaker failed: %s", err)
            await self._sink.abort()
        await self._on_played(self)


def _frames(speaker: Speaker, seconds: float) -> int:
    frame = speaker.width * speaker.channels
    return max(frame, int(speaker.rate * seconds) * frame)
