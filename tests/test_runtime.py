"""The shared runtime on its own: limits, timeouts, bad frames, HTTP auth."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping

from wyoming_rtvoice.api import HouseApi
from wyoming_rtvoice.converse import DEMO_HOUSE
from wyoming_rtvoice.house.matcher import Matcher
from wyoming_rtvoice.house.store import HouseStore, Snapshot
from wyoming_rtvoice.http import HttpApi
from wyoming_rtvoice.reader import Limits, ProtocolError, read_event
from wyoming_rtvoice.server import EventHandler, Server
from wyoming_rtvoice.trace import Metrics, Trace

from .conftest import free_port

TIMEOUT = 10
INFO = {"service": "test", "id": "test", "ports": {}}


class EchoHandler(EventHandler):
    """Echoes every event back: enough protocol to exercise the runtime."""

    async def handle_event(self, event: Event) -> bool:
        await self.write_event(event)
        return True


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    limits = Limits(max_connections=2, idle_timeout_s=1.0, frame_timeout_s=0.5)
    running = Server(
        f"tcp://127.0.0.1:{free_port()}",
        lambda r, w: EchoHandler(r, w, Info(), limits),
        limits,
    )
    await running.start()
    yield running
    await running.stop()


async def next_event(client: AsyncTcpClient) -> Event | None:
    return await asyncio.wait_for(client.read_event(), TIMEOUT)


async def test_echo_and_ping(server: Server) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        await client.write_event(Event("hello", {"x": 1}, b"abc"))
        echoed = await next_event(client)
        assert (
            echoed is not None and echoed.data == {"x": 1} and echoed.payload == b"abc"
        )
        await client.write_event(Ping(text="t").event())
        pong = await next_event(client)
        assert pong is not None and pong.type == "pong" and pong.data["text"] == "t"


async def test_idle_connection_is_closed_with_an_error(server: Server) -> None:
    async with AsyncTcpClient("127.0.0.1", server.port) as client:
        event = await next_event(client)
        assert event is not None and Error.from_event(event).code == "idle-timeout"
        assert await next_event(client) is None


async def test_stalled_frame_is_closed_with_an_error(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b'{"type": "x", "payload_length": 10}\nabc')
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert b'"code": "timeout"' in reply
    writer.close()


async def test_connections_over_the_limit_are_refused(server: Server) -> None:
    first = await asyncio.open_connection("127.0.0.1", server.port)
    second = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.sleep(0.1)
    async with AsyncTcpClient("127.0.0.1", server.port) as third:
        event = await next_event(third)
        assert event is not None and Error.from_event(event).code == "busy"
    first[1].close()
    await asyncio.sleep(0.1)
    async with AsyncTcpClient("127.0.0.1", server.port) as fourth:
        await fourth.write_event(Ping().event())
        pong = await next_event(fourth)
        assert pong is not None and pong.type == "pong"
    second[1].close()


def feed(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=64 * 1024)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda header, rest: json.dumps(header).encode() + b"\n" + rest,
            st.dictionaries(
                st.sampled_from(["type", "data", "data_length", "payload_length"]),
                st.one_of(
                    st.integers(-10, 10**9),
                    st.text(max_size=5),
                    st.lists(st.integers(), max_size=2),
                    st.none(),
                    st.booleans(),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                ),
            ),
            st.binary(max_size=50),
        ),
    )
)
def test_reader_never_fails_except_as_documented(data: bytes) -> None:
    async def read_all() -> None:
        reader = feed(data)
        while (event := await read_event(reader, Limits())) is not None:
            assert isinstance(event.type, str) and isinstance(event.data, dict)
            assert (
                event.payload is None or len(event.payload) <= Limits.max_payload_bytes
            )

    try:
        asyncio.run(read_all())
    except (ProtocolError, asyncio.IncompleteReadError):
        pass


async def test_lengths_are_checked_before_reading() -> None:
    reader = feed(b'{"type": "x", "payload_length": 2000000}\n')
    with pytest.raises(ProtocolError, match="over the limit"):
        await read_event(reader, Limits())
    reader = feed(b'{"type": "x", "data_length": -3}\nabc')
    with pytest.raises(ProtocolError, match="negative"):
        await read_event(reader, Limits())


async def longest_loop_hold(work: Awaitable[object]) -> float:
    """The longest the event loop was held from other tasks while `work` ran:
    what a second client of this process would have waited, in CPU seconds of
    the loop's thread (a busy machine that takes the CPU away from the test
    does not count, so the bound holds under load as on a quiet machine)."""
    longest = 0.0

    async def watch() -> None:
        nonlocal longest
        while True:
            started = time.thread_time()
            await asyncio.sleep(0.005)
            longest = max(longest, time.thread_time() - started)

    watcher = asyncio.create_task(watch())
    try:
        await work
    finally:
        watcher.cancel()
    return longest


async def test_a_burst_of_buffered_events_leaves_the_loop_to_others(
    server: Server,
) -> None:
    async def burst() -> None:
        async with AsyncTcpClient("127.0.0.1", server.port) as client:
            assert client._writer is not None
            client._writer.write(b'{"type": "ping"}\n' * 20_000)  # one write
            for _ in range(20_000):
                pong = await next_event(client)
                assert pong is not None and pong.type == "pong"

    gc.collect()
    gc.freeze()  # as a service does once loaded: a full collection is short
    try:
        assert await longest_loop_hold(burst()) < 0.1
    finally:
        gc.unfreeze()


async def test_a_house_near_the_body_cap_is_validated_off_the_loop(
    demo_matcher: Matcher,
) -> None:
    house = HouseStore(Snapshot(copy.copy(demo_matcher)), None)
    app = web.Application()
    HouseApi(house).add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    lamp = {"name": "Lamp", "domain": "light"}

    async def put(entities: int, status: int) -> None:
        async with ClientSession() as session:
            async with session.put(
                f"http://127.0.0.1:{port}/api/entities",
                json={"entities": [lamp] * entities},
            ) as response:
                assert response.status == status, await response.text()

    gc.collect()
    gc.freeze()  # as a service does once loaded: a full collection is short
    try:
        assert await longest_loop_hold(put(10_000, 200)) < 0.1  # the most taken
        assert await longest_loop_hold(put(25_000, 400)) < 0.1  # 850 KB of JSON
    finally:
        gc.unfreeze()
        await runner.cleanup()
        house.close()


def test_http_beyond_loopback_requires_a_token() -> None:
    with pytest.raises(ValueError, match="bearer token"):
        HttpApi("http://0.0.0.0:10580", INFO, Metrics())
    HttpApi("http://127.0.0.1:10580", INFO, Metrics())  # loopback: no token needed


async def test_http_token_guards_everything_but_health() -> None:
    port = free_port()
    metrics = Metrics()
    trace = Trace("test")
    trace.mark("a")
    trace.mark("b")
    trace.stage("tts", "a", "b")
    metrics.record(trace)
    api = HttpApi(f"http://127.0.0.1:{port}", INFO, metrics, token="s3cret")
    await api.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with ClientSession() as session:
            async with session.get(f"{base}/health") as response:
                assert response.status == 200
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 401
            async with session.get(
                f"{base}/metrics", headers={"Authorization": "Bearer wrong"}
            ) as response:
                assert response.status == 401
            async with session.get(
                f"{base}/metrics", headers={"Authorization": "Bearer s3cret"}
            ) as response:
                assert response.status == 200
                text = await response.text()
    finally:
        await api.stop()
    assert 'rtvoice_stage_seconds_count{service="test",stage="tts"} 1' in text
    assert "s3cret" not in text


def test_trace_waterfall_flags_stages_over_budget() -> None:
    trace = Trace("tts", budgets_ms={"tts": 0.0})
    trace.mark("request")
    trace.mark("first_audio")
    trace.stage("tts", "request", "first_audio")
    assert trace.over_budget() == ["tts"]
    assert trace.waterfall().startswith(f"tts turn {trace.turn_id}: request=+0")
    assert "tts=" in trace.waterfall() and "!" in trace.waterfall()


def test_stats_merge_services_and_time_first_audio_from_speech_end() -> None:
    metrics = Metrics()
    assert metrics.stats() == {"last_turn": None, "stages": {}}
    for service, elapsed in (("tts", 40.0), ("turn", 60.0), ("tts", 50.0)):
        trace = Trace(service)
        trace.marks["first_clause"] = trace.start
        trace.marks["first_audio"] = trace.start + elapsed / 1000
        trace.stage("tts", "first_clause", "first_audio")
        metrics.record(trace)
    spoken = Trace("turn")
    spoken.marks["speech_end"] = spoken.start + 1.0
    spoken.marks["first_audio"] = spoken.start + 1.3
    metrics.record(spoken)
    stats = metrics.stats()
    assert stats["stages"]["tts"] == {"p50_ms": 50.0, "p95_ms": 60.0, "count": 3}
    assert stats["last_turn"]["service"] == "turn"
    assert abs(stats["last_turn"]["first_audio_ms"] - 300.0) < 0.01


async def test_a_service_runs_over_stdio(tmp_path: Path) -> None:
    """`--uri stdio://`: one client on the process's stdin and stdout, as the
    reference Wyoming servers run under a supervisor; no port, no race."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wyoming_rtvoice",
        "handle",
        "--uri",
        "stdio://",
        "--http-uri",
        "",
        "--state-dir",
        str(tmp_path),
        "--entities",
        str(DEMO_HOUSE),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        await async_write_event(Describe().event(), process.stdin)
        info = await asyncio.wait_for(async_read_event(process.stdout), 120)
        assert info is not None and info.type == "info"
        transcript = Event("transcript", {"text": "turn on the kitchen lights"})
        await async_write_event(transcript, process.stdin)
        intent = await asyncio.wait_for(async_read_event(process.stdout), TIMEOUT)
        assert intent is not None and intent.type == "intent"
        assert intent.data["name"] == "HassTurnOn"
        process.stdin.close()  # the one client leaves: the service ends
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
