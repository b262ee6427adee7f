"""Wake word service: microWakeWord (default) or openWakeWord, streaming detection."""

from __future__ import annotations

import argparse
from dataclasses import replace

from wyoming.info import Attribution, Info
from wyoming.info import WakeModel as WakeModelInfo
from wyoming.info import WakeProgram

from .. import __version__
from ..cli import Service, add_common_arguments, limits_from
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

# Measured with `script/bench wake` (docs/benchmarks.md): the threshold with
# the best recall and no false accept on 31 min of other speech and noise,
# and the second opinion's (openWakeWord) threshold.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "tcp://0.0.0.0:10400")
    group = parser.add_argument_group("wake")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="micro",
        help="Wake word engine (%(default)s)",
    )
    group.add_argument(
        "--model",
        action="append",
        help="Model listened for when `detect` names none: a built-in name or a path "
        "(.json for micro, .tflite for openwakeword); repeatable (okay_nabu)",
    )
    group.add_argument(
        "--threshold",
        type=float,
        help="Probability that counts as an activation (default: measured for "
        "okay_nabu: micro 0.65, openwakeword 0.05; else the model's own, 0.5 for "
        "openWakeWord)",
    )
    group.add_argument(
        "--second-opinion",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="When microWakeWord is unsure, openWakeWord's model of the same "
        "phrase decides (measured models: okay_nabu) (%(default)s)",
    )
    group.add_argument(
        "--trigger-level",
        type=int,
        default=1,
        help="Activations in a row needed to fire (%(default)s)",
    )
    group.add_argument(
        "--refractory-seconds",
        type=float,
        default=2.0,
        help="After firing, the same model stays quiet this long (%(default)s)",
    )
    group.add_argument(
        "--max-seconds",
        type=float,
        default=WakeSettings.max_seconds,
        help="Longest audio stream; past it the connection is closed with an "
        "error and the client starts a new one (%(default)s)",
    )


def tuned(model: WakeModel, second_opinion: bool) -> WakeModel:
    """A built-in model with its measured threshold and second opinion."""
    if model.path.parent not in (MICRO_MODELS_DIR, OPEN_MODELS_DIR):
        return model  # the user's own model: its own threshold
    cutoff, opinion = TUNED.get((model.engine, model.name), (model.cutoff, None))
    second = None
    if opinion is not None and second_opinion:
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


async def load(args: argparse.Namespace, metrics: Metrics) -> Service:
    try:
        defaults = [
            tuned(find_model(args.engine, name), args.second_opinion)
            for name in args.model or ["okay_nabu"]
        ]
    except ValueError as err:
        raise SystemExit(str(err)) from err
    builtin = [
        tuned(model, args.second_opinion) for model in builtin_models(args.engine)
    ]
    available = {model.name: model for model in builtin + defaults}
    settings = WakeSettings(
        tuple(defaults),
        available,
        args.threshold,
        args.trigger_level,
        args.refractory_seconds,
        args.max_seconds,
    )
    info = describe(list(available.values()))
    limits = limits_from(args)
    return Service(
        "wake",
        lambda reader, writer: WakeEventHandler(
            reader, writer, info, limits, settings, metrics
        ),
    )
