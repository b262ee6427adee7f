"""The house's intents as tools for the LLM, a tool call turned back into the
same `Match` a hassil sentence gives, and the house as data for the prompt.

Tools are offered only for the intents that act on the house (read-only
questions are answered from the states in the prompt) and only for the
domains the house has, with slot schemas from home-assistant-intents'
intents.json. A tool call is validated against the house before anything
is sent: names, areas, floors and domains must be the house's (an alias
becomes its entity's name), numbers within range, no slot the tool lacks.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import home_assistant_intents
import voluptuous as vol

from .matcher import Match, Matcher
from .model import House, States, state_key

if TYPE_CHECKING:  # the tools' shape; the house does not load the LLM's SDK
    from anthropic.types import ToolParam

# The intents the model may call. Left to the sentences: read-only intents
# (the states are in the prompt), lists, broadcasts, small talk, and the
# timer intents that need a running timer's details.
TOOL_INTENTS = (
    "HassTurnOn",
    "HassTurnOff",
    "HassLightSet",
    "HassClimateSetTemperature",
    "HassClimateSetFanMode",
    "HassSetPosition",
    "HassFanSetSpeed",
    "HassMediaPause",
    "HassMediaUnpause",
    "HassMediaNext",
    "HassMediaPrevious",
    "HassSetVolume",
    "HassSetVolumeRelative",
    "HassMediaPlayerMute",
    "HassMediaPlayerUnmute",
    "HassMediaSearchAndPlay",
    "HassVacuumStart",
    "HassVacuumReturnToBase",
    "HassVacuumCleanArea",
    "HassLawnMowerStartMowing",
    "HassLawnMowerDock",
    "HassStartTimer",
    "HassCancelAllTimers",
)
# Whose entities an intent acts on, when its intents.json domain is generic.
_INTENT_DOMAINS = {"HassSetPosition": {"cover", "valve"}}
_ENTITY_FREE = {"homeassistant", "assist_satellite"}
_NUMBERS: dict[str, tuple[str, float, float]] = {
    "brightness": ("integer", 0, 100),
    "position": ("integer", 0, 100),
    "percentage": ("integer", 0, 100),
    "volume_level": ("integer", 0, 100),
    "volume_step": ("integer", -100, 100),
    "hours": ("integer", 0, 24),
    "minutes": ("integer", 0, 1440),
    "seconds": ("integer", 0, 3600),
    "HassLightSet.temperature": ("integer", 1000, 10000),
    "HassClimateSetTemperature.temperature": ("number", 0, 100),
}
# conversation_command would run any sentence when a timer ends, unconfirmed.
_LEFT_OUT = {"conversation_command"}
_FREE_TEXT = {"HassStartTimer.name"}  # a timer's label, not an entity
_TARGETS = ("name", "area", "floor", "domain", "device_class")
_MEDIA_CLASSES = (
    "album app artist channel composer contributing_artist directory episode game "
    "genre image movie music playlist podcast season track tv_show url video"
).split()

NO_DEVICE = "Sorry, I couldn't find that device."
CANNOT = "Sorry, that device can't do that."
OUT_OF_RANGE = "Sorry, I can't set it to that."


class BadCall(Exception):
    """A tool call the house cannot take; its text is what to say."""


@cache
def _intents() -> dict[str, Any]:
    path = Path(home_assistant_intents.__file__).parent / "intents.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


class Toolbox:
    """The tools for one house (built when the house changes)."""

    def __init__(self, matcher: Matcher) -> None:
        house = matcher.house
        self._matcher = matcher
        self._entities: dict[str, dict[str, Any]] = {}
        for entity in house.entities:
            for name in [entity["name"], *entity.get("aliases", [])]:
                self._entities.setdefault(name.lower(), entity)
        self._areas = {area.lower(): area for area in house.areas}
        self._floors = {floor.lower(): floor for floor in house.floors}
        self.domains = sorted({entity["domain"] for entity in house.entities})
        self._domains: dict[str, set[str] | None] = {}
        self._schemas: dict[str, vol.Schema] = {}
        self.tools: list[ToolParam] = []
        for intent in TOOL_INTENTS if house.entities else ():
            spec = _intents()[intent]
            domains = _INTENT_DOMAINS.get(intent)
            if domains is None and spec["domain"] not in _ENTITY_FREE:
                domains = {spec["domain"]}
            if domains is not None and not domains & set(self.domains):
                continue  # nothing in the house it could act on
            slots = {
                slot: about
                for slot, about in spec["slots"].items()
                if slot not in _LEFT_OUT and (slot != "floor" or house.floors)
            }
            self._domains[intent] = domains
            self._schemas[intent] = vol.Schema(
                {
                    (vol.Required if about.get("required") else vol.Optional)(
                        slot
                    ): self._validator(intent, slot)
                    for slot, about in slots.items()
                }
            )
            self.tools.append(
                {
                    "name": intent,
                    "description": spec["description"],
                    "input_schema": {
                        "type": "object",
                        "properties": {
                            slot: self._property(intent, slot, about["description"])
                            for slot, about in slots.items()
                        },
                        "required": [s for s, a in slots.items() if a.get("required")],
                    },
                }
            )

    def _property(self, intent: str, slot: str, description: str) -> dict[str, Any]:
        number = _number(intent, slot)
        if number is not None:
            kind, low, high = number
            return {"type": kind, "minimum": low, "maximum": high}
        if slot == "domain":
            return {"type": "string", "enum": self.domains}
        if slot == "media_class":
            return {"type": "string", "enum": _MEDIA_CLASSES}
        if slot in _TARGETS:  # the system prompt says what they are
            return {"type": "string"}
        return {"type": "string", "description": description}

    def _validator(self, intent: str, slot: str) -> Any:
        number = _number(intent, slot)
        if number is not None:
            return _in_range(*number)
        if slot == "media_class":
            return vol.In(_MEDIA_CLASSES)
        return vol.All(str, vol.Strip, vol.Length(min=1, max=200))

    def command(self, name: str, tool_input: Any) -> Match:
        """The tool call as a command, checked against the house; raises
        BadCall with what to say instead."""
        schema = self._schemas.get(name)
        if schema is None:
            raise BadCall(CANNOT)
        try:
            slots: dict[str, Any] = dict(schema(tool_input))
        except vol.Invalid as err:
            number = bool(err.path) and _number(name, str(err.path[0])) is not None
            raise BadCall(OUT_OF_RANGE if number else CANNOT) from err
        if f"{name}.name" not in _FREE_TEXT and "name" in slots:
            entity = self._entities.get(slots["name"].lower())
            if entity is None:
                raise BadCall(NO_DEVICE)
            allowed = self._domains[name]
            if allowed is not None and entity["domain"] not in allowed:
                raise BadCall(CANNOT)
            slots["name"] = entity["name"]
        for slot, known in (("area", self._areas), ("floor", self._floors)):
            if slot in slots:
                if slots[slot].lower() not in known:
                    raise BadCall(NO_DEVICE)
                slots[slot] = known[slots[slot].lower()]
        if "domain" in slots and slots["domain"] not in self.domains:
            raise BadCall(NO_DEVICE)
        targeted = any(slot in _TARGETS for slot in self._schemas[name].schema)
        if targeted and not any(slot in slots for slot in _TARGETS):
            raise BadCall(NO_DEVICE)  # "here" is not known to every client
        return Match(
            name, slots, self._matcher.render(name, slots, self._key(name, slots))
        )

    def _key(self, intent: str, slots: dict[str, Any]) -> str:
        """Which of the intent's responses fits, as the sentences would pick it."""
        if intent == "HassLightSet":
            return next(
                (s for s in ("brightness", "color", "temperature") if s in slots),
                "brightness",
            )
        entity = self._entities.get(str(slots.get("name", "")).lower())
        domain = entity["domain"] if entity else slots.get("domain")
        if domain in ("light", "fan") and ("area" in slots or "floor" in slots):
            return f"{domain}s_{'area' if 'area' in slots else 'floor'}"
        if "device_class" in slots:
            return f"{domain}_device_class"
        return str(domain)


def _number(intent: str, slot: str) -> tuple[str, float, float] | None:
    return _NUMBERS.get(f"{intent}.{slot}") or _NUMBERS.get(slot)


def _in_range(kind: str, low: float, high: float) -> Any:
    def valid(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise vol.Invalid("not a number")
        if not low <= value <= high:  # NaN too
            raise vol.Invalid("out of range")
        if kind == "integer":
            if value != int(value):
                raise vol.Invalid("not a whole number")
            return int(value)
        return value

    return valid


_UNSAFE = str.maketrans(
    {c: f"\\u{ord(c):04x}" for c in "<>\u0085\u2028\u2029"}
)  # a tag, and the line breaks json.dumps leaves as they are


def quoted(text: str) -> str:
    """A name or state as a JSON string: it cannot end the home data or start
    a line of its own, whatever it says."""
    return json.dumps(text, ensure_ascii=False).translate(_UNSAFE)


def home_data(house: House, states: States) -> str:
    """The house as compact lines: per area, per domain, each entity's name
    (and aliases) and state."""
    by_area: dict[str, dict[str, list[str]]] = {}
    for entity in house.entities:
        names = "|".join(
            quoted(n) for n in [entity["name"], *entity.get("aliases", [])]
        )
        state = states.get(state_key(entity["domain"], entity["name"]))
        if state is not None:
            names += " " + _state(entity["domain"], state.state, state.attributes)
        area = entity.get("area") or ""
        by_area.setdefault(area, {}).setdefault(entity["domain"], []).append(names)
    lines = []
    for area, domains in by_area.items():
        where = f"area {quoted(area)}" if area else "no area"
        what = "; ".join(
            f"{domain} {', '.join(items)}" for domain, items in domains.items()
        )
        lines.append(f"{where}: {what}")
    if house.floors:
        lines.append("floors: " + ", ".join(quoted(floor) for floor in house.floors))
    return "\n".join(lines)


_PLAIN = re.compile(r"^[a-z_]{1,20}$|^-?[0-9]{1,9}([.][0-9]{1,3})?$|^[°%a-zA-Z/]{1,4}$")
_SHOWN_CLASS = {"cover", "binary_sensor"}  # where the class says what it is


def _value(value: Any) -> str:
    """A state or attribute value: a word or number as it is, anything else
    quoted."""
    text = str(value)
    return text if _PLAIN.match(text) else quoted(text)


def _state(domain: str, state: str, attributes: dict[str, Any]) -> str:
    parts = [_value(state)]
    for key, value in attributes.items():
        if value is None or key == "device_class" and domain not in _SHOWN_CLASS:
            continue
        if key == "unit_of_measurement":
            parts.append(_value(value))
        elif key == "brightness" and isinstance(value, (int, float)):
            parts.append(f"{round(value / 2.55)}%")
        elif key == "volume_level" and isinstance(value, (int, float)):
            parts.append(f"volume {round(value * 100)}%")
        else:
            parts.append(f"{key} {_value(value)}")
    return " ".join(parts)
