"""Polls the stack's info and latency figures; its availability is the stack's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import RtvoiceAuthError, RtvoiceClient, RtvoiceError
from .const import DOMAIN, LOGGER, STATS_INTERVAL
from .names import NameSync


@dataclass
class StackData:
    """One poll: `/api/info` (id, boot id, version, ports) and `/api/stats`."""

    info: dict[str, Any]
    stats: dict[str, Any]


@dataclass
class RuntimeData:
    """What a loaded entry holds."""

    client: RtvoiceClient
    coordinator: RtvoiceCoordinator
    names: NameSync
    asr_languages: list[str] | None  # None: the stack has no ASR service


type RtvoiceConfigEntry = ConfigEntry[RuntimeData]


class RtvoiceCoordinator(DataUpdateCoordinator[StackData]):
    """`GET /api/info` and `/api/stats` every STATS_INTERVAL.

    The base class logs once when the stack goes and once when it returns,
    and starts a reauthentication when the token is refused.
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

    async def _async_update_data(self) -> StackData:
        try:
            return StackData(await self.client.info(), await self.client.stats())
        except RtvoiceAuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="invalid_auth",
                translation_placeholders={"host": self.client.host},
            ) from err
        except RtvoiceError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="update_failed",
                translation_placeholders={"host": self.client.host, "error": str(err)},
            ) from err
