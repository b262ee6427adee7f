"""Setup and unload of the rtvoice entry against the real stack."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PORT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.conftest import free_port

from .conftest import DOMAIN, Stack, agent, state


async def test_setup_and_unload_leave_nothing_behind(
    hass: HomeAssistant, house: str, stack: Stack
) -> None:
    entry = stack.entry()
    entry.add_to_hass(hass)
    # A first cycle creates what Home Assistant shares lazily (the HTTP
    # session, the restore-state writer); a second must leave nothing more.
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    listeners_before = hass.bus.async_listeners()

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    assert {e.domain for e in entities} == {"conversation", "sensor", "stt"}
    assert len(entities) == 11
    assert state(hass, agent(hass)) != STATE_UNAVAILABLE

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.NOT_LOADED
    assert hass.bus.async_listeners() == listeners_before
    for entity in entities:
        if not entity.disabled:
            assert state(hass, entity.entity_id) == STATE_UNAVAILABLE


async def test_not_ready_while_the_stack_does_not_answer(
    hass: HomeAssistant, house: str, stack: Stack
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, data={**stack.data, CONF_PORT: free_port()}, unique_id=stack.id
    )
    entry.add_to_hass(hass)

    assert not await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "did not answer" in str(entry.reason)
