"""The responder's replies as Wyoming events, for the handle service and the
stack's pipeline endpoint alike."""

from __future__ import annotations

from typing import Any

from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.intent import Entity, Intent

from .matcher import Match
from .responder import AnswerStarted, Command, Reply, Said


def intent_event(match: Match, text: str, context: dict[str, Any] | None) -> Event:
    entities = [Entity(name=name, value=value) for name, value in match.slots.items()]
    return Intent(
        name=match.intent, entities=entities, text=text, context=context
    ).event()


def reply_events(
    reply: Reply, started: bool, context: dict[str, Any] | None = None
) -> list[Event]:
    """`started`: an AnswerStarted came before (its `handled-stop` is due)."""
    if isinstance(reply, Command):
        return [intent_event(reply.match, reply.match.response, context)]
    if isinstance(reply, AnswerStarted):
        return [HandledStart(context=context).event()]
    if isinstance(reply, Said):
        text = reply.text + " " if reply.acknowledgement else reply.text
        return [HandledChunk(text=text).event()]
    events = [HandledStop().event()] if started else []
    if reply.handled:
        return events + [Handled(text=reply.text, context=context).event()]
    return events + [NotHandled(text=reply.text, context=context).event()]
