"""The in-process pipeline: one turn from audio to reply audio, on the same
engines the Wyoming services use (ASR session and end-of-turn rule,
responder, speaker), streaming at every boundary.

audio -> ASR session (partials, VAD) -> every transcript seen is matched and
a device command's reply is synthesised ahead -> the turn ends by the shared
end-of-turn rule -> final transcript -> the responder's replies: commands
(executed by Home Assistant with --hass-url; a lock, door or alarm only
after a spoken yes) or an answer -> reply audio, clause by clause.

Every stage has a budget; over it the turn degrades and says so in its
trace. Speech while the reply is playing (barge-in) stops the reply and
becomes the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from .asr.prompt import house_prompt
from .asr.session import AsrSession, AsrSettings, Decoder
from .audio import RATE_16K, WIDTH
from .handle.responder import (
    PHRASES,
    Command,
    Finished,
    Reply,
    Responder,
    Said,
)
from .hass import HomeAssistant
from .house.matcher import Match
from .trace import Budgets, Metrics, Trace
from .tts.clauses import ClauseSplitter, split_clauses
from .tts.speaker import Pcm, Speaker, SynthesisFailed
from .turn import Frames, SpeechFrames, SpeechOnset, TurnRule, open_ending
from .turn_events import (
    Commands,
    ReplyStopped,
    SpeechStarted,
    SpeechStopped,
    Transcribed,
    TurnEvent,
)

_LOGGER = logging.getLogger(__name__)

HASS_DOWN = "Sorry, Home Assistant did not answer."
PREROLL_BYTES = RATE_16K * WIDTH // 2  # kept before barge-in speech (0.5 s)

Sink = Callable[[TurnEvent], Awaitable[None]]


async def _no_sink(event: TurnEvent) -> None:
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


@dataclass(frozen=True)
class Engines:
    """What every pipeline of a process shares (loaded once)."""

    decoder: Decoder
    speaker: Speaker
    responder: Responder
    hass: HomeAssistant | None = None
    rule: TurnRule = field(default_factory=TurnRule)
    budgets: Budgets = field(default_factory=Budgets)
    metrics: Metrics | None = None  # where finished turns are recorded and logged

    async def warm(self) -> None:
        """Render the phrases a turn may need at once (they play even when
        synthesis fails)."""
        await self.speaker.render(PHRASES + (HASS_DOWN,))


class EarlyAnswer:
    """The LLM asked at the first pause, while the silence that ends the turn
    runs: the answer's first reply (its first token, or the acknowledgement)
    is fetched ahead, the rest only if the turn ends on the same words. A
    dropped one is never heard, nor kept in the conversation's history (the
    LLM's stream is closed before it ends)."""

    def __init__(
        self, text: str, reply: Callable[[Trace], AsyncGenerator[Reply, None]]
    ) -> None:
        self.text = text
        self.trace = Trace("pipeline")  # marks of its own: it began early
        self._replies = reply(self.trace)
        self._first = asyncio.ensure_future(anext(self._replies))

    async def replies(self, trace: Trace) -> AsyncGenerator[Reply, None]:
        """The answer, for the turn whose `trace` it joins (its notes, and
        its first token, counted from no earlier than the turn's intent)."""
        trace.marks["asked"] = self.trace.start
        lead_ms = (trace.marks["transcript"] - self.trace.start) * 1000
        trace.notes.append(f"llm asked {lead_ms:.0f} ms before the turn ended")
        try:
            yield await self._first
            async for reply in self._replies:
                yield reply
        except StopAsyncIteration:
            return
        finally:
            await self._replies.aclose()
            trace.notes += self.trace.notes
            if "first_token" in self.trace.marks:
                trace.marks["first_token"] = max(
                    self.trace.marks["first_token"], trace.marks["intent"]
                )

    async def drop(self) -> None:
        self._first.cancel()
        await asyncio.gather(self._first, return_exceptions=True)
        await self._replies.aclose()


class Pipeline:
    """One conversation's turns (one per connection: it owns a VAD state)."""

    def __init__(
        self,
        engines: Engines,
        end_at_speech_end: bool = True,
        barge_in: bool = True,
        frames: Callable[[], Frames] | None = None,
    ) -> None:
        self.engines = engines
        # The pipeline owns the VAD: the turn ends by the end-of-turn rule,
        # not when the client stops sending.
        self.end_at_speech_end = end_at_speech_end
        self.barge_in = barge_in
        self._new_frames = frames or (lambda: SpeechFrames(engines.rule.vad_threshold))
        self._frames: Frames | None = None
        self._matches: dict[str, Match | None] = {}
        self._prepared: set[str] = set()
        self._ahead: list[asyncio.Task[None]] = []
        self._early: EarlyAnswer | None = None

    async def run(
        self,
        source: AudioSource,
        conversation: str = "pipeline",
        sink: Sink = _no_sink,
        answer_silence: bool = True,
    ) -> Turn:
        """One turn from `source` (16 kHz mono chunks, at the pace they are
        spoken); its events (`turn_events`) go to `sink` as they happen. With
        `answer_silence` false, a source that ends without speech ends the
        turn unanswered."""
        turn = Turn()
        turn.trace.budgets_ms = self.engines.budgets.as_dict()
        turn.trace.mark("audio_start")
        if self._frames is None:  # Silero loads off the event loop
            self._frames = await asyncio.to_thread(self._new_frames)
        try:
            session = await self._listen(source, turn, conversation, sink)
            if not session.heard_speech and not answer_silence:
                return turn
            turn.transcript = await session.finish(self.engines.budgets.asr / 1000)
            turn.trace.mark("transcript")
            await sink(Transcribed(turn.transcript))
            turn.intent = await self._match(turn.transcript)
            turn.trace.mark("intent")
            await self._reply_unless_interrupted(source, turn, conversation, sink)
        finally:
            await self._drop_early()
            self._prepared.clear()
            self._matches.clear()
        return turn

    async def close(self) -> None:
        for task in self._ahead:
            task.cancel()
        await asyncio.gather(*self._ahead, return_exceptions=True)
        await self._drop_early()

    # -- listening --------------------------------------------------------

    async def _listen(
        self, source: AudioSource, turn: Turn, conversation: str, sink: Sink
    ) -> AsrSession:
        """Feed the ASR session until the turn ends (or the client stops sending)."""
        assert self._frames is not None
        trace = turn.trace
        house = self.engines.responder.house
        session = AsrSession(
            self.engines.decoder,
            self._frames,
            AsrSettings(),
            replace(self.engines.rule, asks_first=True),  # "Unlock Front Door?"
            house_prompt(house),
            trace,
            house.ending,
            house.closest,
            lambda: source.put(b""),  # no audio: look at the turn again
        )
        started = False
        while (chunk := await source.read()) is not None:
            await session.add(chunk)
            if session.heard_speech and not started:
                started = True
                if self.engines.hass is not None:  # the answer may need them
                    self.engines.hass.refresh_states()
                await sink(SpeechStarted())
            if self.end_at_speech_end and (why := await session.turn_over()):
                trace.notes.append(f"turn over: {why}")
                break
            ready = session.ready_transcript()
            for guess in (session.latest_partial(), ready):
                if guess:
                    await self._prepare(guess)
            if ready:
                await self._ask_early(ready, conversation)
        trace.mark("audio_stop")
        if started:
            await sink(SpeechStopped())
        return session

    async def _match(self, text: str) -> Match | None:
        if not text:
            return None
        if text not in self._matches:
            self._matches[text] = await self.engines.responder.match(text)
        return self._matches[text]

    async def _prepare(self, text: str) -> None:
        """If a transcript seen while listening is already a device command,
        synthesise its reply now: a final transcript that agrees finds it in
        the cache."""
        match = await self._match(text)
        if match is not None and match.response not in self._prepared:
            self._prepared.add(match.response)
            self._ahead = [task for task in self._ahead if not task.done()]
            self._ahead.append(asyncio.create_task(self._synthesize_ahead(match)))

    async def _ask_early(self, text: str, conversation: str) -> None:
        """At a pause after words that are no command, ask the LLM now: the
        silence that ends the turn (--end-silence-ms) runs meanwhile."""
        if self._early is not None and self._early.text == text:
            return
        responder = self.engines.responder
        if (
            responder.llm is None
            or responder.pending(conversation)
            or open_ending(text)  # "turn on the ...": more is coming
            or await self._match(text) is not None
        ):
            return
        await self._drop_early()
        self._early = EarlyAnswer(
            text, lambda trace: responder.respond(text, conversation, trace, None, True)
        )

    async def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            await early.drop()

    async def _synthesize_ahead(self, match: Match) -> None:
        with contextlib.suppress(Exception):  # the turn itself reports failures
            await self.engines.speaker.prepare(match.response)

    # -- replying ---------------------------------------------------------

    async def _reply_unless_interrupted(
        self, source: AudioSource, turn: Turn, conversation: str, sink: Sink
    ) -> None:
        """Reply; speech while the reply is made, or still playing at the
        client, stops it (barge-in)."""
        replying = asyncio.create_task(self._reply(turn, conversation, sink))
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
                    await sink(ReplyStopped())
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
        trace = turn.trace
        if "done" in trace.marks:
            return
        trace.mark("done")
        for stage, begin, end in (
            ("asr", "audio_stop", "transcript"),
            ("intent", "transcript", "intent"),
            ("llm", "intent", "first_token"),
            ("tts", "first_clause", "first_audio"),
        ):
            if begin in trace.marks and end in trace.marks:
                trace.stage(stage, begin, end)
        if self.engines.metrics is not None:
            self.engines.metrics.record(trace)
            _LOGGER.info(trace.waterfall())

    def _playing_s(self, turn: Turn) -> float:
        """Seconds until the reply sent so far has been played at real time."""
        if "first_audio" not in turn.trace.marks:
            return 0.0
        seconds = self.engines.speaker.seconds(len(turn.audio))
        return max(0.0, turn.trace.marks["first_audio"] + seconds - time.monotonic())

    async def _reply(self, turn: Turn, conversation: str, sink: Sink) -> None:
        try:
            early, self._early = self._early, None
            if early is not None and early.text == turn.transcript:
                replies = early.replies(turn.trace)
            else:
                if early is not None:
                    await early.drop()
                turn.trace.mark("asked")
                replies = self.engines.responder.respond(
                    turn.transcript,
                    conversation,
                    turn.trace,
                    match=turn.intent,
                    confirm_commands=True,
                )
            async with contextlib.aclosing(replies):
                await self._answer(turn, replies, sink)
        finally:
            if "first_audio" in turn.trace.marks and not turn.interrupted:
                await sink(ReplyStopped())

    async def _commands(
        self, turn: Turn, matches: tuple[Match, ...], sink: Sink
    ) -> None:
        """Run the commands (with --hass-url), say what became of them."""
        if any(match.response in self._prepared for match in matches):
            turn.trace.notes.append("reply prepared while speaking")
        hass = self.engines.hass
        if hass is None:
            turn.executed = (
                "not executed: no --hass-url given (Home Assistant would run it)"
            )
            answers = [match.response for match in matches]
        else:
            turn.trace.mark("hass_request")
            failures = await asyncio.gather(*(hass.execute(m) for m in matches))
            turn.trace.mark("hass_done")
            turn.trace.stage("network", "hass_request", "hass_done")
            turn.executed = "; ".join(
                dict.fromkeys(f or "executed by Home Assistant" for f in failures)
            )
            answers = [
                HASS_DOWN if failure else match.response
                for match, failure in zip(matches, failures)
            ]
        turn.answer = " ".join(dict.fromkeys(answers))
        await sink(Commands(matches, tuple(answers)))
        await self._speak(split_clauses(turn.answer), turn, sink)

    async def _answer(
        self, turn: Turn, replies: AsyncIterator[Reply], sink: Sink
    ) -> None:
        """The responder's replies as events, and spoken clause by clause."""
        splitter = ClauseSplitter()
        async for reply in replies:
            if isinstance(reply, Command):
                await self._speak(splitter.flush(), turn, sink)
                await self._commands(turn, reply.matches, sink)
                continue
            if isinstance(reply, Said) and reply.acknowledgement:
                await sink(reply)
                await self._speak([reply.text], turn, sink, acknowledgement=True)
                continue
            if isinstance(reply, Said):
                turn.answer += reply.text
                await sink(reply)
                await self._speak(splitter.feed(reply.text), turn, sink)
                continue
            if isinstance(reply, Finished):
                if reply.asked:
                    turn.executed = "not executed: waiting for a yes"
                rest = splitter.flush() + ([] if reply.handled else [reply.text])
                if not reply.handled:
                    turn.answer = reply.text
                await self._speak(rest, turn, sink)
            await sink(reply)

    async def _speak(
        self,
        clauses: list[str],
        turn: Turn,
        sink: Sink,
        acknowledgement: bool = False,
    ) -> None:
        speaker = self.engines.speaker
        for clause in clauses:
            if turn.tts_failed:
                return  # the apology was heard; the rest cannot be spoken
            turn.trace.mark("first_clause")
            ahead = [task for task in self._ahead if not task.done()]
            if ahead and clause in self._prepared:
                await asyncio.wait(ahead)  # it is being made: wait, do not redo
            try:
                async for chunk in speaker.chunks(clause):
                    await self._play(chunk, turn, sink)
                    if not acknowledgement:
                        turn.trace.mark("answer_audio")
            except SynthesisFailed as err:  # a phrase rendered at start-up instead
                _LOGGER.warning("TTS failed: %s", err)
                turn.trace.notes.append("tts failed: apology")
                turn.tts_failed = True
                for chunk in speaker.apology():
                    await self._play(chunk, turn, sink)
                return

    async def _play(self, chunk: Pcm, turn: Turn, sink: Sink) -> None:
        if "first_audio" not in turn.trace.marks:
            turn.trace.mark("first_audio")
        turn.audio += chunk.audio
        await sink(chunk)

    async def _speech_during(self, source: AudioSource, turn: Turn) -> bool:
        """Listen while the reply plays: True once the user speaks over it
        (the speech is put back in `source` for the next turn), False when
        the source ends."""
        assert self._frames is not None
        onset = SpeechOnset(self._frames)
        onset.reset()
        heard = bytearray()  # preroll, then the speech
        while (chunk := await source.read()) is not None:
            heard += chunk
            if await asyncio.to_thread(onset.heard, chunk):
                turn.trace.mark("barge_in")
                source.push_back(bytes(heard))
                return True
            if len(heard) > PREROLL_BYTES:
                del heard[: len(heard) - PREROLL_BYTES]
        return False
