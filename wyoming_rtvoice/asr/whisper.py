"""faster-whisper run on the audio actually present, not a padded 30 s window.

The encoder costs in proportion to its window. Whisper was trained on 30 s
windows: fed a short one it tends to repeat itself and to lose a first word
that starts right away. So the audio gets 0.5 s of silence before it (this
alone brought a short window's errors on spoken commands down to those of
the 30 s window) and as much silence again after it, generation is bounded
by the audio's length, and a repetition of the transcript's start is cut.

Whisper, fed a short window, often starts the transcript over where it
should end ("Turn off the television. Turn off the television. ...") and
goes on to the bound: on ~1 decode in 4 of spoken commands, ~100 ms of
tokens at ~5 ms each. So generation runs in rounds: first as many tokens as
speech this long needs at most, then, only if it did not end or repeat
itself, the rest. Greedy decoding forced through the first round's tokens
goes on as one call would: the transcript is the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

_LOGGER = logging.getLogger(__name__)

RATE = 16000
MAX_WINDOW_S = 30.0
LEAD_S = 0.5
TOKENS_PER_SECOND = 8  # speech is ~3-4 tokens/s; this bounds runaway repetition
# The first round: 98.7% of the e2e material's commands end, or start over
# far enough to be cut, within it (3.5 tokens a second at the median, 4.8 p95).
FIRST_ROUND_TOKENS, FIRST_ROUND_PER_SECOND = 4, 5
REPEATED_TOKENS = 3  # a transcript that starts over this far is cut there
NO_SPEECH_THRESHOLD = 0.6
PROMPT_BUDGET = 223  # Whisper's prompt limit: max_length // 2 - 1
MAX_LENGTH = 448  # the decoder's positions: prompt and transcript together
KEPT_ENCODINGS = 8  # the last decodes' encoder outputs, for scoring
SAMPLES_PER_ENCODED = 320  # an encoder frame is two 10 ms mel frames
_WORD = re.compile(r"\w+")


def window_samples(samples: int) -> int:
    """Encoder window for `samples` of audio: the audio, as much silence, 1 s."""
    return min(int(MAX_WINDOW_S * RATE), 2 * samples + RATE)


def echoes(text: str, prompt: str) -> bool:
    """Whether `text` is only words of `prompt`, said in its order."""
    words = _WORD.findall(text.lower())
    said = _WORD.findall(prompt.lower())
    return bool(words) and any(
        said[start : start + len(words)] == words
        for start in range(len(said) - len(words) + 1)
    )


def trim_repetition(tokens: list[int], min_run: int = REPEATED_TOKENS) -> list[int]:
    """Cut the transcript where its first `min_run` tokens start over."""
    head = tokens[:min_run]
    for start in range(1, len(tokens) - min_run + 1):
        if len(head) == min_run and tokens[start : start + min_run] == head:
            return tokens[:start]
    return tokens


class Whisper:
    """One faster-whisper model, loaded once and warmed; `transcribe` blocks."""

    def __init__(
        self,
        model: str,
        language: str | None,
        beam_size: int,
        compute_type: str,
        cpu_threads: int,
        workers: int = 2,
    ) -> None:
        started = time.monotonic()
        # Two decodes run at once (the weights are shared): a final decode
        # never waits for a partial still running.
        self.model = WhisperModel(
            model,
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=workers,
        )
        multilingual = self.model.model.is_multilingual
        self.language = (language or "en") if multilingual else "en"
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=self.language if multilingual else None,
        )
        self.beam_size = beam_size
        self.in_flight = 0  # decodes running now, across every stream
        self._counting = threading.Lock()
        self._encodings: OrderedDict[bytes, tuple[np.ndarray, int]] = OrderedDict()
        self._workers = workers
        # Its own threads: decodes never queue behind synthesis or matching.
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="whisper")
        warm = np.random.default_rng(0).normal(0, 0.01, RATE).astype(np.float32)
        self.transcribe(warm)
        _LOGGER.info(
            "Whisper %s loaded and warmed in %.2f s", model, time.monotonic() - started
        )

    def prompt_tokens(self, prompt: str | None) -> list[int]:
        tokens: list[int] = []
        if prompt:
            tokens = [self.tokenizer.sot_prev]
            tokens += self.tokenizer.encode(" " + prompt.strip())[-PROMPT_BUDGET:]
        return (
            tokens + list(self.tokenizer.sot_sequence) + [self.tokenizer.no_timestamps]
        )

    @property
    def busy(self) -> bool:
        return self.in_flight > 0

    async def decode(self, audio: np.ndarray, prompt: str | None) -> str:
        """`transcribe` on this model's own threads, in two steps (encode,
        generate): a decode cancelled while it encodes stops after that step."""
        loop = asyncio.get_running_loop()
        with self._counting:
            self.in_flight += 1
        try:
            await loop.run_in_executor(self._executor, self._encoded, audio)
            return await loop.run_in_executor(
                self._executor, self.transcribe, audio, prompt
            )
        finally:
            with self._counting:
                self.in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def transcribe(self, audio: np.ndarray, prompt: str | None = None) -> str:
        """Text of `audio` (float32, 16 kHz mono); '' when there is no speech."""
        with self._counting:
            self.in_flight += 1
        try:
            return self._transcribe(audio, prompt)
        finally:
            with self._counting:
                self.in_flight -= 1

    async def score(self, audio: np.ndarray, texts: list[str]) -> list[float]:
        """`log_probabilities` on this model's own threads, the texts shared
        out between them: the second chance runs once the final decode is
        done, when every thread is free."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._encoded, audio)  # once
        share = max(1, math.ceil(len(texts) / self._workers))
        scored = await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._executor, self.log_probabilities, audio, texts[i : i + share]
                )
                for i in range(0, len(texts), share)
            )
        )
        return [score for part in scored for score in part]

    def log_probabilities(self, audio: np.ndarray, texts: list[str]) -> list[float]:
        """How likely each text is as the transcript of `audio`: the decoder
        forced through its tokens, on the encoder output of the decode of the
        same audio when it is still at hand. Special tokens (the end) are not
        scored: a text that stops early is told by its last word or its
        full stop."""
        with self._counting:
            self.in_flight += 1
        try:
            encoded, _ = self._encoded(audio)
            # The silence the window was padded with tells nothing: a third
            # less work; the scores hardly move.
            lead = int(LEAD_S * RATE)
            samples = min(len(audio), int(MAX_WINDOW_S * RATE) - lead) + lead
            frames = min(encoded.shape[1], samples // SAMPLES_PER_ENCODED + 10)
            tokens = [self.tokenizer.encode(" " + text.strip()) for text in texts]
            batch = ctranslate2.StorageView.from_array(
                np.repeat(encoded[:, :frames], len(tokens), axis=0)
            )
            results = self.model.model.align(
                batch,
                self.prompt_tokens(None),
                tokens,
                2 * frames,
                median_filter_width=1,  # the alignment itself is not used
            )
            return [
                float(np.log(np.maximum(result.text_token_probs, 1e-12)).sum())
                for result in results
            ]
        finally:
            with self._counting:
                self.in_flight -= 1

    def _encoded(self, audio: np.ndarray) -> tuple[np.ndarray, int]:
        """The encoder output of `audio` and its number of frames; the last
        few are kept, so scoring the audio of a decode encodes it once."""
        key = hashlib.blake2b(audio.tobytes(), digest_size=16).digest()
        with self._counting:
            if key in self._encodings:
                self._encodings.move_to_end(key)
                return self._encodings[key]
        lead = int(LEAD_S * RATE)
        audio = audio[: int(MAX_WINDOW_S * RATE) - lead]
        window = np.zeros(window_samples(lead + len(audio)), dtype=np.float32)
        window[lead : lead + len(audio)] = audio
        features = self.model.feature_extractor(window)
        features = features[:, : len(window) // self.model.feature_extractor.hop_length]
        view = ctranslate2.StorageView.from_array(
            features[np.newaxis].astype(np.float32)
        )
        encoded = (
            np.array(self.model.model.encode(view, to_cpu=True)),
            len(features[0]),
        )
        with self._counting:
            self._encodings[key] = encoded
            while len(self._encodings) > KEPT_ENCODINGS:
                self._encodings.popitem(last=False)
        return encoded

    def _transcribe(self, audio: np.ndarray, prompt: str | None) -> str:
        encoded, _ = self._encoded(audio)
        seconds = min(len(audio) / RATE, MAX_WINDOW_S - LEAD_S)
        generated = self._generated(encoded, self.prompt_tokens(prompt), seconds)
        if generated is None:
            return ""
        text = str(self.tokenizer.decode(generated)).strip()
        if prompt and echoes(text, prompt):
            # Whisper's known failure on speech it hears badly: it repeats
            # its prompt ("Kitchen Lights."), here a name, so a command.
            return self._transcribe(audio, None)
        return text

    def _generated(
        self, encoded: np.ndarray, prompt_ids: list[int], seconds: float
    ) -> list[int] | None:
        """The transcript's tokens, cut where it starts over (None when the
        audio has no speech)."""
        features = ctranslate2.StorageView.from_array(encoded)

        def generate(prompt: list[int], max_length: int, first: bool) -> Any:
            return self.model.model.generate(
                features,
                [prompt],
                beam_size=self.beam_size,
                max_length=max_length,
                # blank and the end are suppressed at the transcript's start
                # only, not where a round goes on
                suppress_blank=first,
                suppress_tokens=[-1],
                return_no_speech_prob=first,
            )[0]

        rounds = [10 + int(TOKENS_PER_SECOND * seconds)]
        if self.beam_size == 1:  # a beam is not resumed the way it would go on
            first = FIRST_ROUND_TOKENS + math.ceil(FIRST_ROUND_PER_SECOND * seconds)
            rounds.insert(0, min(first, rounds[0]))
        return in_rounds(generate, prompt_ids, rounds, self.tokenizer.eot)


def max_length(prompt_ids: list[int], tokens: int) -> int:
    """CTranslate2's Whisper `max_length` that lets it write `tokens` (a
    forced prefix among them) after `prompt_ids`: it writes at most
    max_length - len(prompt_ids) + 1 and at most max_length // 2 (measured
    on tiny.en). A short prompt, or none, needs the second bound, or the
    text is cut short where it had more to say. Never past the decoder's
    positions: a long prompt leaves fewer tokens (more fail the decode)."""
    tokens = min(tokens, MAX_LENGTH - len(prompt_ids))
    return max(len(prompt_ids) + tokens - 1, 2 * tokens)


# generate(prompt, max_length, first round): one CTranslate2 Whisper result
Generate = Callable[[list[int], int, bool], Any]


def in_rounds(
    generate: Generate, prompt_ids: list[int], rounds: list[int], eot: int
) -> list[int] | None:
    """Greedy tokens, at most `rounds[i]` by the end of round i, a round
    going on from the tokens of the one before; it stops once the text
    ends or starts over, and is cut there. None when the first round finds
    no speech."""
    tokens: list[int] = []
    for budget in rounds:
        result = generate(
            prompt_ids + tokens, max_length(prompt_ids, budget), not tokens
        )
        if not tokens and result.no_speech_prob > NO_SPEECH_THRESHOLD:
            return None
        tokens = [t for t in result.sequences_ids[0] if t < eot]
        kept = trim_repetition(tokens)
        if len(tokens) < budget or kept != tokens:
            return kept  # it ended, or started over
    return tokens  # to the bound, without starting over
