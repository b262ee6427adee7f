"""The house the matcher knows: entities (name, aliases, domain, area), areas,
floors; and what the entities are doing now (state and a few attributes),
which only the LLM is told."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol

MAX_NAME = 200
MAX_ENTITIES = 10_000
DOMAIN = re.compile(r"^[a-z_]+$")
_NAME = vol.All(str, vol.Strip, vol.Length(min=1, max=MAX_NAME))
MAX_STATE = 255
MAX_VALUE = 200
# The attributes an answer or a command may need; anything else is dropped.
STATE_ATTRIBUTES = (
    "brightness",  # 0-255, as Home Assistant has it
    "color_temp_kelvin",
    "current_temperature",
    "temperature",  # a thermostat's target
    "hvac_action",
    "current_position",
    "percentage",
    "volume_level",  # 0-1
    "is_volume_muted",
    "media_title",
    "media_artist",
    "unit_of_measurement",
    "device_class",
)
_KEPT = frozenset(STATE_ATTRIBUTES)
_VALUE = vol.Any(None, bool, int, float, vol.All(str, vol.Length(max=MAX_VALUE)))
_ATTRIBUTES = vol.Schema(
    {vol.Optional(key): _VALUE for key in STATE_ATTRIBUTES}, extra=vol.REMOVE_EXTRA
)

# From Home Assistant: an entity's device class (a cover's "gate"...), and a
# thermostat's unit (the unit system's).
DESCRIPTIONS = ("device_class", "temperature_unit")
_VALUE_TEXT = vol.Any(None, vol.All(str, vol.Length(max=MAX_VALUE)))
TEMPERATURE_UNITS = ("°C", "°F")

# The entities Assist may not use, by their names only: a command that names
# one is told so instead of going unanswered. Nothing else about them is kept.
UNEXPOSED_SCHEMA = vol.All(
    [
        vol.Schema(
            {
                vol.Required("name"): _NAME,
                vol.Required("domain"): vol.All(str, vol.Match(DOMAIN)),
                vol.Optional("aliases", default=list): [_NAME],
            },
            extra=vol.REMOVE_EXTRA,
        )
    ],
    vol.Length(max=MAX_ENTITIES),
)

HOUSE_SCHEMA = vol.Schema(
    {
        vol.Required("entities"): vol.All(
            [
                vol.Schema(
                    {
                        vol.Required("name"): _NAME,
                        vol.Required("domain"): vol.All(
                            str,
                            vol.Match(DOMAIN, msg="domain must be like 'light'"),
                        ),
                        vol.Optional("device_class"): _VALUE_TEXT,
                        vol.Optional("temperature_unit"): _VALUE_TEXT,
                        vol.Optional("area"): vol.Any(None, _NAME),
                        vol.Optional("aliases", default=list): [_NAME],
                        vol.Optional("state"): vol.Any(
                            None, vol.All(str, vol.Length(max=MAX_STATE))
                        ),
                        vol.Optional("attributes"): _ATTRIBUTES,
                    },
                    extra=vol.REMOVE_EXTRA,
                )
            ],
            vol.Length(max=MAX_ENTITIES),
        ),
        vol.Optional("areas", default=list): [_NAME],
        vol.Optional("floors", default=list): [_NAME],
        vol.Optional("unexposed", default=list): UNEXPOSED_SCHEMA,
    }
)


@dataclass(frozen=True)
class EntityState:
    state: str
    attributes: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def of(state: str, attributes: dict[str, Any]) -> EntityState:
        """From all of an entity's attributes, those the LLM may need."""
        kept = {}
        for key in STATE_ATTRIBUTES:
            value = attributes.get(key)
            if isinstance(value, (bool, int, float)) or (
                isinstance(value, str) and len(value) <= MAX_VALUE
            ):
                kept[key] = value
        return EntityState(state[:MAX_STATE], kept)


# By (domain, lowercase name): how both Home Assistant's states and a pushed
# house name an entity.
States = dict[tuple[str, str], EntityState]


def state_key(domain: str, name: str) -> tuple[str, str]:
    return (domain, name.lower())


@dataclass(frozen=True)
class House:
    entities: list[dict[str, Any]] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    floors: list[str] = field(default_factory=list)
    unexposed: list[dict[str, Any]] = field(default_factory=list)
    # The states pushed with the house: not part of what the matcher
    # compiles, so a push that changes only states compares equal.
    states: States = field(default_factory=dict, compare=False)

    @staticmethod
    def from_json(data: Any) -> House:
        """Validated house; raises vol.Invalid naming the bad field."""
        valid = _valid_fast(data)
        if valid is None:  # something is wrong: the schema says what
            valid = HOUSE_SCHEMA(data)
        states: States = {}
        for entity in valid["entities"]:
            state = entity.pop("state", None)
            attributes = entity.pop("attributes", None) or {}
            if state is not None:
                key = state_key(entity["domain"], entity["name"])
                states[key] = EntityState(state, attributes)
        areas = list(
            dict.fromkeys(
                valid["areas"] + [e["area"] for e in valid["entities"] if e.get("area")]
            )
        )
        return House(
            valid["entities"], areas, valid["floors"], valid["unexposed"], states
        )

    @staticmethod
    def from_file(path: Path | str) -> House:
        return House.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def temperature_unit(self) -> str | None:
        """The unit its thermostats are set in, where Home Assistant said."""
        units = (entity.get("temperature_unit") for entity in self.entities)
        return next((unit for unit in units if unit in TEMPERATURE_UNITS), None)

    def as_json(self) -> dict[str, Any]:
        house = {"entities": self.entities, "areas": self.areas, "floors": self.floors}
        return {**house, "unexposed": self.unexposed} if self.unexposed else house


def _valid_fast(data: Any) -> dict[str, Any] | None:
    """What HOUSE_SCHEMA returns for a valid house, ~20x faster (a 5,000-entity
    push is validated on the event loop); None for anything it would not accept
    as it is."""
    keys = {"entities", "areas", "floors", "unexposed"}
    if not isinstance(data, dict) or not set(data) <= keys:
        return None
    entities = data.get("entities")
    if not isinstance(entities, list) or len(entities) > MAX_ENTITIES:
        return None
    valid_entities = []
    for entity in entities:
        valid = _named(entity)
        if valid is None:
            return None
        for key in DESCRIPTIONS:
            if key in entity:
                value = entity[key]
                if value is not None and (
                    not isinstance(value, str) or len(value) > MAX_VALUE
                ):
                    return None
                valid[key] = value
        if "area" in entity:
            area = entity["area"]
            if area is not None and (area := _name(area)) is None:
                return None
            valid["area"] = area
        if not _state_fast(entity, valid):
            return None
        valid_entities.append(valid)
    areas, floors = _names(data.get("areas", [])), _names(data.get("floors", []))
    unexposed = data.get("unexposed", [])
    if not isinstance(unexposed, list) or len(unexposed) > MAX_ENTITIES:
        return None
    unexposed = [_named(entity) for entity in unexposed]
    if areas is None or floors is None or None in unexposed:
        return None
    return {
        "entities": valid_entities,
        "areas": areas,
        "floors": floors,
        "unexposed": unexposed,
    }


def _named(entity: Any) -> dict[str, Any] | None:
    """An entity's name, domain and aliases; None for what the schema would
    refuse."""
    if not isinstance(entity, dict):
        return None
    name, domain = _name(entity.get("name")), entity.get("domain")
    aliases = _names(entity.get("aliases", []))
    if name is None or aliases is None:
        return None
    if not isinstance(domain, str) or not DOMAIN.match(domain):
        return None
    return {"name": name, "domain": domain, "aliases": aliases}


def _state_fast(entity: dict[str, Any], valid: dict[str, Any]) -> bool:
    """The entity's state and kept attributes into `valid`; False for what
    the schema would refuse."""
    state = entity.get("state")
    if state is not None:
        if not isinstance(state, str) or len(state) > MAX_STATE:
            return False
        valid["state"] = state
    attributes = entity.get("attributes")
    if attributes is None:
        return "attributes" not in entity
    if not isinstance(attributes, dict):
        return False
    kept = {}
    for key, value in attributes.items():
        if key not in _KEPT:
            continue
        if isinstance(value, str) and len(value) > MAX_VALUE:
            return False
        if value is not None and not isinstance(value, (bool, int, float, str)):
            return False
        kept[key] = value
    valid["attributes"] = kept
    return True


def _name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_NAME else None


def _names(values: Any) -> list[str] | None:
    if not isinstance(values, list):
        return None
    names = [_name(value) for value in values]
    return None if None in names else names  # type: ignore[return-value]


def describe_error(err: vol.Invalid) -> str:
    where = ".".join(str(part) for part in err.path) or "house"
    return f"{where}: {err.msg}"
