"""Audio helpers shared by the services and their tests (16-bit PCM)."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter
from wyoming.event import Event

RATE_16K = 16000
WIDTH = 2
MONO = 1
# Formats a client may send. Converting from a tiny rate would multiply the
# audio many times over on the event loop (1 Hz to 16 kHz: 16000x).
RATES = range(8000, 192_001)
WIDTHS = (1, 2, 3, 4)
CHANNELS = (1, 2)


def is_names(value: object) -> bool:
    """None or a list of strings (names a client may send with a request)."""
    return value is None or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def check_format(data: dict[str, Any]) -> None:
    """ValueError unless `data` names an audio format we convert."""
    rate, width, channels = data.get("rate"), data.get("width"), data.get("channels")
    if not all(type(value) is int for value in (rate, width, channels)):
        raise ValueError("rate, width and channels must be integers")
    if rate not in RATES or width not in WIDTHS or channels not in CHANNELS:
        raise ValueError(
            f"unsupported format: rate {rate}, width {width}, channels {channels}"
        )


def checked_chunk(event: Event) -> AudioChunk:
    """The event's audio chunk if its format is one we convert; else ValueError."""
    check_format(event.data)
    chunk = AudioChunk.from_event(event)
    if len(chunk.audio) % (chunk.width * chunk.channels):
        raise ValueError(f"{len(chunk.audio)} bytes is not a whole number of samples")
    return chunk


def convert(pcm: bytes, rate: int, width: int = WIDTH, channels: int = MONO) -> bytes:
    """Any PCM to 16 kHz, 16-bit mono (one-shot; stateful streams use a converter)."""
    converter = AudioChunkConverter(rate=RATE_16K, width=WIDTH, channels=MONO)
    return converter.convert(AudioChunk(rate, width, channels, pcm)).audio


def to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


def read_wav(path: Path | str) -> tuple[bytes, int, int, int]:
    """(pcm, rate, width, channels) of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        return (
            wav.readframes(wav.getnframes()),
            wav.getframerate(),
            wav.getsampwidth(),
            wav.getnchannels(),
        )


def write_wav(
    path: Path | str, pcm: bytes, rate: int, width: int = WIDTH, channels: int = MONO
) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setframerate(rate)
        wav.setsampwidth(width)
        wav.setnchannels(channels)
        wav.writeframes(pcm)
