"""The satellite's configuration, and its flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import PIPELINE_TOKEN_ENV, flag
from ..wake.engines import ENGINES
from .room import MAX_TURN_S

BARGE_IN = ("vad", "wake", "off")
MIC = "microphone (16 kHz 16-bit mono)"
SPEAKER = "speaker"
WAKE = "wake word and barge-in"


@dataclass(frozen=True)
class SatelliteConfig:
    FLAGS: ClassVar[str] = "satellite"

    name: str = field(default="rtvoice satellite", metadata=flag("(%(default)s)"))
    area: str | None = field(
        default=None, metadata=flag("Area Home Assistant puts the satellite in")
    )
    pipeline_uri: str | None = field(
        default=None,
        metadata=flag(
            "Direct mode: talk to the stack's pipeline at tcp://HOST:PORT "
            "instead of waiting for Home Assistant"
        ),
    )
    pipeline_token_file: str | None = field(
        default=None,
        metadata=flag(
            "Direct mode: file holding the secret the stack's pipeline "
            f"endpoint asks for (or set {PIPELINE_TOKEN_ENV})"
        ),
    )
    max_turn_seconds: float = field(
        default=MAX_TURN_S,
        metadata=flag("Longest the microphone streams for one turn (%(default)s)"),
    )
    mic_command: str | None = field(
        default=None,
        metadata=flag(
            "e.g. 'arecord -r 16000 -c 1 -f S16_LE -t raw'",
            group=MIC,
            exclusive="mic",
            required=True,
        ),
    )
    mic_wav: str | None = field(
        default=None,
        metadata=flag(
            "A WAV file played at real-time pace each time listening starts, "
            "then silence (for tests)",
            group=MIC,
            exclusive="mic",
        ),
    )
    snd_command: str | None = field(
        default=None,
        metadata=flag(
            "e.g. 'aplay -r 22050 -c 1 -f S16_LE -t raw'",
            group=SPEAKER,
            exclusive="snd",
        ),
    )
    snd_wav: str | None = field(
        default=None,
        metadata=flag(
            "Write what is played to a WAV file", group=SPEAKER, exclusive="snd"
        ),
    )
    snd_rate: int = field(default=22050, metadata=flag("(%(default)s)", group=SPEAKER))
    snd_width: int = field(default=2, metadata=flag("(%(default)s)", group=SPEAKER))
    snd_channels: int = field(default=1, metadata=flag("(%(default)s)", group=SPEAKER))
    wake_model: str = field(
        default="okay_nabu",
        metadata=flag(
            "Built-in name or path of the wake word model (%(default)s)", group=WAKE
        ),
    )
    wake_engine: str = field(
        default="micro", metadata=flag("(%(default)s)", group=WAKE, choices=ENGINES)
    )
    wake_uri: str | None = field(
        default=None,
        metadata=flag(
            "Use a wake word service at tcp://HOST:PORT instead of in-process",
            group=WAKE,
        ),
    )
    barge_in: str = field(
        default="vad",
        metadata=flag(
            "What stops a reply (Home Assistant mode): speech (vad; needs a "
            "microphone that cancels the speaker's echo), the wake word, or "
            "nothing (%(default)s)",
            group=WAKE,
            choices=BARGE_IN,
        ),
    )
    vad_threshold: float = field(
        default=0.5,
        metadata=flag(
            "Silero probability that counts as speech (%(default)s)", group=WAKE
        ),
    )
