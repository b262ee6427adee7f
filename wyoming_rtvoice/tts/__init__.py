"""TTS service: Piper, streaming audio clause by clause while text arrives."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from .. import __version__
from ..cli import Service, add_common_arguments, limits_from
from ..trace import Metrics
from .handler import TtsEventHandler, TtsSettings

if TYPE_CHECKING:
    from .voice import Voice

DEFAULT_VOICE = "en_US-joe-medium"

PIPER = Attribution(
    name="Michael Hansen", url="https://github.com/OHF-Voice/piper1-gpl"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "tcp://0.0.0.0:10200")
    group = parser.add_argument_group("tts")
    group.add_argument(
        "--voice",
        default=DEFAULT_VOICE,
        help="Piper voice: the embedded default or a path to a .onnx (%(default)s)",
    )
    group.add_argument(
        "--cache-bytes",
        type=int,
        default=32 * 1024 * 1024,
        help="Memory for cached audio of short phrases (%(default)s)",
    )
    group.add_argument(
        "--samples-per-chunk",
        type=int,
        default=TtsSettings.samples_per_chunk,
        help="Samples per audio-chunk event (%(default)s)",
    )
    group.add_argument(
        "--max-text-chars",
        type=int,
        default=TtsSettings.max_text_chars,
        help="Longest text one request may carry (%(default)s)",
    )


def describe(voice: Voice) -> Info:
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


async def load(args: argparse.Namespace, metrics: Metrics) -> Service:
    from .voice import Voice, resolve_voice  # Piper loads only when this service runs

    try:
        model_path = resolve_voice(args.voice)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from err
    loop = asyncio.get_running_loop()
    voice = await loop.run_in_executor(None, Voice, model_path, args.cache_bytes)
    info = describe(voice)
    limits = limits_from(args)
    settings = TtsSettings(args.samples_per_chunk, args.max_text_chars)
    return Service(
        "tts",
        lambda reader, writer: TtsEventHandler(
            reader, writer, info, limits, voice, settings, metrics
        ),
        models={"voice": voice},
    )
