"""The house the matcher knows: entities (name, aliases, domain, area), areas,
floors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol

_NAME = vol.All(str, vol.Strip, vol.Length(min=1, max=200))

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
class House:
    entities: list[dict[str, Any]] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    floors: list[str] = field(default_factory=list)

    @staticmethod
    def from_json(data: Any) -> House:
        """Validated house; raises vol.Invalid naming the bad field."""
        valid = HOUSE_SCHEMA(data)
        areas = list(
            dict.fromkeys(
                valid["areas"] + [e["area"] for e in valid["entities"] if e.get("area")]
            )
        )
        return House(valid["entities"], areas, valid["floors"])

    @staticmethod
    def from_file(path: Path | str) -> House:
        return House.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def as_json(self) -> dict[str, Any]:
        return {"entities": self.entities, "areas": self.areas, "floors": self.floors}


def describe_error(err: vol.Invalid) -> str:
    where = ".".join(str(part) for part in err.path) or "house"
    return f"{where}: {err.msg}"
