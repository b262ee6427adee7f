"""What the integration's tests and the Home Assistant benchmark share
(imported in Home Assistant's environment)."""

from __future__ import annotations

from typing import Any


async def reply_audio(hass: Any, tts_output: dict[str, Any]) -> tuple[str, bytes]:
    """A pipeline's spoken reply (extension, audio) from its TTS stream, as
    Home Assistant's satellites read it (2026.x: its media id names the
    stream, which `tts.async_get_media_source_audio` does not resolve)."""
    from homeassistant.components import tts

    stream = tts.async_get_stream(hass, tts_output["token"])
    assert stream is not None, tts_output
    audio = b"".join([chunk async for chunk in stream.async_stream_result()])
    return stream.extension, audio
