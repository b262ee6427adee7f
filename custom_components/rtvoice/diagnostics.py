"""Diagnostics: the entry, the stack's info and figures; the token redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant

from .coordinator import RtvoiceConfigEntry
from .names import exposed_house

TO_REDACT = {CONF_TOKEN, "Authorization"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: RtvoiceConfigEntry
) -> dict[str, Any]:
    """What a bug report needs, without secrets."""
    runtime = entry.runtime_data
    house = exposed_house(hass)
    diagnostics: dict[str, Any] = async_redact_data(
        {
            "entry": entry.as_dict(),
            **asdict(runtime.coordinator.data),
            "available": runtime.coordinator.last_update_success,
            "names_in_sync": runtime.names.in_sync,
            "exposed": {key: len(value) for key, value in house.items()},
        },
        TO_REDACT,
    )
    return diagnostics
