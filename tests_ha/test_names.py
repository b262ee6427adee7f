"""Name sync: registry changes reach the handle service, and the new names
work at once as commands through the agent."""

from __future__ import annotations

from typing import Any

from homeassistant.components.homeassistant.exposed_entities import (
    async_expose_entity,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import Stack, process, speech, state, synced


async def test_registry_changes_are_sent_and_understood(
    hass: HomeAssistant, house: str, entry: MockConfigEntry, stack: Stack
) -> None:
    await synced(stack.get, "Kitchen Lights")
    floor = fr.async_get(hass).async_create("Downstairs", aliases={"Ground Floor"})
    kitchen = ar.async_get(hass).async_create(
        "Kitchen", aliases={"Cookery"}, floor_id=floor.floor_id
    )
    garage = ar.async_get(hass).async_create("Garage")
    entities = er.async_get(hass)
    too_long = "Lights " * 40  # the handle service takes names up to 200
    aliases: Any
    if hasattr(er, "COMPUTED_NAME"):
        # Home Assistant 2026.4+: an ordered list, in which a placeholder
        # stands for the entity's own name.
        aliases = ["Larder Lights", er.COMPUTED_NAME, too_long, "Butler Lights"]
        expected = ["Larder Lights", "Butler Lights"]
    else:  # a set
        aliases = {"Larder Lights", too_long, "Butler Lights"}
        expected = ["Butler Lights", "Larder Lights"]
    entities.async_update_entity(
        house, name="Pantry Lights", aliases=aliases, area_id=kitchen.id
    )
    # An entity without an area of its own is in its device's area.
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={("test", "switch")}
    )
    dr.async_get(hass).async_update_device(device.id, area_id=garage.id)
    entities.async_update_entity("input_boolean.kitchen_power", device_id=device.id)
    async_expose_entity(hass, "conversation", "input_boolean.kitchen_power", True)

    sent = await synced(stack.get, "Pantry Lights")

    by_name = {entity["name"]: entity for entity in sent["entities"]}
    assert by_name["Pantry Lights"] == {
        "name": "Pantry Lights",
        "domain": "light",
        "area": "Kitchen",
        "aliases": expected,
    }
    # Its name: its own, or (2026.x) its device's, which is unnamed here.
    power = hass.states.get("input_boolean.kitchen_power")
    assert power is not None
    assert by_name[power.name]["area"] == "Garage"
    assert {"Kitchen", "Cookery", "Garage"} <= set(sent["areas"])
    assert {"Downstairs", "Ground Floor"} <= set(sent["floors"])
    assert "Kitchen Lights" not in by_name

    response = await process(hass, "turn on the larder lights")
    assert state(hass, house) == "on", response
    response = await process(hass, "turn off the butler lights")
    assert state(hass, house) == "off", response
    response = await process(hass, "turn on the pantry lights")
    assert state(hass, house) == "on", response
    response = await process(hass, "turn off the lights in the kitchen")
    assert state(hass, house) == "off", response
    assert speech(response) == "Turned off the lights"


async def test_a_device_assist_may_not_use_is_said_to_be_so(
    hass: HomeAssistant, house: str, entry: MockConfigEntry, stack: Stack
) -> None:
    """Its name (nothing else about it) reaches the stack, which says why it
    does not run the command instead of saying it cannot answer."""
    await synced(stack.get, "Kitchen Lights")
    async_expose_entity(hass, "conversation", house, False)

    sent = await synced(stack.get, "Kitchen Lights", present=False)

    assert {"name": "Kitchen Lights", "domain": "light", "aliases": []} in sent[
        "unexposed"
    ]
    response = await process(hass, "turn on the kitchen lights")
    assert speech(response) == "Kitchen Lights is not exposed to Assist."
    assert state(hass, house) == "off"
