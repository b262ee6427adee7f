"""Who a port trusts, and what one address may cost.

`Peers`: the clients that may hear the house's state, spend the LLM key or
take the satellite's microphone (and for whom connection slots are kept):
the `--allow-peer` networks; without any, loopback, the Home Assistant host
and the address kept in the state file (the one the rtvoice integration
pushed the house from, or the satellite's first peer).

`Rate`: at most N requests a minute in all and per address (the LLM).
`Guesses`: wrong tokens make their address wait, longer each time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

from .config import Network, ServerConfig, network, write_atomically

_LOGGER = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address
LOOPBACK: tuple[Network, ...] = (ip_network("127.0.0.0/8"), ip_network("::1/128"))
MAX_ADDRESSES = 10_000  # addresses remembered by a Rate or Guesses
TRUSTED_FILE = "trusted-peer"  # in --state-dir: who pushed the house


def address_of(host: str) -> Address | None:
    """A client's address (IPv4-mapped IPv6 as IPv4); None if not an address."""
    try:
        address = ip_address(host.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def host_networks(host: str) -> list[Network]:
    """The addresses `host` resolves to (e.g. --hass-url's), as networks."""
    try:
        found = await asyncio.to_thread(socket.getaddrinfo, host, None)
    except OSError as err:
        _LOGGER.warning("Cannot resolve %s (%s): not trusted", host, err)
        return []
    return [network(str(info[4][0]).split("%")[0]) for info in found]


class Peers:
    """The trusted clients: `allowed` only (--allow-peer) when given, else
    `trusted` and the one remembered address (kept in the file at `path`)."""

    def __init__(
        self,
        allowed: Sequence[Network] = (),
        trusted: Sequence[Network] = LOOPBACK,
        path: Path | None = None,
    ) -> None:
        self.allowed = list(allowed)
        self.trusted = list(trusted)
        self.path = path
        self.remembered: Address | None = None
        if path is not None and path.is_file():
            self.remembered = address_of(path.read_text(encoding="utf-8").strip())

    def allows(self, host: str | None) -> bool:
        """`host` as `server.peer_of` gives it: "local" (or None) is a unix
        socket or stdio, which its file's permissions guard."""
        if host is None or host == "local":
            return True
        address = address_of(host)
        if address is None:
            return False
        if self.allowed:
            return any(address in network for network in self.allowed)
        if address == self.remembered:
            return True
        return any(address in network for network in self.trusted)

    async def remember(self, host: str | None) -> bool:
        """Trust `host` from now on, also after a restart, instead of the
        address remembered before; not when --allow-peer names the peers.
        True when it is newly remembered."""
        address = None if host is None else address_of(host)
        if self.allowed or address is None or self.allows(host):
            return False
        self.remembered = address
        if self.path is not None:
            try:
                await asyncio.to_thread(write_atomically, self.path, f"{address}\n")
            except OSError as err:
                _LOGGER.warning("Cannot keep %s in %s: %s", address, self.path, err)
        return True

    def __str__(self) -> str:
        trusted = [*map(str, self.allowed or self.trusted)]
        if self.remembered is not None and not self.allowed:
            trusted.append(str(self.remembered))
        return ", ".join(trusted) or "nobody yet"


def trusted_peers(config: ServerConfig, more: Sequence[Network] = ()) -> Peers:
    """A service's peers: --allow-peer, else loopback, `more` (the Home
    Assistant host) and the address that last pushed the house."""
    return Peers(config.allow_peer, [*LOOPBACK, *more], config.state_dir / TRUSTED_FILE)


class Rate:
    """At most `per_minute` requests in any 60 s, and `per_address` of them
    from one address (0: no limit)."""

    def __init__(self, per_minute: int, per_address: int) -> None:
        self.per_minute = per_minute
        self.per_address = per_address
        self._all: deque[float] = deque()
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()

    def take(self, address: str) -> bool:
        """Count one request from `address`; False (not counted) over a limit."""
        now = time.monotonic()
        mine = self._by_address.pop(address, None) or deque()
        for times in (self._all, mine):
            while times and times[0] <= now - 60:
                times.popleft()
        over = (self.per_minute and len(self._all) >= self.per_minute) or (
            self.per_address and len(mine) >= self.per_address
        )
        if not over:
            self._all.append(now)
            mine.append(now)
        if mine:
            self._by_address[address] = mine
            if len(self._by_address) > MAX_ADDRESSES:
                self._by_address.popitem(last=False)
        return not over


class Guesses:
    """Wrong tokens by address. The first FREE different ones cost nothing
    (a typo, a stale token retried: the same token again is not a new
    guess); from then on each makes the address wait 1 s, 2 s, 4 s... (at
    most `max_wait_s`) before its next try is even compared."""

    FREE = 2

    def __init__(self, max_wait_s: float = 60.0) -> None:
        self.max_wait_s = max_wait_s
        # address -> (different wrong tokens, the last one's digest, until)
        self._wrong: OrderedDict[str, tuple[int, bytes, float]] = OrderedDict()

    def wait_s(self, address: str) -> float:
        """How long `address` must still wait before its next try (0: now)."""
        _, _, until = self._wrong.get(address, (0, b"", 0.0))
        return max(0.0, until - time.monotonic())

    def wrong(self, address: str, token: str) -> None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        count, last, until = self._wrong.pop(address, (0, b"", 0.0))
        if digest != last:
            count += 1
            if count > self.FREE:
                wait_s = min(self.max_wait_s, 2.0 ** (count - self.FREE - 1))
                until = time.monotonic() + wait_s
        self._wrong[address] = (count, digest, until)
        if len(self._wrong) > MAX_ADDRESSES:
            self._wrong.popitem(last=False)

    def right(self, address: str) -> None:
        self._wrong.pop(address, None)
