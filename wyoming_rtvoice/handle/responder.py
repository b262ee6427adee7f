"""The responder: what to answer to a transcript, knowing no protocol.

A device command is matched in milliseconds; anything else goes to the LLM,
which may answer (streamed) or call the house's intents as tools: a tool
call becomes the same `Command` a matched sentence gives. The policies are
here, once, for the handle service and the in-process pipeline alike:
- a command that names an entity Assist may not use (not exposed): said so
  (not handled), whether or not an LLM is configured;
- no LLM configured: a short spoken answer saying so (not handled);
- the first token later than `ack_after_s`: "One moment." first;
- no first token (timeout, HTTP 429/500, unreachable): an apology (not handled);
- the stream cut mid-answer (or mid-tool-call): the answer so far and an
  apology; no tool call of a broken answer runs;
- a tool call the house cannot take: what was wrong, said (not handled);
- a command that needs a confirmation (safety.py: a lock, alarm panel,
  siren, valve, door, gate, odd set-point, or any domain of
  `confirm_domains`) from the LLM, or from a sentence when the caller asks
  for it, is not run but asked about ("Unlock Front Door?"); a bare yes as
  the conversation's next turn, within `CONFIRM_WITHIN_S`, runs it; a bare no
  is acknowledged; anything else drops it and is answered as a new turn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import EllipsisType
from typing import TYPE_CHECKING

from anthropic import APIError

from ..config import option
from ..house.matcher import Match
from ..house.safety import CONFIRM_DOMAINS, needs_confirmation, question
from ..house.tools import BadCall, home_data
from ..peers import Rate
from ..trace import Trace
from .llm import Llm, Prompt, ToolCall

if TYPE_CHECKING:
    from ..house.store import HouseStore

_LOGGER = logging.getLogger(__name__)

ACK = "One moment."
NO_LLM = "I can control your devices, but no assistant is set up to answer questions."
NOT_EXPOSED = "{name} is not exposed to Assist."
LLM_DOWN = "Sorry, I can't reach the assistant right now."
LLM_BROKE = "Sorry, I lost my train of thought."
EMPTY = "Sorry, I didn't hear anything."
DROPPED = "Okay, I won't."
OVER_BUDGET = "I've had a lot of questions just now. Ask me again in a minute."
PHRASES = (ACK, NO_LLM, LLM_DOWN, LLM_BROKE, EMPTY, DROPPED, OVER_BUDGET)
CONFIRM_WITHIN_S = 30.0
# A confirmation is a bare yes or no: these words and nothing else but
# filler. Anything more ("Okay, what time is it?", "Yeah right.", "Please turn
# on the kitchen light.") is a new turn, and the command waiting is dropped.
_FILLER = "please|thanks|thank you|now|right now|then"
_YES_WORDS = (
    "yes|yeah|yep|yup|sure|sure thing|ok|okay|all right|alright|confirm|"
    "confirmed|correct|absolutely|definitely|certainly|affirmative|of course|"
    "do it|go ahead|go on|go for it|please do|let's do it"
)
_NO_WORDS = (
    "no|nope|nah|cancel|stop|never mind|nevermind|don't|dont|do not|not now|"
    "wait|leave it|forget it|no way"
)


def _bare(words: str) -> re.Pattern[str]:
    """One or more of `words`, with filler before and after (and nothing else)."""
    return re.compile(rf"(?:(?:{_FILLER}) )*(?:{words}) (?:(?:{_FILLER}|{words}) )*")


_YES, _NO = _bare(_YES_WORDS), _bare(_NO_WORDS)


@dataclass(frozen=True)
class Command:
    """Device commands: the client executes them (`intent` events, framed
    by `intents-start`/`intents-stop` when there are several)."""

    matches: tuple[Match, ...]


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
    asked: bool = False  # a command waits for a yes


Reply = Command | AnswerStarted | Said | Finished


@dataclass(frozen=True)
class AckPolicy:
    # From published first-token times of Claude Haiku 4.5 (docs/services.md,
    # "When the first token is late"): ~0.5 s at the median, ~1 s at p90.
    # At 0.8 s one turn in five hears "One moment.", and the silence before
    # the first sound stays under ~1.4 s after the user stopped; at 0.5 s
    # every second answer would wait ~0.5 s behind the acknowledgement.
    ack_after_s: float = 0.8
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


@dataclass(frozen=True)
class _Pending:
    matches: tuple[Match, ...]
    until: float


def yes_or_no(text: str) -> bool | None:
    """A bare spoken yes (True), a bare no (False), or anything else (None:
    not a yes, so whatever waited for one is not done)."""
    phrase = "".join(word + " " for word in re.findall(r"[a-z']+", text.lower()))
    if _YES.fullmatch(phrase):
        return True
    if _NO.fullmatch(phrase):
        return False
    return None


class Responder:
    def __init__(
        self,
        house: HouseStore,
        llm: Llm | None,
        policy: AckPolicy,
        confirm_domains: frozenset[str] = CONFIRM_DOMAINS,
        rate: Rate | None = None,
    ):
        self.house = house
        self.llm = llm if llm is not None and llm.available else None
        self.policy = policy
        self.confirm_domains = confirm_domains
        self.rate = rate or Rate(0, 0)  # LLM requests a minute
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._prompt: tuple[object, object, Prompt] | None = None

    def pending(self, conversation: str) -> bool:
        """Is a command of this conversation waiting for its yes or no?"""
        return conversation in self._pending

    async def match(self, text: str, trace: Trace | None = None) -> Match | None:
        match = await self.house.match(text) if text.strip() else None
        if trace is not None:
            trace.mark("intent")
            trace.notes.append(f"intent {match.intent}" if match else "no intent")
        return match

    async def respond(
        self,
        text: str,
        conversation: str,
        trace: Trace,
        match: Match | None | EllipsisType = ...,
        confirm_commands: bool = False,
        client: str = "local",
    ) -> AsyncGenerator[Reply, None]:
        """A pending confirmation's yes or no, a device command, else the
        LLM's answer, as replies. `match`: the sentence's match when the
        caller has it already. `confirm_commands`: a matched command that
        needs a confirmation asks for it too (the pipeline, which runs
        commands itself). `client`: the address the LLM's budget is counted for."""
        if not text.strip():
            yield Finished(EMPTY, handled=False)
            return
        pending = self._pending.pop(conversation, None)
        if pending is not None and time.monotonic() < pending.until:
            verdict = yes_or_no(text)
            if verdict is not None:
                trace.notes.append("confirmed" if verdict else "not confirmed")
                if verdict:
                    yield Command(pending.matches)
                else:
                    async for reply in _say(DROPPED):
                        yield reply
                return
        if match is ...:
            match = await self.match(text, trace)
        if match is not None:
            if confirm_commands and self.must_confirm([match]):
                async for reply in self._ask(conversation, (match,), trace):
                    yield reply
            else:
                yield Command((match,))
            return
        if (name := await self.house.not_exposed(text)) is not None:
            trace.notes.append("not exposed")
            yield Finished(NOT_EXPOSED.format(name=name), handled=False)
            return
        async for reply in self.answer(text, conversation, trace, client):
            yield reply

    def must_confirm(self, matches: list[Match] | tuple[Match, ...]) -> bool:
        house = self.house.snapshot.house
        states = self.house.states
        return any(
            needs_confirmation(m, house, self.confirm_domains, states) for m in matches
        )

    async def _ask(
        self, conversation: str, matches: tuple[Match, ...], trace: Trace
    ) -> AsyncGenerator[Reply, None]:
        """Keep the commands until the conversation's next turn says yes."""
        trace.notes.append("asked to confirm")
        self._pending[conversation] = _Pending(
            matches, time.monotonic() + CONFIRM_WITHIN_S
        )
        while len(self._pending) > 1000:
            self._pending.popitem(last=False)
        async for reply in _say(
            question(list(matches), self.house.snapshot.house), True
        ):
            yield reply

    def prompt(self) -> Prompt:
        """The house as data and its intents as tools, for the current house
        and states (made again only when either changes)."""
        snapshot, states = self.house.snapshot, self.house.states
        made = self._prompt
        if made is None or made[0] is not snapshot or made[1] is not states:
            tools = tuple(snapshot.toolbox.tools)
            home = home_data(snapshot.house, states) if tools else ""
            made = self._prompt = (snapshot, states, Prompt(home, tools))
        return made[2]

    async def answer(
        self, text: str, conversation: str, trace: Trace, client: str = "local"
    ) -> AsyncGenerator[Reply, None]:
        """The LLM's answer or commands, acknowledged when late, an apology
        on failure, a short answer over the budget."""
        if self.llm is None:
            yield Finished(NO_LLM, handled=False)
            return
        if not self.rate.take(client):
            trace.notes.append("llm over budget")
            yield Finished(OVER_BUDGET, handled=False)
            return
        started = False
        answer = ""
        calls: list[ToolCall] = []
        deltas = self.llm.stream(conversation, text, self.prompt())
        async with contextlib.aclosing(deltas):
            first = asyncio.ensure_future(anext(deltas))
            try:
                done, _ = await asyncio.wait({first}, timeout=self.policy.ack_after_s)
                if not done:
                    trace.notes.append("llm late: acknowledged")
                    started = True
                    yield AnswerStarted()
                    yield Said(ACK, acknowledgement=True)
                item: str | ToolCall | None = await asyncio.wait_for(
                    first, self._left_for_first()
                )
            except StopAsyncIteration:
                item = None
            except Exception as err:  # timeout, 429, 500, unreachable; cut, bad JSON
                _LOGGER.warning("LLM failed: %s", type(err).__name__)
                trace.notes.append(f"llm {type(err).__name__}")
                down = isinstance(err, (APIError, TimeoutError))
                yield Finished(LLM_DOWN if down else LLM_BROKE, handled=False)
                return
            finally:
                first.cancel()  # let the generator stop before aclosing closes it
                await asyncio.wait({first})
            trace.mark("first_token")
            try:
                while item is not None:
                    if isinstance(item, ToolCall):
                        calls.append(item)
                    else:
                        if not started:
                            started = True
                            yield AnswerStarted()
                        answer += item
                        yield Said(item)
                    item = await anext(deltas, None)
            except Exception as err:  # cut mid-answer: heard, never silence
                _LOGGER.warning("LLM stream broke: %s", type(err).__name__)
                trace.notes.append(f"llm {type(err).__name__} mid-answer")
                if not answer:
                    yield Finished(LLM_BROKE, handled=False)
                    return
                answer += " " + LLM_BROKE
                yield Said(" " + LLM_BROKE)
                calls = []  # a broken answer's calls never run
        if calls:
            async for reply in self._commands(conversation, calls, trace):
                yield reply
            return
        if not started:
            yield AnswerStarted()
        yield Finished(answer, handled=True)

    async def _commands(
        self, conversation: str, calls: list[ToolCall], trace: Trace
    ) -> AsyncGenerator[Reply, None]:
        """The model's tool calls: run (as commands), asked about, or refused
        with what was wrong; what became of them goes into the history."""
        assert self.llm is not None
        toolbox = self.house.snapshot.toolbox
        try:
            matches = tuple(toolbox.command(c.name, c.input) for c in calls)
        except BadCall as err:
            trace.notes.append(f"llm tool call refused: {err}")
            self._results(conversation, calls, f"Not done: {err}")
            yield Finished(str(err), handled=False)
            return
        trace.notes.append("llm " + ", ".join(m.intent for m in matches))
        if self.must_confirm(matches):
            self._results(
                conversation, calls, "Not done yet: asked the user to confirm."
            )
            async for reply in self._ask(conversation, matches, trace):
                yield reply
            return
        self.llm.conversations.resolve(
            conversation, {c.id: m.response for c, m in zip(calls, matches)}
        )
        yield Command(matches)

    def _results(self, conversation: str, calls: list[ToolCall], text: str) -> None:
        assert self.llm is not None
        self.llm.conversations.resolve(conversation, {c.id: text for c in calls})

    def _left_for_first(self) -> float:
        return max(0.0, self.policy.first_token_timeout_s - self.policy.ack_after_s)


async def _say(text: str, asked: bool = False) -> AsyncGenerator[Reply, None]:
    yield AnswerStarted()
    yield Said(text)
    yield Finished(text, handled=True, asked=asked)
