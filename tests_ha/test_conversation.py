"""The conversation agent: a spoken-style command turns a real light on
through Home Assistant's intents (never one that is not exposed to Assist); a
question is answered by the LLM (the project's fake Messages API behind the
real stack), streamed into the chat log; a turn does not wait for the sensors."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.assist_pipeline import (
    async_get_pipeline,
    async_update_pipeline,
)
from homeassistant.components.homeassistant.exposed_entities import (
    async_expose_entity,
)
from homeassistant.const import CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from .conftest import DOMAIN, Proxy, Stack, agent, process, speech, state, synced

ANSWER = "The capital of France is Paris. It has been for a long time."


async def test_spoken_command_turns_the_light_on(
    hass: HomeAssistant, house: str, entry: MockConfigEntry, stack: Stack
) -> None:
    await synced(stack.get, "Kitchen Lights")
    assert state(hass, house) == "off"

    response = await process(hass, "um turn on the kitchen lights")

    assert state(hass, house) == "on"
    assert response["response_type"] == "action_done"
    assert speech(response) == "Turned on the light"
    assert response["data"]["success"][0]["id"] == house


async def test_command_for_a_device_no_longer_exposed_fails_politely(
    hass: HomeAssistant, house: str, entry: MockConfigEntry, stack: Stack
) -> None:
    await synced(stack.get, "Kitchen Lights")
    async_expose_entity(hass, "conversation", house, False)  # the push is debounced

    response = await process(hass, "turn on the kitchen lights")

    assert state(hass, house) == "off"
    assert response["response_type"] == "error"
    assert response["data"]["code"] == "no_valid_targets"
    assert speech(response) == "Sorry, I couldn't find that device."
    await synced(stack.get, "Kitchen Lights", present=False)


class NaiveTurnOn(intent.IntentHandler):
    """A turn-on handler that ignores Assist's exposure, as one registered by
    some other integration might."""

    intent_type = intent.INTENT_TURN_ON

    async def async_handle(self, intent_obj: intent.Intent) -> intent.IntentResponse:
        hass = intent_obj.hass
        name = intent_obj.slots["name"]["value"]
        for light in hass.states.async_all("light"):
            if light.name == name:
                await hass.services.async_call(
                    "light", "turn_on", {"entity_id": light.entity_id}, blocking=True
                )
        return intent_obj.create_response()


async def test_the_agent_itself_refuses_what_is_not_exposed(
    hass: HomeAssistant, house: str, entry: MockConfigEntry, stack: Stack
) -> None:
    intent.async_register(hass, NaiveTurnOn())
    await synced(stack.get, "Kitchen Lights")
    async_expose_entity(hass, "conversation", house, False)  # the push is debounced

    response = await process(hass, "turn on the kitchen lights")

    assert state(hass, house) == "off"
    assert response["data"]["code"] == "no_valid_targets"
    async_expose_entity(hass, "conversation", house, True)
    response = await process(hass, "turn on the kitchen lights")
    assert state(hass, house) == "on"  # the handler itself works


async def test_a_turn_does_not_wait_for_the_stats(
    hass: HomeAssistant, house: str, stack: Stack
) -> None:
    async with Proxy(stack.http) as proxy:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=stack.title,
            data={**stack.data, CONF_PORT: proxy.port},
            unique_id=stack.id,
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await synced(stack.get, "Kitchen Lights")
        proxy.hold_stats = True

        async with asyncio.timeout(8):  # the stats stay held for good
            response = await process(hass, "turn on the kitchen lights")
            await proxy.stats_held.wait()  # the refresh the turn asked for

        assert speech(response) == "Turned on the light"
        proxy.release.set()
        await hass.async_block_till_done(wait_background_tasks=True)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_question_is_answered_by_the_llm(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    response = await process(hass, "What is the capital of France?")

    assert response["response_type"] == "action_done"
    assert speech(response) == ANSWER


async def test_llm_answer_is_streamed_into_the_pipeline(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    assert await async_setup_component(hass, "assist_pipeline", {})
    await async_update_pipeline(
        hass, async_get_pipeline(hass), conversation_engine=agent(hass)
    )
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "assist_pipeline/run",
            "start_stage": "intent",
            "end_stage": "intent",
            "input": {"text": "What is the capital of France?"},
        }
    )
    assert (await client.receive_json())["success"]

    deltas: list[dict[str, Any]] = []
    while (event := (await client.receive_json())["event"])["type"] != "run-end":
        if event["type"] == "intent-progress":
            deltas.append(event["data"]["chat_log_delta"])
        if event["type"] == "intent-end":
            speech = event["data"]["intent_output"]["response"]["speech"]

    assert deltas[0] == {"role": "assistant"}
    chunks = [delta["content"] for delta in deltas[1:]]
    assert len(chunks) > 5  # word by word, as the LLM streamed them
    assert "".join(chunks) == ANSWER
    assert speech["plain"]["speech"] == ANSWER


async def test_a_refused_request_is_a_spoken_error(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    response = await process(hass, "blah " * 500)  # over the 2000 characters

    assert response["response_type"] == "error"
    assert response["data"]["code"] == "failed_to_handle"
    assert speech(response) == "Sorry, I couldn't handle that."
