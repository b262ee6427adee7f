"""The responder's replies as Wyoming events, for the handle service and the
stack's pipeline endpoint alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.intent import Entity, Intent, IntentsStart, IntentsStop

from ..house.matcher import Match
from .responder import AnswerStarted, Command, Reply, Said


def intent_event(match: Match, text: str, context: dict[str, Any] | None) -> Event:
    entities = [Entity(name=name, value=value) for name, value in match.slots.items()]
    return Intent(
        name=match.intent, entities=entities, text=text, context=context
    ).event()


def intent_events(
    matches: Sequence[Match], texts: Sequence[str], context: dict[str, Any] | None
) -> list[Event]:
    """One `intent`, or several between `intents-start` and `intents-stop`
    (wyoming 1.9; a client that predates them runs the first)."""
    events = [intent_event(m, text, context) for m, text in zip(matches, texts)]
    if len(events) == 1:
        return events
    return [IntentsStart(context=context).event(), *events, IntentsStop().event()]


def reply_events(
    reply: Reply, started: bool, context: dict[str, Any] | None = None
) -> list[Event]:
    """`started`: an AnswerStarted came before (its `handled-stop` is due)."""
    stop = [HandledStop().event()] if started else []
    if isinstance(reply, Command):
        texts = [match.response for match in reply.matches]
        return stop + intent_events(reply.matches, texts, context)
    if isinstance(reply, AnswerStarted):
        return [HandledStart(context=context).event()]
    if isinstance(reply, Said):
        text = reply.text + " " if reply.acknowledgement else reply.text
        return [HandledChunk(text=text).event()]
    if reply.handled:
        return stop + [Handled(text=reply.text, context=context).event()]
    return stop + [NotHandled(text=reply.text, context=context).event()]
