"""A lone handle service (its own HTTP API) that goes down and comes back:
entities go unavailable and return, the names are sent again, and turns in
between get a spoken error."""

from __future__ import annotations

from pathlib import Path

import pytest
from homeassistant.const import CONF_HOST, CONF_PORT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.rtvoice.const import STATS_INTERVAL
from tests.conftest import free_port

from .conftest import (
    DOMAIN,
    PYTHON,
    Server,
    Stack,
    process,
    running,
    speech,
    state,
    synced,
)

AGENT = "conversation.rtvoice"


async def _tick(hass: HomeAssistant) -> None:
    """The next stats poll, now."""
    async_fire_time_changed(hass, dt_util.utcnow() + STATS_INTERVAL)
    await hass.async_block_till_done(wait_background_tasks=True)


async def _speech(hass: HomeAssistant, text: str) -> str:
    return speech(await process(hass, text))


async def test_down_and_back(
    hass: HomeAssistant,
    house: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, http = free_port(), free_port()
    argv = [PYTHON, "-m", "wyoming_rtvoice", "handle"]
    argv += [f"--uri=tcp://127.0.0.1:{port}", f"--http-uri=http://127.0.0.1:{http}"]
    handle = Server(argv, tmp_path / "handle.log", env={"ANTHROPIC_API_KEY": ""})
    lone = Stack({"handle": port}, http)
    with running(handle):
        entry = MockConfigEntry(
            domain=DOMAIN, data={CONF_HOST: "127.0.0.1", CONF_PORT: http}
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await synced(lone.get, "Kitchen Lights")
        assert state(hass, AGENT) != STATE_UNAVAILABLE
        assert await _speech(hass, "What time is it in Tokyo?") == (
            "I can control your devices, but no assistant is set up to answer "
            "questions."
        )

        handle.stop()
        await _tick(hass)

        assert state(hass, AGENT) == STATE_UNAVAILABLE
        sensors = hass.states.async_all("sensor")
        assert len(sensors) == 9
        assert {sensor.state for sensor in sensors} == {STATE_UNAVAILABLE}
        assert await _speech(hass, "turn on the kitchen lights") == (
            "Sorry, the voice assistant can't be reached right now."
        )

        handle.start()  # same ports, an empty house
        await _tick(hass)

        assert state(hass, AGENT) != STATE_UNAVAILABLE
        await synced(lone.get, "Kitchen Lights")  # sent again
        assert await _speech(hass, "turn on the kitchen lights") == (
            "Turned on the light"
        )
        assert state(hass, house) == "on"

    logged = [r.getMessage() for r in caplog.records if r.name.endswith("rtvoice")]
    assert sum("Error fetching rtvoice data" in m for m in logged) == 1
    assert sum("Fetching rtvoice data recovered" in m for m in logged) == 1
