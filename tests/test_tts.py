"""The TTS service, run for real on loopback and driven with the wyoming client;
the protocol's order and errors on a stand-in voice (milliseconds)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from aiohttp import ClientSession
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from testing.engines import FakeVoice
from testing.serving import serving
from wyoming_rtvoice import tts as tts_service
from wyoming_rtvoice.trace import Metrics
from wyoming_rtvoice.tts.config import TtsConfig
from wyoming_rtvoice.tts.speaker import Speaker

from .conftest import RunningService, free_port, start_service
from .real_models import start_up

TIMEOUT = 30
RATE = 22050
LONG_ANSWER = (
    "The weather today is sunny with a high of twenty degrees, and tonight it "
    "will be clear. Tomorrow brings some clouds. Enjoy your afternoon."
)


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


ZEROCONF_NAME = f"rtvoice-test-{os.getpid()}"


@pytest.fixture
async def fake_tts() -> AsyncIterator[int]:
    """The service on a stand-in voice, in process (its port): the protocol's
    order and errors, in milliseconds."""
    service = tts_service.service(TtsConfig(), Speaker(FakeVoice()), Metrics())
    async with serving(service) as port:
        yield port


@pytest.fixture(scope="module")
def tts(
    tmp_path_factory: pytest.TempPathFactory, http_port: int
) -> Iterator[RunningService]:
    """The service with its HTTP API and zeroconf; the module's last test
    stops it with SIGINT (and every service started by the tests must exit 0
    on SIGTERM: tests/conftest.py)."""
    with start_service(
        "tts",
        "--http-uri",
        f"http://127.0.0.1:{http_port}",
        "--zeroconf",
        ZEROCONF_NAME,
        log_dir=tmp_path_factory.mktemp("tts"),
    ) as running:
        yield running
    assert "Traceback" not in running.log


async def read_until(client: AsyncTcpClient, last_type: str) -> list[Event]:
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, f"closed after {[e.type for e in events]}"
        events.append(event)
        if event.type == last_type:
            return events


def types_of(events: list[Event]) -> list[str]:
    """Event types with runs of audio-chunk folded into one."""
    folded: list[str] = []
    for event in events:
        if not folded or folded[-1] != event.type or event.type != "audio-chunk":
            folded.append(event.type)
    return folded


def audio_of(events: list[Event]) -> np.ndarray:
    pcm = b"".join(
        AudioChunk.from_event(e).audio for e in events if AudioChunk.is_type(e.type)
    )
    return np.frombuffer(pcm, dtype=np.int16)


def assert_speech(samples: np.ndarray, text: str) -> None:
    seconds = len(samples) / RATE
    words = len(text.split())
    # Natural speech: roughly 1.5 to 5 words a second.
    assert words / 5 < seconds < words / 1.5, (seconds, words)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    assert rms > 500, f"audio is (nearly) silent: rms {rms}"


async def synthesize(port: int, text: str) -> list[Event]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text).event())
        return await read_until(client, "audio-stop")


async def expect_error(client: AsyncTcpClient, code: str) -> Error:
    event = await asyncio.wait_for(client.read_event(), TIMEOUT)
    assert event is not None and Error.is_type(event.type), event
    error = Error.from_event(event)
    assert error.code == code, error
    return error


async def test_describe_is_truthful(tts: RunningService) -> None:
    async with AsyncTcpClient("127.0.0.1", tts.port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_until(client, "info"))[-1])
    program = info.tts[0]
    assert program.supports_synthesize_streaming
    assert [v.name for v in program.voices] == ["en_US-joe-medium"]
    assert program.voices[0].languages == ["en_US"]
    assert not info.asr and not info.wake


async def test_synthesize_gives_speech(tts: RunningService) -> None:
    text = "Turned on the kitchen lights."
    events = await synthesize(tts.port, text)
    assert types_of(events) == ["audio-start", "audio-chunk", "audio-stop"]
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (RATE, 2, 1)
    assert_speech(audio_of(events), text)


async def test_long_text_is_spoken_clause_by_clause(tts: RunningService) -> None:
    events = await synthesize(tts.port, LONG_ANSWER)
    assert types_of(events) == ["audio-start", "audio-chunk", "audio-stop"]
    assert_speech(audio_of(events), LONG_ANSWER)


async def test_streaming_speaks_first_sentence_before_text_ends(
    tts: RunningService,
) -> None:
    async with AsyncTcpClient("127.0.0.1", tts.port) as client:
        await client.write_event(SynthesizeStart().event())
        for word in "Sure thing. Now the rest".split():
            await client.write_event(SynthesizeChunk(text=word + " ").event())
        # The first sentence is complete: its audio comes while the text goes on.
        head = await read_until(client, "audio-chunk")
        assert types_of(head) == ["audio-start", "audio-chunk"]
        await client.write_event(SynthesizeChunk(text="of the answer.").event())
        # Home Assistant repeats the whole text for servers that do not stream.
        full = "Sure thing. Now the rest of the answer."
        await client.write_event(Synthesize(text=full).event())
        await client.write_event(SynthesizeStop().event())
        tail = await read_until(client, "synthesize-stopped")
    events = head + tail
    assert types_of(events) == [
        "audio-start",
        "audio-chunk",
        "audio-stop",
        "synthesize-stopped",
    ]
    streamed = audio_of(events)
    assert_speech(streamed, full)
    # Spoken once, not twice: about as long as the same text not streamed.
    whole = audio_of(await synthesize(tts.port, full))
    assert 0.8 < len(streamed) / len(whole) < 1.25


async def test_empty_stream_still_closes_the_session(fake_tts: int) -> None:
    async with AsyncTcpClient("127.0.0.1", fake_tts) as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeStop().event())
        events = await read_until(client, "synthesize-stopped")
    assert types_of(events) == ["audio-start", "audio-stop", "synthesize-stopped"]


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (Synthesize(text="").event(), "empty-text"),
        (Synthesize(text="   \n\t ").event(), "empty-text"),
        (Synthesize(text="word " * 3000).event(), "text-too-long"),
        (Event("synthesize", {"text": 42}), "bad-text"),
        (Event("synthesize", {}), "bad-text"),
        (
            Synthesize(text="Hello.", voice=SynthesizeVoice(name="nobody")).event(),
            "unknown-voice",
        ),
        (
            Synthesize(text="Hallo.", voice=SynthesizeVoice(language="de")).event(),
            "unknown-voice",
        ),
        (SynthesizeChunk(text="orphan").event(), "bad-order"),
        (SynthesizeStop().event(), "bad-order"),
    ],
)
async def test_bad_request_gets_error_and_connection_keeps_working(
    fake_tts: int, event: Event, code: str
) -> None:
    async with AsyncTcpClient("127.0.0.1", fake_tts) as client:
        await client.write_event(event)
        await expect_error(client, code)
        await client.write_event(Synthesize(text="Done.").event())
        events = await read_until(client, "audio-stop")
    assert types_of(events) == ["audio-start", "audio-chunk", "audio-stop"]


async def test_lone_surrogate_text_is_refused(fake_tts: int) -> None:
    # The wyoming client cannot even encode this; a raw client can send it escaped.
    reader, writer = await asyncio.open_connection("127.0.0.1", fake_tts)
    header = {"type": "synthesize", "data": {"text": "Hi \ud800 there"}}
    writer.write(json.dumps(header).encode() + b"\n")
    event = await asyncio.wait_for(async_read_event(reader), TIMEOUT)
    assert event is not None and Error.from_event(event).code == "bad-text"
    await async_write_event(Synthesize(text="Done.").event(), writer)
    while (
        event := await asyncio.wait_for(async_read_event(reader), TIMEOUT)
    ) is not None:
        if event.type == "audio-stop":
            break
    assert event is not None and event.type == "audio-stop"
    writer.close()


async def test_second_session_start_is_refused(fake_tts: int) -> None:
    async with AsyncTcpClient("127.0.0.1", fake_tts) as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeStart().event())
        error = (await read_until(client, "error"))[-1]
        assert Error.from_event(error).code == "bad-order"
        await client.write_event(SynthesizeChunk(text="Still here.").event())
        await client.write_event(SynthesizeStop().event())
        events = await read_until(client, "synthesize-stopped")
    assert types_of(events)[-2:] == ["audio-stop", "synthesize-stopped"]


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return reply


@pytest.mark.parametrize(
    "data",
    [
        b"this is not json\n",
        b"\xff\xfe\x00garbage\n",
        b'["a", "list"]\n',
        b'{"data": {}}\n',
        b'{"type": "synthesize", "data_length": "ten"}\n',
        b'{"type": "synthesize", "data_length": -5}\n',
        b'{"type": "synthesize", "payload_length": 999999999}\n',
        b'{"type": "synthesize", "data": [1, 2]}\n',
        b'{"type": "synthesize", "data_length": 4}\n[12]',
        b"x" * 70000 + b"\n",
    ],
)
async def test_malformed_frame_gets_error_and_close(fake_tts: int, data: bytes) -> None:
    reply = await raw_exchange(fake_tts, data)
    assert b'"type": "error"' in reply or b'"type":"error"' in reply, reply
    # Everyone else is still served.
    assert len(audio_of(await synthesize(fake_tts, "Still fine."))) > 0


async def test_truncated_frame_and_disconnect_leave_server_serving(
    fake_tts: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fake_tts)
    writer.write(b'{"type": "synthesize", "data_length": 100}\n{"text": "Hel')
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.2)
    assert len(audio_of(await synthesize(fake_tts, "Still fine."))) > 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_disconnect_mid_synthesis_stops_work(tts: RunningService) -> None:
    long_text = " ".join(
        f"This is sentence number {n} of a long story." for n in range(60)
    )
    async with AsyncTcpClient("127.0.0.1", tts.port) as client:
        await client.write_event(Synthesize(text=long_text).event())
        await read_until(client, "audio-chunk")
    # Whole text is ~60 clauses (seconds of CPU); after the disconnect at most
    # the clause in flight may finish.
    await asyncio.sleep(0.5)
    before = cpu_seconds(tts.process.pid)
    await asyncio.sleep(1.5)
    assert cpu_seconds(tts.process.pid) - before < 0.3


async def test_concurrent_clients_each_get_their_own_audio(
    tts: RunningService,
) -> None:
    texts = ["Turned off the fan.", LONG_ANSWER, "Good night."]
    results = await asyncio.gather(*(synthesize(tts.port, t) for t in texts))
    for text, events in zip(texts, results):
        assert types_of(events) == ["audio-start", "audio-chunk", "audio-stop"]
        assert_speech(audio_of(events), text)


async def test_http_health_metrics_and_turns(
    tts: RunningService, http_port: int
) -> None:
    await synthesize(tts.port, "Metrics please.")
    base = f"http://127.0.0.1:{http_port}"
    async with ClientSession() as session:
        async with session.get(f"{base}/health") as response:
            assert (await response.json())["status"] == "ok"
        async with session.get(f"{base}/metrics") as response:
            metrics = await response.text()
        async with session.get(f"{base}/api/turns") as response:
            turns = await response.json()
    assert 'rtvoice_stage_seconds_count{service="tts",stage="tts"}' in metrics
    assert turns and "first_audio" in turns[-1]["marks_ms"]


async def test_repeated_phrase_comes_from_cache(
    tts: RunningService, http_port: int
) -> None:
    phrase = "Turned on the porch light."
    first = await synthesize(tts.port, phrase)
    second = await synthesize(tts.port, phrase)
    # Piper samples noise, so two real syntheses differ; equal audio is the cache.
    assert np.array_equal(audio_of(first), audio_of(second))
    async with ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{http_port}/api/turns") as response:
            turns = await response.json()
    assert "cache hit" in turns[-1]["notes"]


def test_unknown_voice_path_stops_startup() -> None:
    with pytest.raises(SystemExit, match="not found"):
        start_up("tts", "--voice", "/nonexistent/voice.onnx")


async def test_zeroconf_advertisement_is_seen(tts: RunningService) -> None:
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    seen = asyncio.Event()

    def on_change(
        zeroconf: object,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if name.startswith(ZEROCONF_NAME) and state_change is ServiceStateChange.Added:
            seen.set()

    browser = AsyncServiceBrowser(
        browser_zc.zeroconf, "_wyoming._tcp.local.", handlers=[on_change]
    )
    try:
        await asyncio.wait_for(seen.wait(), 15)
        info = await browser_zc.async_get_service_info(
            "_wyoming._tcp.local.", f"{ZEROCONF_NAME}._wyoming._tcp.local.", 5000
        )
    finally:
        await browser.async_cancel()
        await browser_zc.async_close()
    assert info is not None
    assert info.parsed_addresses() == ["127.0.0.1"]
    assert info.port == tts.port


def test_sigint_exits_cleanly(tts: RunningService) -> None:
    """Last in the module: Ctrl+C ends the service cleanly."""
    tts.process.send_signal(signal.SIGINT)
    assert tts.process.wait(timeout=30) == 0
    assert "Traceback" not in tts.log
