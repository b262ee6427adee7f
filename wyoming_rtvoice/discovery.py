"""Zeroconf advertisement of a Wyoming service (`_wyoming._tcp.local.`)."""

from __future__ import annotations

import contextlib
import logging
import socket
import uuid
from ipaddress import ip_address

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
_MDNS_GROUP = "224.0.0.251"


def default_name(service: str) -> str:
    """A name that is stable for this machine and service."""
    return f"rtvoice-{service}-{uuid.getnode():012x}"


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

    def __init__(self, name: str, host: str, port: int) -> None:
        self.address = advertised_address(host)
        # Bound to loopback means reachable on loopback only: announce there only.
        interfaces = [self.address] if ip_address(self.address).is_loopback else None
        self._zeroconf = AsyncZeroconf(
            interfaces=interfaces or "all", ip_version=IPVersion.V4Only
        )
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.address)],
            port=port,
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
