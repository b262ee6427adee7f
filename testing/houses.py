"""Generated houses of any size, shaped like a real Home Assistant install's
exposed entities: the test house (tests/data/house.json, 203 entities) and
then devices named "<Area> <Kind>" in a few dozen areas, most of them
sensors, with the duplicates numbered, 5% with an alias, and a few floors.
Deterministic for a given size."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TEST_HOUSE = Path(__file__).resolve().parents[1] / "tests" / "data" / "house.json"

AREAS = [
    "Kitchen", "Living Room", "Dining Room", "Hallway", "Garage", "Porch", "Den",
    "Laundry Room", "Workshop", "Master Bedroom", "Guest Room", "Nursery",
    "Office", "Bathroom", "Attic", "Garden", "Basement", "Pantry", "Study",
    "Library", "Gym", "Sunroom", "Mudroom", "Playroom", "Family Room",
    "Kids Room", "Loft", "Patio", "Driveway", "Shed", "Utility Room", "Cellar",
    "Balcony", "Entrance", "Stairwell", "Closet", "Media Room",
    "Guest Bathroom", "Ensuite", "Greenhouse",
]  # fmt: skip
WINGS = ["North", "South", "East", "West", "Upper", "Lower"]
FLOORS = ["Basement", "Ground Floor", "First Floor", "Second Floor", "Top Floor"]
KINDS = {
    "sensor": ["Temperature", "Humidity", "Illuminance", "Power", "Energy",
               "Battery", "Air Quality", "Carbon Dioxide", "Pressure", "Voltage"],
    "binary_sensor": ["Motion", "Occupancy", "Door Contact", "Window Contact",
                      "Leak", "Smoke Detector", "Vibration"],
    "light": ["Ceiling Light", "Lamp", "Floor Lamp", "Spotlight", "LED Strip",
              "Pendant", "Sconce", "Downlight", "Night Light", "Desk Lamp",
              "Wall Light", "Chandelier"],
    "switch": ["Outlet", "Plug", "Heater Switch", "Fan Switch", "Power Strip",
               "Relay"],
    "media_player": ["Speaker", "TV", "Soundbar", "Radio"],
    "cover": ["Blinds", "Shade", "Curtains", "Shutter", "Skylight"],
    "climate": ["Thermostat", "Heat Pump", "Radiator"],
    "fan": ["Fan", "Ceiling Fan", "Air Purifier"],
    "lock": ["Door Lock", "Smart Lock"],
    "scene": ["Relax", "Movie Time", "Bright", "Evening", "Reading"],
    "input_boolean": ["Guest Mode", "Away Mode", "Quiet Mode"],
    "vacuum": ["Robot Vacuum"],
    "valve": ["Water Valve"],
}  # fmt: skip
# Share of exposed entities per domain, roughly as in large installs.
WEIGHTS = {
    "sensor": 33, "binary_sensor": 15, "light": 17, "switch": 12,
    "media_player": 4, "cover": 6, "climate": 2, "fan": 2, "lock": 1,
    "scene": 4, "input_boolean": 2, "vacuum": 0.5, "valve": 0.5,
}  # fmt: skip
ALIAS_WORDS = ["Big", "Small", "Old", "New", "Main"]


def house_json(entities: int, seed: int = 0) -> dict[str, Any]:
    """A house of `entities` entities, as PUT /api/entities takes it."""
    base = json.loads(TEST_HOUSE.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    extra = max(0, entities - len(base["entities"]))
    count = max(0, min(4 * len(AREAS), round(1.2 * extra**0.5)))
    areas = [
        AREAS[i % len(AREAS)] if i < len(AREAS)
        else f"{WINGS[i // len(AREAS) - 1]} {AREAS[i % len(AREAS)]}"
        for i in range(count)
    ]  # fmt: skip
    domains, weights = list(WEIGHTS), list(WEIGHTS.values())
    taken = {entity["name"].lower() for entity in base["entities"]}
    generated: list[dict[str, Any]] = []
    while len(generated) < extra:
        domain = rng.choices(domains, weights)[0]
        area = rng.choice(areas)
        stem = name = f"{area} {rng.choice(KINDS[domain])}"
        number = 2
        while name.lower() in taken:
            name, number = f"{stem} {number}", number + 1
        taken.add(name.lower())
        aliases = []
        if rng.random() < 0.05:
            aliases = [f"{rng.choice(ALIAS_WORDS)} {rng.choice(KINDS[domain])}"]
        generated.append(
            {"name": name, "domain": domain, "area": area, "aliases": aliases}
        )
    floors = FLOORS[: 2 + entities // 1500]
    return {
        "entities": base["entities"][:entities] + generated,
        "areas": list(dict.fromkeys(base["areas"] + areas)),
        "floors": list(dict.fromkeys(base["floors"] + floors)),
    }
