"""`script/bench e2e`: end of speech -> first reply audio, pipeline vs. usual chain,
on the accuracy material.

Material (bench/accuracy_material.py, `e2e_clips`): in the test house (203
entities named the Home Assistant way: areas begin device names, "Office"
/ "Office Blinds"), every device command of `script/bench accuracy` (names,
areas, floors, numbers, timers, questions the matcher answers, commands on
locks and doors) and its labelled questions for the LLM, once each, with
the voice (Piper, Piper 6% faster, flite, festival), the speed (three) and
the room (quiet, fan noise at 10 dB SNR) rotated across them; then commands
with a pause of 0.3-0.6 s after "the" ("Turn on the ... kitchen lights").
Each clip has 1.2 s of room after the speech.

In one run, each clip goes to:
  pipeline:     fed at real-time pace, the turn ended by the shared
                end-of-turn rule (at the first silent frame for a complete
                command, after a silence otherwise); a lock or a door is
                asked about ("Unlock Patio Door?") before it is operated;
  usual chain:  the same models used the usual way, from the same clip
                (Whisper loaded again, on CTranslate2's default threads,
                as wyoming-faster-whisper runs it):
                `audio-stop` 0.8 s after the end of speech (a client's VAD),
                then plain faster-whisper `transcribe()` of the audio up to
                it, matching, and Piper on the whole reply before the first
                sample is sent (computed at once: nothing runs before
                `audio-stop`, so the 0.8 s are added, not waited).
Questions go to the local fake Messages API (first token at 300 ms).
Times are from the real end of speech (the last spoken sample). A turn is
right when it understood the command (the labelled intent on the labelled
devices, as `script/bench accuracy` judges) or, for a question, gave the
LLM's answer. A paused command is cut off when its turn ended before its
speech did. The pipeline's TTS cache is on, as in use; the usual chain has
none.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from faster_whisper import WhisperModel
from piper import PiperVoice

from bench.accuracy import right
from bench.accuracy_material import (
    HOUSE,
    Clip,
    Utterance,
    e2e_clips,
    e2e_voices,
    evenly,
)
from bench.summary_ms import percentiles
from testing.fake_llm import FakeLlm
from wyoming_rtvoice.asr import model_path
from wyoming_rtvoice.audio import RATE_16K, WIDTH, to_float
from wyoming_rtvoice.config import add_flags, from_flags
from wyoming_rtvoice.converse import CHUNK_MS, ConverseConfig, load
from wyoming_rtvoice.house.matcher import Match
from wyoming_rtvoice.house.model import House
from wyoming_rtvoice.house.safety import QUESTIONS, needs_confirmation
from wyoming_rtvoice.pipeline import AudioSource, Engines, Pipeline
from wyoming_rtvoice.turn import FRAME_S

FIRST_TOKEN_S = 0.3
ANSWER = "Here is a short answer. It has two sentences."
CLIENT_VAD_S = 0.8  # the usual chain's audio-stop after the end of speech
KINDS = ("device command", "matcher question", "guarded", "llm question", "paused")
PATHS = ("pipeline", "usual chain")
# How the pipeline's turn ended, from its trace note "turn over: ...": at
# the first silent frame (once its decode was ready), a lock or a door
# there too (the pipeline asks first), after a silence, after a long pause.
AT_ONCE = "first silent frame"
ENDED = {
    "command": AT_ONCE,
    "confirm": f"{AT_ONCE}, asked",
    "prefix": "silence",
    "other": "silence",
    "open": "long pause",
    "long": "long pause",
}


@dataclass
class Measured:
    speech_end_ms: list[float] = field(default_factory=list)
    audio_stop_ms: list[float] = field(default_factory=list)
    by_ending: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    right: int = 0
    wrong: list[str] = field(default_factory=list)
    cut_off: int = 0  # turns ended before the speech did
    waited: list[str] = field(default_factory=list)  # not at the first silent frame
    # Of the turns ended at the first silent frame: the VAD's first silent
    # frame, the turn's end and the first audio, each from the one before.
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def judge(self, clip: Clip, heard: str, match: Match | None, answer: str) -> None:
        utterance = clip.utterance
        if understood(utterance, match, answer):
            self.right += 1
        else:
            self.wrong.append(
                f"[{clip.voice}, {clip.speed}, {clip.noise}] "
                f"{utterance.text!r} -> {heard!r}"
            )


def understood(utterance: Utterance, match: Match | None, answer: str) -> bool:
    """The labelled command (as `script/bench accuracy` judges), or for a
    question the LLM's answer."""
    if utterance.intent is None:
        return answer.strip() == ANSWER
    return right(utterance, match)


def kind_of(clip: Clip, house: House) -> str:
    utterance = clip.utterance
    if clip.pause_s is not None:
        return "paused"
    if utterance.intent is None:
        return "llm question"
    if utterance.intent in QUESTIONS or utterance.intent.startswith("HassTimer"):
        return "matcher question"
    label = Match(utterance.intent, utterance.slots or {}, "")
    if needs_confirmation(label, house):
        return "guarded"
    return "device command"


def ended(notes: list[str]) -> str:
    for note in notes:
        if found := re.match(r"turn over: (\w+)", note):
            return ENDED.get(found.group(1), "other")
    return "end of audio"


async def paced(clip: Clip, started: float, source: AudioSource) -> None:
    step = RATE_16K * WIDTH * CHUNK_MS // 1000
    for index, offset in enumerate(range(0, len(clip.audio), step)):
        await asyncio.sleep(
            max(0.0, started + index * CHUNK_MS / 1000 - time.monotonic())
        )
        source.put(clip.audio[offset : offset + step])
    source.end()


async def run_pipeline(engines: Engines, clip: Clip, path: Measured) -> None:
    pipeline = Pipeline(engines)
    started = time.monotonic()
    source = AudioSource()
    feeding = asyncio.create_task(paced(clip, started, source))
    turn = await pipeline.run(source)
    await feeding
    await pipeline.close()
    speech_end = started + clip.speech_end_s
    marks = turn.trace.marks
    how = ended(turn.trace.notes)
    if "first_audio" in marks:
        ms = (marks["first_audio"] - speech_end) * 1000
        path.speech_end_ms.append(ms)
        path.audio_stop_ms.append((marks["first_audio"] - marks["audio_stop"]) * 1000)
        path.by_ending[how].append(ms)
    if how == AT_ONCE and "first_audio" in marks:
        heard_end = marks["speech_end"] + FRAME_S
        path.stages["VAD hears the end"].append((heard_end - speech_end) * 1000)
        decoded = marks.get("decoded", heard_end)
        path.stages["final decoded"].append((decoded - heard_end) * 1000)
        path.stages["turn ended"].append((marks["audio_stop"] - decoded) * 1000)
        path.stages["first audio"].append(
            (marks["first_audio"] - marks["audio_stop"]) * 1000
        )
    if not how.startswith(AT_ONCE):
        path.waited.append(f"{how}: {clip.utterance.text!r} -> {turn.transcript!r}")
    path.cut_off += marks["audio_stop"] < speech_end
    path.judge(clip, turn.transcript, turn.intent, turn.answer)


async def run_usual(
    engines: Engines,
    whisper: WhisperModel,
    piper: PiperVoice,
    clip: Clip,
    path: Measured,
) -> None:
    stop_s = min(clip.speech_end_s + CLIENT_VAD_S, len(clip.audio) / (RATE_16K * WIDTH))
    audio = clip.audio[: int(stop_s * RATE_16K) * WIDTH]
    audio_stop = time.monotonic()
    loop = asyncio.get_running_loop()

    def transcribe() -> str:
        segments, _ = whisper.transcribe(to_float(audio), beam_size=1)
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
    after_stop_ms = (time.monotonic() - audio_stop) * 1000
    ms = (stop_s - clip.speech_end_s) * 1000 + after_stop_ms
    path.speech_end_ms.append(ms)
    path.audio_stop_ms.append(after_stop_ms)
    path.by_ending["client's silence"].append(ms)
    path.judge(clip, text, match, reply)


async def bench(limit: int | None, show_wrong: bool, pipeline_argv: list[str]) -> None:
    from wyoming_rtvoice.tts.voice import resolve_voice

    voices = e2e_voices()
    print(
        "Making the spoken material (cached in .cache/bench/accuracy) ...", flush=True
    )
    material = await asyncio.to_thread(e2e_clips, voices)
    if limit is not None:
        material = evenly(material, limit)
    fake = FakeLlm(answer=ANSWER)
    fake.first_token_s, fake.token_s = FIRST_TOKEN_S, 0.02
    fake.start_in_thread()
    os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
    parser = argparse.ArgumentParser()
    add_flags(parser, ConverseConfig)
    config = from_flags(
        ConverseConfig,
        parser.parse_args(
            ["-", "--llm-model", "fake", "--anthropic-base-url", fake.url]
            + ["--entities", str(HOUSE)]
            + pipeline_argv
        ),
    )
    engines, _ = await load(config)
    # The usual server's own model, on CTranslate2's threads as it runs it.
    whisper = WhisperModel(
        model_path(config.asr.model), device="cpu", compute_type=config.asr.compute_type
    )
    piper = PiperVoice.load(resolve_voice(config.tts.voice))
    list(piper.synthesize("Warm up."))
    measured = {(kind, name): Measured() for kind in KINDS for name in PATHS}
    started = time.monotonic()
    for index, clip in enumerate(material):
        kind = kind_of(clip, engines.responder.house.snapshot.house)
        await run_pipeline(engines, clip, measured[(kind, "pipeline")])
        await run_usual(engines, whisper, piper, clip, measured[(kind, "usual chain")])
        if (index + 1) % 25 == 0:
            print(f"  {index + 1}/{len(material)} clips", flush=True)
    fake.stop_thread()
    report(material, measured, engines, voices, time.monotonic() - started)
    for (kind, name), path in measured.items():
        if show_wrong:
            for wrong in path.wrong:
                print(f"  not right ({kind}, {name}): {wrong}")
            for waited in path.waited:
                print(f"  waited ({kind}, {name}): {waited}")


def report(
    material: list[Clip],
    measured: dict[tuple[str, str], Measured],
    engines: Engines,
    voices: tuple[str, ...],
    seconds: float,
) -> None:
    house = engines.responder.house.snapshot.house
    counts = Counter(kind_of(clip, house) for clip in material)
    print(
        f"End to end: {len(material)} clips ({', '.join(f'{n} {k}' for k, n in counts.items())}), "  # noqa: E501
        f"voices {', '.join(voices)}, 3 speeds, quiet and fan noise rotated; "
        f"real-time pace; fake LLM first token at {FIRST_TOKEN_S * 1000:.0f} ms; "
        f"{seconds / 60:.1f} min"
    )
    budgets = ", ".join(f"{k} {v:.0f}" for k, v in engines.budgets.as_dict().items())
    print(f"  budgets (ms): {budgets}; end of turn: {engines.rule}")
    for (kind, name), path in measured.items():
        total = path.right + len(path.wrong)
        if not total:
            continue
        print(
            f"  {kind:16} {name:11} end of speech -> first audio "
            f"{percentiles(path.speech_end_ms)}   audio-stop -> first audio "
            f"{percentiles(path.audio_stop_ms)}   right {path.right}/{total}"
        )
        if name != "pipeline":
            continue
        for how, values in sorted(path.by_ending.items()):
            print(f"  {'':16} {'':11}   ended at {how:18} {percentiles(values)}")
        if path.stages:
            steps = ", ".join(
                f"{step} +{statistics.median(values):.1f}"
                for step, values in path.stages.items()
            )
            print(f"  {'':16} {'':11}   at the first silent frame, p50 ms: {steps}")
        waited = len(path.waited)
        print(
            f"  {'':16} {'':11}   waited a silence {waited}/{total}, "
            f"cut off before the speech ended {path.cut_off}/{total}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, help="Only this many clips, evenly taken")
    parser.add_argument(
        "--wrong", action="store_true", help="List the turns that were not right"
    )
    args, pipeline_argv = parser.parse_known_args()
    asyncio.run(bench(args.limit, args.wrong, pipeline_argv))


if __name__ == "__main__":
    main()
