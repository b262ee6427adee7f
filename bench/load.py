"""`script/bench load`: concurrent real-time clients per service until its p95 doubles.

Each service runs alone (a subprocess, as deployed). Clients behave as real
ones do: wake and asr clients stream spoken audio at real-time pace, one
stream after another (a satellite per client); tts and handle clients send
a request at a steady pace (one every `PACE_S`), not back to back. The
number of clients doubles (1, 2, 4, ...) until the p95 latency is twice its
one-client value (and at least 20 ms more), a client sees an error, or the
cap is reached.

Latency is what a user feels from each service: wake, last spoken sample ->
`detection`; asr, `audio-stop` -> `transcript`; handle, `transcript` ->
`intent`; tts, `synthesize` -> first audio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.tts import Synthesize
from wyoming.wake import Detect

from bench.tts import free_port, wait_ready
from testing.speech import Spoken, speak, stream_audio

HOUSE = Path(__file__).parents[1] / "wyoming_rtvoice" / "data" / "demo_house.json"
# Doubling from a few ms is noise nobody hears: the p95 must also have grown
# by this much to count.
MIN_GROWTH_MS = 20.0
PACE_S = {"tts": 1.0, "handle": 0.25}
MIN_REQUESTS = 12  # per level, so that one client's p95 means something
CONFIRMATIONS = [
    "Turned on the kitchen lights.",
    "The garage door is closed.",
    "Set the bedroom fan to low.",
    "Locked the front door.",
]
COMMANDS = [
    "Turn on the kitchen lights.",
    "Close the garage door.",
    "Lock the front door.",
    "Turn off the bedroom fan.",
]


class ClientError(Exception):
    """The service answered with an error or not at all."""


async def until(
    client: AsyncTcpClient, wanted: str | tuple[str, ...], timeout: float
) -> Event:
    """The first event of the wanted type(s); an `error` event raises."""
    types = (wanted,) if isinstance(wanted, str) else wanted
    async with asyncio.timeout(timeout):
        while (event := await client.read_event()) is not None:
            if event.type in types:
                return event
            if event.type == "error":
                raise ClientError(event.data.get("text"))
    raise ClientError(f"closed before {' or '.join(types)}")


# --- one request of each kind; each returns its latency in ms ----------------------


async def wake_request(port: int, clip: Spoken, index: int) -> float:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Detect(names=["okay_nabu"]).event())
        started = time.monotonic()
        sending = asyncio.create_task(stream_audio(client, clip.audio))
        try:
            await until(client, "detection", clip.seconds + 5)
        finally:
            sending.cancel()
        return (time.monotonic() - started - clip.speech_end_s) * 1000


async def asr_request(port: int, clip: Spoken, index: int) -> float:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        stopped = await stream_audio(client, clip.audio)
        await until(client, "transcript", 30)
        return (time.monotonic() - stopped) * 1000


async def tts_request(port: int, clip: Spoken, index: int) -> float:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.monotonic()
        text = CONFIRMATIONS[index % len(CONFIRMATIONS)]
        await client.write_event(Synthesize(text=text).event())
        await until(client, "audio-chunk", 30)
        return (time.monotonic() - started) * 1000


async def handle_request(port: int, clip: Spoken, index: int) -> float:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.monotonic()
        text = COMMANDS[index % len(COMMANDS)]
        await client.write_event(Transcript(text=text).event())
        await until(client, "intent", 30)
        return (time.monotonic() - started) * 1000


Request = Callable[[int, Spoken, int], Coroutine[Any, Any, float]]


@dataclass(frozen=True)
class Target:
    request: Request
    args: tuple[str, ...]
    text: str  # what is spoken, for wake and asr
    max_clients: int


TARGETS = {
    "wake": Target(wake_request, (), "Okay Nabu.", 64),
    "asr": Target(asr_request, (), "Turn on the lights in the living room please.", 16),
    "handle": Target(handle_request, ("--entities", str(HOUSE)), "", 64),
    "tts": Target(tts_request, ("--cache-bytes", "0"), "", 32),
}


# --- the ramp ------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def doubled(base: list[float], now: list[float]) -> bool:
    return p95(now) >= max(2 * p95(base), p95(base) + MIN_GROWTH_MS)


async def one_client(
    name: str,
    port: int,
    clip: Spoken,
    client_index: int,
    seconds: float,
    latencies: list[float],
) -> None:
    """Requests for `seconds` (and until the level has MIN_REQUESTS): streams
    back to back, or paced requests."""
    target = TARGETS[name]
    pace = PACE_S.get(name)
    loop = asyncio.get_running_loop()
    if pace is not None:  # spread the clients over one period
        await asyncio.sleep(pace * (client_index % 8) / 8)
    end = loop.time() + seconds
    index = client_index
    while loop.time() < end or len(latencies) < MIN_REQUESTS:
        began = loop.time()
        latencies.append(await target.request(port, clip, index))
        index += 1
        if pace is not None:
            await asyncio.sleep(max(0.0, began + pace - loop.time()))


async def ramp(name: str, port: int, seconds: float) -> list[tuple[int, list[float]]]:
    target = TARGETS[name]
    clip = speak(target.text or "unused", noise_db=-50, tail_s=0.8)
    await target.request(port, clip, 0)  # warm the path
    curve: list[tuple[int, list[float]]] = []
    clients = 1
    while clients <= target.max_clients:
        latencies: list[float] = []
        try:
            await asyncio.gather(
                *(
                    one_client(name, port, clip, i, seconds, latencies)
                    for i in range(clients)
                )
            )
        except (ClientError, OSError) as err:
            print(f"  {clients:3} clients: failed ({err})")
            break
        curve.append((clients, latencies))
        print(
            f"  {clients:3} clients: p50 {statistics.median(latencies):7.1f} / "
            f"p95 {p95(latencies):7.1f} ms ({len(latencies)} requests)",
            flush=True,
        )
        if doubled(curve[0][1], latencies):
            break
        clients *= 2
    return curve


@contextlib.contextmanager
def running(name: str, *args: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The service alone on a free port: (port, process)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wyoming_rtvoice", name]
        + ["--uri", f"tcp://127.0.0.1:{port}", "--max-connections", "256", *args],
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port, process
    finally:
        process.terminate()
        process.wait(30)


def knee(curve: list[tuple[int, list[float]]]) -> str:
    base = curve[0][1]
    held = [clients for clients, ms in curve if not doubled(base, ms)]
    last = curve[-1][0]
    if last == held[-1]:
        return f"not reached: {last} clients (the most tried)"
    return f"{held[-1]} clients (p95 doubles at {last})"


async def main(services: list[str], seconds: float) -> None:
    started = time.monotonic()
    table: list[str] = []
    for name in services:
        print(f"{name}:", flush=True)
        with running(name, *TARGETS[name].args) as (port, _):
            await wait_ready(port)
            curve = await ramp(name, port, seconds)
        points = ", ".join(
            f"{clients}: {statistics.median(ms):.0f}/{p95(ms):.0f}"
            for clients, ms in curve
        )
        table.append(f"| {name} | {points} | {knee(curve)} |")
    print("\n| service | clients: p50/p95 ms | knee |\n|---|---|---|")
    print("\n".join(table))
    print(f"\n({time.monotonic() - started:.0f} s)")


def run() -> None:
    parser = argparse.ArgumentParser(prog="script/bench load", description=__doc__)
    parser.add_argument(
        "services", nargs="*", help=f"some of {', '.join(TARGETS)} (all)"
    )
    parser.add_argument(
        "--seconds", type=float, default=6.0, help="per level (%(default)s)"
    )
    args = parser.parse_args()
    unknown = set(args.services) - set(TARGETS)
    if unknown:
        parser.error(f"unknown services: {', '.join(sorted(unknown))}")
    asyncio.run(main(args.services or list(TARGETS), args.seconds))


if __name__ == "__main__":
    run()
