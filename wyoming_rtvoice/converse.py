"""`python -m wyoming_rtvoice converse FILE.wav`: one turn through the pipeline
at real-time pace, with its latency waterfall and the reply as audio."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from .audio import RATE_16K, WIDTH, convert, read_wav, write_wav
from .hass import HomeAssistant, add_hass_arguments
from .pipeline import AudioSource, Pipeline, Turn
from .trace import add_budget_arguments, budgets_from

DEMO_HOUSE = Path(__file__).parent / "data" / "demo_house.json"
CHUNK_MS = 20
WATERFALL = (
    ("speech_end", "end of speech (VAD)"),
    ("audio_stop", "audio-stop"),
    ("transcript", "final transcript"),
    ("intent", "intent"),
    ("first_token", "first LLM token"),
    ("first_audio", "first reply audio"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("wav", help="Speech to answer (any WAV; converted to 16 kHz)")
    parser.add_argument("--json", action="store_true", help="Print the turn as JSON")
    parser.add_argument("--out", help="Write the reply audio to this WAV file")
    add_pipeline_arguments(parser)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--log-format", default="%(levelname)s:%(name)s:%(message)s")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """What the pipeline is made of: shared by `converse` and the stack."""
    group = parser.add_argument_group("pipeline")
    group.add_argument(
        "--entities", default=str(DEMO_HOUSE), help="House JSON (a small demo house)"
    )
    group.add_argument("--voice", default="en_US-joe-medium", help="Piper voice")
    group.add_argument("--asr-model", default="tiny.en", help="faster-whisper model")
    group.add_argument("--llm-model", default="claude-haiku-4-5")
    group.add_argument("--anthropic-base-url")
    add_hass_arguments(parser)
    add_budget_arguments(parser)


async def realtime_chunks(audio: bytes, source: AudioSource) -> None:
    """Put the file's audio in `source` in 20 ms chunks at the pace it was spoken."""
    step = RATE_16K * WIDTH * CHUNK_MS // 1000
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index, offset in enumerate(range(0, len(audio), step)):
        await asyncio.sleep(max(0.0, started + index * CHUNK_MS / 1000 - loop.time()))
        source.put(audio[offset : offset + step])
    source.end()


async def load_pipeline(args: argparse.Namespace) -> Pipeline:
    from .asr import model_path
    from .asr.whisper import Whisper
    from .handle.house import House
    from .handle.llm import Llm, LlmSettings
    from .handle.matcher import Matcher
    from .tts.voice import Voice, resolve_voice

    loop = asyncio.get_running_loop()
    whisper = await loop.run_in_executor(
        None, Whisper, model_path(args.asr_model), None, 1, "int8", 0
    )
    voice = await loop.run_in_executor(None, Voice, resolve_voice(args.voice), 8 << 20)
    matcher = Matcher("en", House.from_file(args.entities))
    llm = Llm(
        os.environ.get("ANTHROPIC_API_KEY"),
        args.anthropic_base_url,
        LlmSettings(model=args.llm_model),
    )
    pipeline = Pipeline(
        whisper,
        voice,
        matcher,
        llm,
        HomeAssistant.from_args(args),
        budgets_from(args),
    )
    await pipeline.warm()
    return pipeline


def report(turn: Turn) -> dict[str, Any]:
    start = turn.trace.marks.get("speech_end", turn.trace.start)
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
            name: round((turn.trace.marks[name] - start) * 1000, 1)
            for name, _ in WATERFALL
            if name in turn.trace.marks
        },
        "speech_end_to_first_audio_ms": turn.ms_between("speech_end", "first_audio"),
        "audio_stop_to_first_audio_ms": turn.ms_between("audio_stop", "first_audio"),
        "notes": turn.trace.notes,
    }


async def close_pipeline(pipeline: Pipeline) -> None:
    await pipeline.close()
    if pipeline.llm is not None:
        await pipeline.llm.close()
    if pipeline.hass is not None:
        await pipeline.hass.close()


def print_report(result: dict[str, Any]) -> None:
    print(f"transcript: {result['transcript']}")
    if result["intent"]:
        print(f"intent:     {result['intent']['name']} {result['intent']['slots']}")
    print(f"answer:     {result['answer']}")
    print(f"device:     {result['executed']}")
    print("waterfall (ms from the end of speech):")
    for name, label in WATERFALL:
        if name in result["waterfall_ms"]:
            print(f"  {label:22} {result['waterfall_ms'][name]:+8.1f}")
    for key in ("speech_end_to_first_audio_ms", "audio_stop_to_first_audio_ms"):
        if result[key] is not None:
            print(f"{key.removesuffix('_ms').replace('_', ' ')}: {result[key]:.1f} ms")


async def run(args: argparse.Namespace) -> None:
    try:
        pcm, rate, width, channels = read_wav(args.wav)
    except (OSError, EOFError) as err:
        raise SystemExit(f"{args.wav}: {err}") from err
    except Exception as err:  # wave.Error: not a WAV file
        raise SystemExit(f"{args.wav}: not a WAV file ({err})") from err
    audio = convert(pcm, rate, width, channels)
    pipeline = await load_pipeline(args)
    source = AudioSource()
    feeding = asyncio.create_task(realtime_chunks(audio, source))
    try:
        turn = await pipeline.run(source)
    finally:
        feeding.cancel()
        await close_pipeline(pipeline)
    if args.out:
        write_wav(args.out, bytes(turn.audio), pipeline.voice.rate)
    result = report(turn)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_report(result)
