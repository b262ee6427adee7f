"""`python -m wyoming_rtvoice converse FILE.wav`: one turn through the pipeline
at real-time pace, its events as they happen, its latency waterfall and the
reply as audio.

Times are from the last spoken sample of the file (found by its energy),
which is what a listener hears as the end of speech; the VAD hears it a
little later, and that moment is shown as such.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .asr.config import AsrConfig
from .audio import RATE_16K, WIDTH, convert, read_wav, to_float, write_wav
from .config import flag, nested
from .handle.config import HandleConfig
from .hass import HassConfig
from .house.store import HouseConfig
from .models import Build, Models, build
from .pipeline import AudioSource, Engines, Pipeline, Sink, Turn
from .trace import Budgets
from .tts.config import TtsConfig
from .turn import TurnRule
from .turn_events import (
    AnswerStarted,
    Commands,
    Finished,
    Pcm,
    Said,
    SpeechStarted,
    SpeechStopped,
    Transcribed,
    TurnEvent,
)

DEMO_HOUSE = Path(__file__).parent / "data" / "demo_house.json"
CHUNK_MS = 20
WATERFALL = (
    ("spoken_end", "end of speech (last spoken sample)"),
    ("speech_end", "VAD hears the end"),
    ("audio_stop", "turn ended"),
    ("transcript", "final transcript"),
    ("intent", "intent"),
    ("first_token", "first LLM token"),
    ("first_audio", "first reply audio"),
)


@dataclass(frozen=True)
class ConverseConfig:
    FLAGS: ClassVar[str] = ""  # the command's own options

    wav: str = field(
        default="",
        metadata=flag("Speech to answer (any WAV; made 16 kHz)", positional=True),
    )
    json: bool = field(default=False, metadata=flag("Print the turn as JSON"))
    out: str | None = field(
        default=None, metadata=flag("Write the reply audio to this WAV file")
    )
    debug: bool = field(default=False, metadata=flag("Log DEBUG messages"))
    tts: TtsConfig = field(default_factory=TtsConfig, metadata=nested("tts-"))
    asr: AsrConfig = field(default_factory=AsrConfig, metadata=nested("asr-"))
    handle: HandleConfig = field(default_factory=HandleConfig, metadata=nested())
    house: HouseConfig = field(
        default_factory=lambda: HouseConfig(str(DEMO_HOUSE)), metadata=nested()
    )
    rule: TurnRule = field(default_factory=TurnRule, metadata=nested())
    budgets: Budgets = field(default_factory=Budgets, metadata=nested())
    hass: HassConfig = field(default_factory=HassConfig, metadata=nested())


async def realtime_chunks(audio: bytes, source: AudioSource, started: float) -> None:
    """Put the audio in `source` in 20 ms chunks at the pace it was spoken,
    from `started` (the event loop's clock)."""
    step = RATE_16K * WIDTH * CHUNK_MS // 1000
    loop = asyncio.get_running_loop()
    for index, offset in enumerate(range(0, len(audio), step)):
        await asyncio.sleep(max(0.0, started + index * CHUNK_MS / 1000 - loop.time()))
        source.put(audio[offset : offset + step])
    source.end()


def last_spoken_sample(audio: bytes, window_s: float = 0.01) -> int | None:
    """Index just past the last sample of speech: the end of the last 10 ms
    window louder than the noise floor by 9 dB (None if none is)."""
    samples = to_float(audio)
    size = int(RATE_16K * window_s)
    windows = len(samples) // size
    if windows == 0:
        return None
    rms = np.sqrt(np.mean(samples[: windows * size].reshape(windows, size) ** 2, 1))
    level_db = 20 * np.log10(rms + 1e-9)
    floor_db = float(np.percentile(level_db, 10))
    loud = np.nonzero(level_db > max(floor_db + 9, float(level_db.max()) - 50))[0]
    return None if len(loud) == 0 else int((loud[-1] + 1) * size)


async def load(config: ConverseConfig, build: Build = build) -> tuple[Engines, Models]:
    models = await build(
        tts=config.tts, asr=config.asr, house=config.house, handle=config.handle
    )
    assert models.whisper and models.speaker and models.responder
    engines = Engines(
        models.whisper,
        models.speaker,
        models.responder,
        config.hass.client(),
        config.rule,
        config.budgets,
    )
    await engines.warm()
    if engines.hass is not None and models.house is not None:
        engines.hass.watch_states(models.house, config.hass.states_every_s)
    return engines, models


def described(event: TurnEvent) -> str:
    if isinstance(event, SpeechStarted):
        return "speech started"
    if isinstance(event, SpeechStopped):
        return "speech stopped"
    if isinstance(event, Transcribed):
        return f"transcribed: {event.text}"
    if isinstance(event, Commands):
        return "; ".join(
            f"command: {match.intent} {match.slots} -> {answer}"
            for match, answer in zip(event.matches, event.answers)
        )
    if isinstance(event, AnswerStarted):
        return "answer started"
    if isinstance(event, Said):
        return f"said: {event.text}"
    if isinstance(event, Finished):
        return f"{'answered' if event.handled else 'not handled'}: {event.text}"
    if isinstance(event, Pcm):
        return "reply audio"
    return "reply stopped"  # ReplyStopped


def printer(started: float) -> Sink:
    """Prints each event as it happens (a run of audio chunks once), with
    the time since `started` (the event loop's clock)."""
    last: list[TurnEvent] = []

    async def sink(event: TurnEvent) -> None:
        if not (isinstance(event, Pcm) and last and isinstance(last[-1], Pcm)):
            now_ms = (asyncio.get_running_loop().time() - started) * 1000
            print(f"{now_ms:8.1f} ms  {described(event)}", flush=True)
        last[:] = [event]

    return sink


def report(turn: Turn) -> dict[str, Any]:
    marks = turn.trace.marks
    start = marks.get("spoken_end", marks.get("speech_end", turn.trace.start))
    return {
        "transcript": turn.transcript,
        "intent": (
            {"name": turn.intent.intent, "slots": turn.intent.slots}
            if turn.intent
            else None
        ),
        "answer": turn.answer,
        "executed": turn.executed or "no device command",
        "waterfall_ms": {
            name: round((marks[name] - start) * 1000, 1)
            for name, _ in WATERFALL
            if name in marks
        },
        "speech_end_to_first_audio_ms": turn.ms_between("spoken_end", "first_audio"),
        "vad_end_to_first_audio_ms": turn.ms_between("speech_end", "first_audio"),
        "turn_end_to_first_audio_ms": turn.ms_between("audio_stop", "first_audio"),
        "notes": turn.trace.notes,
    }


def print_report(result: dict[str, Any]) -> None:
    print(f"transcript: {result['transcript']}")
    if result["intent"]:
        print(f"intent:     {result['intent']['name']} {result['intent']['slots']}")
    print(f"answer:     {result['answer']}")
    print(f"device:     {result['executed']}")
    print("waterfall (ms from the end of speech):")
    for name, label in WATERFALL:
        if name in result["waterfall_ms"]:
            print(f"  {label:36} {result['waterfall_ms'][name]:+8.1f}")
    for key, label in (
        ("speech_end_to_first_audio_ms", "end of speech to first audio"),
        ("turn_end_to_first_audio_ms", "end of turn to first audio"),
    ):
        if result[key] is not None:
            print(f"{label}: {result[key]:.1f} ms")


async def run(config: ConverseConfig, build: Build = build) -> None:
    try:
        pcm, rate, width, channels = read_wav(config.wav)
    except (OSError, EOFError) as err:
        raise SystemExit(f"{config.wav}: {err}") from err
    except Exception as err:  # wave.Error: not a WAV file
        raise SystemExit(f"{config.wav}: not a WAV file ({err})") from err
    audio = convert(pcm, rate, width, channels)
    engines, models = await load(config, build)
    pipeline = Pipeline(engines)
    source = AudioSource()
    started = asyncio.get_running_loop().time()
    feeding = asyncio.create_task(realtime_chunks(audio, source, started))
    try:
        if config.json:
            turn = await pipeline.run(source)
        else:
            print("events (ms from the start of the file):")
            turn = await pipeline.run(source, sink=printer(started))
    finally:
        feeding.cancel()
        await pipeline.close()
        await models.close()
        if engines.hass is not None:
            await engines.hass.close()
    spoken = last_spoken_sample(audio)
    if spoken is not None:
        turn.trace.marks["spoken_end"] = started + spoken / RATE_16K
    if config.out:
        write_wav(config.out, bytes(turn.audio), engines.speaker.voice.rate)
    result = report(turn)
    if config.json:
        print(json.dumps(result, indent=1))
    else:
        print_report(result)


def setup_logging(config: ConverseConfig) -> None:
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.WARNING,
        format="%(levelname)s:%(name)s:%(message)s",
    )
