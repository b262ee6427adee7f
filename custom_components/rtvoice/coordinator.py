"""Polls the stack's latency figures; its availability is the stack's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import RtvoiceClient, RtvoiceError
from .const import DOMAIN, LOGGER, STATS_INTERVAL
from .names import NameSync


@dataclass
class RuntimeData:
    """What a loaded entry holds."""

    client: RtvoiceClient
    info: dict[str, Any]
    coordinator: RtvoiceCoordinator
    names: NameSync


type RtvoiceConfigEntry = ConfigEntry[RuntimeData]


class RtvoiceCoordinator(DataUpdateCoordinator[dict[str, Any]]):
    """`GET /api/stats` every STATS_INTERVAL.

    The base class logs once when the stack goes and once when it returns.
    """

    config_entry: RtvoiceConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: RtvoiceConfigEntry, client: RtvoiceClient
    ) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=DOMAIN,
            update_interval=STATS_INTERVAL,
        )
        self.client = client

    async def _async_update_data(self) -> dict[str, Any]:
        try:
            return await self.client.stats()
        except RtvoiceError as err:
            raise UpdateFailed(f"rtvoice stack at {self.client.host}: {err}") from err
