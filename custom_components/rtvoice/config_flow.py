"""Config flow: the user's host/port, zeroconf (`_rtvoice._tcp`) or the add-on's
Supervisor discovery; an optional token; the stack's own id as unique id.

A known stack found at a new address moves there only once the user confirms,
types the token again, and the stack at that address proves to be the same one
(its `/api/info` id); the stored token is never sent to the new address: the id
is public (it is in the advert), so a host that claims it proves nothing, and
a token typed by the user goes only where the user sent it. Reauthentication
and reconfiguration check the id too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .api import RtvoiceAuthError, RtvoiceClient, RtvoiceError
from .const import DEFAULT_PORT, DOMAIN

TOKEN = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
PORT = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))
STACK_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_PORT): PORT,
        vol.Optional(CONF_TOKEN): TOKEN,
    }
)
TOKEN_SCHEMA = vol.Schema({vol.Optional(CONF_TOKEN): TOKEN})
TOKEN_REQUIRED = vol.Schema({vol.Required(CONF_TOKEN): TOKEN})
ADDON_CONFIG = vol.Schema(
    {
        vol.Required(CONF_HOST): vol.All(str, vol.Length(min=1)),
        vol.Required(CONF_PORT): PORT,
        vol.Optional(CONF_TOKEN): vol.Any(None, str),
    },
    extra=vol.REMOVE_EXTRA,
)


class RtvoiceConfigFlow(ConfigFlow, domain=DOMAIN):
    """One entry per stack."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}
        self._name = ""
        self._moving: ConfigEntry | None = None

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Host and port of the stack's HTTP API, and its token if it needs one."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                info = await self._stack_info(user_input)
            except CannotAdd as err:
                errors["base"] = err.error
            else:
                await self.async_set_unique_id(info["id"])
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=_title(user_input[CONF_HOST], user_input[CONF_PORT]),
                    data=user_input,
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(STACK_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_zeroconf(
        self, discovery_info: ZeroconfServiceInfo
    ) -> ConfigFlowResult:
        """A stack advertised as _rtvoice._tcp, with its id in the advert."""
        stack_id = discovery_info.properties.get("id")
        if not stack_id or discovery_info.port is None:
            return self.async_abort(reason="not_rtvoice")
        self._discovered = {
            CONF_HOST: discovery_info.host,
            CONF_PORT: discovery_info.port,
        }
        hostname = discovery_info.hostname.removesuffix(".").removesuffix(".local")
        self._name = _title(hostname or discovery_info.host, discovery_info.port)
        await self.async_set_unique_id(stack_id)
        return await self._async_discovered()

    async def async_step_hassio(
        self, discovery_info: HassioServiceInfo
    ) -> ConfigFlowResult:
        """The rtvoice add-on, announced by the Supervisor with its address and
        token; the stack's id comes from the stack itself."""
        try:
            self._discovered = ADDON_CONFIG(discovery_info.config)
        except vol.Invalid:
            return self.async_abort(reason="not_rtvoice")
        if not self._discovered.get(CONF_TOKEN):
            self._discovered.pop(CONF_TOKEN, None)
        self._name = f"{discovery_info.name} add-on"
        try:
            info = await self._stack_info(self._discovered)
        except CannotAdd as err:
            return self.async_abort(reason=err.error)
        await self.async_set_unique_id(info["id"])
        return await self._async_discovered()

    async def _async_discovered(self) -> ConfigFlowResult:
        """A new stack is confirmed before it is added; a known one found at
        another address is confirmed before it moves there."""
        assert self.unique_id is not None
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(
            DOMAIN, self.unique_id
        )
        if entry is not None and (
            entry.source == SOURCE_IGNORE
            or _address(entry.data) == _address(self._discovered)
        ):
            return self.async_abort(reason="already_configured")
        if entry is not None:
            self._moving = entry
            self.context["title_placeholders"] = {"name": entry.title}
            return await self.async_step_move_confirm()
        self.context["title_placeholders"] = {"name": self._name}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add the discovered stack, with the token if the API needs one."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**self._discovered, **user_input}
            try:
                info = await self._stack_info(data)
            except CannotAdd as err:
                errors["base"] = err.error
            else:
                if info["id"] != self.unique_id:  # not the stack advertised
                    return self.async_abort(reason="wrong_stack")
                return self.async_create_entry(title=self._name, data=data)
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=(
                vol.Schema({}) if CONF_TOKEN in self._discovered else (TOKEN_SCHEMA)
            ),
            description_placeholders={"name": self._name, **_where(self._discovered)},
            errors=errors,
        )

    async def async_step_move_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A known stack answers at a new address: move the entry there? Its
        token is asked for again (the add-on's comes from the Supervisor)."""
        entry = self._moving
        assert entry is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**self._discovered, **user_input}
            try:
                info = await self._stack_info(data)
            except CannotAdd as err:
                errors["base"] = err.error
            else:
                if info["id"] != self.unique_id:
                    return self.async_abort(reason="wrong_stack")
                return self.async_update_reload_and_abort(
                    entry, data=data, reason="moved"
                )
        if CONF_TOKEN in self._discovered:
            schema = vol.Schema({})
        else:
            schema = TOKEN_REQUIRED if entry.data.get(CONF_TOKEN) else TOKEN_SCHEMA
        return self.async_show_form(
            step_id="move_confirm",
            data_schema=schema,
            description_placeholders={
                "name": entry.title,
                "old": _where(entry.data)["address"],
                **_where(self._discovered),
            },
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A new address or token for the same stack."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                info = await self._stack_info(user_input)
            except CannotAdd as err:
                errors["base"] = err.error
            else:
                await self.async_set_unique_id(info["id"])
                self._abort_if_unique_id_mismatch(reason="wrong_stack")
                return self.async_update_reload_and_abort(entry, data=user_input)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                STACK_SCHEMA, user_input or entry.data
            ),
            errors=errors,
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """The stack refused the token (at setup or while running)."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A new token, for the same stack."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input}
            try:
                info = await self._stack_info(data)
            except CannotAdd as err:
                errors["base"] = err.error
            else:
                await self.async_set_unique_id(info["id"])
                self._abort_if_unique_id_mismatch(reason="wrong_stack")
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=TOKEN_SCHEMA,
            description_placeholders={"name": entry.title},
            errors=errors,
        )

    async def _stack_info(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The stack's /api/info; CannotAdd with the error to show."""
        client = RtvoiceClient(
            async_get_clientsession(self.hass),
            data[CONF_HOST],
            data[CONF_PORT],
            data.get(CONF_TOKEN),
        )
        try:
            info = await client.info()
        except RtvoiceAuthError as err:
            raise CannotAdd("invalid_auth") from err
        except RtvoiceError as err:
            raise CannotAdd("cannot_connect") from err
        if not info["ports"].get("handle") or not info.get("id"):
            raise CannotAdd("no_handle")
        return info


class CannotAdd(Exception):
    """The stack cannot be added; `error` is the form's error key."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _address(data: Mapping[str, Any]) -> dict[str, Any]:
    return {CONF_HOST: data[CONF_HOST], CONF_PORT: data[CONF_PORT]}


def _where(data: Mapping[str, Any]) -> dict[str, str]:
    return {"address": f"{data[CONF_HOST]}:{data[CONF_PORT]}"}


def _title(host: str, port: int) -> str:
    """The entry's (and its device's) name: the stack's host, and its port
    unless it is the default, so two stacks never share a name."""
    return f"rtvoice {host}" if port == DEFAULT_PORT else f"rtvoice {host}:{port}"
