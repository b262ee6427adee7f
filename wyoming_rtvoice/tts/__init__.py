"""TTS service: Piper, streaming audio clause by clause while text arrives."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from .. import __version__
from ..config import option
from ..service import Service
from ..trace import Metrics
from .speaker import Speaker, VoiceModel

DEFAULT_VOICE = "en_US-joe-medium"
DEFAULT_URI = "tcp://0.0.0.0:10200"

PIPER = Attribution(
    name="Michael Hansen", url="https://github.com/OHF-Voice/piper1-gpl"
)


@dataclass(frozen=True)
class TtsConfig:
    voice: str = DEFAULT_VOICE
    cache_bytes: int = 32 * 1024 * 1024
    samples_per_chunk: int = 1024
    max_text_chars: int = 10_000
    max_queued: int = 4  # utterances one connection may have waiting

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        group = parser.add_argument_group("tts")
        group.add_argument(
            f"--{prefix}voice",
            default=DEFAULT_VOICE,
            help="Piper voice: the embedded default or a path to a .onnx (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}cache-bytes",
            type=int,
            default=TtsConfig.cache_bytes,
            help="Memory for cached audio of short phrases (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}samples-per-chunk",
            type=int,
            default=TtsConfig.samples_per_chunk,
            help="Samples per audio-chunk event (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}max-text-chars",
            type=int,
            default=TtsConfig.max_text_chars,
            help="Longest text one request may carry (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}max-queued",
            type=int,
            default=TtsConfig.max_queued,
            help="Requests one connection may have waiting for synthesis; more "
            "are refused (%(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> TtsConfig:
        return cls(
            voice=option(args, prefix, "voice"),
            cache_bytes=option(args, prefix, "cache-bytes"),
            samples_per_chunk=option(args, prefix, "samples-per-chunk"),
            max_text_chars=option(args, prefix, "max-text-chars"),
            max_queued=option(args, prefix, "max-queued"),
        )


def describe(voice: VoiceModel) -> Info:
    return Info(
        tts=[
            TtsProgram(
                name="rtvoice-tts",
                description="Piper, streaming audio clause by clause",
                attribution=PIPER,
                installed=True,
                version=__version__,
                supports_synthesize_streaming=True,
                voices=[
                    TtsVoice(
                        name=voice.name,
                        description=f"Piper {voice.name}",
                        attribution=PIPER,
                        installed=True,
                        version=None,
                        languages=[voice.language],
                    )
                ],
            )
        ]
    )


def service(config: TtsConfig, speaker: Speaker, metrics: Metrics) -> Service:
    from .handler import TtsEventHandler

    info = describe(speaker.voice)
    return Service(
        "tts",
        lambda reader, writer, limits: TtsEventHandler(
            reader, writer, info, limits, speaker, config, metrics
        ),
    )
