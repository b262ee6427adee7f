"""Which device commands need a spoken confirmation before they run: locks,
alarm panels, sirens, valves, doors, gates and garage doors (and any domain
the user names), and thermostats set outside a sane range.

A command is judged by every entity it may reach: by name, else by area,
floor or domain (a floor's areas are not known here, so a floor reaches
every entity of the domain). A cover is judged by Home Assistant's device
class where the house came with one, by its names ("door", "garage",
"gate") only where it did not."""

from __future__ import annotations

from typing import Any

from .matcher import Match
from .model import TEMPERATURE_UNITS, House, States, state_key

CONFIRM_DOMAINS = frozenset({"lock", "alarm_control_panel", "siren", "valve"})
# Intents that only tell: "is the front door locked?" operates nothing.
QUESTIONS = frozenset(
    {
        "HassGetState",
        "HassClimateGetTemperature",
        "HassGetCurrentDate",
        "HassGetCurrentTime",
        "HassGetWeather",
        "HassTimerStatus",
        "HassNevermind",
    }
)
CONFIRM_COVER_CLASSES = frozenset({"door", "garage", "gate"})
CONFIRM_COVER_WORDS = ("door", "garage", "gate")
# Set-points asked about outside these, in the house's unit (either range
# where the house did not say which unit it uses).
SANE_SETPOINTS = dict(zip(TEMPERATURE_UNITS, ((5.0, 35.0), (41.0, 95.0))))
_VERBS = {
    ("lock", "HassTurnOn"): "Lock",
    ("lock", "HassTurnOff"): "Unlock",
    ("cover", "HassTurnOn"): "Open",
    ("cover", "HassTurnOff"): "Close",
    ("alarm_control_panel", "HassTurnOn"): "Arm",
    ("alarm_control_panel", "HassTurnOff"): "Disarm",
    ("valve", "HassTurnOn"): "Open",
    ("valve", "HassTurnOff"): "Close",
}


def targets(match: Match, house: House) -> list[dict[str, Any]]:
    """The house's entities the command may act on."""
    slots = {key: str(value).lower() for key, value in match.slots.items()}
    if name := slots.get("name"):
        return [
            entity
            for entity in house.entities
            if name in (n.lower() for n in [entity["name"], *entity.get("aliases", [])])
        ]
    domain, area = slots.get("domain"), slots.get("area")
    if not domain and not area and "floor" not in slots:
        return []  # e.g. a timer: no entity
    return [
        entity
        for entity in house.entities
        if (not domain or entity["domain"] == domain)
        and (not area or str(entity.get("area") or "").lower() == area)
    ]


def needs_confirmation(
    match: Match,
    house: House,
    domains: frozenset[str] = CONFIRM_DOMAINS,
    states: States | None = None,
) -> bool:
    """Does the command act on something a stranger must not operate?"""
    if match.intent in QUESTIONS:
        return False
    if match.intent == "HassClimateSetTemperature" and not sane_setpoint(
        match.slots.get("temperature"), house.temperature_unit
    ):
        return True
    known = house.states if states is None else states
    return any(
        _guarded(entity, match, known, domains) for entity in targets(match, house)
    )


def sane_setpoint(value: Any, unit: str | None) -> bool:
    """Is it a thermostat target no one would set by mistake?"""
    try:
        degrees = float(value)
    except (TypeError, ValueError):
        return False
    ranges = (
        [SANE_SETPOINTS[unit]] if unit in SANE_SETPOINTS else SANE_SETPOINTS.values()
    )
    return any(low <= degrees <= high for low, high in ranges)  # never NaN


def _guarded(
    entity: dict[str, Any], match: Match, states: States, domains: frozenset[str]
) -> bool:
    if entity["domain"] in domains:
        return True
    if entity["domain"] != "cover":
        return False
    state = states.get(state_key(entity["domain"], entity["name"]))
    device_class = entity.get("device_class") or (
        state.attributes.get("device_class") if state else None
    )
    if device_class:  # Home Assistant's word for what it is
        return str(device_class) in CONFIRM_COVER_CLASSES
    described = " ".join(
        str(part).lower()
        for part in (
            match.slots.get("device_class"),
            entity["name"],
            *entity.get("aliases", []),
        )
        if part
    )
    return any(word in described for word in CONFIRM_COVER_WORDS)


def question(matches: list[Match], house: House) -> str:
    """What to ask before running them: "Unlock Front Door?"."""
    asks = []
    for match in matches:
        if match.intent == "HassClimateSetTemperature":
            asks.append(
                f"Set {_heating(match.slots)} to {match.slots.get('temperature')}"
            )
            continue
        reached = targets(match, house)
        domain = reached[0]["domain"] if reached else match.slots.get("domain")
        verb = _VERBS.get((str(domain), match.intent))
        what = match.slots.get("name") or _everything(match.slots)
        if verb is None:
            verb = {"HassTurnOn": "Turn on", "HassTurnOff": "Turn off"}.get(
                match.intent, "Go ahead with"
            )
        asks.append(f"{verb} {what}")
    return " and ".join(asks) + "?"


def _everything(slots: dict[str, Any]) -> str:
    """What a command by area, floor or domain reaches, as said in a question:
    "the locks in Hallway", "everything in Upstairs"."""
    kind = f"the {slots['domain']}s" if slots.get("domain") else "everything"
    where = slots.get("area") or slots.get("floor")
    return f"{kind} in {where}" if where else kind


def _heating(slots: dict[str, Any]) -> str:
    """What a set-point is for: "Living Room Thermostat", "the temperature"."""
    if slots.get("name"):
        return str(slots["name"])
    where = slots.get("area") or slots.get("floor")
    return f"the temperature in {where}" if where else "the temperature"
