"""`script/bench ha`'s own logic: its sample of the e2e material, the test
house as it makes it in Home Assistant, and Home Assistant's intent slots
judged as `script/bench e2e` judges the matcher's."""

from __future__ import annotations

import json

from bench.accuracy_material import HOUSE, Utterance, evenly
from bench.e2e import ANSWER, understood
from bench.ha import FLOOR_OF, STATES, attributes, plain_slots
from wyoming_rtvoice.house.matcher import Match


def test_an_even_sample_spans_the_material() -> None:
    items = list(range(157))

    sample = evenly(items, 40)

    assert len(sample) == 40
    assert sample[0] == 0 and sample[-1] >= 150
    assert max(b - a for a, b in zip(sample, sample[1:], strict=False)) <= 4
    assert evenly(items[:5], 40) == items[:5]


def test_every_area_of_the_house_is_on_one_of_its_floors() -> None:
    house = json.loads(HOUSE.read_text(encoding="utf-8"))

    assert set(FLOOR_OF) == set(house["areas"])
    assert set(FLOOR_OF.values()) <= set(house["floors"])
    assert {entity["domain"] for entity in house["entities"]} <= set(STATES)


def test_a_garage_door_is_a_garage_cover_and_a_humidity_sensor_no_thermometer() -> None:
    door = attributes({"name": "Garage Door", "domain": "cover"})
    humidity = attributes({"name": "Kitchen Humidity", "domain": "sensor"})

    assert door["device_class"] == "garage" and door["friendly_name"] == "Garage Door"
    assert "device_class" not in humidity and "unit_of_measurement" not in humidity


def test_home_assistants_slots_are_judged_as_the_matchers() -> None:
    # As Home Assistant's default agent hands "turn off the lights in the
    # guest room" to its intent handler.
    slots = {
        "area": {"value": "Guest Room", "text": "guest room"},
        "domain": {"value": ["light"]},
        "preferred_area_id": {"value": None},
    }
    command = Utterance(
        "Turn off the lights in the guest room.",
        "HassTurnOff",
        {"area": "Guest Room", "domain": "light"},
    )

    heard = Match("HassTurnOff", plain_slots(slots), "")

    assert heard.slots["domain"] == "light"
    assert understood(command, heard, "")
    assert not understood(command, Match("HassTurnOn", heard.slots, ""), "")
    volume = Utterance(
        "Set the den speaker volume to 40",
        "HassSetVolume",
        {"name": "Den Speaker", "volume_level": 40},
    )
    slots = {"name": {"value": "Den Speaker"}, "volume_level": {"value": 40.0}}
    assert understood(volume, Match("HassSetVolume", plain_slots(slots), ""), "")
    assert understood(Utterance("Tell me a joke."), None, f" {ANSWER}")
