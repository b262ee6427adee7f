"""Config flow: zeroconf discovery or host/port, an optional token, and the
stack's own id as unique id; reconfigure and reauth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .api import RtvoiceAuthError, RtvoiceClient, RtvoiceError
from .const import DEFAULT_PORT, DOMAIN

TOKEN = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
STACK_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_HOST): str,
        vol.Required(CONF_PORT, default=DEFAULT_PORT): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=65535)
        ),
        vol.Optional(CONF_TOKEN): TOKEN,
    }
)
TOKEN_SCHEMA = vol.Schema({vol.Optional(CONF_TOKEN): TOKEN})


class RtvoiceConfigFlow(ConfigFlow, domain=DOMAIN):
    """One entry per stack."""

    VERSION = 1

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}

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
                self._abort_if_unique_id_configured(updates=_address(user_input))
                return self.async_create_entry(
                    title=_title(user_input), data=user_input
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(STACK_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_zeroconf(
        self, discovery_info: ZeroconfServiceInfo
    ) -> ConfigFlowResult:
        """A stack advertised as _rtvoice._tcp; known stacks get the new address."""
        stack_id = discovery_info.properties.get("id")
        if not stack_id or discovery_info.port is None:
            return self.async_abort(reason="not_rtvoice")
        self._discovered = {
            CONF_HOST: discovery_info.host,
            CONF_PORT: discovery_info.port,
        }
        await self.async_set_unique_id(stack_id)
        self._abort_if_unique_id_configured(updates=self._discovered)
        self.context["title_placeholders"] = {"name": _title(self._discovered)}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm, with the token if the API needs one."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**self._discovered, **user_input}
            try:
                await self._stack_info(data)
            except CannotAdd as err:
                errors["base"] = err.error
            else:
                return self.async_create_entry(title=_title(data), data=data)
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=TOKEN_SCHEMA,
            description_placeholders={"name": _title(self._discovered)},
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
                self._abort_if_unique_id_mismatch()
                return self.async_update_reload_and_abort(
                    entry, title=_title(user_input), data=user_input
                )
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
        """The stack refused the token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A new token."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input}
            try:
                await self._stack_info(data)
            except CannotAdd as err:
                errors["base"] = err.error
            else:
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


def _title(data: Mapping[str, Any]) -> str:
    return f"rtvoice {data[CONF_HOST]}:{data[CONF_PORT]}"
