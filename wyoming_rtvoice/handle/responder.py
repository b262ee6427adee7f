"""The responder: what to answer to a transcript, knowing no protocol.

A device command is matched in milliseconds; anything else goes to the LLM,
whose answer streams. The acknowledgement and failure policy is here, once,
for the handle service and the in-process pipeline alike:
- no LLM configured: a short spoken answer saying so (not handled);
- the first token later than `ack_after_s`: "One moment." first;
- no first token (timeout, HTTP 429/500, unreachable): an apology (not handled);
- the stream cut mid-answer: the answer so far and an apology (handled).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import option
from ..trace import Trace
from .llm import Llm
from .matcher import Match

if TYPE_CHECKING:
    from ..state import HouseStore

_LOGGER = logging.getLogger(__name__)

ACK = "One moment."
NO_LLM = "I can control your devices, but no assistant is set up to answer questions."
LLM_DOWN = "Sorry, I can't reach the assistant right now."
LLM_BROKE = "Sorry, I lost my train of thought."
EMPTY = "Sorry, I didn't hear anything."
PHRASES = (ACK, NO_LLM, LLM_DOWN, LLM_BROKE, EMPTY)  # rendered ahead by the pipeline


@dataclass(frozen=True)
class Command:
    """A device command: the client executes it (an `intent` event)."""

    match: Match


@dataclass(frozen=True)
class AnswerStarted:
    """An answer is being generated (`handled-start`)."""


@dataclass(frozen=True)
class Said:
    """A piece of the answer (`handled-chunk`); an acknowledgement is said
    while the answer is late."""

    text: str
    acknowledgement: bool = False


@dataclass(frozen=True)
class Finished:
    """The end: the whole answer (`handled`), or, not handled, what to say
    instead (`not-handled`)."""

    text: str
    handled: bool


Reply = Command | AnswerStarted | Said | Finished


@dataclass(frozen=True)
class AckPolicy:
    # Claude's first token typically comes 0.4-0.8 s after the request: an
    # acknowledgement at 0.5 s covers the slow half and stays out of the way
    # of the fast one (it takes ~0.8 s to say, and the answer waits for it).
    ack_after_s: float = 0.5
    first_token_timeout_s: float = 5.0

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        group = parser.add_argument_group("answers")
        group.add_argument(
            f"--{prefix}ack-after-ms",
            type=float,
            default=AckPolicy.ack_after_s * 1000,
            help="Say 'One moment.' when the LLM's first token is later (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}llm-timeout-ms",
            type=float,
            default=AckPolicy.first_token_timeout_s * 1000,
            help="Give up on a first token later than this (%(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> AckPolicy:
        return cls(
            ack_after_s=option(args, prefix, "ack-after-ms") / 1000,
            first_token_timeout_s=option(args, prefix, "llm-timeout-ms") / 1000,
        )


class Responder:
    def __init__(self, house: HouseStore, llm: Llm | None, policy: AckPolicy):
        self.house = house
        self.llm = llm if llm is not None and llm.available else None
        self.policy = policy

    async def match(self, text: str, trace: Trace | None = None) -> Match | None:
        match = await self.house.match(text) if text.strip() else None
        if trace is not None:
            trace.mark("intent")
            trace.notes.append(f"intent {match.intent}" if match else "no intent")
        return match

    async def respond(
        self, text: str, conversation: str, trace: Trace
    ) -> AsyncGenerator[Reply, None]:
        """A device command, else the LLM's answer, as replies."""
        if not text.strip():
            yield Finished(EMPTY, handled=False)
            return
        match = await self.match(text, trace)
        if match is not None:
            yield Command(match)
            return
        async for reply in self.answer(text, conversation, trace):
            yield reply

    async def answer(
        self, text: str, conversation: str, trace: Trace
    ) -> AsyncGenerator[Reply, None]:
        """The LLM's answer, acknowledged when late, an apology on failure."""
        if self.llm is None:
            yield Finished(NO_LLM, handled=False)
            return
        yield AnswerStarted()
        answer = ""
        deltas = self.llm.stream(conversation, text)
        async with contextlib.aclosing(deltas):
            first = asyncio.ensure_future(anext(deltas))
            try:
                done, _ = await asyncio.wait({first}, timeout=self.policy.ack_after_s)
                if not done:
                    trace.notes.append("llm late: acknowledged")
                    yield Said(ACK, acknowledgement=True)
                answer = await asyncio.wait_for(first, self._left_for_first())
            except StopAsyncIteration:
                pass
            except Exception as err:  # timeout, 429, 500, unreachable
                _LOGGER.warning("LLM failed: %s", type(err).__name__)
                trace.notes.append(f"llm {type(err).__name__}")
                yield Finished(LLM_DOWN, handled=False)
                return
            finally:
                first.cancel()  # let the generator stop before aclosing closes it
                await asyncio.wait({first})
            trace.mark("first_token")
            if answer:
                yield Said(answer)
            try:
                async for delta in deltas:
                    answer += delta
                    yield Said(delta)
            except Exception as err:  # cut mid-answer: heard, never silence
                _LOGGER.warning("LLM stream broke: %s", type(err).__name__)
                trace.notes.append(f"llm {type(err).__name__} mid-answer")
                answer += " " + LLM_BROKE
                yield Said(" " + LLM_BROKE)
        yield Finished(answer, handled=True)

    def _left_for_first(self) -> float:
        return max(0.0, self.policy.first_token_timeout_s - self.policy.ack_after_s)
