"""Pushes the house's names to the handle service, so early intent matching
knows the entities, areas and floors that are exposed to Assist, and their
states, so its LLM knows what they are doing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import (
    async_listen_entity_updates,
    async_should_expose,
)
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_FRIENDLY_NAME,
    EVENT_STATE_CHANGED,
)
from homeassistant.core import (
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
from homeassistant.helpers.debounce import Debouncer

from .api import RtvoiceClient, RtvoiceError, RtvoiceRejected
from .const import LOGGER, NAME_SYNC_COOLDOWN

MAX_NAME = 200
# The attributes the stack keeps for its LLM (wyoming_rtvoice/house/model.py).
STATE_ATTRIBUTES = (
    "brightness",
    "color_temp_kelvin",
    "current_temperature",
    "temperature",
    "hvac_action",
    "current_position",
    "percentage",
    "volume_level",
    "is_volume_muted",
    "media_title",
    "media_artist",
    "unit_of_measurement",
    "device_class",
)
DOMAIN_RE = re.compile(r"[a-z_]+")
REGISTRY_EVENTS = (
    er.EVENT_ENTITY_REGISTRY_UPDATED,
    dr.EVENT_DEVICE_REGISTRY_UPDATED,
    ar.EVENT_AREA_REGISTRY_UPDATED,
    fr.EVENT_FLOOR_REGISTRY_UPDATED,
)


def exposed_house(hass: HomeAssistant) -> dict[str, Any]:
    """The exposed entities (name, aliases, domain, area, state), areas and
    floors, in the JSON the handle service takes; and of the others only
    their names and domain, so a command naming one is told it is not
    exposed."""
    entities = er.async_get(hass)
    devices = dr.async_get(hass)
    areas = ar.async_get(hass)
    house_entities = []
    unexposed = []
    for state in hass.states.async_all():
        if not _fits(state.name) or not DOMAIN_RE.fullmatch(state.domain):
            continue
        entry = entities.async_get(state.entity_id)
        aliases = _aliases(state.name, entry.aliases) if entry else []
        if not async_should_expose(hass, conversation.DOMAIN, state.entity_id):
            names = {"name": state.name, "domain": state.domain, "aliases": aliases}
            unexposed.append(names)
            continue
        area_id = entry.area_id if entry else None
        if entry and not area_id and entry.device_id:
            device = devices.async_get(entry.device_id)
            area_id = device.area_id if device else None
        area = areas.async_get_area(area_id) if area_id else None
        house_entities.append(
            {
                "name": state.name,
                "domain": state.domain,
                **_described(hass, state),
                "area": area.name if area else None,
                "aliases": aliases,
                "state": state.state,
                "attributes": _attributes(state.attributes),
            }
        )
    return {
        "entities": house_entities,
        "areas": _names(areas.async_list_areas()),
        "floors": _names(fr.async_get(hass).async_list_floors()),
        "unexposed": unexposed,
    }


def _described(hass: HomeAssistant, state: State) -> dict[str, Any]:
    """What the stack asks a confirmation by: the device class (a gate, a
    garage door), and the unit a thermostat is set in."""
    described = {}
    if _fits(device_class := state.attributes.get(ATTR_DEVICE_CLASS)):
        described["device_class"] = device_class
    if state.domain == "climate":
        described["temperature_unit"] = hass.config.units.temperature_unit
    return described


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    kept = {}
    for key in STATE_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, bool | int | float) or (
            isinstance(value, str) and len(value) <= MAX_NAME
        ):
            kept[key] = value
    return kept


def _aliases(name: str, aliases: Iterable[object]) -> list[str]:
    """The entity's other names as its registry entry has them: a set of
    strings (before Home Assistant 2026.4; sorted, for a push that compares
    equal), or an ordered list in which a placeholder (`er.COMPUTED_NAME`)
    stands for the entity's own name. Its own name and repeats left out."""
    if isinstance(aliases, set | frozenset):
        aliases = sorted(aliases, key=str)
    seen = {name.casefold()}
    kept = []
    for alias in aliases:
        if isinstance(alias, str) and _fits(alias) and alias.casefold() not in seen:
            seen.add(alias.casefold())
            kept.append(alias)
    return kept


def _names(items: Any) -> list[str]:
    return [n for item in items for n in _fitting([item.name, *item.aliases])]


def _fitting(names: Iterable[str]) -> list[str]:
    return sorted(name for name in names if _fits(name))


def _fits(name: Any) -> bool:
    """What the handle service takes (it refuses the whole house otherwise)."""
    return isinstance(name, str) and 0 < len(name.strip()) <= MAX_NAME


class NameSync:
    """Sends the house at start, whenever it changes (debounced), and again
    when the stack returns after being down or reports a new boot id (it
    restarted, and an older stack may have lost what it was sent)."""

    def __init__(
        self, hass: HomeAssistant, client: RtvoiceClient, boot_id: Any
    ) -> None:
        self.hass = hass
        self.client = client
        self.in_sync = False
        self._boot_id = boot_id
        self._changed = False
        self._sent: dict[str, Any] | None = None
        self._debouncer = Debouncer(
            hass,
            LOGGER,
            cooldown=NAME_SYNC_COOLDOWN,
            immediate=False,
            function=self.async_push,
        )

    @callback
    def async_changed(self) -> None:
        """Send the house soon."""
        self._changed = True
        self._debouncer.async_schedule_call()

    async def async_push(self) -> None:
        # The debouncer drops calls while this runs: a change made during a
        # PUT is caught by going round again.
        while self._changed:
            self._changed = False
            house = exposed_house(self.hass)
            if self.in_sync and house == self._sent:
                continue  # e.g. a state that changed and changed back
            try:
                await self._put(house)
            except RtvoiceRejected as err:  # not retried: a change may fix it
                LOGGER.warning("The stack refused the names: %s", err)
                self.in_sync = True
                return
            except RtvoiceError as err:
                LOGGER.debug("Names not sent: %s", err)
                self.in_sync = False
                return
            self.in_sync = True
            self._sent = house
            LOGGER.debug("Sent %d exposed entities", len(house["entities"]))

    async def _put(self, house: dict[str, Any]) -> None:
        try:
            await self.client.put_house(house)
        except RtvoiceRejected:
            if not house["unexposed"]:
                raise
            # A stack older than the names of the unexposed entities
            # refuses the whole house for them.
            await self.client.put_house(
                {key: value for key, value in house.items() if key != "unexposed"}
            )

    @callback
    def async_stack_lost(self) -> None:
        """From the poll: the stack did not answer."""
        self.in_sync = False

    @callback
    def async_stack_seen(self, boot_id: Any) -> None:
        """From the poll: a stack that came back or restarted gets the house
        again. A stack that reports no boot id leaves it unknown."""
        if boot_id is not None:
            if boot_id != self._boot_id:
                self.in_sync = False
            self._boot_id = boot_id
        if not self.in_sync:
            self.async_changed()

    @callback
    def async_listen(self) -> Callable[[], None]:
        """Schedule a push on every change; returns the unsubscriber."""

        @callback
        def changed(event: Event[Any] | None = None) -> None:
            self.async_changed()

        unsubscribers = [
            self.hass.bus.async_listen(event, changed) for event in REGISTRY_EVENTS
        ]

        @callback
        def exposed_and_changed(data: EventStateChangedData) -> bool:
            old, new = data["old_state"], data["new_state"]
            if old is None or new is None or old.name != new.name:
                return True  # new, gone or renamed, exposed or not
            return _changed(data) and async_should_expose(
                self.hass, conversation.DOMAIN, data["entity_id"]
            )

        unsubscribers.append(
            self.hass.bus.async_listen(
                EVENT_STATE_CHANGED, changed, event_filter=exposed_and_changed
            )
        )
        unsubscribers.append(
            async_listen_entity_updates(self.hass, conversation.DOMAIN, changed)
        )

        @callback
        def unsubscribe() -> None:
            for unsubscriber in unsubscribers:
                unsubscriber()
            self._debouncer.async_shutdown()

        return unsubscribe


@callback
def _changed(data: EventStateChangedData) -> bool:
    """Renamed, or a state or an attribute the stack keeps changed."""
    old, new = data["old_state"], data["new_state"]
    if old is None or new is None or old.state != new.state:
        return True
    return any(
        old.attributes.get(key) != new.attributes.get(key)
        for key in (ATTR_FRIENDLY_NAME, *STATE_ATTRIBUTES)
    )
