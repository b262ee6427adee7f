"""The project's sentence file (wyoming_rtvoice/house/sentences/en.yaml) in
a real Home Assistant 2025.4: its phrasings, said to the rtvoice agent, are
executed (their intents and slots are ones Home Assistant has), and Home
Assistant's own agent loads the file as custom sentences."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import REPO, Stack, process, speech, synced, template

SENTENCES = REPO / "wyoming_rtvoice" / "house" / "sentences" / "en.yaml"
LEVEL = "input_number.desk_level"


@pytest.fixture
async def lamp(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[None]:
    """A dimmable "Desk Lamp" (template light over an input_number), with the
    sentence file among Home Assistant's custom sentences."""
    hass.config.config_dir = str(tmp_path)
    (tmp_path / "custom_sentences" / "en").mkdir(parents=True)
    shutil.copy(SENTENCES, tmp_path / "custom_sentences" / "en" / "rtvoice.yaml")
    assert await async_setup_component(hass, "homeassistant", {})
    number = {"min": 0, "max": 255, "initial": 255}
    assert await async_setup_component(
        hass, "input_number", {"input_number": {"desk_level": number}}
    )
    target = {"target": {"entity_id": LEVEL}}
    await template(
        hass,
        light=dict(
            name="Desk Lamp",
            unique_id="desk-lamp",
            state=f"{{{{ states('{LEVEL}') | int > 0 }}}}",
            level=f"{{{{ states('{LEVEL}') | int }}}}",
            turn_on={"action": "input_number.set_value", "data": {"value": 255}}
            | target,
            turn_off={"action": "input_number.set_value", "data": {"value": 0}}
            | target,
            set_level={
                "action": "input_number.set_value",
                "data": {"value": "{{ brightness }}"},
            }
            | target,
        ),
    )
    assert await async_setup_component(hass, "conversation", {})
    await hass.async_block_till_done()
    yield


def level(hass: HomeAssistant) -> float:
    state = hass.states.get(LEVEL)
    assert state is not None
    return float(state.state)


async def test_phrasings_are_executed_by_home_assistant(
    hass: HomeAssistant, lamp: None, entry: MockConfigEntry, stack: Stack
) -> None:
    await synced(stack.get, "Desk Lamp")

    response = await process(hass, "Dim the desk lamp.")
    assert speech(response) == "Dimmed the light"
    assert level(hass) == round(255 * 0.25)

    await process(hass, "brighten the desk lamp")
    assert level(hass) == 255

    await process(hass, "dim the desk lamp to 40%")
    assert level(hass) == round(255 * 0.40)


async def test_home_assistant_loads_the_file_as_custom_sentences(
    hass: HomeAssistant, lamp: None
) -> None:
    for text, expected in (("dim the desk lamp", 0.25), ("brighten it", None)):
        result = await hass.services.async_call(
            "conversation",
            "process",
            {"text": text, "agent_id": "conversation.home_assistant"},
            blocking=True,
            return_response=True,
        )
        assert isinstance(result, dict) and isinstance(result["response"], dict)
        if expected is None:  # not a phrasing of the file
            assert result["response"]["response_type"] == "error"
        else:
            assert speech(result["response"]) == "Dimmed the light"
            assert level(hass) == round(255 * expected)
