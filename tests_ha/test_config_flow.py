"""Config flow against the real stack: user, zeroconf (a real advertisement),
duplicate, cannot connect, wrong token, reconfigure, reauth."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import Any

import pytest
from homeassistant.config_entries import (
    SOURCE_USER,
    SOURCE_ZEROCONF,
    ConfigFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from tests.conftest import free_port

from .conftest import DOMAIN, PYTHON, TOKEN, Server, Stack, running

pytestmark = pytest.mark.usefixtures("house")  # what a created entry sets up with


async def _user_flow(hass: HomeAssistant, data: dict[str, Any]) -> ConfigFlowResult:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM and result["step_id"] == "user"
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


async def test_user_creates_one_entry_per_stack(
    hass: HomeAssistant, stack: Stack, fake_llm: str
) -> None:
    result = await _user_flow(hass, {**stack.data, CONF_PORT: free_port()})
    assert result["errors"] == {"base": "cannot_connect"}
    other_server = int(fake_llm.rsplit(":", 1)[1])  # HTTP, but 404 on /api/info
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**stack.data, CONF_PORT: other_server}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**stack.data, CONF_TOKEN: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], stack.data
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == stack.data
    assert result["result"].unique_id == stack.id
    await hass.async_block_till_done()

    again = await _user_flow(hass, stack.data)
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_user_refuses_a_server_without_handle(
    hass: HomeAssistant, tmp_path_factory: pytest.TempPathFactory
) -> None:
    http = free_port()
    argv = [PYTHON, "-m", "wyoming_rtvoice", "wake"]
    argv += [
        f"--uri=tcp://127.0.0.1:{free_port()}",
        f"--http-uri=http://127.0.0.1:{http}",
    ]
    log = tmp_path_factory.mktemp("wake") / "wake.log"
    with running(Server(argv, log)):
        result = await _user_flow(hass, {CONF_HOST: "127.0.0.1", CONF_PORT: http})
    assert result["errors"] == {"base": "no_handle"}


async def _discover(name: str) -> ZeroconfServiceInfo:
    """The stack's real _rtvoice._tcp advertisement, as HA's zeroconf gives it."""
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo("_rtvoice._tcp.local.", f"{name}._rtvoice._tcp.local.")
    try:
        assert await info.async_request(zeroconf.zeroconf, 10_000)
    finally:
        await zeroconf.async_close()
    address = ip_address(info.parsed_addresses()[0])
    return ZeroconfServiceInfo(
        ip_address=address,
        ip_addresses=[address],
        port=info.port,
        hostname=info.server or "",
        type=info.type,
        name=info.name,
        properties={
            k.decode(): (v or b"").decode() for k, v in info.properties.items()
        },
    )


async def test_zeroconf_discovers_the_stack(hass: HomeAssistant, stack: Stack) -> None:
    discovery = await asyncio.wait_for(_discover(stack.zeroconf_name), 15)

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["errors"] == {"base": "invalid_auth"}  # it needs the token
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: TOKEN}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == stack.data
    assert result["result"].unique_id == stack.id
    await hass.async_block_till_done()


async def test_zeroconf_updates_a_known_stack_and_ignores_others(
    hass: HomeAssistant, stack: Stack
) -> None:
    discovery = await asyncio.wait_for(_discover(stack.zeroconf_name), 15)
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={**stack.data, CONF_HOST: "192.0.2.1", CONF_PORT: 1},
        unique_id=stack.id,
    )
    entry.add_to_hass(hass)

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data == stack.data  # the address moved; the token stays

    discovery.properties = {}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=discovery
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_rtvoice"


async def test_reconfigure_checks_it_is_the_same_stack(
    hass: HomeAssistant, stack: Stack
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, data={**stack.data, CONF_PORT: 1}, unique_id=stack.id
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**stack.data, CONF_PORT: free_port()}
    )
    assert result["errors"] == {"base": "cannot_connect"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], stack.data
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == stack.data
    await hass.async_block_till_done()

    other = MockConfigEntry(domain=DOMAIN, data=stack.data, unique_id="another")
    other.add_to_hass(hass)
    result = await other.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], stack.data
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"


async def test_a_refused_token_asks_for_a_new_one(
    hass: HomeAssistant, stack: Stack
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, data={**stack.data, CONF_TOKEN: "old"}, unique_id=stack.id
    )
    entry.add_to_hass(hass)

    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    [flow] = hass.config_entries.flow.async_progress()
    assert flow["context"]["source"] == "reauth"
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_TOKEN: "still wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == TOKEN
    await hass.async_block_till_done()
