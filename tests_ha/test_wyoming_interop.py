"""The unmodified built-in `wyoming` integration with the project's servers:
a real Assist pipeline inside Home Assistant, from audio to audio."""

from __future__ import annotations

import asyncio
import io
import subprocess
import wave
from collections.abc import AsyncIterator
from typing import Any

import imageio_ffmpeg
import pytest
from homeassistant.components import stt
from homeassistant.components.assist_pipeline import (
    PipelineEvent,
    PipelineEventType,
    PipelineStage,
    WakeWordSettings,
    async_get_pipeline,
    async_pipeline_from_audio_stream,
    async_update_pipeline,
)
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from testing.ha import reply_audio

from .conftest import PYTHON, REPO, SERVICES, Stack, off_loop, state, synced

RATE, WIDTH = 16000, 2
CHUNK = RATE * WIDTH // 50  # 20 ms
SPEAK = """
import sys
from testing.speech import speak
for text, tail_s in zip(sys.argv[1::2], sys.argv[2::2]):
    sys.stdout.buffer.write(speak(text, lead_s=0.5, tail_s=float(tail_s)).audio)
"""


def spoken(*phrases: tuple[str, float]) -> bytes:
    """The phrases in the project's Piper voice, 16 kHz mono (deterministic),
    each followed by its silence."""
    args = [str(part) for phrase in phrases for part in phrase]
    return subprocess.run(
        [PYTHON, "-c", SPEAK, *args], check=True, capture_output=True, cwd=REPO
    ).stdout


async def realtime(audio: bytes) -> AsyncIterator[bytes]:
    """The audio as a microphone delivers it."""
    for offset in range(0, len(audio), CHUNK):
        await asyncio.sleep(0.02)
        yield audio[offset : offset + CHUNK]


@pytest.fixture(scope="module")
def command_audio() -> bytes:
    """The wake word, then a command (made before the test's event loop runs)."""
    return off_loop(spoken, ("Okay Nabu.", 0.3), ("Turn on the kitchen lights.", 1.5))


async def spoken_reply(hass: HomeAssistant, data: dict[Any, Any]) -> tuple[str, float]:
    """A pipeline run's spoken reply: its extension and its length in
    seconds, from its audio (a streamed WAV's header has a dummy length)."""
    tts_output = data[PipelineEventType.TTS_END]["tts_output"]
    extension, audio = await reply_audio(hass, tts_output)
    with wave.open(io.BytesIO(audio)) as reader:
        frame = reader.getsampwidth() * reader.getnchannels()
        rate = reader.getframerate()
    samples = len(audio) - audio.index(b"data") - 8
    return extension, samples / frame / rate


def metadata() -> stt.SpeechMetadata:
    """16 kHz 16-bit mono PCM, as a satellite streams it."""
    return stt.SpeechMetadata(
        language="",
        format=stt.AudioFormats.WAV,
        codec=stt.AudioCodecs.PCM,
        bit_rate=stt.AudioBitRates.BITRATE_16,
        sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
        channel=stt.AudioChannels.CHANNEL_MONO,
    )


async def test_assist_pipeline_with_the_builtin_wyoming_integration(
    hass: HomeAssistant, house: str, stack: Stack, command_audio: bytes
) -> None:
    audio = command_audio
    # The built-in integration does not send names: give the handle the house.
    house_json = {"entities": [{"name": "Kitchen Lights", "domain": "light"}]}
    await stack.put("/api/entities", house_json)
    await synced(stack.get, "Kitchen Lights")

    # Home Assistant's TTS converts with the ffmpeg binary that every install
    # has; here it comes from a pip package.
    ffmpeg = {"ffmpeg": {"ffmpeg_bin": imageio_ffmpeg.get_ffmpeg_exe()}}
    assert await async_setup_component(hass, "ffmpeg", ffmpeg)
    entities = {}
    for name in SERVICES:
        entry = MockConfigEntry(
            domain="wyoming", data={"host": "127.0.0.1", "port": stack.ports[name]}
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        [entity] = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        entities[name] = entity.entity_id
    assert await async_setup_component(hass, "assist_pipeline", {})
    await hass.async_block_till_done()
    await async_update_pipeline(
        hass,
        async_get_pipeline(hass),
        language="en",
        stt_engine=entities["asr"],
        stt_language="en",
        conversation_engine=entities["handle"],
        conversation_language="en",
        tts_engine=entities["tts"],
        tts_language="en_US",
        wake_word_entity=entities["wake"],
        wake_word_id="okay_nabu",
    )

    events: list[PipelineEvent] = []
    await asyncio.wait_for(
        async_pipeline_from_audio_stream(
            hass,
            context=Context(),
            event_callback=events.append,
            stt_metadata=metadata(),
            stt_stream=realtime(audio),
            start_stage=PipelineStage.WAKE_WORD,
            tts_audio_output="wav",
            wake_word_settings=WakeWordSettings(timeout=10),
        ),
        60,
    )

    data = {event.type: event.data or {} for event in events}
    assert PipelineEventType.ERROR not in data, data[PipelineEventType.ERROR]
    wake = data[PipelineEventType.WAKE_WORD_END]["wake_word_output"]
    assert wake["wake_word_id"] == "okay_nabu"
    text = data[PipelineEventType.STT_END]["stt_output"]["text"]
    assert "kitchen light" in text.lower()
    assert state(hass, house) == "on"  # the intent was executed
    response = data[PipelineEventType.INTENT_END]["intent_output"]["response"]
    assert response["speech"]["plain"]["speech"] == "Turned on the light"
    extension, seconds = await spoken_reply(hass, data)
    assert extension == "wav" and 0.5 < seconds < 5
