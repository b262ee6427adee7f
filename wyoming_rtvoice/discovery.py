"""Zeroconf advertisement of a Wyoming service (`_wyoming._tcp.local.`) and of
the stack's HTTP API (`_rtvoice._tcp.local.`, for the Home Assistant integration)."""

from __future__ import annotations

import contextlib
import logging
import socket
from ipaddress import ip_address

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
RTVOICE_TYPE = "_rtvoice._tcp.local."
_MDNS_GROUP = "224.0.0.251"


def advertised_address(bound_host: str) -> str:
    """The address clients can reach: the bound one, or the primary one if wildcard."""
    with contextlib.suppress(OSError, ValueError):
        bound = ip_address(socket.gethostbyname(bound_host))
        if bound.version == 4 and not bound.is_unspecified:
            return str(bound)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((_MDNS_GROUP, 1))  # no packet is sent; this picks the route
        return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


class Advertisement:
    """One registered service: `start()` announces it, `stop()` withdraws it."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        service_type: str = SERVICE_TYPE,
        properties: dict[str, str] | None = None,
    ) -> None:
        self.address = advertised_address(host)
        # Bound to loopback means reachable on loopback only: announce there only.
        interfaces = [self.address] if ip_address(self.address).is_loopback else None
        self._zeroconf = AsyncZeroconf(
            interfaces=interfaces or "all", ip_version=IPVersion.V4Only
        )
        self._info = AsyncServiceInfo(
            service_type,
            f"{name}.{service_type}",
            addresses=[socket.inet_aton(self.address)],
            port=port,
            properties=properties or {},
            server=f"{socket.gethostname()}.local.",
        )

    async def start(self) -> None:
        await self._zeroconf.async_register_service(self._info)
        _LOGGER.info(
            "Advertised %s at %s:%s", self._info.name, self.address, self._info.port
        )

    async def stop(self) -> None:
        await self._zeroconf.async_unregister_all_services()
        await self._zeroconf.async_close()
