"""The rtvoice integration: the whole wyoming-rtvoice stack as one entry."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.start import async_at_started

from .api import RtvoiceClient, RtvoiceError, asr_languages
from .const import DOMAIN
from .coordinator import RtvoiceConfigEntry, RtvoiceCoordinator, RuntimeData
from .names import NameSync

PLATFORMS = [Platform.CONVERSATION, Platform.SENSOR, Platform.STT]


async def async_setup_entry(hass: HomeAssistant, entry: RtvoiceConfigEntry) -> bool:
    """Connect to the stack, start the poll and the name sync.

    The first poll raises ConfigEntryNotReady while the stack does not answer,
    ConfigEntryAuthFailed (a reauthentication) when it refuses the token; so
    does an ASR service that does not say which languages it speaks.
    """
    client = RtvoiceClient(
        async_get_clientsession(hass),
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        entry.data.get(CONF_TOKEN),
    )
    coordinator = RtvoiceCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()
    languages = None
    if "asr" in coordinator.data.info["ports"]:
        port = int(coordinator.data.info["ports"]["asr"])
        try:
            languages = await asr_languages(client.host, port)
        except RtvoiceError as err:
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="asr_unreachable",
                translation_placeholders={"host": client.host, "error": str(err)},
            ) from err
    names = NameSync(hass, client, coordinator.data.info.get("boot_id"))
    entry.runtime_data = RuntimeData(client, coordinator, names, languages)

    @callback
    def stack_seen() -> None:
        if coordinator.last_update_success:
            names.async_stack_seen(coordinator.data.info.get("boot_id"))
        else:
            names.async_stack_lost()

    @callback
    def started(hass: HomeAssistant) -> None:
        names.async_changed()

    entry.async_on_unload(coordinator.async_add_listener(stack_seen))
    entry.async_on_unload(names.async_listen())
    entry.async_on_unload(async_at_started(hass, started))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: RtvoiceConfigEntry) -> bool:
    """Unload the platforms; the entry's unsubscribers stop the rest."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
