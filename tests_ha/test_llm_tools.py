"""The LLM fallback acts in a real Home Assistant: a sentence no intent
matches goes to the LLM (the fake Messages API behind the real stack, told
to call HassLightSet), whose tool call comes back as an `intent` that Home
Assistant executes, through the rtvoice agent and through Home Assistant's
built-in `wyoming` conversation agent alike; the states the integration
pushes reach the LLM's prompt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from homeassistant.components.homeassistant.exposed_entities import (
    async_expose_entity,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import Stack, process, speech, state, synced, template

LIGHT = "light.dining_room_lights"
LEVEL = "input_number.dining_level"
POWER = "input_boolean.dining_power"
COSY = {
    "cosy": {
        "tools": [
            {
                "name": "HassLightSet",
                "input": {"name": "Dining Room Lights", "brightness": 30},
            }
        ]
    }
}


async def set_rules(fake_llm: str, rules: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{fake_llm}/fake/rules", json=rules) as response:
            response.raise_for_status()


@pytest.fixture
async def dimmable(
    hass: HomeAssistant, stack: Stack, fake_llm: str
) -> AsyncIterator[MockConfigEntry]:
    """A dimmable light (a template over an input_number) and a gate named
    without "gate" (a template cover over an input_boolean), the rtvoice
    entry that pushes them to the stack, and the fake LLM told what to call."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"dining_power": {}, "gate_open": {}}}
    )
    assert await async_setup_component(
        hass,
        "input_number",
        {"input_number": {"dining_level": {"min": 0, "max": 255, "step": 1}}},
    )
    power = {"target": {"entity_id": POWER}}
    opened = {"target": {"entity_id": "input_boolean.gate_open"}}
    await template(
        hass,
        cover=dict(
            name="Side Entrance",
            unique_id="side-entrance",
            device_class="gate",
            state="{{ is_state('input_boolean.gate_open', 'on') }}",
            open_cover={"action": "input_boolean.turn_on", **opened},
            close_cover={"action": "input_boolean.turn_off", **opened},
        ),
        light=dict(
            name="Dining Room Lights",
            unique_id="dining-room-lights",
            state=f"{{{{ is_state('{POWER}', 'on') }}}}",
            level=f"{{{{ states('{LEVEL}') | int }}}}",
            turn_on={"action": "input_boolean.turn_on", **power},
            turn_off={"action": "input_boolean.turn_off", **power},
            set_level=[
                {
                    "action": "input_number.set_value",
                    "target": {"entity_id": LEVEL},
                    "data": {"value": "{{ brightness }}"},
                },
                {"action": "input_boolean.turn_on", **power},
            ],
        ),
    )
    assert await async_setup_component(hass, "conversation", {})
    await hass.async_block_till_done()
    await set_rules(fake_llm, COSY)
    entry = stack.entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    try:
        yield entry
    finally:
        await set_rules(fake_llm, {})


async def pushed_state(stack: Stack, state: str) -> dict[str, Any]:
    """The Dining Room Lights as the stack's LLM knows them, once `state`."""
    async with asyncio.timeout(15):
        while True:
            states = await stack.get("/api/states")
            for item in states:
                if item["name"] == "dining room lights" and item["state"] == state:
                    return dict(item)
            await asyncio.sleep(0.1)


def brightness_pct(hass: HomeAssistant) -> int:
    state = hass.states.get(LIGHT)
    assert state is not None and state.state == "on", state
    return round(int(state.attributes["brightness"]) / 2.55)


async def test_an_llm_tool_call_through_the_rtvoice_agent_dims_the_light(
    hass: HomeAssistant, dimmable: MockConfigEntry, stack: Stack
) -> None:
    await pushed_state(stack, "off")

    response = await process(hass, "make the dining room cosy")

    assert brightness_pct(hass) == 30
    assert response["speech"]["plain"]["speech"] == "Brightness set"
    # The new state reaches the LLM's next prompt, brightness included.
    known = await pushed_state(stack, "on")
    assert round(known["attributes"]["brightness"] / 2.55) == 30


async def test_an_llm_tool_call_through_the_builtin_wyoming_agent_dims_the_light(
    hass: HomeAssistant, dimmable: MockConfigEntry, stack: Stack
) -> None:
    await pushed_state(stack, "off")  # the house is known to the handle service
    handle = MockConfigEntry(
        domain="wyoming", data={"host": "127.0.0.1", "port": stack.ports["handle"]}
    )
    handle.add_to_hass(hass)
    assert await hass.config_entries.async_setup(handle.entry_id)
    await hass.async_block_till_done()
    [agent] = [
        entity.entity_id
        for entity in er.async_entries_for_config_entry(
            er.async_get(hass), handle.entry_id
        )
        if entity.domain == "conversation"
    ]

    response = await process(hass, "make the dining room cosy", agent)

    assert brightness_pct(hass) == 30
    assert response["speech"]["plain"]["speech"] == "Brightness set"


async def test_a_gate_and_a_hot_setpoint_ask_first(
    hass: HomeAssistant, dimmable: MockConfigEntry, stack: Stack, fake_llm: str
) -> None:
    """The integration pushes Home Assistant's device class and unit system:
    a gate named without "gate", "door" or "garage" is asked about, and so
    is 90 degrees in a Celsius house (a sane Fahrenheit set-point)."""
    hass.states.async_set(
        "climate.lounge", "heat", {"friendly_name": "Lounge", "temperature": 20}
    )
    await hass.async_block_till_done()
    async_expose_entity(hass, "conversation", "cover.side_entrance", True)
    house = await synced(stack.get, "Lounge")
    pushed = {e["name"]: e for e in house["entities"]}
    assert pushed["Side Entrance"]["device_class"] == "gate"
    assert pushed["Lounge"]["temperature_unit"] == "°C"
    gate = {"name": "HassTurnOn", "input": {"name": "Side Entrance"}}
    hot = {
        "name": "HassClimateSetTemperature",
        "input": {"name": "Lounge", "temperature": 90},
    }
    await set_rules(
        fake_llm, {"let me through": {"tools": [gate]}, "tropical": {"tools": [hot]}}
    )

    response = await process(hass, "let me through")

    assert speech(response) == "Open Side Entrance?"
    assert state(hass, "cover.side_entrance") == "closed"
    assert speech(await process(hass, "make it tropical")) == "Set Lounge to 90?"
