"""Audio helpers shared by the services, tests and benchmarks (16-bit PCM)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from wyoming.audio import AudioChunk, AudioChunkConverter

RATE_16K = 16000
WIDTH = 2
MONO = 1


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
