"""`stack`: all four services in one process, one HTTP API, each advertised."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .conftest import free_port

SERVICES = ("tts", "asr", "wake", "handle")
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in (*SERVICES, "http")}
    log = tmp_path_factory.mktemp("stack") / "stack.log"
    argv = [sys.executable, "-m", "wyoming_rtvoice", "stack", "--host", "127.0.0.1"]
    argv += [item for name in SERVICES for item in (f"--{name}-port", str(ports[name]))]
    argv += [
        "--http-uri",
        f"http://127.0.0.1:{ports['http']}",
        "--zeroconf",
        "stacktest",
    ]
    argv += ["--entities", str(DATA / "house.json")]
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while "Ready" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield ports
    process.terminate()
    assert process.wait(timeout=20) == 0
    assert "Traceback" not in log.read_text()


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), 10)
    assert event is not None
    return Info.from_event(event)


async def test_each_service_answers_on_its_port(stack: dict[str, int]) -> None:
    infos = {name: await describe(stack[name]) for name in SERVICES}
    assert infos["tts"].tts and not infos["tts"].asr
    assert infos["asr"].asr[0].supports_transcript_streaming
    assert infos["wake"].wake[0].models
    assert infos["handle"].handle and infos["handle"].intent


async def test_one_http_api_for_all(stack: dict[str, int]) -> None:
    async with AsyncTcpClient("127.0.0.1", stack["tts"]) as client:
        await client.write_event(Synthesize(text="Stack check.").event())
        while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
            if event.type == "audio-stop":
                break
    base = f"http://127.0.0.1:{stack['http']}"
    async with ClientSession() as session:
        async with session.get(f"{base}/health") as response:
            assert (await response.json())["service"] == "tts+asr+wake+handle"
        async with session.get(f"{base}/metrics") as response:
            assert 'service="tts",stage="tts"' in await response.text()
        async with session.get(f"{base}/api/entities") as response:
            assert len((await response.json())["entities"]) >= 200
        async with session.get(f"{base}/api/names") as response:
            assert await response.json() == []


async def test_stats_and_info_as_json(stack: dict[str, int]) -> None:
    async with AsyncTcpClient("127.0.0.1", stack["tts"]) as client:
        await client.write_event(Synthesize(text="Stats check.").event())
        while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
            if event.type == "audio-stop":
                break
    base = f"http://127.0.0.1:{stack['http']}"
    async with ClientSession() as session:
        async with session.get(f"{base}/api/stats") as response:
            stats = await response.json()
        async with session.get(f"{base}/api/info") as response:
            info = await response.json()
    assert stats["last_turn"]["service"] == "tts"
    assert 0 < stats["last_turn"]["first_audio_ms"] < 10_000
    tts = stats["stages"]["tts"]
    assert tts["count"] >= 1 and 0 < tts["p50_ms"] <= tts["p95_ms"]
    assert info["ports"].items() >= {name: stack[name] for name in SERVICES}.items()
    assert len(info["id"]) == 12 and info["version"]


async def test_http_api_is_advertised_with_ports(stack: dict[str, int]) -> None:
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
                    if info.port == stack["http"]:
                        break
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()
    assert info.parsed_addresses() == ["127.0.0.1"]
    properties = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
    assert {name: int(properties[name]) for name in SERVICES} == {
        name: stack[name] for name in SERVICES
    }
    assert properties["version"] and len(properties["id"]) == 12


async def test_every_service_is_advertised(stack: dict[str, int]) -> None:
    browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    seen: set[str] = set()
    all_seen = asyncio.Event()

    def on_change(
        zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name.startswith("stacktest-") and state_change is ServiceStateChange.Added:
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
    assert seen == {f"stacktest-{name}" for name in SERVICES}
