"""The house the matcher knows: entities (name, aliases, domain, area), areas,
floors; and what the entities are doing now (state and a few attributes),
which only the LLM is told."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol

_NAME = vol.All(str, vol.Strip, vol.Length(min=1, max=200))
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
_VALUE = vol.Any(None, bool, int, float, vol.All(str, vol.Length(max=200)))
_ATTRIBUTES = vol.Schema(
    {vol.Optional(key): _VALUE for key in STATE_ATTRIBUTES}, extra=vol.REMOVE_EXTRA
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
                            vol.Match(r"^[a-z_]+$", msg="domain must be like 'light'"),
                        ),
                        vol.Optional("area"): vol.Any(None, _NAME),
                        vol.Optional("aliases", default=list): [_NAME],
                        vol.Optional("state"): vol.Any(
                            None, vol.All(str, vol.Length(max=255))
                        ),
                        vol.Optional("attributes"): _ATTRIBUTES,
                    },
                    extra=vol.REMOVE_EXTRA,
                )
            ],
            vol.Length(max=10_000),
        ),
        vol.Optional("areas", default=list): [_NAME],
        vol.Optional("floors", default=list): [_NAME],
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
                isinstance(value, str) and len(value) <= 200
            ):
                kept[key] = value
        return EntityState(state[:255], kept)


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
    # The states pushed with the house: not part of what the matcher
    # compiles, so a push that changes only states compares equal.
    states: States = field(default_factory=dict, compare=False)

    @staticmethod
    def from_json(data: Any) -> House:
        """Validated house; raises vol.Invalid naming the bad field."""
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
        return House(valid["entities"], areas, valid["floors"], states)

    @staticmethod
    def from_file(path: Path | str) -> House:
        return House.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def as_json(self) -> dict[str, Any]:
        return {"entities": self.entities, "areas": self.areas, "floors": self.floors}


def describe_error(err: vol.Invalid) -> str:
    where = ".".join(str(part) for part in err.path) or "house"
    return f"{where}: {err.msg}"
