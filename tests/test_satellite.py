"""The satellite, driven the way Home Assistant's `wyoming` integration drives one.

The real satellite runs as a subprocess with a spoken WAV as its microphone
("okay nabu", a command, a pause, more speech) and a WAV file as its
speaker; the test speaks the events Home Assistant speaks. Other machines
on the network are other loopback addresses (127.0.0.2, ...).
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detection

from testing.fake_llm import FakeLlm
from testing.process import rss_mb
from testing.speech import pink_noise, speak, speak_with_pause, with_noise
from wyoming_rtvoice.audio import RATE_16K, read_wav, write_wav
from wyoming_rtvoice.discovery import advertised_address
from wyoming_rtvoice.satellite import room as satellite_room
from wyoming_rtvoice.satellite.detect import LocalWake, RemoteWake, Wake
from wyoming_rtvoice.satellite.devices import MIC_CHUNK_BYTES, Speaker
from wyoming_rtvoice.trace import Metrics
from wyoming_rtvoice.wake.config import WakeConfig
from wyoming_rtvoice.wake.engines import find_model

from .conftest import (
    RunningService,
    Stack,
    free_port,
    start_service,
    start_services,
)

TIMEOUT = 15.0
BYTES_PER_S = RATE_16K * 2
SND_RATE = 22050
PIPELINE_TOKEN = "pipeline-secret-6a1f93"
LAN = advertised_address("0.0.0.0")  # another machine, as the stack sees it
DEMO_HOUSE = (
    Path(__file__).parent.parent / "wyoming_rtvoice" / "data" / "demo_house.json"
)


@dataclass(frozen=True)
class Room:
    """The microphone's WAV and where its parts are (seconds)."""

    audio: bytes
    wake_end_s: float  # end of "okay nabu"
    command_end_s: float  # end of the command's speech
    later_s: float  # start of the speech that follows (no wake word)


@pytest.fixture(scope="module")
def room() -> Room:
    wake = speak("Okay Nabu.", lead_s=1.0, tail_s=0.3)
    command = speak("Turn on the kitchen lights.", lead_s=0.2, tail_s=2.5, seed=1)
    later = speak("What time is it?", lead_s=0.0, seed=2)
    return Room(
        wake.audio + command.audio + later.audio,
        wake.speech_end_s,
        wake.seconds + command.speech_end_s,
        wake.seconds + command.seconds,
    )


@pytest.fixture(scope="module")
def satellites(
    room: Room, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningService, Path, RunningService]]:
    """Both satellites of the module, started at once: a plain one (its
    speaker a WAV file) and a guarded one that serves two addresses only,
    with turns of 1.5 s at most."""
    tmp = tmp_path_factory.mktemp("satellite")
    write_wav(tmp / "mic.wav", room.audio, RATE_16K)
    snd = tmp / "snd.wav"
    plain = ["--mic-wav", str(tmp / "mic.wav"), "--snd-wav", str(snd)]
    guarded = ["--mic-wav", str(tmp / "mic.wav"), "--max-turn-seconds", "1.5"]
    guarded += ["--allow-peer", "127.0.0.2", "--allow-peer", "127.0.0.3/32"]
    with start_services(
        ["satellite", *plain], ["satellite", *guarded], log_dir=tmp
    ) as (running, guarding):
        yield running, snd, guarding
    assert "Traceback" not in running.log and "exception" not in running.log
    assert "Traceback" not in guarding.log


@pytest.fixture(scope="module")
def satellite(
    satellites: tuple[RunningService, Path, RunningService],
) -> tuple[RunningService, Path]:
    return satellites[0], satellites[1]


@pytest.fixture(scope="module")
def guarded(satellites: tuple[RunningService, Path, RunningService]) -> RunningService:
    return satellites[2]


def played_bytes(snd: Path) -> bytes:
    return read_wav(snd)[0]


def tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()


class ClientFrom(AsyncTcpClient):
    """A client on loopback whose connection comes from `source` (127.0.0.2...)."""

    def __init__(self, source: str, port: int) -> None:
        super().__init__("127.0.0.1", port)
        self.source = source

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.source, 0)
        )


class Hass:
    """Home Assistant's side of the connection: every event with its arrival time."""

    def __init__(self, client: AsyncTcpClient) -> None:
        self.client = client
        self.started = time.monotonic()

    async def next(self, timeout: float = TIMEOUT) -> tuple[float, Event]:
        event = await asyncio.wait_for(self.client.read_event(), timeout)
        assert event is not None, "the satellite closed the connection"
        return time.monotonic() - self.started, event

    async def until(self, event_type: str) -> tuple[float, list[Event]]:
        """Events up to and including the first of `event_type`."""
        events: list[Event] = []
        while True:
            at, event = await self.next()
            events.append(event)
            if event.type == event_type:
                return at, events

    async def stream(self, seconds: float) -> bytes:
        """Microphone audio until `seconds` of it arrived."""
        audio = b""
        while len(audio) < seconds * BYTES_PER_S:
            _, event = await self.next()
            assert event.type == "audio-chunk", event.type
            audio += AudioChunk.from_event(event).audio
        return audio

    async def quiet(self, seconds: float) -> list[Event]:
        """Events that arrive within `seconds` (none is quiet)."""
        events: list[Event] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                events.append((await self.next(left))[1])
            except TimeoutError:
                break
        return events

    async def reply(self, audio: bytes, rate: int) -> None:
        """What Home Assistant sends after the end of speech: the TTS audio."""
        await self.client.write_event(VoiceStopped().event())
        await self.client.write_event(Transcript(text="turn on the lights").event())
        await self.client.write_event(
            AudioStart(rate=rate, width=2, channels=1).event()
        )
        step = 2048  # Home Assistant's chunk size
        for offset in range(0, len(audio), step):
            chunk = AudioChunk(rate, 2, 1, audio[offset : offset + step])
            await self.client.write_event(chunk.event())
        await self.client.write_event(AudioStop().event())


@asynccontextmanager
async def connect(port: int, source: str = "127.0.0.1") -> AsyncIterator[Hass]:
    """Connect and send run-satellite, as Home Assistant does."""
    async with ClientFrom(source, port) as client:
        await client.write_event(RunSatellite().event())
        yield Hass(client)


async def refused(port: int, source: str, code: str) -> None:
    """`run-satellite` from `source` gets an error `code` and the connection ends."""
    async with connect(port, source) as hass:
        _, event = await hass.next()
        assert event.type == "error" and event.data["code"] == code, event
        assert await asyncio.wait_for(hass.client.read_event(), TIMEOUT) is None


async def test_describe_is_a_satellite_with_its_wake_word(
    satellite: tuple[RunningService, Path],
) -> None:
    async with AsyncTcpClient("127.0.0.1", satellite[0].port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
    assert event is not None
    info = Info.from_event(event)
    assert info.satellite is not None and info.satellite.installed
    assert info.satellite.active_wake_words == ["okay_nabu"]
    # The wake word's phrase is there for Home Assistant; no other service.
    assert [m.phrase for m in info.wake[0].models] == ["Okay Nabu"]
    assert not (info.asr or info.tts or info.handle)


async def test_wake_then_stream_then_play(
    satellite: tuple[RunningService, Path], room: Room
) -> None:
    service, snd = satellite
    before = played_bytes(snd)
    async with connect(service.port) as hass:
        at, events = await hass.until("audio-start")
        # Nothing leaves the satellite before the wake word has been spoken.
        assert [e.type for e in events] == ["detection", "run-pipeline", "audio-start"]
        assert events[0].data["name"] == "okay_nabu"
        assert events[1].data["start_stage"] == "asr"
        assert events[1].data["end_stage"] == "tts"
        assert at > room.wake_end_s
        await hass.client.write_event(VoiceStarted().event())

        # What streams is the microphone from just after the wake word on.
        heard = await hass.stream(room.command_end_s - room.wake_end_s)
        offset = room.audio.find(heard[:2048])
        assert offset > 0 and room.audio[offset : offset + len(heard)] == heard
        assert 0 <= offset / BYTES_PER_S - room.wake_end_s < 0.5

        reply = tone(1.0, SND_RATE)
        await hass.reply(reply, SND_RATE)
        after_stop = await hass.until("played")
        # The stream ended at the end of speech; the reply was played, then `played`.
        types = [e.type for e in after_stop[1]]
        assert "audio-stop" in types and types[-1] == "played"
        # Only chunks already in flight come before `audio-stop`: far fewer than
        # the 1 s of reply would have streamed (a loaded machine delays a few).
        assert types.index("audio-stop") < 0.3 * BYTES_PER_S / MIC_CHUNK_BYTES
        assert played_bytes(snd)[len(before) :] == reply
        # What was said stays out of the log (INFO by default).
        assert "turn on the lights" not in service.log

        # Speech without the wake word is not streamed.
        quiet_until = room.later_s + 1.5 - (time.monotonic() - hass.started)
        assert await hass.quiet(max(quiet_until, 0.5)) == []


async def test_pause_stops_streaming_until_run_satellite(
    satellite: tuple[RunningService, Path], room: Room
) -> None:
    async with connect(satellite[0].port) as hass:
        await hass.until("audio-start")
        await hass.stream(0.3)
        await hass.client.write_event(PauseSatellite().event())
        in_flight = await hass.quiet(0.3)
        assert all(e.type == "audio-chunk" for e in in_flight)
        assert await hass.quiet(1.5) == []

        # run-satellite listens again (the microphone WAV starts over).
        await hass.client.write_event(RunSatellite().event())
        hass.started = time.monotonic()
        at, events = await hass.until("detection")
        assert [e.type for e in events] == ["detection"] and at > room.wake_end_s


async def test_the_same_address_reconnecting_takes_over(
    satellite: tuple[RunningService, Path],
) -> None:
    async with connect(satellite[0].port) as first:
        await asyncio.sleep(0.2)
        async with connect(satellite[0].port) as hass:
            # The older connection is closed; the newer one is served.
            assert await asyncio.wait_for(first.client.read_event(), TIMEOUT) is None
            _, events = await hass.until("detection")
            assert events[0].type == "detection"


async def test_the_first_address_served_is_the_only_one(
    satellite: tuple[RunningService, Path],
) -> None:
    """By default the first address to send run-satellite (Home Assistant, at
    start-up) keeps the microphone: another machine on the network cannot
    take it over, or have it once Home Assistant went away."""
    port = satellite[0].port
    async with connect(port) as hass:
        await refused(port, "127.0.0.2", "not-allowed")
        _, events = await hass.until("detection")  # still served
        assert events[0].type == "detection"
    await refused(port, "127.0.0.2", "not-allowed")
    async with AsyncTcpClient("127.0.0.1", port) as client:  # ping stays open
        await client.write_event(Describe().event())
        assert (await asyncio.wait_for(client.read_event(), TIMEOUT)) is not None


async def test_only_allowed_addresses_one_at_a_time(guarded: RunningService) -> None:
    port = guarded.port
    await refused(port, "127.0.0.1", "not-allowed")  # even when nobody is served
    async with connect(port, "127.0.0.2") as first:
        await refused(port, "127.0.0.3", "busy")  # allowed, but 127.0.0.2 is live
        async with connect(port, "127.0.0.2") as again:  # its own reconnection
            assert await asyncio.wait_for(first.client.read_event(), TIMEOUT) is None
            _, events = await again.until("detection")
    async with connect(port, "127.0.0.3") as hass:  # free again
        _, events = await hass.until("detection")
    await wait_for_log(guarded, "Refused run-satellite from 127.0.0.1", TIMEOUT)


async def test_a_turn_has_a_hard_cap_whatever_the_client_says(
    guarded: RunningService,
) -> None:
    """`voice-started` over and over (each used to add 30 s) cannot keep the
    microphone streaming past --max-turn-seconds."""
    async with connect(guarded.port, "127.0.0.2") as hass:
        started, _ = await hass.until("audio-start")
        stopped = None
        while stopped is None:
            await hass.client.write_event(VoiceStarted().event())
            at, event = await hass.next(timeout=5.0)
            if event.type == "audio-stop":
                stopped = at
            else:
                assert event.type == "audio-chunk", event.type
        assert 1.4 < stopped - started < 2.5


async def test_a_reply_is_bounded_whatever_the_client_sends(
    satellite: tuple[RunningService, Path],
) -> None:
    """An hour of reply audio sent at once (159 MB at the speaker's format)
    is not buffered: what is past the longest reply is dropped."""
    service, _ = satellite
    async with connect(service.port) as hass:
        await hass.client.write_event(
            AudioStart(rate=8000, width=1, channels=1).event()
        )
        await hass.client.write_event(Describe().event())
        await hass.until("info")
        before = rss_mb(service.process.pid)
        chunk = AudioChunk(8000, 1, 1, bytes([128]) * (1 << 20)).event()
        for _ in range(3600 * 8000 >> 20):
            await hass.client.write_event(chunk)
        await hass.client.write_event(Describe().event())
        await hass.until("info")
        grown = rss_mb(service.process.pid) - before
        await hass.client.write_event(PauseSatellite().event())
    assert grown < 30, grown
    assert "Reply over 180 s: the rest is dropped" in service.log


async def test_home_assistant_going_away_mid_stream(
    satellite: tuple[RunningService, Path],
) -> None:
    async with connect(satellite[0].port) as hass:
        await hass.until("audio-start")
        await hass.stream(0.2)
    # Streaming stopped with the connection; the next one is served as usual.
    async with connect(satellite[0].port) as hass:
        _, events = await hass.until("detection")
        assert events[0].type == "detection"
    assert "Listening failed" not in satellite[0].log


async def test_speech_over_the_reply_stops_it_and_starts_a_turn(
    satellite: tuple[RunningService, Path], room: Room
) -> None:
    service, snd = satellite
    before = played_bytes(snd)
    async with connect(service.port) as hass:
        await hass.until("audio-start")
        await hass.stream(room.command_end_s - room.wake_end_s)
        long_reply = tone(8.0, RATE_16K)  # converted to the speaker's 22.05 kHz
        await hass.reply(long_reply, RATE_16K)
        played_at, _ = await hass.until("played")
        _, events = await hass.until("audio-start")
        # The user's speech cut the reply, and is the next turn (no wake word).
        assert [e.type for e in events] == ["run-pipeline", "audio-start"]
        assert played_at > room.later_s
        played_s = (len(played_bytes(snd)) - len(before)) / (SND_RATE * 2)
        assert 0.3 < played_s < 8.0 - 2.0
        assert played_at - room.later_s < 1.0
        # The new turn starts with the speech (a pre-roll from before the VAD fired).
        speech = await hass.stream(1.0)
        energy = np.abs(np.frombuffer(speech, dtype=np.int16)).mean()
        assert energy > 300


class Pipeline:
    """The stack's pipeline endpoint as the satellite sees it in direct mode,
    scripted on loopback: one connection, its events in a queue."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.writer = writer
        self.connected.set()
        while (event := await async_read_event(reader)) is not None:
            await self.events.put(event)
        await self.events.put(None)

    async def next(self) -> Event:
        event = await asyncio.wait_for(self.events.get(), TIMEOUT)
        assert event is not None, "the satellite closed the connection"
        return event

    async def send(self, *events: Event) -> None:
        assert self.writer is not None
        for event in events:
            await async_write_event(event, self.writer)

    async def reply(self, audio: bytes) -> None:
        start = AudioStart(rate=RATE_16K, width=2, channels=1)
        chunks = [
            AudioChunk(RATE_16K, 2, 1, audio[offset : offset + 2048]).event()
            for offset in range(0, len(audio), 2048)
        ]
        await self.send(start.event(), *chunks, AudioStop().event())


async def test_direct_mode_streams_through_the_reply_and_stops_it_on_speech(
    room: Room, tmp_path: Path
) -> None:
    pipeline = Pipeline()
    server = await asyncio.start_server(pipeline.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    write_wav(tmp_path / "mic.wav", room.audio, RATE_16K)
    snd = tmp_path / "snd.wav"
    (tmp_path / "token").write_text(PIPELINE_TOKEN + "\n")
    args = ["--mic-wav", str(tmp_path / "mic.wav"), "--snd-wav", str(snd)]
    args += ["--pipeline-uri", f"tcp://127.0.0.1:{port}", "--debug"]
    args += ["--pipeline-token-file", str(tmp_path / "token")]
    with ExitStack() as stack:
        satellite = await asyncio.to_thread(
            stack.enter_context, start_service("satellite", *args, log_dir=tmp_path)
        )
        await asyncio.wait_for(pipeline.connected.wait(), TIMEOUT)
        # Nothing before the wake word; then the turn and the microphone.
        first = [await pipeline.next() for _ in range(2)]
        assert [e.type for e in first] == ["run-pipeline", "audio-start"]
        # The shared secret comes first on the connection, and only there.
        assert first[0].data["token"] == PIPELINE_TOKEN
        assert PIPELINE_TOKEN not in satellite.log
        heard = b""

        async def hear_until(seconds: float) -> None:
            nonlocal heard
            while len(heard) < seconds * BYTES_PER_S:
                event = await pipeline.next()
                assert event.type == "audio-chunk", event.type
                heard += AudioChunk.from_event(event).audio

        await hear_until(0.1)
        offset = room.audio.find(heard[:2048])
        assert 0 <= offset / BYTES_PER_S - room.wake_end_s < 0.5
        await pipeline.send(VoiceStarted().event())
        await hear_until(room.command_end_s + 0.2 - offset / BYTES_PER_S)
        await pipeline.send(VoiceStopped().event(), Transcript("x").event())
        await pipeline.reply(tone(8.0, RATE_16K))
        # The microphone keeps streaming while the reply plays...
        await hear_until(room.later_s + 0.3 - offset / BYTES_PER_S)
        assert room.audio[offset : offset + len(heard)] == heard
        # ... and the server's barge-in stops the reply at once, without `played`.
        await pipeline.send(VoiceStarted().event())
        await asyncio.sleep(0.3)
        played_s = len(read_wav(snd)[0]) / (SND_RATE * 2)
        assert 1.0 < played_s < 4.0
        await pipeline.send(VoiceStopped().event())
        await pipeline.reply(tone(0.5, RATE_16K))
        # The next reply is played in full: `played`, then the stream ends.
        types: list[str] = []
        while not types or types[-1] != "audio-stop":
            types.append((await pipeline.next()).type)
        assert [t for t in types if t != "audio-chunk"] == ["played", "audio-stop"]
        total_s = len(read_wav(snd)[0]) / (SND_RATE * 2)
        assert abs(total_s - played_s - 0.5) < 0.05
    server.close()


PACED_CAT = """
import sys, time
audio = open(sys.argv[1], "rb").read()
started = time.monotonic()
for offset in range(0, len(audio), 1024):
    time.sleep(max(0.0, started + offset / 32000 - time.monotonic()))
    sys.stdout.buffer.write(audio[offset : offset + 1024])
    sys.stdout.flush()
time.sleep(600)
"""


async def test_commands_for_mic_and_speaker_and_a_wake_service(
    room: Room, tmp_path: Path, stack: Stack
) -> None:
    (tmp_path / "mic.raw").write_bytes(room.audio)
    (tmp_path / "paced_cat.py").write_text(PACED_CAT)
    mic = f"{sys.executable} {tmp_path / 'paced_cat.py'} {tmp_path / 'mic.raw'}"
    snd = f"sh -c 'cat > {tmp_path / 'snd.raw'}'"
    args = ["--mic-command", mic, "--snd-command", snd]
    args += ["--wake-uri", f"tcp://127.0.0.1:{stack.ports['wake']}"]  # the stack's
    with ExitStack() as running:
        satellite = await asyncio.to_thread(
            running.enter_context, start_service("satellite", *args, log_dir=tmp_path)
        )
        async with connect(satellite.port) as hass:
            _, events = await hass.until("audio-start")
            assert [e.type for e in events] == [
                "detection",
                "run-pipeline",
                "audio-start",
            ]
            heard = await hass.stream(0.5)
            offset = room.audio.find(heard[:2048])
            assert 0 <= offset / BYTES_PER_S - room.wake_end_s < 0.5
            reply = tone(0.5, SND_RATE)
            await hass.reply(reply, SND_RATE)
            await hass.until("played")
            # aplay-like: the command got the reply and ended before `played`.
            assert (tmp_path / "snd.raw").read_bytes() == reply


@dataclass(frozen=True)
class OneBreath:
    """ "Okay Nabu, turn on the kitchen lights." with 0.2 s between the two."""

    audio: bytes
    turn_s: float  # the first spoken sample of "turn"


@pytest.fixture(scope="module")
def one_breath() -> OneBreath:
    said = speak_with_pause(
        "Okay Nabu,", 0.2, "turn on the kitchen lights.", lead_s=1.0, tail_s=0.5
    )
    return OneBreath(said.audio, speak("Okay Nabu,", lead_s=1.0).speech_end_s + 0.2)


class Recording:
    """A link that keeps what the room sends."""

    streams_while_playing = False

    def __init__(self) -> None:
        self.wake_words: list[str | None] = []
        self.audio = b""

    async def start_turn(self, wake_word: str | None) -> None:
        self.wake_words.append(wake_word)

    async def send_audio(self, audio: bytes) -> None:
        self.audio += audio

    async def stop_turn(self) -> None:
        pass

    async def played(self) -> None:
        pass


class Noted:
    """The real detector; what it reports and after how much audio (bytes)."""

    def __init__(self, wake: Wake) -> None:
        self.wake = wake
        self.fed = 0
        self.heard: list[tuple[Detection, int]] = []

    async def process(self, audio: bytes) -> Detection | None:
        self.fed += len(audio)
        detection = await self.wake.process(audio)
        if detection is not None:
            self.heard.append((detection, self.fed))
        return detection

    async def close(self) -> None:
        await self.wake.close()


async def turn_of(
    audio: bytes, open_wake: Callable[[], Awaitable[Wake]], until: int, paced: bool
) -> tuple[Recording, Noted]:
    """The satellite's room with `audio` as its microphone (at real-time
    pace, or as fast as it goes) until its link has the turn's audio up to
    byte `until` of the microphone."""
    noted: list[Noted] = []

    async def mic() -> AsyncGenerator[bytes, None]:
        started = time.monotonic()
        for offset in range(0, len(audio), MIC_CHUNK_BYTES):
            if paced:
                await asyncio.sleep(started + offset / BYTES_PER_S - time.monotonic())
            yield audio[offset : offset + MIC_CHUNK_BYTES]
        await asyncio.Event().wait()

    async def wake() -> Wake:
        noted.append(Noted(await open_wake()))
        return noted[-1]

    settings = satellite_room.RoomSettings(mic, wake, barge_in="off")
    room = satellite_room.Room(settings, Speaker(RATE_16K, 2, 1), Metrics())
    link = Recording()

    def reached() -> bool:
        if not (noted and noted[0].heard):
            return False
        start = (noted[0].heard[0][0].timestamp or 0) * 32
        return start + len(link.audio) >= until

    await room.listen(link)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not reached():
            assert time.monotonic() < deadline, len(link.audio)
            await asyncio.sleep(0.05)
    finally:
        await room.stop_listening()
    return link, noted[0]


def sent_from_the_detection(
    one_breath: OneBreath, link: Recording, wake: Noted
) -> float:
    """The link has the microphone from where the wake word was heard, with
    the words said after it, although the detection came later; returns
    how much later (seconds)."""
    assert link.wake_words == ["okay_nabu"]
    [(detection, arrived)] = wake.heard
    assert detection.timestamp is not None
    start = detection.timestamp * 32
    assert link.audio == one_breath.audio[start : start + len(link.audio)]
    assert start / BYTES_PER_S < one_breath.turn_s  # "turn ..." is all there
    return (arrived - start) / BYTES_PER_S


async def test_a_turn_starts_where_the_wake_word_was_heard(
    one_breath: OneBreath,
) -> None:
    """In fan noise as loud as the speech, microWakeWord is unsure and the
    second opinion (in-process) confirms the phrase ~0.6 s after it was
    said: the turn still has "turn on the kitchen lights" from its start."""
    speech = np.frombuffer(one_breath.audio, dtype=np.int16).astype(np.float32)
    noise = pink_noise(len(speech), np.random.default_rng(1))
    noisy = with_noise(speech, noise, 0.0).clip(-32768, 32767).astype(np.int16)
    heard = OneBreath(noisy.tobytes(), one_breath.turn_s)
    model = WakeConfig().tuned(find_model("micro", "okay_nabu"))
    end = len(heard.audio) // MIC_CHUNK_BYTES * MIC_CHUNK_BYTES
    link, wake = await turn_of(
        heard.audio, functools.partial(LocalWake.open, model), end, paced=False
    )
    late_s = sent_from_the_detection(heard, link, wake)
    assert late_s > 0.3  # from the detection's chunk on, "turn" would be lost


async def test_a_turn_starts_where_a_wake_service_heard_it(
    one_breath: OneBreath, stack: Stack
) -> None:
    """A wake service's detection comes back a chunk or more after the
    audio it places (the stack's, on loopback, at real-time pace)."""
    until = round((one_breath.turn_s + 0.5) * BYTES_PER_S)
    uri = f"tcp://127.0.0.1:{stack.ports['wake']}"
    link, wake = await turn_of(
        one_breath.audio,
        functools.partial(RemoteWake.open, uri, "okay_nabu"),
        until,
        paced=True,
    )
    assert sent_from_the_detection(one_breath, link, wake) > 0


MOON = (
    "The moon is about three hundred and eighty four thousand kilometres away. "
    "Light from it takes a little over a second to reach us. "
    "It is slowly drifting away, about four centimetres every year."
)


@contextmanager
def running_stack(tmp: Path, llm_url: str) -> Iterator[int]:
    """The whole stack, its pipeline endpoint on the network with a token
    (PIPELINE_TOKEN); yields the endpoint's port."""
    ports = {name: free_port() for name in ("tts", "asr", "wake", "handle", "pipe")}
    argv = [sys.executable, "-m", "wyoming_rtvoice", "stack", "--host", "127.0.0.1"]
    for name in ("tts", "asr", "wake", "handle"):
        argv += [f"--{name}-port", str(ports[name])]
    argv += ["--pipeline-host", "0.0.0.0", "--pipeline-port", str(ports["pipe"])]
    argv += ["--http-uri", ""]
    argv += ["--entities", str(DEMO_HOUSE), "--anthropic-base-url", llm_url]
    log = tmp / "stack.log"
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-satellite-test"}
    env["RTVOICE_PIPELINE_TOKEN"] = PIPELINE_TOKEN
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while "Ready" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield ports["pipe"]
    finally:
        process.terminate()
        process.wait(timeout=20)


async def wait_for_log(service: RunningService, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in service.log:
        assert time.monotonic() < deadline, service.log
        await asyncio.sleep(0.1)


async def test_direct_mode_against_the_real_stack(tmp_path: Path) -> None:
    """Wake, a device command played in full, a question whose long answer
    the user speaks over: the stack stops it and the satellite goes quiet."""
    command = speak("Okay Nabu.", lead_s=1.0, tail_s=0.3).audio
    command += speak("Turn on the kitchen lights.", lead_s=0.2, tail_s=3.5).audio
    question = speak("Okay Nabu.", lead_s=0.5, tail_s=0.3).audio
    question += speak("How far away is the moon?", lead_s=0.2, tail_s=3.0).audio
    over = speak("Stop, thank you.", lead_s=0.0, seed=3).audio
    write_wav(tmp_path / "mic.wav", command + question + over, RATE_16K)
    snd = tmp_path / "snd.wav"
    fake_llm = FakeLlm(answer=MOON, first_token_s=0.05, token_s=0.02)
    llm_url = fake_llm.start_in_thread()
    try:
        with ExitStack() as stack:
            port = await asyncio.to_thread(
                stack.enter_context, running_stack(tmp_path, llm_url)
            )
            # Another machine without the token is refused at its first event.
            async with AsyncTcpClient(LAN, port) as intruder:
                await intruder.write_event(AudioStart(RATE_16K, 2, 1).event())
                event = await asyncio.wait_for(intruder.read_event(), TIMEOUT)
                assert event is not None and event.type == "error", event
                assert await intruder.read_event() is None
            # The satellite has it, and talks to the stack over the network.
            (tmp_path / "token").write_text(PIPELINE_TOKEN)
            args = ["--mic-wav", str(tmp_path / "mic.wav"), "--snd-wav", str(snd)]
            args += ["--pipeline-uri", f"tcp://{LAN}:{port}"]
            args += ["--pipeline-token-file", str(tmp_path / "token")]
            satellite = await asyncio.to_thread(
                stack.enter_context,
                start_service("satellite", *args, log_dir=tmp_path),
            )
            # The device command: its confirmation is played in full.
            await wait_for_log(satellite, "played=", 30)
            assert "Intent: HassTurnOn" in satellite.log
            confirmation_s = len(read_wav(snd)[0]) / (SND_RATE * 2)
            assert 0.4 < confirmation_s < 3.0
            # The question's long answer is cut when the user speaks over it.
            await wait_for_log(satellite, "barge-in (server)", 30)
            await asyncio.sleep(0.5)
            answer_s = len(read_wav(snd)[0]) / (SND_RATE * 2) - confirmation_s
            assert 0.5 < answer_s < 5.0  # the whole answer is over 10 s
    finally:
        fake_llm.stop_thread()
