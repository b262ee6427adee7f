"""Spoken test material made with the project's own TTS, and real-time streaming.

Used by tests and benchmarks: phrases at several speeds with light noise,
16 kHz mono, with the time of the last spoken sample known exactly; room
noise (fan-like pink noise, babble) mixed at a signal-to-noise ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient

from wyoming_rtvoice.audio import MONO, RATE_16K, WIDTH, convert
from wyoming_rtvoice.tts import DEFAULT_VOICE

if TYPE_CHECKING:
    from wyoming_rtvoice.tts.voice import Voice

SPEEDS = (0.85, 1.0, 1.2)  # Piper length_scale: < 1 faster, > 1 slower
VOICED = 500  # a sample louder than this is speech
EDGE_S = 0.05  # of a word's quiet start or end kept around a pause


@dataclass(frozen=True)
class Spoken:
    text: str
    audio: bytes  # 16 kHz 16-bit mono
    speech_end_s: float  # position of the last spoken sample in `audio`

    @property
    def seconds(self) -> float:
        return len(self.audio) / (RATE_16K * WIDTH)


@lru_cache(maxsize=1)
def _voice() -> Voice:
    from wyoming_rtvoice.tts.voice import Voice, resolve_voice

    return Voice(resolve_voice(DEFAULT_VOICE), cache_bytes=0)


def speak(
    text: str,
    length_scale: float = 1.0,
    noise_db: float | None = -40.0,
    lead_s: float = 0.3,
    tail_s: float = 0.8,
    seed: int = 0,
    natural: bool = False,
) -> Spoken:
    """`text` spoken by the default voice, padded with silence, with optional noise.

    Without Piper's sampled noise (`natural`) the same text is the same audio
    every run; the variety comes from the speeds and the seeded room noise.
    """
    samples = _samples(text, length_scale, natural)
    voiced = np.flatnonzero(np.abs(samples) > VOICED)
    last_voiced = int(voiced[-1]) + 1 if len(voiced) else len(samples)
    return _in_room(text, samples, last_voiced, noise_db, lead_s, tail_s, seed)


def speak_with_pause(
    first: str,
    pause_s: float,
    second: str,
    length_scale: float = 1.0,
    noise_db: float | None = -40.0,
    lead_s: float = 0.3,
    tail_s: float = 0.8,
    seed: int = 0,
) -> Spoken:
    """`first`, exactly `pause_s` from its last spoken sample to the first of
    `second`, then `second`: a speaker hesitating mid-sentence. The quiet
    starts and ends of the words (up to `EDGE_S`) are kept in the pause."""
    before = _samples(first, length_scale, False)
    after = _samples(second, length_scale, False)
    end = int(np.flatnonzero(np.abs(before) > VOICED)[-1]) + 1
    start = int(np.flatnonzero(np.abs(after) > VOICED)[0])
    fade_out = before[end : end + int(EDGE_S * RATE_16K)]
    fade_in = after[max(0, start - int(EDGE_S * RATE_16K)) : start]
    gap = int(pause_s * RATE_16K) - len(fade_out) - len(fade_in)
    silence = np.zeros(max(0, gap), dtype=np.float32)
    samples = np.concatenate([before[:end], fade_out, silence, fade_in, after[start:]])
    last_voiced = int(np.flatnonzero(np.abs(samples) > VOICED)[-1]) + 1
    text = f"{first} {second}"
    return _in_room(text, samples, last_voiced, noise_db, lead_s, tail_s, seed)


def _samples(text: str, length_scale: float, natural: bool) -> np.ndarray:
    speech = convert(
        _voice().synthesize_blocking(text, length_scale, noise=natural),
        _voice().rate,
    )
    return np.frombuffer(speech, dtype=np.int16).astype(np.float32)


def _in_room(
    text: str,
    samples: np.ndarray,
    last_voiced: int,
    noise_db: float | None,
    lead_s: float,
    tail_s: float,
    seed: int,
) -> Spoken:
    """Silence before and after, and the room's noise over all of it."""
    lead = np.zeros(int(lead_s * RATE_16K), dtype=np.float32)
    tail = np.zeros(int(tail_s * RATE_16K), dtype=np.float32)
    signal = np.concatenate([lead, samples, tail])
    if noise_db is not None:
        rng = np.random.default_rng(seed)
        signal += rng.normal(0.0, 32768.0 * 10 ** (noise_db / 20), len(signal))
    pcm = np.clip(signal, -32768, 32767).astype(np.int16).tobytes()
    return Spoken(text, pcm, (len(lead) + last_voiced) / RATE_16K)


def rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))) or 1e-9


def speech_rms(signal: np.ndarray) -> float:
    """RMS of the voiced part (samples within 30 dB of the peak)."""
    voiced = signal[np.abs(signal) > np.abs(signal).max() * 10 ** (-30 / 20)]
    return rms(voiced if len(voiced) else signal)


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f spectrum, like a fan or air conditioning; unit RMS."""
    spectrum = rng.normal(size=samples // 2 + 1) + 1j * rng.normal(
        size=samples // 2 + 1
    )
    frequencies = np.fft.rfftfreq(samples, 1 / RATE_16K)
    frequencies[0] = frequencies[1]
    noise = np.fft.irfft(spectrum / np.sqrt(frequencies), samples)
    return (noise / rms(noise)).astype(np.float32)


def with_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`speech` (float samples) with `noise` (as long) at `snr_db` below its
    voiced level."""
    gain = speech_rms(speech) / rms(noise) / 10 ** (snr_db / 20)
    return (speech + gain * noise).astype(np.float32)


def resampled(signal: np.ndarray, factor: float) -> np.ndarray:
    """Played `factor` times faster: higher and quicker, like another speaker."""
    positions = np.arange(0, len(signal) - 1, factor)
    return np.interp(positions, np.arange(len(signal)), signal).astype(np.float32)


async def stream_audio(
    client: AsyncClient,
    audio: bytes,
    realtime: bool = True,
    chunk_ms: int = 20,
    send_stop: bool = True,
) -> float:
    """Send audio-start, chunks (at real-time pace), audio-stop; returns the
    monotonic time at which audio-stop was sent."""
    step = RATE_16K * WIDTH * chunk_ms // 1000
    started = time.monotonic()
    await client.write_event(
        AudioStart(rate=RATE_16K, width=WIDTH, channels=MONO).event()
    )
    for index, offset in enumerate(range(0, len(audio), step)):
        if realtime:
            delay = started + index * chunk_ms / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        chunk = AudioChunk(
            rate=RATE_16K,
            width=WIDTH,
            channels=MONO,
            audio=audio[offset : offset + step],
        )
        await client.write_event(chunk.event())
    if realtime:
        delay = started + len(audio) / (RATE_16K * WIDTH) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    if send_stop:
        await client.write_event(AudioStop().event())
    return time.monotonic()


def summary_ms(values: list[float]) -> str:
    """'p50 X / p95 Y ms' of a list of millisecond values."""
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f} / p95 {p95:7.1f} ms"


def percentiles(values: list[float]) -> str:
    """'p50 X / p90 Y / p95 Z ms (n)'."""
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return (
        f"p50 {statistics.median(ordered):6.1f} / p90 {at(0.9):6.1f} / "
        f"p95 {at(0.95):6.1f} ms ({len(ordered)})"
    )
