"""The satellite's room side: microphone, wake word, turns, speaker, barge-in.

A `Room` listens for one `Link` at a time (Home Assistant's connection, or
the stack's pipeline in direct mode). Before the wake word nothing leaves
the satellite; after it the microphone streams to the link until the link
says the speech ended, and never longer than `max_turn_s` whatever the link
says. A turn's audio starts where the wake word was heard: its detection
comes later, so what was said in between is sent first, from the last
`RECENT_S` of microphone (for a barge-in, the last `PREROLL_S`). Replies
arriving from the link are played by their own task; a reply that is
interrupted (the user speaks over it) is stopped at once and the rest of it
is dropped, and so is anything past `MAX_REPLY_S` of audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart
from wyoming.wake import Detection

from ..trace import Metrics, Trace
from ..turn import SpeechFrames, SpeechOnset
from .detect import Wake
from .devices import MIC_BYTES_PER_S, MIC_CHUNK_BYTES, Playback, Speaker

_LOGGER = logging.getLogger(__name__)

PREROLL_S = 0.5  # sent first when a barge-in starts a turn: the VAD hears late
# Microphone kept: a detection comes after the phrase it places (the second
# opinion's seconds later), and the turn starts with what was said since.
RECENT_S = 3.0
NO_SPEECH_S = 8.0  # a turn with no speech this long after the wake word ends
MAX_TURN_S = 30.0  # longest the microphone streams for one turn's speech
# Longest reply played (a 300-token LLM answer is ~2 min of speech); in direct
# mode the microphone streams through it, so a turn lasts at most
# max_turn_s + MAX_REPLY_S.
MAX_REPLY_S = 180.0
RETRY_S = 1.0


class Link(Protocol):
    """Where turns go: Home Assistant, or the stack's pipeline (direct mode)."""

    # Direct mode keeps the microphone streaming while the reply plays (the
    # server hears barge-in); Home Assistant stops it at the end of speech.
    streams_while_playing: bool

    async def start_turn(self, wake_word: str | None) -> None: ...

    async def send_audio(self, audio: bytes) -> None: ...

    async def stop_turn(self) -> None: ...

    async def played(self) -> None: ...


@dataclass(frozen=True)
class RoomSettings:
    mic: Callable[[], AsyncGenerator[bytes, None]]  # opened each time listening starts
    wake: Callable[[], Awaitable[Wake]]
    barge_in: str  # "vad", "wake" or "off"
    vad_threshold: float = 0.5
    max_turn_s: float = MAX_TURN_S


class Room:
    def __init__(self, settings: RoomSettings, speaker: Speaker, metrics: Metrics):
        self.settings = settings
        self.speaker = speaker
        self.metrics = metrics
        self.link: Link | None = None
        self._listener: asyncio.Task[None] | None = None
        self._streaming = False
        self._turn_started = 0.0
        self._deadline = 0.0
        self._playback: Playback | None = None
        self._converter: AudioChunkConverter | None = None
        self._reply_left = 0  # bytes of the current reply still played
        self._recent = bytearray()  # the last RECENT_S of microphone
        self._heard = 0  # bytes of microphone fed to the wake word's detector
        self._onset = SpeechOnset(SpeechFrames(settings.vad_threshold))
        self._onset_heard: Playback | None = None  # the reply the VAD follows
        self._trace: Trace | None = None

    # -- listening, for one link at a time -------------------------------

    async def listen(self, link: Link) -> Link | None:
        """Listen for `link` from now on; returns the link it replaces."""
        previous = self.link
        await self.stop_listening()
        self.link = link
        self._listener = asyncio.create_task(self._listen(link))
        return previous if previous is not link else None

    async def stop_listening(self, link: Link | None = None) -> None:
        """Stop streaming, detection and playback (for `link` only, if given)."""
        if link is not None and link is not self.link:
            return
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self._listener = None
        self.link = None
        self._streaming = False
        await self._stop_playback()
        self._note("stopped listening")
        self._finish_trace()

    async def _listen(self, link: Link) -> None:
        while True:
            try:
                wake = await self.settings.wake()
                self._recent.clear()  # positions are the detector's, from 0
                self._heard = 0
                try:
                    async with contextlib.aclosing(self.settings.mic()) as mic:
                        async for audio in mic:
                            await self._hear(link, wake, audio)
                finally:
                    await wake.close()
            except (ConnectionError, OSError) as err:
                _LOGGER.warning("Listening failed (%s); again in %s s", err, RETRY_S)
            except Exception:
                _LOGGER.exception("Listening failed; again in %s s", RETRY_S)
            await asyncio.sleep(RETRY_S)

    async def _hear(self, link: Link, wake: Wake, audio: bytes) -> None:
        self._recent += audio
        del self._recent[: -round(RECENT_S * MIC_BYTES_PER_S)]
        self._heard += len(audio)
        detection = await wake.process(audio)
        wake_word = detection.name if detection is not None else None
        if self._streaming:
            await link.send_audio(audio)
            if time.monotonic() > self._deadline:
                self._note("no end of speech")
                await self.stop_streaming()
            return
        if self._playback is not None:
            if await self._barged_in(wake_word, audio):
                await self._interrupt("barge-in: " + (wake_word or "speech"))
                await link.played()
                await self._start_turn(link, wake_word, self._since(detection))
        elif wake_word is not None:
            await self._start_turn(link, wake_word, self._since(detection))

    def _since(self, detection: Detection | None) -> int:
        """Where a turn's audio starts (bytes of microphone since the detector
        was opened): where the wake word was heard, or for a barge-in the
        last PREROLL_S."""
        if detection is None:
            return self._heard - round(PREROLL_S * MIC_BYTES_PER_S)
        if detection.timestamp is None:  # a wake service that does not say
            return self._heard
        return detection.timestamp * MIC_BYTES_PER_S // 1000

    async def _barged_in(self, wake_word: str | None, audio: bytes) -> bool:
        """Did the user speak over the reply? (Direct mode: the server says.)"""
        if self.settings.barge_in == "off":
            return False
        if wake_word is not None:
            return True
        if self.settings.barge_in != "vad":
            return False
        if self._onset_heard is not self._playback:  # a new reply: listen afresh
            self._onset.reset()
        self._onset_heard = self._playback
        return await asyncio.to_thread(self._onset.heard, audio)

    async def _start_turn(self, link: Link, wake_word: str | None, since: int) -> None:
        self._begin_trace(f"wake word {wake_word}" if wake_word else "barge-in")
        self._streaming = True
        self._turn_started = time.monotonic()
        self._deadline = self._turn_started + NO_SPEECH_S
        kept = min(max(self._heard - since, 0), len(self._recent))
        recent = bytes(self._recent[len(self._recent) - kept :])
        self._note(f"pre-roll {kept * 1000 // MIC_BYTES_PER_S} ms")
        try:
            await link.start_turn(wake_word)
            for offset in range(0, len(recent), MIC_CHUNK_BYTES):
                await link.send_audio(recent[offset : offset + MIC_CHUNK_BYTES])
        except (ConnectionError, OSError) as err:
            _LOGGER.warning("Could not start a turn: %s", err)
            self._streaming = False

    async def stop_streaming(self) -> None:
        """The speech has ended (or the turn failed): back to the wake word."""
        if not self._streaming:
            return
        self._streaming = False
        if self.link is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await self.link.stop_turn()

    # -- what the link reports -------------------------------------------

    async def voice_started(self) -> None:
        if self._playback is not None and self.link and self.link.streams_while_playing:
            # The server heard the user speak over its reply: this is the next turn.
            await self._interrupt("barge-in (server)")
            self._begin_trace("barge-in (server)")
            self._turn_started = time.monotonic()
        # From the start of the turn, not from this event: a client repeating
        # it cannot keep the microphone open.
        self._deadline = self._turn_started + self.settings.max_turn_s
        self._mark("voice_started")

    def voice_stopped(self) -> None:
        self._mark("voice_stopped")

    async def reply_start(self, start: AudioStart) -> None:
        await self._stop_playback()
        self._converter = AudioChunkConverter(
            self.speaker.rate, self.speaker.width, self.speaker.channels
        )
        self._playback = Playback(self.speaker, self._played)
        self._reply_left = round(MAX_REPLY_S * self.speaker.bytes_per_second)
        if self.link is not None and self.link.streams_while_playing:
            # The turn ends when the reply was played, at the latest when the
            # longest reply would have been.
            self._deadline = self._turn_started + self.settings.max_turn_s
            self._deadline += MAX_REPLY_S
        self._mark("reply_start")

    def reply_chunk(self, chunk: AudioChunk) -> None:
        if self._playback is None or self._converter is None:
            return  # the rest of an interrupted reply
        audio = self._converter.convert(chunk).audio
        if len(audio) > self._reply_left:
            _LOGGER.warning("Reply over %.0f s: the rest is dropped", MAX_REPLY_S)
            self._note("reply cut")
            self._playback.put(audio[: self._reply_left])
            self._playback.end()
            self._converter = None
            return
        self._reply_left -= len(audio)
        self._playback.put(audio)

    def reply_stop(self) -> None:
        if self._playback is not None:
            self._playback.end()
        self._converter = None

    async def _played(self, playback: Playback) -> None:
        if self._playback is not playback:
            return
        self._playback = None
        self._mark_first_audio(playback)
        self._mark("played")
        link = self.link
        if link is None:
            return
        with contextlib.suppress(ConnectionError, OSError):
            await link.played()
        if link.streams_while_playing:
            await self.stop_streaming()
        self._finish_trace()

    async def _interrupt(self, why: str) -> None:
        if self._playback is not None:
            self._mark_first_audio(self._playback)
        self._note(why)
        self._mark("interrupted")
        await self._stop_playback()

    async def _stop_playback(self) -> None:
        playback, self._playback = self._playback, None
        self._converter = None
        if playback is not None:
            await playback.stop()

    def _begin_trace(self, note: str) -> None:
        self._finish_trace()
        self._trace = Trace("satellite")
        self._mark("turn_start")
        self._note(note)

    def _mark(self, name: str) -> None:
        if self._trace is not None:
            self._trace.mark(name)

    def _mark_first_audio(self, playback: Playback) -> None:
        if self._trace is not None and playback.started is not None:
            self._trace.marks.setdefault("first_audio", playback.started)

    def _note(self, text: str) -> None:
        if self._trace is not None:
            self._trace.notes.append(text)

    def _finish_trace(self) -> None:
        trace, self._trace = self._trace, None
        if trace is None:
            return
        if {"voice_stopped", "first_audio"} <= trace.marks.keys():
            gap = trace.marks["first_audio"] - trace.marks["voice_stopped"]
            trace.notes.append(f"end of speech to first audio {gap * 1000:.0f} ms")
        self.metrics.record(trace)
        _LOGGER.info(trace.waterfall())
