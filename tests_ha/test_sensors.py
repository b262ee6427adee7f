"""Latency sensors from the stack's /api/stats (diagnostics, the p50/p95 ones
disabled until wanted; a figure the stack leaves out is unknown), and
diagnostics without secrets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from homeassistant.const import CONF_PORT, STATE_UNKNOWN, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from custom_components.rtvoice.const import STATS_INTERVAL

from .conftest import DOMAIN, TOKEN, Proxy, Stack, process, state, synced

STAGE_SENSORS = [
    f"{s}_{q}" for s in ("asr", "intent", "llm", "tts") for q in ("p50", "p95")
]


def _entity_id(hass: HomeAssistant, stack_id: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{stack_id}-{key}"
    )
    assert entity_id is not None
    return entity_id


async def _enable_stage_sensors(
    hass: HomeAssistant, entry: MockConfigEntry, stack_id: str
) -> None:
    registry = er.async_get(hass)
    for key in STAGE_SENSORS:
        registry.async_update_entity(_entity_id(hass, stack_id, key), disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


async def _tick(hass: HomeAssistant) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + STATS_INTERVAL)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_sensors_are_diagnostics_and_the_quantiles_opt_in(
    hass: HomeAssistant, entry: MockConfigEntry, stack: Stack
) -> None:
    registry = er.async_get(hass)
    first_audio = registry.async_get(_entity_id(hass, stack.id, "first_audio"))
    assert first_audio is not None
    assert first_audio.entity_category is EntityCategory.DIAGNOSTIC
    assert first_audio.disabled_by is None
    for key in STAGE_SENSORS:
        sensor = registry.async_get(_entity_id(hass, stack.id, key))
        assert sensor is not None
        assert sensor.entity_category is EntityCategory.DIAGNOSTIC
        assert sensor.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert hass.states.get(sensor.entity_id) is None


async def test_sensors_follow_the_stacks_turns(
    hass: HomeAssistant, entry: MockConfigEntry, stack: Stack
) -> None:
    await _enable_stage_sensors(hass, entry, stack.id)
    await synced(stack.get, "Kitchen Lights")
    await process(hass, "turn off the kitchen lights")
    async with AsyncTcpClient("127.0.0.1", stack.ports["tts"]) as client:
        await client.write_event(Synthesize(text="Turned off the light").event())
        while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
            if event.type == "audio-stop":
                break

    await _tick(hass)

    stats = await stack.get("/api/stats")
    first_audio = state(hass, _entity_id(hass, stack.id, "first_audio"))
    assert float(first_audio) == stats["last_turn"]["first_audio_ms"]
    for stage in ("intent", "tts"):
        p50 = float(state(hass, _entity_id(hass, stack.id, f"{stage}_p50")))
        p95 = float(state(hass, _entity_id(hass, stack.id, f"{stage}_p95")))
        assert 0 < p50 <= p95 == stats["stages"][stage]["p95_ms"]


def _leave_out(stats: dict[str, Any]) -> dict[str, Any]:
    """What an older or newer stack might send: figures missing."""
    stats["last_turn"] = {"turn": 1}  # no first_audio_ms
    stats["stages"] = {"intent": {"p50_ms": 4.5, "p95_ms": "n/a"}}  # no tts, asr
    return stats


def _no_handle(info: dict[str, Any]) -> dict[str, Any]:
    info["ports"].pop("handle")
    return info


async def test_a_field_the_stack_leaves_out_is_unknown(
    hass: HomeAssistant,
    house: str,
    stack: Stack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Proxy(stack.http) as proxy:
        proxy.edit["/api/stats"] = _leave_out
        proxy.edit["/api/info"] = _no_handle
        entry = MockConfigEntry(
            domain=DOMAIN,
            title=stack.title,
            data={**stack.data, CONF_PORT: proxy.port},
            unique_id=stack.id,
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await _enable_stage_sensors(hass, entry, stack.id)
        await _tick(hass)

        def sensor(key: str) -> str:
            return state(hass, _entity_id(hass, stack.id, key))

        assert sensor("intent_p50") == "4.5"
        for key in ("first_audio", "intent_p95", "tts_p50", "asr_p95"):
            assert sensor(key) == STATE_UNKNOWN, key
        response = await process(hass, "turn on the kitchen lights")
        assert response["speech"]["plain"]["speech"] == (
            "Sorry, the voice assistant can't be reached right now."
        )
        assert "Traceback" not in caplog.text
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_redact_the_token(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert TOKEN not in json.dumps(diagnostics)
    assert diagnostics["entry"]["data"]["token"] == "**REDACTED**"
    assert diagnostics["available"] is True
    assert set(diagnostics["info"]["ports"]) >= {"tts", "asr", "wake", "handle"}
    assert set(diagnostics["stats"]) >= {"last_turn", "stages"}
    assert diagnostics["exposed"]["entities"] >= 1
