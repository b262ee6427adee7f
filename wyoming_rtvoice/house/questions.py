"""Questions about the house ("is the front door locked?", "which lights are
on?", "what is the temperature in the hall?") answered from the states the
house shares, with the sentences' own responses, as Home Assistant's agent
answers them. A state the house does not share is said to be unknown, never
guessed; timers live in Home Assistant, so their status is not answered
here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .matcher import Match, Matcher, Query, plain
from .model import EntityState, House, States, state_key
from .safety import targets

STATE_QUESTION = "HassGetState"
TEMPERATURE_QUESTION = "HassClimateGetTemperature"
TIMER_QUESTION = "HassTimerStatus"
TIMERS_UNKNOWN = "I can't see the timers from here."
TELL_STATE = frozenset({STATE_QUESTION, TEMPERATURE_QUESTION})  # answers say states


def answered(match: Match, matcher: Matcher, house: House, states: States) -> Match:
    """`match` with its answer from `states` when it is a question."""
    if match.intent == TIMER_QUESTION:
        return replace(match, response=TIMERS_UNKNOWN)
    if match.intent == TEMPERATURE_QUESTION:
        return replace(match, response=_temperature(match, house, states))
    if match.intent != STATE_QUESTION:
        return match
    reached = [
        (entity, states.get(state_key(entity["domain"], entity["name"])))
        for entity in targets(match, house)
    ]
    if not reached or any(state is None for _, state in reached):
        return replace(match, response=_unknown(match))
    wanted = str(match.slots.get("state", "")).lower()
    query = Query([], [])
    for entity, state in reached:
        assert state is not None
        found = _found(entity, state)
        if not wanted or state.state.lower() == wanted:
            query.matched.append(found)
        else:
            query.unmatched.append(found)
    return replace(
        match, response=matcher.render(match.intent, match.slots, match.key, query)
    )


def _found(entity: dict[str, Any], state: EntityState) -> dict[str, Any]:
    unit = state.attributes.get("unit_of_measurement")
    return {
        "name": entity["name"],
        "state": state.state,
        "state_with_unit": f"{state.state} {unit}" if unit else state.state,
    }


def _temperature(match: Match, house: House, states: States) -> str:
    """The thermostat's temperature: the one reached, or the house's only one."""
    thermostats = [
        entity
        for entity in targets(match, house) or house.entities
        if entity["domain"] == "climate"
    ]
    state = (
        states.get(state_key("climate", thermostats[0]["name"]))
        if len(thermostats) == 1
        else None
    )
    if state is None:
        return _unknown(match)
    degrees = state.attributes.get("current_temperature", state.state)
    try:  # a sensor's state is its temperature; "heat" is no temperature
        value = float(degrees)
    except (TypeError, ValueError):
        return _unknown(match)
    said = plain(value)
    return f"{said} degree" if said == 1 else f"{said} degrees"


def _unknown(match: Match) -> str:
    name = match.slots.get("name")
    return f"I don't know the state of {name}." if name else "I don't know that."
