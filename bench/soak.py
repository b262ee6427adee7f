"""`script/bench soak`: connect, stream, disconnect, 1,000 times per service.

Each service runs alone with its HTTP API. After a warm-up the process's
memory (VmRSS), open file descriptors and the /metrics gauges (open
connections, asyncio tasks) are read; then the cycles run, each one a real
client that leaves mid-work (a stream without `audio-stop`, a synthesis
whose audio is not read to the end, a command); then they are read again.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine
from functools import lru_cache
from typing import Any

from aiohttp import ClientSession
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.ping import Ping
from wyoming.tts import Synthesize
from wyoming.wake import Detect

from bench.load import HOUSE, running, until
from bench.tts import free_port, wait_ready
from testing.process import fds, gauges, rss_mb
from testing.speech import speak, stream_audio


async def quiet(session: ClientSession, http_port: int) -> tuple[int, int]:
    """The gauges once no connection is open."""
    started = time.monotonic()
    while (now := await gauges(session, http_port))[0]:
        if time.monotonic() - started > 10:
            raise TimeoutError(f"{now[0]} connections still open")
    return now


# --- one cycle per service: a client that leaves mid-work ---------------------------


@lru_cache(maxsize=1)
def audio() -> bytes:
    """One second of speech."""
    return speak("Okay, turn on the kitchen lights.", noise_db=None).audio[:32000]


async def wake_cycle(client: AsyncTcpClient) -> None:
    await client.write_event(Detect(names=["okay_nabu"]).event())
    await stream_audio(client, audio(), realtime=False, send_stop=False)
    await client.write_event(Ping().event())  # everything sent has been read
    await until(client, "pong", 30)


async def asr_cycle(client: AsyncTcpClient) -> None:
    await stream_audio(client, audio(), realtime=False, send_stop=False)
    await client.write_event(Ping().event())
    await until(client, "pong", 30)


async def tts_cycle(client: AsyncTcpClient) -> None:
    await client.write_event(Synthesize(text="Turned on the kitchen lights.").event())
    await until(client, "audio-chunk", 30)


async def handle_cycle(client: AsyncTcpClient) -> None:
    await client.write_event(Transcript(text="Turn on the kitchen lights.").event())
    await until(client, "intent", 30)


Cycle = Callable[[AsyncTcpClient], Coroutine[Any, Any, None]]
CYCLES: dict[str, tuple[Cycle, tuple[str, ...]]] = {
    "wake": (wake_cycle, ()),
    "asr": (asr_cycle, ()),
    "tts": (tts_cycle, ("--cache-bytes", "0")),
    "handle": (handle_cycle, ("--entities", str(HOUSE))),
}


async def soak(name: str, cycles: int) -> str:
    cycle, args = CYCLES[name]
    http_port = free_port()
    with running(name, *args, "--http-uri", f"http://127.0.0.1:{http_port}") as (
        port,
        process,
    ):
        await wait_ready(port)

        async def one() -> None:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await cycle(client)

        for _ in range(50):  # warm-up: allocator pools, executor threads
            await one()
        async with ClientSession() as session:
            before = await quiet(session, http_port)
            rss_before, fds_before = rss_mb(process.pid), fds(process.pid)
            started = time.monotonic()
            rss = [rss_before]  # after each quarter: growth that levels off
            for done in range(1, cycles + 1):
                await one()
                if done % max(1, cycles // 4) == 0:
                    rss.append(rss_mb(process.pid))
            elapsed = time.monotonic() - started
            after = await quiet(session, http_port)
            rss_after, fds_after = rss_mb(process.pid), fds(process.pid)
    return (
        f"| {name} | {cycles} in {elapsed:.0f} s | "
        + " -> ".join(f"{mb:.0f}" for mb in rss)
        + f" MB ({rss_after - rss_before:+.1f}) | {fds_before} -> {fds_after} | "
        f"{before[1]} -> {after[1]} |"
    )


async def main(services: list[str], cycles: int) -> None:
    rows = []
    for name in services:
        print(f"{name}...", flush=True)
        rows.append(await soak(name, cycles))
        print(rows[-1], flush=True)
    print(
        "\n| service | cycles | RSS at the start and after each quarter "
        "| open fds | asyncio tasks |\n|---|---|---|---|---|"
    )
    print("\n".join(rows))


def run() -> None:
    parser = argparse.ArgumentParser(prog="script/bench soak", description=__doc__)
    parser.add_argument("services", nargs="*", help=f"some of {', '.join(CYCLES)}")
    parser.add_argument("--cycles", type=int, default=1000)
    args = parser.parse_args()
    unknown = set(args.services) - set(CYCLES)
    if unknown:
        parser.error(f"unknown services: {', '.join(sorted(unknown))}")
    asyncio.run(main(args.services or list(CYCLES), args.cycles))


if __name__ == "__main__":
    run()
