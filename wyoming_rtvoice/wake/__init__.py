"""Wake word service: microWakeWord (default) or openWakeWord, streaming detection."""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from wyoming.info import Attribution, Info
from wyoming.info import WakeModel as WakeModelInfo
from wyoming.info import WakeProgram

from .. import __version__
from ..config import option
from ..service import Service
from ..trace import Metrics
from .engines import (
    ENGINES,
    MICRO_MODELS_DIR,
    OPEN_MODELS_DIR,
    WakeModel,
    builtin_models,
    find_model,
)
from .handler import WakeEventHandler, WakeSettings

DEFAULT_URI = "tcp://0.0.0.0:10400"
# Measured with `script/bench wake` (docs/benchmarks.md): the threshold with
# the best recall and no false accept on 31 min of other speech and noise,
# and the second opinion's (openWakeWord) threshold. On 6.28 h the pair
# makes 1.27 false accepts per hour.
TUNED: dict[tuple[str, str], tuple[float, float | None]] = {
    ("micro", "okay_nabu"): (0.65, 0.02),
    ("openwakeword", "okay_nabu"): (0.05, None),
}
ATTRIBUTION = {
    "micro": Attribution(
        name="Kevin Ahrendt", url="https://github.com/kahrendt/microWakeWord"
    ),
    "openwakeword": Attribution(
        name="David Scripka", url="https://github.com/dscripka/openWakeWord"
    ),
}


@dataclass(frozen=True)
class WakeConfig:
    engine: str = "micro"
    models: tuple[str, ...] = ("okay_nabu",)
    threshold: float | None = None
    second_opinion: bool = True
    trigger_level: int = 1
    refractory_seconds: float = 2.0
    max_seconds: float = WakeSettings.max_seconds

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        group = parser.add_argument_group("wake")
        group.add_argument(
            f"--{prefix}engine",
            choices=ENGINES,
            default=WakeConfig.engine,
            help="Wake word engine (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}model",
            action="append",
            help="Model listened for when `detect` names none: a built-in name or "
            "a path (.json for micro, .tflite for openwakeword); repeatable "
            "(okay_nabu)",
        )
        group.add_argument(
            f"--{prefix}threshold",
            type=float,
            help="Probability that counts as an activation (default: measured for "
            "okay_nabu: micro 0.65, openwakeword 0.05; else the model's own, 0.5 "
            "for openWakeWord)",
        )
        group.add_argument(
            f"--{prefix}second-opinion",
            action=argparse.BooleanOptionalAction,
            default=WakeConfig.second_opinion,
            help="When microWakeWord is unsure, openWakeWord's model of the same "
            "phrase decides (measured models: okay_nabu) (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}trigger-level",
            type=int,
            default=WakeConfig.trigger_level,
            help="Activations in a row needed to fire (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}refractory-seconds",
            type=float,
            default=WakeConfig.refractory_seconds,
            help="After firing, the same model stays quiet this long (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}max-seconds",
            type=float,
            default=WakeConfig.max_seconds,
            help="Longest audio stream; past it the connection is closed with an "
            "error and the client starts a new one (%(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> WakeConfig:
        return cls(
            engine=option(args, prefix, "engine"),
            models=tuple(option(args, prefix, "model") or WakeConfig.models),
            threshold=option(args, prefix, "threshold"),
            second_opinion=option(args, prefix, "second-opinion"),
            trigger_level=option(args, prefix, "trigger-level"),
            refractory_seconds=option(args, prefix, "refractory-seconds"),
            max_seconds=option(args, prefix, "max-seconds"),
        )

    def settings(self) -> WakeSettings:
        """The models this config names, found on disk (SystemExit if not)."""
        try:
            defaults = [self.tuned(find_model(self.engine, n)) for n in self.models]
        except ValueError as err:
            raise SystemExit(str(err)) from err
        builtin = [self.tuned(model) for model in builtin_models(self.engine)]
        available = {m.name: m for m in builtin + defaults}
        return WakeSettings(
            tuple(defaults),
            available,
            self.threshold,
            self.trigger_level,
            self.refractory_seconds,
            self.max_seconds,
        )

    def tuned(self, model: WakeModel) -> WakeModel:
        """A built-in model with its measured threshold and second opinion."""
        if model.path.parent not in (MICRO_MODELS_DIR, OPEN_MODELS_DIR):
            return model  # the user's own model: its own threshold
        key = (model.engine, model.name)
        cutoff, opinion = TUNED.get(key, (model.cutoff, None))
        second = None
        if opinion is not None and self.second_opinion:
            second = replace(find_model("openwakeword", model.name), cutoff=opinion)
        return replace(model, cutoff=cutoff, second_opinion=second)


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
