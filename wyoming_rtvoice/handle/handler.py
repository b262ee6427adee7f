"""Wyoming handle/intent handler: a device command in milliseconds, else the
LLM's answer, streamed. One request is answered at a time per connection.

A client that is not a trusted peer gets device commands only (it executes
them itself): a question about the house's state or one for the LLM is
answered with NOT_TRUSTED, spoken like any failure, so a person at such a
client hears why, and its connection goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import NotHandled
from wyoming.info import Info
from wyoming.intent import NotRecognized, Recognize

from ..errors import ErrorCode
from ..house.questions import TELL_STATE
from ..peers import Peers
from ..reader import Limits
from ..server import EventHandler
from ..trace import Metrics, Trace
from .events import intent_event, reply_events
from .responder import AnswerStarted, Responder

if TYPE_CHECKING:
    from . import HandleConfig

_LOGGER = logging.getLogger(__name__)

NOT_TRUSTED = (
    "I only answer questions for this home's own devices. "
    "Device commands work from here."
)


class HandleEventHandler(EventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
        responder: Responder,
        config: HandleConfig,
        metrics: Metrics,
        peers: Peers,
    ) -> None:
        super().__init__(reader, writer, info, limits)
        self.responder = responder
        self.config = config
        self.metrics = metrics
        self.peers = peers
        self._answering: asyncio.Task[None] | None = None

    async def handle_event(self, event: Event) -> bool:
        if Transcript.is_type(event.type) or Recognize.is_type(event.type):
            if self._answering is not None and not self._answering.done():
                await self.write_error(
                    "a request is being answered on this connection",
                    ErrorCode.TOO_MANY_REQUESTS,
                )
                return True
            trace = Trace("handle")
            trace.mark("transcript")
            trace.notes.append(f"from {self.peer}")
            context = self._context(event.data.get("context"))
            text = await self._checked_text(event.data.get("text"))
            if text is None:
                return True
            trusted = self.peers.allows(self.peer)  # now: a push may trust it
            if not trusted and await self._refused(event, text, context, trace):
                return True
            if Recognize.is_type(event.type):
                await self._recognize(text, context, trace)
            else:
                self._answering = asyncio.create_task(
                    self._answer(text, context, trace)
                )
            return True

        return True

    async def disconnect(self) -> None:
        if self._answering is not None:
            self._answering.cancel()  # closes the LLM stream
            await asyncio.wait({self._answering})

    def _context(self, context: Any) -> dict[str, Any]:
        context = dict(context) if isinstance(context, dict) else {}
        if not isinstance(context.get("conversation_id"), str):
            context["conversation_id"] = uuid.uuid4().hex
        return context

    def _conversation(self, context: dict[str, Any]) -> str:
        """The history's key: a client can continue only its own conversations."""
        return f"{self.peer}/{context['conversation_id']}"

    async def _checked_text(self, text: Any) -> str | None:
        if not isinstance(text, str):
            await self.write_error("text must be a string", ErrorCode.BAD_TEXT)
            return None
        if len(text) > self.config.max_text_chars:
            await self.write_error(
                f"text is over {self.config.max_text_chars} characters",
                ErrorCode.TEXT_TOO_LONG,
            )
            return None
        return text

    async def _refused(
        self, event: Event, text: str, context: dict[str, Any], trace: Trace
    ) -> bool:
        """Refuse what only trusted peers get: the state, the LLM."""
        match = await self.responder.match(text, trace)
        if match is not None and match.intent not in TELL_STATE:
            return False
        trace.notes.append("not a trusted peer: refused")
        if Recognize.is_type(event.type):
            refusal = NotRecognized(text=NOT_TRUSTED, context=context).event()
        else:
            refusal = NotHandled(text=NOT_TRUSTED, context=context).event()
        await self.write_event(refusal)
        self._finish(trace)
        return True

    async def _recognize(
        self, text: str, context: dict[str, Any], trace: Trace
    ) -> None:
        match = await self.responder.match(text, trace)
        if match is not None:
            await self.write_event(intent_event(match, match.response, context))
        else:
            await self.write_event(NotRecognized(text=text, context=context).event())
        self._finish(trace)

    async def _answer(self, text: str, context: dict[str, Any], trace: Trace) -> None:
        started = False
        replies = self.responder.respond(
            text, self._conversation(context), trace, client=self.peer
        )
        try:
            async with contextlib.aclosing(replies):
                async for reply in replies:
                    for event in reply_events(reply, started, context):
                        await self.write_event(event)
                    started = started or isinstance(reply, AnswerStarted)
        except ConnectionError:
            _LOGGER.info("Client %s went away during the answer", self.peer)
        if "first_token" in trace.marks:
            trace.stage("llm", "transcript", "first_token")
        self._finish(trace)

    def _finish(self, trace: Trace) -> None:
        if "intent" in trace.marks:
            trace.stage("intent", "transcript", "intent")
        trace.mark("done")
        self.metrics.record(trace)
        _LOGGER.info(trace.waterfall())
