"""`script/bench e2e`: end of speech -> first reply audio, pipeline vs. usual chain.

Spoken device commands, commands on a lock or a door ("guarded": the
pipeline asks first) and questions (our own TTS, three speeds, light noise, 0.8 s
of silence after the speech, about what a client's VAD waits before
`audio-stop`) are fed at real-time pace, in one run, to:
  (a) the pipeline, turn ended by the shared end-of-turn rule: at the
      first silent frame when the decode started there is a device
      command, else after its silence (as in use);
  (b) the same rule with commands waiting the silence too (what (a) gains
      by ending early on commands);
  (c) the pipeline, turn ended by the client's `audio-stop` (end of clip);
  (d) the usual chain with the same models: after `audio-stop`, plain
      faster-whisper `transcribe()`, then matching, then Piper on the whole
      reply before the first sample is sent.
Questions go to the local fake Messages API (first token at 300 ms); the
pipeline asks it at the first pause, while the silence that ends the turn
runs, so its overhead is counted from when it asked.
Times are from the real end of speech (the last spoken sample's moment).
A turn is right when its reply is the one the text deserves: the matched
command's confirmation, the question the pipeline asks before a lock or a
door is operated (the usual chain just runs it), or the LLM's answer.
The pipeline's TTS cache is on, as in use: a confirmation heard before is
not synthesised again; the usual chain has none.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from dataclasses import dataclass, field

from piper import PiperVoice

from bench.fake_llm import FakeLlm
from bench.speech import SPEEDS, Spoken, speak, summary_ms
from wyoming_rtvoice.audio import RATE_16K, WIDTH, to_float
from wyoming_rtvoice.converse import CHUNK_MS, ConverseConfig, load
from wyoming_rtvoice.handle.safety import question
from wyoming_rtvoice.pipeline import AudioSource, Engines, Pipeline
from wyoming_rtvoice.turn import Ending

COMMANDS = [
    "Turn on the kitchen lights.",
    "Turn off the bedroom fan.",
    "Turn on the porch light.",
    "Close the office blinds.",
]
GUARDED = ["Open the garage door.", "Lock the front door."]  # asked first
QUESTIONS = ["What is the capital of France?", "How far away is the moon?"]
FIRST_TOKEN_S = 0.3
ANSWER = "Here is a short answer. It has two sentences."


PATHS = (
    "pipeline, rule ends turn",
    "pipeline, commands wait the silence",
    "pipeline, audio-stop ends turn",
)


def pipeline_for(engines: Engines, name: str) -> Pipeline:
    house = engines.responder.house

    async def no_early_end(text: str) -> Ending:
        ending = await house.ending(text)
        return Ending.OTHER if ending is Ending.COMMAND else ending

    if name == PATHS[1]:
        return Pipeline(engines, classify=no_early_end)
    return Pipeline(engines, end_at_speech_end=name != PATHS[2])


@dataclass
class Measured:
    name: str
    speech_end_ms: list[float] = field(default_factory=list)
    audio_stop_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)  # audio-stop -> answer
    asked_ms: list[float] = field(default_factory=list)  # LLM asked -> answer
    over_budget: dict[str, int] = field(default_factory=dict)
    early: int = 0  # turns ended as soon as the transcript was a command
    right: int = 0  # turns whose answer is the one the text deserves
    wrong: list[str] = field(default_factory=list)  # "said -> heard -> answered"

    def judge(self, said: str, heard: str, answer: str, deserved: str) -> None:
        if heard and answer == deserved:
            self.right += 1
        else:
            self.wrong.append(f"{said!r} -> {heard!r} -> {answer!r}")


def expected(engines: Engines, spoken: Spoken, asks: bool) -> str:
    """The reply the text deserves: the pipeline asks before a lock or a
    door (`asks`); the usual chain has no such rule."""
    responder = engines.responder
    match = responder.house.snapshot.matcher.match(spoken.text)
    if match is None:
        return ANSWER
    if asks and responder.must_confirm([match]):
        return question([match], responder.house.snapshot.house)
    return match.response


async def paced(spoken: Spoken, started: float, source: AudioSource) -> None:
    step = RATE_16K * WIDTH * CHUNK_MS // 1000
    for index, offset in enumerate(range(0, len(spoken.audio), step)):
        await asyncio.sleep(
            max(0.0, started + index * CHUNK_MS / 1000 - time.monotonic())
        )
        source.put(spoken.audio[offset : offset + step])
    source.end()


async def run_pipeline(engines: Engines, spoken: Spoken, path: Measured) -> None:
    pipeline = pipeline_for(engines, path.name)
    started = time.monotonic()
    source = AudioSource()
    feeding = asyncio.create_task(paced(spoken, started, source))
    turn = await pipeline.run(source)
    await feeding
    await pipeline.close()
    speech_end = started + spoken.speech_end_s
    marks = turn.trace.marks
    path.speech_end_ms.append((marks["first_audio"] - speech_end) * 1000)
    path.audio_stop_ms.append((marks["first_audio"] - marks["audio_stop"]) * 1000)
    path.answer_ms.append((marks["answer_audio"] - marks["audio_stop"]) * 1000)
    path.asked_ms.append((marks["answer_audio"] - marks["asked"]) * 1000)
    for stage in turn.trace.over_budget():
        path.over_budget[stage] = path.over_budget.get(stage, 0) + 1
    path.early += any(
        note.startswith("turn over: command") for note in turn.trace.notes
    )
    path.judge(
        spoken.text, turn.transcript, turn.answer, expected(engines, spoken, True)
    )


async def run_usual(
    engines: Engines, piper: PiperVoice, spoken: Spoken, path: Measured
) -> None:
    started = time.monotonic()
    await paced(spoken, started, AudioSource())
    audio_stop = time.monotonic()
    loop = asyncio.get_running_loop()

    def transcribe() -> str:
        segments, _ = engines.decoder.model.transcribe(  # type: ignore[attr-defined]
            to_float(spoken.audio), beam_size=1
        )
        return " ".join(segment.text for segment in segments).strip()

    text = await loop.run_in_executor(None, transcribe)
    match = engines.responder.house.snapshot.matcher.match(text)
    llm = engines.responder.llm
    if match is not None:
        reply = match.response
    else:  # the whole answer first, then the whole synthesis
        assert llm is not None
        deltas = [delta async for delta in llm.stream("usual", text)]
        reply = "".join(delta for delta in deltas if isinstance(delta, str))
    await loop.run_in_executor(None, lambda: list(piper.synthesize(reply)))
    first_audio = time.monotonic()
    path.speech_end_ms.append((first_audio - (started + spoken.speech_end_s)) * 1000)
    path.audio_stop_ms.append((first_audio - audio_stop) * 1000)
    path.answer_ms.append((first_audio - audio_stop) * 1000)
    path.asked_ms.append((first_audio - audio_stop) * 1000)
    path.judge(spoken.text, text, reply, expected(engines, spoken, False))


async def bench(rounds: int, pipeline_argv: list[str]) -> None:
    from wyoming_rtvoice.tts.voice import resolve_voice

    fake = FakeLlm(answer=ANSWER)
    fake.first_token_s, fake.token_s = FIRST_TOKEN_S, 0.02
    fake.start_in_thread()
    os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
    parser = argparse.ArgumentParser()
    ConverseConfig.add_arguments(parser)
    config = ConverseConfig.from_args(
        parser.parse_args(
            ["-", "--llm-model", "fake", "--anthropic-base-url", fake.url]
            + pipeline_argv
        )
    )
    engines, _ = await load(config)
    piper = PiperVoice.load(resolve_voice(config.tts.voice))
    list(piper.synthesize("Warm up."))
    kinds = {"command": COMMANDS, "guarded": GUARDED, "question": QUESTIONS}
    paths = {
        (kind, name): Measured(name)
        for kind in kinds
        for name in (*PATHS, "usual chain")
    }
    for _ in range(rounds):
        for kind, texts in kinds.items():
            for index, (text, speed) in enumerate(itertools.product(texts, SPEEDS)):
                spoken = speak(text, length_scale=speed, seed=index)
                for name in PATHS:
                    await run_pipeline(engines, spoken, paths[(kind, name)])
                await run_usual(engines, piper, spoken, paths[(kind, "usual chain")])
    fake.stop_thread()
    print(
        f"End to end: {len(COMMANDS)} commands, {len(GUARDED)} on a lock or a door "
        f"and {len(QUESTIONS)} questions x "
        f"{len(SPEEDS)} speeds x {rounds} round(s), real-time pace, 0.8 s of silence "
        f"before audio-stop; fake LLM first token at {FIRST_TOKEN_S * 1000:.0f} ms"
    )
    budgets = ", ".join(f"{k} {v:.0f}" for k, v in config.budgets.as_dict().items())
    print(f"  budgets (ms): {budgets}; end of turn: {config.rule}")
    for (kind, _), path in paths.items():
        count = len(path.speech_end_ms)
        print(
            f"  {kind:8} {path.name:31} end of speech -> first audio "
            f"{summary_ms(path.speech_end_ms)}   audio-stop -> first audio "
            f"{summary_ms(path.audio_stop_ms)}   right {path.right}/{count}"
        )
        if kind == "question":
            overhead = [ms - FIRST_TOKEN_S * 1000 for ms in path.asked_ms]
            print(
                f"  {'':8} {'':31} audio-stop -> first answer audio "
                f"{summary_ms(path.answer_ms)}   overhead above the first token "
                f"(from the LLM asked) {summary_ms(overhead)}"
            )
        if path.over_budget or path.early:
            print(
                f"  {'':8} {'':31} over budget (turns): {path.over_budget}   "
                f"ended early on a command: {path.early}/{count}"
            )
        for wrong in path.wrong:
            print(f"  {'':8} {'':31} not right: {wrong}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    args, pipeline_argv = parser.parse_known_args()
    asyncio.run(bench(args.rounds, pipeline_argv))


if __name__ == "__main__":
    main()
