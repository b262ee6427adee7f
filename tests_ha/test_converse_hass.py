"""`converse --hass-url`: a device command heard by the project's pipeline is
executed by a real Home Assistant through its HTTP intent API."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from tests.conftest import free_port

from .conftest import PYTHON, REPO, state

KITCHEN_WAV = REPO / "wyoming_rtvoice" / "data" / "kitchen.wav"


async def converse(*args: str, token: str) -> dict[str, object]:
    """The converse command, as a user runs it; its JSON report."""
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "wyoming_rtvoice",
        "converse",
        str(KITCHEN_WAV),
        "--json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HASS_TOKEN": token},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == 0, stderr.decode()
    assert token not in (stdout + stderr).decode()
    result: dict[str, object] = json.loads(stdout)
    return result


@pytest.fixture
def disable_http_server() -> None:
    """Home Assistant's HTTP server really starts here: the test harness of
    2026.x patches its start out for every test (this fixture of its)."""


@pytest.fixture
async def http_port(hass: HomeAssistant) -> AsyncIterator[int]:
    """Home Assistant's HTTP API with its intent endpoint, on a free loopback
    port (set up before anything else asks for `http` with the defaults)."""
    port = free_port()
    http = {"server_host": ["127.0.0.1"], "server_port": port}
    assert await async_setup_component(hass, "http", {"http": http})
    assert await async_setup_component(hass, "intent", {})
    await hass.http.start()
    yield port
    await hass.http.stop()


async def test_converse_runs_the_intent_through_home_assistant(
    hass: HomeAssistant, http_port: int, house: str, hass_access_token: str
) -> None:
    """With a good token the light goes on; a refused token is said, not
    confirmed. (Both at once: each run loads the models.)"""
    assert state(hass, house) == "off"
    url = f"http://127.0.0.1:{http_port}"

    done, refused = await asyncio.gather(
        converse("--hass-url", url, token=hass_access_token),
        converse("--hass-url", url, token="not-a-token"),
    )

    assert done["executed"] == "executed by Home Assistant"
    assert done["answer"] == "Turned on the light"
    assert state(hass, house) == "on"
    assert refused["executed"] == "Home Assistant answered HTTP 401"
    assert refused["answer"] == "Sorry, Home Assistant did not answer."
