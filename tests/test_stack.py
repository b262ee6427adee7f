"""`stack`: all four services in one process, one HTTP API, each advertised
(the session's shared stack, tests/conftest.py)."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from aiohttp import ClientSession
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from testing.speech import speak, stream_audio

from .conftest import Stack, reset_llm

LONG_ANSWER = (
    "The moon is about three hundred and eighty four thousand kilometres away. "
    "Light from it takes a little over a second to reach us."
)

SERVICES = ("tts", "asr", "wake", "handle")


@pytest.fixture(autouse=True)
def answer(stack: Stack) -> None:
    reset_llm(stack.llm, answer=LONG_ANSWER, first_token_s=0.05, token_s=0.05)


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 10)
    assert event is not None
    return Info.from_event(event)


async def test_each_service_answers_on_its_port(stack: Stack) -> None:
    infos = {name: await describe(stack.ports[name]) for name in SERVICES}
    assert infos["tts"].tts and not infos["tts"].asr
    assert infos["asr"].asr[0].supports_transcript_streaming
    assert infos["wake"].wake[0].models
    assert infos["handle"].handle and infos["handle"].intent


async def test_one_http_api_for_all(stack: Stack) -> None:
    async with AsyncTcpClient("127.0.0.1", stack.ports["tts"]) as client:
        await client.write_event(Synthesize(text="Stack check.").event())
        while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
            if event.type == "audio-stop":
                break
    base = stack.http
    async with ClientSession() as session:
        async with session.get(f"{base}/health") as response:
            assert (await response.json())["service"] == "tts+asr+wake+handle+pipeline"
        async with session.get(f"{base}/metrics") as response:
            assert 'service="tts",stage="tts"' in await response.text()
        async with session.get(f"{base}/api/entities") as response:
            assert len((await response.json())["entities"]) >= 200
        async with session.get(f"{base}/api/names") as response:
            assert await response.json() == []


async def test_stats_and_info_as_json(stack: Stack) -> None:
    async with AsyncTcpClient("127.0.0.1", stack.ports["tts"]) as client:
        await client.write_event(Synthesize(text="Stats check.").event())
        while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
            if event.type == "audio-stop":
                break
    base = stack.http
    async with ClientSession() as session:
        async with session.get(f"{base}/api/stats") as response:
            stats = await response.json()
        async with session.get(f"{base}/api/info") as response:
            info = await response.json()
    assert stats["last_turn"]["service"] == "tts"
    assert 0 < stats["last_turn"]["first_audio_ms"] < 10_000
    tts = stats["stages"]["tts"]
    assert tts["count"] >= 1 and 0 < tts["p50_ms"] <= tts["p95_ms"]
    assert (
        info["ports"].items() >= {name: stack.ports[name] for name in SERVICES}.items()
    )
    assert re.fullmatch("[0-9a-f]{16}", info["id"]) and info["version"]
    assert info["boot_id"] and info["boot_id"] != info["id"]


async def test_http_api_is_advertised_with_ports(stack: Stack) -> None:
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            names.put_nowait(name)

    browser = AsyncServiceBrowser(
        zeroconf.zeroconf, "_rtvoice._tcp.local.", handlers=[on_change]
    )
    try:
        async with asyncio.timeout(15):  # ours is the one on our HTTP port
            while True:
                info = AsyncServiceInfo("_rtvoice._tcp.local.", await names.get())
                if await info.async_request(zeroconf.zeroconf, 3000):
                    if info.port == int(stack.http.rsplit(":", 1)[1]):
                        break
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()
    assert info.parsed_addresses() == ["127.0.0.1"]
    properties = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
    assert {name: int(properties[name]) for name in SERVICES} == {
        name: stack.ports[name] for name in SERVICES
    }
    assert properties["version"] and len(properties["id"]) == 16


async def test_every_service_is_advertised(stack: Stack) -> None:
    browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    seen: set[str] = set()
    all_seen = asyncio.Event()

    def on_change(
        zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if (
            name.startswith(f"{stack.zeroconf}-")
            and state_change is ServiceStateChange.Added
        ):
            seen.add(name.split(".")[0])
            if len(seen) == len(SERVICES):
                all_seen.set()

    browser = AsyncServiceBrowser(
        browser_zc.zeroconf, "_wyoming._tcp.local.", handlers=[on_change]
    )
    try:
        await asyncio.wait_for(all_seen.wait(), 15)
    finally:
        await browser.async_cancel()
        await browser_zc.async_close()
    assert seen == {f"{stack.zeroconf}-{name}" for name in SERVICES}


async def converse_over(
    port: int, audio: bytes, turns: int = 1, arrivals: list[float] | None = None
) -> list[Event]:
    """Stream `audio` to the pipeline endpoint the way a satellite does (the
    microphone stays open) and collect events until `turns` replies ended;
    `arrivals` gets the moment each event arrived."""
    events: list[Event] = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        streaming = asyncio.create_task(stream_audio(client, audio, send_stop=False))
        while sum(event.type == "audio-stop" for event in events) < turns:
            event = await asyncio.wait_for(client.read_event(), 30)
            assert event is not None
            events.append(event)
            if arrivals is not None:
                arrivals.append(time.monotonic())
        streaming.cancel()
    return events


def without_chunks(events: list[Event]) -> list[str]:
    return [event.type for event in events if event.type != "audio-chunk"]


async def test_pipeline_endpoint_answers_a_command(stack: Stack) -> None:
    spoken = speak("Turn on the office lamp.", tail_s=3.0)
    events = await converse_over(stack.ports["pipeline"], spoken.audio)
    assert events[2].data["text"].lower() == "turn on the office lamp."
    assert without_chunks(events) == [
        "voice-started",
        "voice-stopped",
        "transcript",
        "intent",
        "audio-start",
        "audio-stop",
    ]
    assert events[3].data["name"] == "HassTurnOn"
    # The turn is recorded once its reply has been played (about a second).
    url = f"{stack.http}/api/turns"
    async with ClientSession() as session:
        for _ in range(50):
            async with session.get(url) as response:
                turns = await response.json()
            if any(turn["service"] == "pipeline" for turn in turns):
                break
            await asyncio.sleep(0.1)
    pipeline_turn = next(turn for turn in turns if turn["service"] == "pipeline")
    assert "first_audio" in pipeline_turn["marks_ms"]


async def test_pipeline_endpoint_barge_in(stack: Stack) -> None:
    question = speak("How far away is the moon?", tail_s=1.2).audio
    command = speak("Turn on the office lamp.").audio
    arrivals: list[float] = []
    events = await converse_over(
        stack.ports["pipeline"], question + command, turns=2, arrivals=arrivals
    )
    kinds = [event.type for event in events]
    start, stop = kinds.index("audio-start"), kinds.index("audio-stop")
    sent_s = sum(len(event.payload or b"") for event in events[start:stop]) / (
        2 * events[start].data["rate"]
    )
    # The next turn began while the answer sent so far was still playing
    # (a satellite stops playing at that voice-started); the command was it.
    next_turn = kinds.index("voice-started", stop)
    assert arrivals[next_turn] - arrivals[start] < sent_s
    intent = next(event for event in events if event.type == "intent")
    assert intent.data["name"] == "HassTurnOn"
