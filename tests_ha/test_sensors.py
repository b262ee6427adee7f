"""Latency sensors from the stack's /api/stats, and diagnostics without secrets."""

from __future__ import annotations

import asyncio
import json

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

from .conftest import DOMAIN, TOKEN, Stack, process, state, synced


def _sensor(hass: HomeAssistant, stack: Stack, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{stack.id}-{key}"
    )
    assert entity_id is not None
    return state(hass, entity_id)


async def test_sensors_follow_the_stacks_turns(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    stack: Stack,
) -> None:
    await synced(stack.get, "Kitchen Lights")
    await process(hass, "turn off the kitchen lights")
    async with AsyncTcpClient("127.0.0.1", stack.ports["tts"]) as client:
        await client.write_event(Synthesize(text="Turned off the light").event())
        while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
            if event.type == "audio-stop":
                break

    async_fire_time_changed(hass, dt_util.utcnow() + STATS_INTERVAL)
    await hass.async_block_till_done(wait_background_tasks=True)

    stats = await stack.get("/api/stats")
    assert float(_sensor(hass, stack, "first_audio")) == (
        stats["last_turn"]["first_audio_ms"]
    )
    for stage in ("intent", "tts"):
        p50 = float(_sensor(hass, stack, f"{stage}_p50"))
        p95 = float(_sensor(hass, stack, f"{stage}_p95"))
        assert 0 < p50 <= p95 == stats["stages"][stage]["p95_ms"]


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
    assert diagnostics["exposed"]["entities"] >= 1
