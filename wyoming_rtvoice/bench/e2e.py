"""`script/bench e2e`: end of speech -> first reply audio, pipeline vs. usual chain.

Spoken commands and questions (our own TTS, three speeds, light noise, 0.8 s
of silence after the speech, about what a client's VAD waits before
`audio-stop`) are fed at real-time pace, in one run, to:
  (a) the pipeline, turn ended by its own VAD;
  (b) the pipeline, turn ended by the client's `audio-stop` (end of clip);
  (c) the usual chain with the same models: after `audio-stop`, plain
      faster-whisper `transcribe()`, then matching, then Piper on the whole
      reply before the first sample is sent.
Questions go to the local fake Messages API (first token at 300 ms).
Times are from the real end of speech (the last spoken sample's moment).
The pipeline's TTS cache is on, as in use: a confirmation heard before is
not synthesised again; the usual chain has none.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from piper import PiperVoice

from ..audio import RATE_16K, WIDTH, to_float
from ..converse import CHUNK_MS, DEMO_HOUSE
from ..pipeline import Pipeline
from ..trace import DEFAULT_BUDGETS_MS
from .fake_llm import FakeLlm
from .speech import SPEEDS, Spoken, speak, summary_ms

COMMANDS = [
    "Turn on the kitchen lights.",
    "Turn off the bedroom fan.",
    "Open the garage door.",
    "Lock the front door.",
    "Turn on the porch light.",
    "Close the office blinds.",
]
QUESTIONS = ["What is the capital of France?", "How far away is the moon?"]
FIRST_TOKEN_S = 0.3


@dataclass
class Measured:
    name: str
    speech_end_ms: list[float] = field(default_factory=list)
    audio_stop_ms: list[float] = field(default_factory=list)
    over_budget: dict[str, int] = field(default_factory=dict)


async def paced(spoken: Spoken, started: float) -> AsyncIterator[bytes]:
    step = RATE_16K * WIDTH * CHUNK_MS // 1000
    for index, offset in enumerate(range(0, len(spoken.audio), step)):
        await asyncio.sleep(
            max(0.0, started + index * CHUNK_MS / 1000 - time.monotonic())
        )
        yield spoken.audio[offset : offset + step]


async def run_pipeline(pipeline: Pipeline, spoken: Spoken, path: Measured) -> None:
    started = time.monotonic()
    turn = await pipeline.run(paced(spoken, started))
    speech_end = started + spoken.speech_end_s
    first_audio = turn.trace.marks["first_audio"]
    path.speech_end_ms.append((first_audio - speech_end) * 1000)
    path.audio_stop_ms.append((first_audio - turn.trace.marks["audio_stop"]) * 1000)
    for stage in turn.trace.over_budget():
        path.over_budget[stage] = path.over_budget.get(stage, 0) + 1


async def run_usual(
    pipeline: Pipeline, piper: PiperVoice, spoken: Spoken, path: Measured
) -> None:
    started = time.monotonic()
    async for _ in paced(spoken, started):
        pass
    audio_stop = time.monotonic()
    loop = asyncio.get_running_loop()

    def transcribe() -> str:
        segments, _ = pipeline.whisper.model.transcribe(
            to_float(spoken.audio), beam_size=1
        )
        return " ".join(segment.text for segment in segments).strip()

    text = await loop.run_in_executor(None, transcribe)
    match = pipeline.matcher.match(text)
    if match is not None:
        reply = match.response
    else:  # the whole answer first, then the whole synthesis
        assert pipeline.llm is not None
        reply = "".join([delta async for delta in pipeline.llm.stream("usual", text)])
    await loop.run_in_executor(None, lambda: list(piper.synthesize(reply)))
    first_audio = time.monotonic()
    path.speech_end_ms.append((first_audio - (started + spoken.speech_end_s)) * 1000)
    path.audio_stop_ms.append((first_audio - audio_stop) * 1000)


async def bench(rounds: int) -> None:
    from ..converse import load_pipeline

    fake = FakeLlm(answer="Here is a short answer. It has two sentences.")
    fake.first_token_s, fake.token_s = FIRST_TOKEN_S, 0.02
    fake.start_in_thread()
    os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
    args = argparse.Namespace(
        asr_model="tiny.en",
        voice="en_US-joe-medium",
        entities=str(DEMO_HOUSE),
        llm_model="fake",
        anthropic_base_url=fake.url,
    )
    pipeline = await load_pipeline(args)
    from ..tts.voice import resolve_voice

    piper = PiperVoice.load(resolve_voice(args.voice))
    list(piper.synthesize("Warm up."))
    kinds = {"command": COMMANDS, "question": QUESTIONS}
    paths = {
        (kind, name): Measured(name)
        for kind in kinds
        for name in (
            "pipeline, VAD ends turn",
            "pipeline, audio-stop ends turn",
            "usual chain",
        )
    }
    for _ in range(rounds):
        for kind, texts in kinds.items():
            for index, (text, speed) in enumerate(itertools.product(texts, SPEEDS)):
                spoken = speak(text, length_scale=speed, seed=index)
                pipeline.end_at_speech_end = True
                await run_pipeline(
                    pipeline, spoken, paths[(kind, "pipeline, VAD ends turn")]
                )
                pipeline.end_at_speech_end = False
                await run_pipeline(
                    pipeline, spoken, paths[(kind, "pipeline, audio-stop ends turn")]
                )
                await run_usual(pipeline, piper, spoken, paths[(kind, "usual chain")])
    fake.stop_thread()
    print(
        f"End to end: {len(COMMANDS)} commands and {len(QUESTIONS)} questions x "
        f"{len(SPEEDS)} speeds x {rounds} round(s), real-time pace, 0.8 s of silence "
        f"before audio-stop; fake LLM first token at {FIRST_TOKEN_S * 1000:.0f} ms"
    )
    budgets = ", ".join(f"{k} {v:.0f}" for k, v in DEFAULT_BUDGETS_MS.items())
    print(f"  budgets (ms): {budgets}")
    for (kind, _), path in paths.items():
        print(
            f"  {kind:8} {path.name:31} end of speech -> first audio "
            f"{summary_ms(path.speech_end_ms)}   audio-stop -> first audio "
            f"{summary_ms(path.audio_stop_ms)}"
            + (f"   over budget: {path.over_budget}" if path.over_budget else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(bench(args.rounds))


if __name__ == "__main__":
    main()
