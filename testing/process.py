"""A running service seen from outside: its process in /proc, its gauges
in /metrics (tests of leaks and faults, and the soak benchmark)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from pathlib import Path

from aiohttp import ClientSession


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def gauges(session: ClientSession, http_port: int) -> tuple[int, int]:
    """(open connections, asyncio tasks) from the service's /metrics."""
    async with session.get(f"http://127.0.0.1:{http_port}/metrics") as response:
        text = await response.text()
    connections = re.findall(r"^rtvoice_open_connections\{.*\} (\d+)$", text, re.M)
    tasks = re.search(r"^rtvoice_asyncio_tasks (\d+)$", text, re.M)
    if not connections or tasks is None:
        raise ValueError(f"no gauges in /metrics:\n{text}")
    return sum(map(int, connections)), int(tasks.group(1))


async def settle(
    session: ClientSession, http_port: int, wanted: tuple[int, int]
) -> float:
    """Seconds until the gauges are back at `wanted` (polled as fast as they come)."""
    started = time.monotonic()
    while (now := await gauges(session, http_port)) != wanted:
        if time.monotonic() - started > 10:
            raise TimeoutError(f"gauges stuck at {now}, not {wanted}")
    return time.monotonic() - started


def listening(pid: int) -> list[str]:
    """The process's listening TCP sockets as ADDRESS:PORT."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            packed = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            packed = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
            found.append(f"{socket.inet_ntop(family, packed)}:{int(port, 16)}")
    return sorted(found, key=lambda entry: int(entry.rsplit(":", 1)[1]))
