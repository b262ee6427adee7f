"""A stack that changes while Home Assistant runs (a lone handle service with
its own HTTP API, stopped and restarted): down, its entities are unavailable
and turns get a spoken error, and back it gets the names again; a restart
between two polls, seen as a new boot id, gets the names again; a token
refused at run time starts a reauthentication. And two stacks on one Home
Assistant are two devices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_TOKEN, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.rtvoice.const import NAME_SYNC_COOLDOWN, STATS_INTERVAL
from tests.conftest import free_port

from .conftest import (
    DOMAIN,
    PYTHON,
    Server,
    Stack,
    agent,
    async_running,
    process,
    speech,
    state,
    synced,
)


@pytest.fixture
async def lone(
    hass: HomeAssistant, tmp_path: Path
) -> AsyncIterator[tuple[Server, Stack]]:
    """A handle service with its HTTP API behind a token; not yet started."""
    port, http = free_port(), free_port()
    argv = [PYTHON, "-m", "wyoming_rtvoice", "handle"]
    argv += [f"--uri=tcp://127.0.0.1:{port}", f"--http-uri=http://127.0.0.1:{http}"]
    env = {"ANTHROPIC_API_KEY": "", "RTVOICE_HTTP_TOKEN": "first-token-0123456789"}
    handle = Server(argv, tmp_path / "handle.log", env=env)
    async with async_running(hass, handle):
        stack = Stack({"handle": port}, http, token="first-token-0123456789")
        stack.id = (await stack.get("/api/info"))["id"]
        yield handle, stack


async def _tick(hass: HomeAssistant) -> None:
    """The next poll, and the name push it may schedule, now."""
    async_fire_time_changed(hass, dt_util.utcnow() + STATS_INTERVAL)
    await hass.async_block_till_done(wait_background_tasks=True)
    async_fire_time_changed(hass, dt_util.utcnow() + STATS_INTERVAL * 2)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert NAME_SYNC_COOLDOWN < STATS_INTERVAL.total_seconds()


async def _speech(hass: HomeAssistant, text: str) -> str:
    return speech(await process(hass, text))


async def _house(stack: Stack) -> set[str]:
    house = await stack.get("/api/entities")
    return {entity["name"] for entity in house["entities"]}


async def test_a_stack_that_goes_comes_back_restarts_and_changes_its_token(
    hass: HomeAssistant,
    house: str,
    lone: tuple[Server, Stack],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle, stack = lone
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=stack.title,
        data=stack.data,
        unique_id=stack.id,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await synced(stack.get, "Kitchen Lights")
    assert await _speech(hass, "What time is it in Tokyo?") == (
        "I can control your devices, but no assistant is set up to answer " "questions."
    )
    await hass.async_block_till_done(wait_background_tasks=True)

    # Down: unavailable, and a turn is a spoken error.
    await handle.async_stop(hass)
    await _tick(hass)
    assert state(hass, agent(hass)) == STATE_UNAVAILABLE
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    sensors = [e.entity_id for e in entities if e.domain == "sensor"]
    enabled = [e.entity_id for e in entities if e.domain == "sensor" and not e.disabled]
    assert len(sensors) == 9 and len(enabled) == 1  # p50/p95: off by default
    assert state(hass, enabled[0]) == STATE_UNAVAILABLE
    assert await _speech(hass, "turn on the kitchen lights") == (
        "Sorry, the voice assistant can't be reached right now."
    )

    # Back (same ports): available, with its names.
    await handle.async_start(hass)
    await _tick(hass)
    assert state(hass, agent(hass)) != STATE_UNAVAILABLE
    assert await _house(stack) == {"Kitchen Lights"}
    assert await _speech(hass, "turn on the kitchen lights") == ("Turned on the light")
    assert state(hass, house) == "on"
    logged = [r.getMessage() for r in caplog.records if r.name.endswith("rtvoice")]
    assert sum("Error fetching rtvoice data" in m for m in logged) == 1
    assert sum("Fetching rtvoice data recovered" in m for m in logged) == 1

    # Restarted between two polls: its state file brings the names back.
    await hass.async_block_till_done(wait_background_tasks=True)
    await handle.async_stop(hass)
    await handle.async_start(hass)
    assert await _house(stack) == {"Kitchen Lights"}

    # Restarted without the house it kept (its file lost) between two polls:
    # nothing looked down, but the new boot id is seen.
    await handle.async_stop(hass)
    await hass.async_add_executor_job((handle.state_dir / "house.json").unlink)
    await handle.async_start(hass)
    assert await _house(stack) == set()
    await _tick(hass)
    assert await _house(stack) == {"Kitchen Lights"}

    # The stack's token is changed while Home Assistant runs.
    handle.env["RTVOICE_HTTP_TOKEN"] = "second-token-0123456789"
    await handle.async_stop(hass)
    await handle.async_start(hass)
    await _tick(hass)

    assert state(hass, agent(hass)) == STATE_UNAVAILABLE
    [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == SOURCE_REAUTH
    assert flow["context"]["entry_id"] == entry.entry_id
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_TOKEN: "second-token-0123456789"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert state(hass, agent(hass)) != STATE_UNAVAILABLE
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_two_stacks_are_two_devices(
    hass: HomeAssistant, house: str, stack: Stack, lone: tuple[Server, Stack]
) -> None:
    _, other = lone
    first, second = stack.entry(), other.entry("second-stack")
    for entry in (first, second):
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    devices = dr.async_get(hass)
    names = {
        entry.entry_id: [
            d.name for d in dr.async_entries_for_config_entry(devices, entry.entry_id)
        ]
        for entry in (first, second)
    }
    assert names == {first.entry_id: [stack.title], second.entry_id: [other.title]}
    agents = agent(hass, stack.id), agent(hass, "second-stack")
    assert agents[0] != agents[1]

    # Each stack has the names; each agent answers through its own stack.
    await synced(stack.get, "Kitchen Lights")
    await synced(other.get, "Kitchen Lights")
    before = (await other.get("/api/stats"))["stages"].get("intent", {}).get("count", 0)
    await process(hass, "turn on the kitchen lights", agents[1])
    assert state(hass, house) == "on"
    after = (await other.get("/api/stats"))["stages"]["intent"]["count"]
    assert after == before + 1
    await process(hass, "turn off the kitchen lights", agents[0])
    assert state(hass, house) == "off"
    assert (await other.get("/api/stats"))["stages"]["intent"]["count"] == after
