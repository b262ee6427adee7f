"""microWakeWord and openWakeWord behind one interface.

A `Stream` is one connection's audio: its features (mel spectrogram, and for
openWakeWord the embeddings) are computed once and fed to every model that
listens on the stream. Detections carry the model and where the phrase was
heard: the sample of the stream (counted from its first) at which the model
fired. That position is what the wake service sends as `timestamp` (ms)
and where the satellite starts a turn's audio.

A model may have a second opinion: when microWakeWord is unsure (its
probability rose above `unsure_above` but not to its cutoff), openWakeWord's
model of the same phrase hears the last seconds of audio once that moment
is over, and its detection counts. In noise this finds many phrases the
first model alone misses, for a fraction of openWakeWord's CPU. Such a
detection is placed where the unsure moment began, not where it was
confirmed: the words said after the phrase are not lost to the wait.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
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
SECOND_OPINION_SECONDS = 2.5  # enough for openWakeWord's windows and a phrase


@dataclass(frozen=True)
class WakeModel:
    """A model on disk: what `info` lists and a `Stream` instantiates."""

    name: str
    phrase: str
    engine: str
    path: Path
    cutoff: float  # the probability threshold (the model's own unless tuned)
    languages: tuple[str, ...] = ("en",)
    second_opinion: WakeModel | None = None
    unsure_above: float = 0.05


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
        self._steps = 0

    def probabilities(self, features: np.ndarray) -> Iterable[float]:
        # The model runs on every `stride`-th feature step and says 0.0 on the
        # others, which would break a run of activations (--trigger-level).
        probability = self._model.process_streaming_prob(features)
        self._steps += 1
        if probability is None or self._steps % self._model.stride:
            return []
        return [probability]


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
    unsure_since: int | None = None  # where it rose above unsure_above


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
        self._recent = bytearray()  # what a second opinion hears
        self.second_opinions = 0  # times one was asked
        self._recent_max = 0
        if any(model.second_opinion for model in models):
            self._recent_max = int(SECOND_OPINION_SECONDS * 16000) * 2

    def process(self, audio: bytes) -> list[tuple[str, int]]:
        """Feed audio; returns (model name, position) per detection."""
        if self._recent_max:
            self._recent += audio
            del self._recent[: -self._recent_max]
        detections = []
        for listener, position, probability in self.scores(audio):
            if self.fires(listener, probability, position):
                detections.append((listener.model.name, position))
                continue
            since = self._confirmed(listener, probability, position)
            if since is not None:
                detections.append((listener.model.name, since))
        return detections

    def _confirmed(
        self, listener: Listener, probability: float, position: int
    ) -> int | None:
        """The second opinion, asked when an unsure moment is over: where the
        moment began, if the opinion hears the phrase."""
        opinion = listener.model.second_opinion
        if opinion is None or position < listener.quiet_until:
            listener.unsure_since = None
            return None
        if probability > listener.model.unsure_above:
            if listener.unsure_since is None:
                listener.unsure_since = position
            return None
        since, listener.unsure_since = listener.unsure_since, None
        if since is None:
            return None
        self.second_opinions += 1
        if not Stream([opinion], None, 1, 0.0).process(bytes(self._recent)):
            return None
        listener.quiet_until = position + listener.refractory_samples
        return since

    def scores(self, audio: bytes) -> Iterator[tuple[Listener, int, float]]:
        """Feed audio; each model's probability at each step it decides, with
        the sample position (to be consumed whole)."""
        start = self.samples
        self.samples += len(audio) // 2
        for step, features in enumerate(self._features(audio)):
            position = min(self.samples, start + (step + 1) * self._step)
            for listener in self.listeners:
                for probability in listener.detector.probabilities(features):
                    yield listener, position, probability

    @staticmethod
    def fires(listener: Listener, probability: float, position: int) -> bool:
        """Whether this probability fires the listener (its run of activations
        and quiet time are updated)."""
        if position < listener.quiet_until or probability <= listener.threshold:
            listener.activations = 0
            return False
        listener.activations += 1
        if listener.activations < listener.trigger_level:
            return False
        listener.activations = 0
        listener.quiet_until = position + listener.refractory_samples
        return True
