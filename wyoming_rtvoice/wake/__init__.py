"""Wake word service: microWakeWord (default) or openWakeWord, streaming detection."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from wyoming.info import Attribution, Info
from wyoming.info import WakeModel as WakeModelInfo
from wyoming.info import WakeProgram

from .. import __version__
from ..service import Service
from ..trace import Metrics
from .config import WakeConfig
from .engines import WakeModel
from .handler import WakeEventHandler

DEFAULT_URI = "tcp://0.0.0.0:10400"
ATTRIBUTION = {
    "micro": Attribution(
        name="Kevin Ahrendt", url="https://github.com/kahrendt/microWakeWord"
    ),
    "openwakeword": Attribution(
        name="David Scripka", url="https://github.com/dscripka/openWakeWord"
    ),
}


def describe(models: list[WakeModel]) -> Info:
    return Info(
        wake=[
            WakeProgram(
                name=f"rtvoice-wake-{models[0].engine}",
                description=f"{models[0].engine} wake word detection, streaming",
                attribution=ATTRIBUTION[models[0].engine],
                installed=True,
                version=__version__,
                models=[
                    WakeModelInfo(
                        name=model.name,
                        description=model.phrase,
                        phrase=model.phrase,
                        attribution=ATTRIBUTION[model.engine],
                        installed=True,
                        version=None,
                        languages=list(model.languages),
                    )
                    for model in models
                ],
            )
        ]
    )


def service(config: WakeConfig, metrics: Metrics) -> Service:
    settings = config.settings()
    info = describe(list(settings.available.values()))
    # Its own threads: detection never queues behind decoding or synthesis.
    executor = ThreadPoolExecutor(2, thread_name_prefix="wake")
    return Service(
        "wake",
        lambda reader, writer, limits: WakeEventHandler(
            reader, writer, info, limits, settings, executor, metrics
        ),
    )
