"""microWakeWord and openWakeWord behind one interface.

A `Stream` is one connection's audio: its features (mel spectrogram, and for
openWakeWord the embeddings) are computed once and fed to every model that
listens on the stream. Detections carry the model and the audio position.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pymicro_wakeword
import pyopen_wakeword
from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures
from pyopen_wakeword import OpenWakeWord, OpenWakeWordFeatures

ENGINES = ("micro", "openwakeword")
MICRO_MODELS_DIR = Path(pymicro_wakeword.__file__).parent / "models"
OPEN_MODELS_DIR = Path(pyopen_wakeword.__file__).parent / "models"
OPEN_FEATURE_MODELS = {"melspectrogram", "embedding_model"}


@dataclass(frozen=True)
class WakeModel:
    """A model on disk: what `info` lists and a `Stream` instantiates."""

    name: str
    phrase: str
    engine: str
    path: Path
    cutoff: float  # the model's own probability threshold
    languages: tuple[str, ...] = ("en",)


def phrase_of(name: str) -> str:
    return " ".join(word.capitalize() for word in name.split("_"))


def builtin_models(engine: str) -> list[WakeModel]:
    if engine == "micro":
        return [micro_model(path) for path in sorted(MICRO_MODELS_DIR.glob("*.json"))]
    return [
        open_model(path)
        for path in sorted(OPEN_MODELS_DIR.glob("*.tflite"))
        if path.stem not in OPEN_FEATURE_MODELS
    ]


def micro_model(config_path: Path) -> WakeModel:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    return WakeModel(
        name=Path(config["model"]).stem,
        phrase=config["wake_word"],
        engine="micro",
        path=config_path,
        cutoff=float(config["micro"]["probability_cutoff"]),
        languages=tuple(config.get("trained_languages") or ["en"]),
    )


def open_model(tflite_path: Path) -> WakeModel:
    return WakeModel(
        name=tflite_path.stem,
        phrase=phrase_of(tflite_path.stem),
        engine="openwakeword",
        path=tflite_path,
        cutoff=0.5,
    )


def find_model(engine: str, name_or_path: str) -> WakeModel:
    """A built-in model by name, or a custom one by path (.json micro, .tflite oww)."""
    for model in builtin_models(engine):
        if model.name == name_or_path:
            return model
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        return micro_model(path)
    if path.suffix == ".tflite" and path.is_file():
        return open_model(path)
    known = ", ".join(model.name for model in builtin_models(engine))
    raise ValueError(f"unknown wake model {name_or_path!r} (built in: {known})")


class Detector(Protocol):
    """One model on one stream: a probability per feature step."""

    def probabilities(self, features: np.ndarray) -> Iterable[float]: ...


class _Micro:
    def __init__(self, model: WakeModel) -> None:
        self._model = MicroWakeWord.from_config(model.path)

    def probabilities(self, features: np.ndarray) -> Iterable[float]:
        probability = self._model.process_streaming_prob(features)
        return [] if probability is None else [probability]


class _Open:
    def __init__(self, model: WakeModel) -> None:
        self._model = OpenWakeWord.from_model(model.path)

    def probabilities(self, features: np.ndarray) -> Iterable[float]:
        return self._model.process_streaming(features)


@dataclass
class Listener:
    """A model listening on a stream, with its trigger and refractory state."""

    model: WakeModel
    detector: Detector
    threshold: float
    trigger_level: int
    refractory_samples: int
    activations: int = 0
    quiet_until: int = 0


class Stream:
    """One audio stream (16 kHz, 16-bit mono) and the models listening to it."""

    def __init__(
        self,
        models: list[WakeModel],
        threshold: float | None,
        trigger_level: int,
        refractory_s: float,
    ) -> None:
        engines = {model.engine for model in models}
        if len(engines) != 1:
            raise ValueError("a stream runs models of one engine")
        self.engine = engines.pop()
        self._features: Callable[[bytes], Iterable[np.ndarray]]
        if self.engine == "micro":
            self._features = MicroWakeWordFeatures().process_streaming
            self._step = 160  # 10 ms of features per step
        else:
            self._features = OpenWakeWordFeatures.from_builtin().process_streaming
            self._step = 1280  # 80 ms per embedding
        self.listeners = [
            Listener(
                model,
                _Micro(model) if self.engine == "micro" else _Open(model),
                model.cutoff if threshold is None else threshold,
                trigger_level,
                int(refractory_s * 16000),
            )
            for model in models
        ]
        self.samples = 0

    def process(self, audio: bytes) -> list[tuple[str, int]]:
        """Feed audio; returns (model name, sample position) per detection."""
        start = self.samples
        self.samples += len(audio) // 2
        detections: list[tuple[str, int]] = []
        for step, features in enumerate(self._features(audio)):
            position = min(self.samples, start + (step + 1) * self._step)
            for listener in self.listeners:
                for probability in listener.detector.probabilities(features):
                    if self._fires(listener, probability, position):
                        detections.append((listener.model.name, position))
        return detections

    @staticmethod
    def _fires(listener: Listener, probability: float, position: int) -> bool:
        if position < listener.quiet_until or probability <= listener.threshold:
            listener.activations = 0
            return False
        listener.activations += 1
        if listener.activations < listener.trigger_level:
            return False
        listener.activations = 0
        listener.quiet_until = position + listener.refractory_samples
        return True
