"""`python -m wyoming_rtvoice converse FILE.wav`: one turn through the pipeline
at real-time pace, with its latency waterfall and the reply as audio."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout

from .audio import RATE_16K, WIDTH, convert, read_wav, write_wav
from .pipeline import Pipeline, Turn
from .trace import add_budget_arguments

DEMO_HOUSE = Path(__file__).parent / "data" / "demo_house.json"
HASS_TOKEN_ENV = "HASS_TOKEN"
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
    parser.add_argument(
        "--entities", default=str(DEMO_HOUSE), help="House JSON (a small demo house)"
    )
    parser.add_argument("--voice", default="en_US-joe-medium", help="Piper voice")
    parser.add_argument("--asr-model", default="tiny.en", help="faster-whisper model")
    parser.add_argument("--llm-model", default="claude-haiku-4-5")
    parser.add_argument("--anthropic-base-url")
    parser.add_argument(
        "--hass-url",
        help="Execute the intent through Home Assistant's /api/intent/handle; "
        f"the token comes from {HASS_TOKEN_ENV} or --hass-token-file",
    )
    parser.add_argument("--hass-token-file")
    add_budget_arguments(parser)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--log-format", default="%(levelname)s:%(name)s:%(message)s")


async def realtime_chunks(audio: bytes) -> AsyncIterator[bytes]:
    """The file's audio in 20 ms chunks at the pace it was spoken."""
    step = RATE_16K * WIDTH * CHUNK_MS // 1000
    loop = asyncio.get_running_loop()
    started = loop.time()
    for index, offset in enumerate(range(0, len(audio), step)):
        await asyncio.sleep(max(0.0, started + index * CHUNK_MS / 1000 - loop.time()))
        yield audio[offset : offset + step]


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
    return Pipeline(whisper, voice, matcher, llm)


async def execute(args: argparse.Namespace, turn: Turn) -> str:
    """What happened to the intent, said plainly."""
    if turn.intent is None:
        return "no device command"
    if not args.hass_url:
        return "not executed: no --hass-url given (Home Assistant would run it)"
    token = (
        Path(args.hass_token_file).read_text(encoding="utf-8").strip()
        if args.hass_token_file
        else os.environ.get(HASS_TOKEN_ENV, "")
    )
    async with ClientSession(timeout=ClientTimeout(total=5)) as session:
        try:
            async with session.post(
                f"{args.hass_url.rstrip('/')}/api/intent/handle",
                json={"name": turn.intent.intent, "data": turn.intent.slots},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                if response.status == 200:
                    return "executed by Home Assistant"
                return f"Home Assistant answered HTTP {response.status}"
        except OSError as err:
            return f"Home Assistant unreachable: {type(err).__name__}"


def report(turn: Turn, executed: str) -> dict[str, Any]:
    start = turn.trace.marks.get("speech_end", turn.trace.start)
    return {
        "transcript": turn.transcript,
        "intent": (
            {"name": turn.intent.intent, "slots": turn.intent.slots}
            if turn.intent
            else None
        ),
        "answer": turn.answer,
        "executed": executed,
        "waterfall_ms": {
            name: round((turn.trace.marks[name] - start) * 1000, 1)
            for name, _ in WATERFALL
            if name in turn.trace.marks
        },
        "speech_end_to_first_audio_ms": turn.ms_between("speech_end", "first_audio"),
        "audio_stop_to_first_audio_ms": turn.ms_between("audio_stop", "first_audio"),
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
    turn = await pipeline.run(realtime_chunks(audio))
    executed = await execute(args, turn)
    if pipeline.llm is not None:
        await pipeline.llm.close()
    if args.out:
        write_wav(args.out, bytes(turn.audio), pipeline.voice.rate)
    result = report(turn, executed)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_report(result)
