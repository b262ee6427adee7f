"""The wake word service's configuration, and its flags."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from ..config import flag
from .engines import (
    ENGINES,
    MICRO_MODELS_DIR,
    OPEN_MODELS_DIR,
    WakeModel,
    builtin_models,
    find_model,
)
from .handler import WakeSettings

DEFAULT_MODELS = ("okay_nabu",)
# Measured with `script/bench wake` (docs/benchmarks.md): the threshold with
# the best recall and no false accept on 31 min of other speech and noise,
# and the second opinion's (openWakeWord) threshold. On 6.28 h the pair
# makes 1.27 false accepts per hour.
TUNED: dict[tuple[str, str], tuple[float, float | None]] = {
    ("micro", "okay_nabu"): (0.65, 0.02),
    ("openwakeword", "okay_nabu"): (0.05, None),
}


@dataclass(frozen=True)
class WakeConfig:
    FLAGS: ClassVar[str] = "wake"

    engine: str = field(
        default="micro",
        metadata=flag("Wake word engine (%(default)s)", choices=ENGINES),
    )
    models: tuple[str, ...] = field(
        default=DEFAULT_MODELS,
        metadata=flag(
            "Model listened for when `detect` names none: a built-in name or "
            "a path (.json for micro, .tflite for openwakeword); repeatable "
            "(okay_nabu)",
            name="model",
            action="append",
            default=None,
            convert=lambda names: tuple(names or DEFAULT_MODELS),
        ),
    )
    threshold: float | None = field(
        default=None,
        metadata=flag(
            "Probability that counts as an activation (default: measured for "
            "okay_nabu: micro 0.65, openwakeword 0.05; else the model's own, 0.5 "
            "for openWakeWord)",
            type=float,
        ),
    )
    second_opinion: bool = field(
        default=True,
        metadata=flag(
            "When microWakeWord is unsure, openWakeWord's model of the same "
            "phrase decides (measured models: okay_nabu) (%(default)s)",
            negatable=True,
        ),
    )
    trigger_level: int = field(
        default=1, metadata=flag("Activations in a row needed to fire (%(default)s)")
    )
    refractory_seconds: float = field(
        default=2.0,
        metadata=flag(
            "After firing, the same model stays quiet this long (%(default)s)"
        ),
    )
    max_seconds: float = field(
        default=WakeSettings.max_seconds,
        metadata=flag(
            "Longest audio stream; past it the connection is closed with an "
            "error and the client starts a new one (%(default)s)"
        ),
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
