"""Base entity: one device per stack, available while the stack answers."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN
from .coordinator import RtvoiceConfigEntry, RtvoiceCoordinator


class RtvoiceEntity(CoordinatorEntity[RtvoiceCoordinator]):
    """An entity of the stack's device, named after the stack."""

    _attr_has_entity_name = True

    def __init__(self, entry: RtvoiceConfigEntry, key: str) -> None:
        super().__init__(entry.runtime_data.coordinator)
        stack_id = entry.unique_id or entry.entry_id
        self._attr_unique_id = f"{stack_id}-{key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, stack_id)},
            name=entry.title,
            manufacturer="wyoming-rtvoice",
            model="stack",
            sw_version=self.coordinator.data.info.get("version"),
            entry_type=DeviceEntryType.SERVICE,
        )
