"""TTS service: Piper, streaming audio clause by clause while text arrives."""

from __future__ import annotations

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from .. import __version__
from ..service import Service
from ..trace import Metrics
from .config import TtsConfig
from .handler import TtsEventHandler
from .speaker import Speaker, VoiceModel

DEFAULT_URI = "tcp://0.0.0.0:10200"

PIPER = Attribution(
    name="Michael Hansen", url="https://github.com/OHF-Voice/piper1-gpl"
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
    info = describe(speaker.voice)
    return Service(
        "tts",
        lambda reader, writer, limits: TtsEventHandler(
            reader, writer, info, limits, speaker, config, metrics
        ),
    )
