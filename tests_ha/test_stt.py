"""The rtvoice speech to text: in Home Assistant's own Assist pipeline, with
its default voice activity detection, the stack's ASR service ends the turn
(Home Assistant's detection never does); the command is executed and its
confirmation spoken. The built-in `wyoming` speech to text on the same
service still works, ended by Home Assistant's detection (before 2026.5) or
by the service (since). And a service that
refuses, drops the connection or is not there is a failed turn."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from homeassistant.components import stt
from homeassistant.components.assist_pipeline import (
    PipelineEvent,
    PipelineEventType,
    PipelineStage,
    async_get_pipeline,
    async_pipeline_from_audio_stream,
    async_update_pipeline,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event

from tests.conftest import free_port

from .conftest import DOMAIN, Proxy, Stack, agent, off_loop, state, synced
from .test_wyoming_interop import CHUNK, WIDTH, metadata, spoken, spoken_reply

# Home Assistant runs its own voice activity detection for every speech to
# text before 2026.5; since, only for one that does not say it needs none.
HONOURS_VAD = (MAJOR_VERSION, MINOR_VERSION) >= (2026, 5)

NOISE_DB = -40.0  # the room after the speaker stopped


@pytest.fixture(scope="module")
def command_audio() -> bytes:
    """A command, then 0.3 s of the room (made before the event loop runs)."""
    return off_loop(spoken, ("Turn on the kitchen lights.", 0.3))


@dataclass
class Microphone:
    """Speech, then the live noise of the room for as long as it is read
    (up to `noise_s`), at real-time pace."""

    speech: bytes
    noise_s: float = 8.0
    noise_read_s: float = 0.0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    async def stream(self) -> AsyncIterator[bytes]:
        for offset in range(0, len(self.speech), CHUNK):
            await asyncio.sleep(0.02)
            yield self.speech[offset : offset + CHUNK]
        level = 32768 * 10 ** (NOISE_DB / 20)
        while self.noise_read_s < self.noise_s:
            await asyncio.sleep(0.02)
            self.noise_read_s += 0.02
            noise = self.rng.normal(0, level, CHUNK // WIDTH).astype("<i2")
            yield noise.tobytes()


async def wyoming_entity(hass: HomeAssistant, port: int) -> str:
    """The built-in `wyoming` integration's entity for the service on `port`."""
    entry = MockConfigEntry(domain="wyoming", data={"host": "127.0.0.1", "port": port})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    [entity] = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return entity.entity_id


def rtvoice_stt(hass: HomeAssistant) -> str:
    [entity_id] = [
        entity.entity_id
        for entity in er.async_get(hass).entities.values()
        if entity.platform == DOMAIN and entity.domain == "stt"
    ]
    return entity_id


async def run_pipeline(
    hass: HomeAssistant, stt_engine: str, tts_engine: str, microphone: Microphone
) -> dict[PipelineEventType, dict[str, Any]]:
    """One turn through the preferred pipeline, Home Assistant's default
    audio settings (voice activity detection on, 0.7 s of silence)."""
    assert await async_setup_component(hass, "assist_pipeline", {})
    await async_update_pipeline(
        hass,
        async_get_pipeline(hass),
        language="en",
        stt_engine=stt_engine,
        stt_language="en",
        conversation_engine=agent(hass),
        conversation_language="en",
        tts_engine=tts_engine,
        tts_language="en_US",
    )
    events: list[PipelineEvent] = []
    await asyncio.wait_for(
        async_pipeline_from_audio_stream(
            hass,
            context=Context(),
            event_callback=events.append,
            stt_metadata=metadata(),
            stt_stream=microphone.stream(),
            start_stage=PipelineStage.STT,
            tts_audio_output="wav",
        ),
        60,
    )
    return {event.type: event.data or {} for event in events}


@pytest.mark.parametrize("speech_to_text", ["rtvoice", "wyoming"])
async def test_a_spoken_command_through_home_assistants_pipeline(
    hass: HomeAssistant,
    house: str,
    entry: MockConfigEntry,
    stack: Stack,
    command_audio: bytes,
    speech_to_text: str,
) -> None:
    await synced(stack.get, "Kitchen Lights")
    ffmpeg = {"ffmpeg": {"ffmpeg_bin": imageio_ffmpeg.get_ffmpeg_exe()}}
    assert await async_setup_component(hass, "ffmpeg", ffmpeg)
    tts_engine = await wyoming_entity(hass, stack.ports["tts"])
    if speech_to_text == "rtvoice":
        stt_engine = rtvoice_stt(hass)
    else:
        stt_engine = await wyoming_entity(hass, stack.ports["asr"])
    microphone = Microphone(command_audio)

    data = await run_pipeline(hass, stt_engine, tts_engine, microphone)

    assert PipelineEventType.ERROR not in data, data[PipelineEventType.ERROR]
    text = data[PipelineEventType.STT_END]["stt_output"]["text"]
    assert "kitchen light" in text.lower()
    # Who ended the turn: the service (before Home Assistant's 0.7 s of
    # silence), or Home Assistant's detection, which 2026.5+ leaves out for
    # an engine that says it needs none (as the ASR service says).
    ended_by_home_assistant = PipelineEventType.STT_VAD_END in data
    assert ended_by_home_assistant is (speech_to_text == "wyoming" and not HONOURS_VAD)
    assert microphone.noise_read_s < microphone.noise_s
    assert state(hass, house) == "on"  # the intent was executed
    response = data[PipelineEventType.INTENT_END]["intent_output"]["response"]
    assert response["speech"]["plain"]["speech"] == "Turned on the light"
    extension, seconds = await spoken_reply(hass, data)
    assert extension == "wav" and seconds > 0.5


async def test_a_stream_that_ends_first_still_gets_its_transcript(
    hass: HomeAssistant, entry: MockConfigEntry, command_audio: bytes
) -> None:
    """As when Home Assistant's own detection ends the turn first."""
    engine = stt.async_get_speech_to_text_entity(hass, rtvoice_stt(hass))
    assert engine is not None

    async def at_once() -> AsyncIterator[bytes]:
        for offset in range(0, len(command_audio), CHUNK):
            yield command_audio[offset : offset + CHUNK]

    request = dataclasses.replace(metadata(), language="en")
    result = await engine.internal_async_process_audio_stream(request, at_once())
    assert result.result is stt.SpeechResultState.SUCCESS
    assert "kitchen light" in str(result.text).lower()


# --- a service that fails --------------------------------------------------


class FakeAsr:
    """An ASR service that describes itself as the real one does and then
    answers audio with `answer` (an event, or None: close the connection)."""

    def __init__(self, info: Event, answer: Event | None) -> None:
        self.info, self.answer = info, answer
        self.port = free_port()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeAsr:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while (event := await async_read_event(reader)) is not None:
            if event.type == "describe":
                await async_write_event(self.info, writer)
            elif event.type == "audio-start":
                if self.answer is not None:
                    await async_write_event(self.answer, writer)
                break
        writer.close()


async def describe(stack: Stack) -> Event:
    """The real ASR service's `info`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.ports["asr"])
    await async_write_event(Event("describe"), writer)
    info = await async_read_event(reader)
    writer.close()
    assert info is not None and info.type == "info"
    return info


def asr_at(port: int) -> Callable[[Any], Any]:
    return lambda info: {**info, "ports": {**info["ports"], "asr": port}}


@pytest.mark.parametrize(
    "answer", [Error(text="the model failed", code="x").event(), None]
)
async def test_a_refusal_or_a_dropped_connection_is_a_failed_turn(
    hass: HomeAssistant, house: str, stack: Stack, answer: Event | None
) -> None:
    proxy = Proxy(stack.http)
    async with proxy, FakeAsr(await describe(stack), answer) as asr:
        proxy.edit["/api/info"] = asr_at(asr.port)
        entry = MockConfigEntry(
            domain=DOMAIN, data={**stack.data, "port": proxy.port}, unique_id=stack.id
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        engine = stt.async_get_speech_to_text_entity(hass, rtvoice_stt(hass))
        assert engine is not None and engine.supported_languages == ["en"]
        request = dataclasses.replace(metadata(), language="en")
        microphone = Microphone(b"", noise_s=1.0)
        result = await engine.internal_async_process_audio_stream(
            request, microphone.stream()
        )
        assert result == stt.SpeechResult(None, stt.SpeechResultState.ERROR)
    # And once the service is gone.
    result = await engine.internal_async_process_audio_stream(
        request, Microphone(b"", noise_s=1.0).stream()
    )
    assert result == stt.SpeechResult(None, stt.SpeechResultState.ERROR)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_not_ready_while_the_asr_service_does_not_answer(
    hass: HomeAssistant, house: str, stack: Stack
) -> None:
    async with Proxy(stack.http) as proxy:
        proxy.edit["/api/info"] = asr_at(free_port())
        entry = MockConfigEntry(
            domain=DOMAIN, data={**stack.data, "port": proxy.port}, unique_id=stack.id
        )
        entry.add_to_hass(hass)
        assert not await hass.config_entries.async_setup(entry.entry_id)
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert "speech to text service" in str(entry.reason)
