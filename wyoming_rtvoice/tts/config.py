"""The TTS service's configuration, and its flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import flag

DEFAULT_VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class TtsConfig:
    FLAGS: ClassVar[str] = "tts"

    voice: str = field(
        default=DEFAULT_VOICE,
        metadata=flag(
            "Piper voice: the embedded default or a path to a .onnx (%(default)s)"
        ),
    )
    cache_bytes: int = field(
        default=32 * 1024 * 1024,
        metadata=flag("Memory for cached audio of short phrases (%(default)s)"),
    )
    samples_per_chunk: int = field(
        default=1024, metadata=flag("Samples per audio-chunk event (%(default)s)")
    )
    max_text_chars: int = field(
        default=10_000,
        metadata=flag("Longest text one request may carry (%(default)s)"),
    )
    max_queued: int = field(  # utterances one connection may have waiting
        default=4,
        metadata=flag(
            "Requests one connection may have waiting for synthesis; more "
            "are refused (%(default)s)"
        ),
    )
