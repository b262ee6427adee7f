"""Latency sensors: the last turn's time to first audio, p50/p95 per stage.

All are diagnostics; the p50/p95 ones are disabled until the user wants them.
A figure the stack does not report leaves its sensor unknown.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import STAGES
from .coordinator import RtvoiceConfigEntry
from .entity import RtvoiceEntity

PARALLEL_UPDATES = 0  # the coordinator polls; entities only read its data


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RtvoiceConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One sensor for the last turn, two per stage."""
    sensors: list[RtvoiceSensor] = [FirstAudioSensor(entry)]
    sensors += [
        StageSensor(entry, stage, quantile)
        for stage in STAGES
        for quantile in ("p50", "p95")
    ]
    async_add_entities(sensors)


class RtvoiceSensor(RtvoiceEntity, SensorEntity):
    """A duration in milliseconds from the stack's /api/stats."""

    _attr_device_class = SensorDeviceClass.DURATION
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_native_unit_of_measurement = UnitOfTime.MILLISECONDS
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_suggested_display_precision = 0

    def _figure(self, *path: str) -> float | None:
        """The number at `path` in the stats; None when any part is missing."""
        value: Any = self.coordinator.data.stats
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return value


class FirstAudioSensor(RtvoiceSensor):
    """Time to first audio of the last turn (from the end of speech when the
    stack heard it, else from the speech request)."""

    _attr_translation_key = "first_audio"

    def __init__(self, entry: RtvoiceConfigEntry) -> None:
        super().__init__(entry, "first_audio")

    @property
    def native_value(self) -> float | None:
        return self._figure("last_turn", "first_audio_ms")


class StageSensor(RtvoiceSensor):
    """p50 or p95 of one stage over the stack's recent turns."""

    _attr_entity_registry_enabled_default = False

    def __init__(self, entry: RtvoiceConfigEntry, stage: str, quantile: str) -> None:
        super().__init__(entry, f"{stage}_{quantile}")
        self._attr_translation_key = f"{stage}_{quantile}"
        self._path = ("stages", stage, f"{quantile}_ms")

    @property
    def native_value(self) -> float | None:
        return self._figure(*self._path)
