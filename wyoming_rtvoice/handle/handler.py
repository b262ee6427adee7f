"""Wyoming handle/intent handler: a device command in milliseconds, else the LLM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.info import Info
from wyoming.intent import Entity, Intent, NotRecognized, Recognize

from ..server import EventHandler, Limits
from ..trace import Metrics, Trace
from .llm import Llm
from .matcher import Match, Matcher

_LOGGER = logging.getLogger(__name__)

NO_LLM = "I can control your devices, but no assistant is set up to answer questions."
LLM_DOWN = "Sorry, I can't reach the assistant right now."
LLM_BROKE = "Sorry, I lost my train of thought."
EMPTY = "Sorry, I didn't hear anything."


@dataclass(frozen=True)
class HandleSettings:
    max_text_chars: int = 2000
    ack_after_s: float = 1.0
    ack_text: str = "One moment."
    first_token_timeout_s: float = 5.0


class HandleEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        matcher: Matcher,
        llm: Llm,
        settings: HandleSettings,
        metrics: Metrics,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.matcher = matcher
        self.llm = llm
        self.settings = settings
        self.metrics = metrics
        self._answering: set[asyncio.Task[None]] = set()

    async def handle_event(self, event: Event) -> bool:
        if Transcript.is_type(event.type) or Recognize.is_type(event.type):
            trace = Trace("handle")
            trace.mark("transcript")
            context = self._context(event.data.get("context"))
            text = await self._checked_text(event.data.get("text"), context)
            if text is None:
                return True
            match = await self._match(text, trace)
            if match is not None:
                await self.write_event(self._intent(match, context).event())
            elif Transcript.is_type(event.type):  # not a command: ask the LLM
                task = asyncio.create_task(self._answer(text, context, trace))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
                return True
            else:
                await self.write_event(
                    NotRecognized(text=text, context=context).event()
                )
            self._finish(trace)
            return True

        return True

    async def disconnect(self) -> None:
        for task in self._answering:
            task.cancel()  # closes the LLM stream
        if self._answering:
            await asyncio.wait(self._answering)

    @staticmethod
    def _context(context: Any) -> dict[str, Any]:
        context = dict(context) if isinstance(context, dict) else {}
        if not isinstance(context.get("conversation_id"), str):
            context["conversation_id"] = uuid.uuid4().hex
        return context

    async def _checked_text(self, text: Any, context: dict[str, Any]) -> str | None:
        if not isinstance(text, str):
            await self.write_error("text must be a string", "bad-text")
            return None
        if len(text) > self.settings.max_text_chars:
            await self.write_error(
                f"text is over {self.settings.max_text_chars} characters",
                "text-too-long",
            )
            return None
        if not text.strip():
            await self.write_event(NotHandled(text=EMPTY, context=context).event())
            return None
        return text

    async def _match(self, text: str, trace: Trace) -> Match | None:
        loop = asyncio.get_running_loop()
        match = await loop.run_in_executor(None, self.matcher.match, text)
        trace.mark("match")
        trace.stage("intent", "transcript", "match")
        trace.notes.append(f"intent {match.intent}" if match else "no intent")
        return match

    @staticmethod
    def _intent(match: Match, context: dict[str, Any]) -> Intent:
        entities = [
            Entity(name=name, value=value) for name, value in match.slots.items()
        ]
        return Intent(
            name=match.intent, entities=entities, text=match.response, context=context
        )

    def _finish(self, trace: Trace) -> None:
        trace.mark("done")
        self.metrics.record(trace)
        _LOGGER.info(trace.waterfall())

    async def _answer(self, text: str, context: dict[str, Any], trace: Trace) -> None:
        try:
            await self._answer_turn(text, context, trace)
        except ConnectionError:
            _LOGGER.info("Client %s went away during the answer", self.peer)

    async def _answer_turn(
        self, text: str, context: dict[str, Any], trace: Trace
    ) -> None:
        if not self.llm.available:
            await self.write_event(NotHandled(text=NO_LLM, context=context).event())
            self._finish(trace)
            return
        await self.write_event(HandledStart(context=context).event())
        answer: list[str] = []
        try:
            await self._stream_answer(text, context, trace, answer)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # timeout, 429, 500, stream cut: say so, never silence
            _LOGGER.warning("LLM failed: %s", type(err).__name__)
            trace.notes.append(f"llm {type(err).__name__}")
            if not answer:
                await self.write_event(HandledStop().event())
                await self.write_event(
                    NotHandled(text=LLM_DOWN, context=context).event()
                )
                self._finish(trace)
                return
            answer.append(" " + LLM_BROKE)
            await self.write_event(HandledChunk(text=answer[-1]).event())
        await self.write_event(HandledStop().event())
        await self.write_event(Handled(text="".join(answer), context=context).event())
        self._finish(trace)

    async def _stream_answer(
        self, text: str, context: dict[str, Any], trace: Trace, answer: list[str]
    ) -> None:
        async with contextlib.aclosing(
            self.llm.stream(context["conversation_id"], text)
        ) as deltas:
            first = asyncio.ensure_future(anext(deltas))
            try:
                done, _ = await asyncio.wait({first}, timeout=self.settings.ack_after_s)
                if not done:
                    trace.notes.append("acknowledged")
                    ack = HandledChunk(text=self.settings.ack_text + " ")
                    await self.write_event(ack.event())
                remaining = (
                    self.settings.first_token_timeout_s - self.settings.ack_after_s
                )
                delta = await asyncio.wait_for(first, max(0.0, remaining))
            except StopAsyncIteration:
                return
            finally:
                # Let the generator stop before aclosing closes it.
                first.cancel()
                await asyncio.wait({first})
            trace.mark("first_token")
            trace.stage("llm", "transcript", "first_token")
            answer.append(delta)
            await self.write_event(HandledChunk(text=delta).event())
            async for delta in deltas:
                answer.append(delta)
                await self.write_event(HandledChunk(text=delta).event())
