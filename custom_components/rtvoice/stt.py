"""Speech to text on the stack's ASR service, which decides itself when the
speaker has finished: the transcript comes as soon as the turn is over and
Home Assistant goes on to the conversation agent at once, without waiting
for its own silence detection (0.7 s by default).

Audio is uploaded and events are read at the same time, as Home Assistant's
own `wyoming` speech to text does from 2026.5; this entity brings that to
older versions (an entity may return before its audio stream ends). Where
Home Assistant asks (`audio_processing`, 2026.5 and later), it says that it
needs no voice activity detection of Home Assistant's.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from homeassistant.components import stt
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error

from .const import LOGGER
from .coordinator import RtvoiceConfigEntry
from .entity import RtvoiceEntity

PARALLEL_UPDATES = 0  # turns run concurrently; each has its own connection
RATE, WIDTH, CHANNELS = 16000, 2, 1
# After the audio has ended; the service gives up on speech after 15 s itself.
TRANSCRIPT_TIMEOUT_S = 15.0

# Home Assistant 2026.5+ skips its own end-of-speech detection for an entity
# that says requires_external_vad=False; older versions have no such setting.
_DEFAULT_AUDIO_PROCESSING: Any = getattr(stt, "DEFAULT_AUDIO_PROCESSING", None)
AUDIO_PROCESSING: Any = (
    None
    if _DEFAULT_AUDIO_PROCESSING is None
    else dataclasses.replace(_DEFAULT_AUDIO_PROCESSING, requires_external_vad=False)
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RtvoiceConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The stack's speech to text, if it has an ASR service."""
    if entry.runtime_data.asr_languages is not None:
        async_add_entities([RtvoiceSttEntity(entry)])


class RtvoiceSttEntity(RtvoiceEntity, stt.SpeechToTextEntity):
    """The stack's ASR service, ending the turn itself."""

    _attr_name = None

    def __init__(self, entry: RtvoiceConfigEntry) -> None:
        super().__init__(entry, "stt")
        self._entry = entry

    @property
    def supported_languages(self) -> list[str]:
        """The languages of the service's model."""
        return self._entry.runtime_data.asr_languages or []

    @property
    def supported_formats(self) -> list[stt.AudioFormats]:
        """WAV."""
        return [stt.AudioFormats.WAV]

    @property
    def supported_codecs(self) -> list[stt.AudioCodecs]:
        """PCM."""
        return [stt.AudioCodecs.PCM]

    @property
    def supported_bit_rates(self) -> list[stt.AudioBitRates]:
        """16 bits."""
        return [stt.AudioBitRates.BITRATE_16]

    @property
    def supported_sample_rates(self) -> list[stt.AudioSampleRates]:
        """16 kHz."""
        return [stt.AudioSampleRates.SAMPLERATE_16000]

    @property
    def supported_channels(self) -> list[stt.AudioChannels]:
        """Mono."""
        return [stt.AudioChannels.CHANNEL_MONO]

    @property
    def audio_processing(self) -> Any:
        """No voice activity detection needed (read by Home Assistant 2026.5+)."""
        return AUDIO_PROCESSING

    async def async_process_audio_stream(
        self, metadata: stt.SpeechMetadata, stream: AsyncIterable[bytes]
    ) -> stt.SpeechResult:
        """Upload the audio while reading; return at the first transcript."""
        host = self._entry.runtime_data.client.host
        port = int(self.coordinator.data.info["ports"]["asr"])
        try:
            async with AsyncTcpClient(host, port) as client:
                await client.write_event(Transcribe(language=metadata.language).event())
                await client.write_event(
                    AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event()
                )
                upload = asyncio.create_task(_upload(client, stream))
                receive = asyncio.create_task(_receive(client))
                tasks = (upload, receive)
                try:
                    done, _ = await asyncio.wait(
                        tasks, return_when=asyncio.FIRST_COMPLETED
                    )
                    if receive in done:
                        return receive.result()
                    upload.result()
                    return await asyncio.wait_for(receive, TRANSCRIPT_TIMEOUT_S)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        except (OSError, TimeoutError) as err:
            LOGGER.warning("Speech to text failed: %s", err or type(err).__name__)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)


async def _upload(client: AsyncTcpClient, stream: AsyncIterable[bytes]) -> None:
    """The audio as it comes, then audio-stop; the stream is closed at the end."""
    chunks: AsyncIterator[bytes] = aiter(stream)
    try:
        async for audio in chunks:
            chunk = AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=audio)
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
    finally:
        if (close := getattr(chunks, "aclose", None)) is not None:
            await close()


async def _receive(client: AsyncTcpClient) -> stt.SpeechResult:
    """The first transcript (partial transcripts before it are not used)."""
    while (event := await client.read_event()) is not None:
        if Transcript.is_type(event.type):
            return stt.SpeechResult(
                Transcript.from_event(event).text, stt.SpeechResultState.SUCCESS
            )
        if Error.is_type(event.type):
            LOGGER.warning("Speech to text refused: %s", Error.from_event(event).text)
            return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
    LOGGER.warning("Speech to text failed: the service closed the connection")
    return stt.SpeechResult(None, stt.SpeechResultState.ERROR)
