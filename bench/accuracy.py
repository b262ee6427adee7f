"""`script/bench accuracy`: are device commands understood, and is other
speech left alone? Strict match only vs the full chain (the ASR's second
chance), side by side in one run.

Material (bench/accuracy_material.py): 113 device commands of the test
house (203 entities) and 58 other utterances (questions, chatter,
near-misses), each at three speeds, quiet and in fan noise at 10 dB SNR,
in two voices. Each clip goes through the ASR session as the services run
it (Whisper tiny.en int8 with the house's names as prompt, Silero VAD, the
end-of-turn rule and the house's matcher), fed as fast as the decoder
keeps up. For every clip, in the same run:
  strict:     the final transcript as decoded, matched strictly;
  full chain: the transcript after the second chance, matched strictly.
A command is understood when the intent and every labelled slot are right,
or when it reaches the labelled devices another way ("open the kitchen
blind": the kitchen's blinds, which are the Kitchen Blinds); any match on
other speech is a false device action. Times: the second
chance from its start to its answer where it ran; the time `finish()`
spends after the decode where the strict match succeeded.

--dump writes every clip's transcripts and, where the strict match failed,
the candidates and their scores (for tuning the margin offline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy_material import (
    HOUSE,
    NOISES,
    SPEEDS,
    VOICES,
    Clip,
    Utterance,
    clips,
    utterances,
)
from bench.summary_ms import summary_ms
from wyoming_rtvoice.asr import model_path
from wyoming_rtvoice.asr.prompt import PROMPT_CHARS, PROMPT_VERBS, house_prompt, prompt
from wyoming_rtvoice.asr.session import AsrSession, AsrSettings
from wyoming_rtvoice.asr.whisper import Whisper
from wyoming_rtvoice.house.matcher import Match
from wyoming_rtvoice.house.model import House
from wyoming_rtvoice.house.safety import targets
from wyoming_rtvoice.house.store import HouseConfig, HouseStore, Snapshot
from wyoming_rtvoice.trace import Trace
from wyoming_rtvoice.turn import FRAME_BYTES, SpeechFrames, TurnRule

PromptFor = Callable[[str | None], str | None]


@dataclass
class Outcome:
    clip: Clip
    heard: str
    chosen: str
    strict: Match | None
    full: Match | None
    second_chance_ms: float | None  # where it ran
    after_decode_ms: float  # finish() after the decode, where strict matched
    scored: list[tuple[str, float]]


# The slots that say what a command acts on.
TARGET_SLOTS = frozenset({"name", "area", "floor", "domain", "device_class"})


def right(utterance: Utterance, match: Match | None) -> bool:
    """The labelled intent on what the label acts on: every labelled slot as
    labelled, or the same devices of the house reached another way ("open
    the kitchen blind": the kitchen's blinds, which are the Kitchen Blinds)."""
    if match is None or match.intent != utterance.intent:
        return False
    labelled = utterance.slots or {}
    as_labelled = {
        slot: str(match.slots.get(slot)).lower() == str(value).lower()
        for slot, value in labelled.items()
    }
    if all(as_labelled.values()):
        return True
    if not all(same for slot, same in as_labelled.items() if slot not in TARGET_SLOTS):
        return False
    reached = _reached(match)
    return bool(reached) and reached == _reached(Match(utterance.intent, labelled, ""))


def _reached(match: Match) -> set[str]:
    return {entity["name"] for entity in targets(match, _house())}


@lru_cache(maxsize=1)
def _house() -> House:
    return House.from_file(HOUSE)


async def run_clip(
    clip: Clip, whisper: Whisper, frames: SpeechFrames, house: HouseStore
) -> Outcome:
    trace = Trace("bench")
    session = AsrSession(
        whisper,
        frames,
        AsrSettings(),
        TurnRule(),
        house_prompt(house),
        trace,
        house.ending,
        house.closest,
    )
    for offset in range(0, len(clip.audio), FRAME_BYTES):
        await session.add(clip.audio[offset : offset + FRAME_BYTES])
        while whisper.busy:  # as if decoding kept up with speech
            await asyncio.sleep(0.002)
        if await session.turn_over():
            break
    chosen = await session.finish()
    finished = time.monotonic()
    heard = session.heard
    strict = await house.match(heard) if heard else None
    full = strict if chosen == heard else await house.match(chosen)
    marks = trace.marks
    second_chance_ms = session.second_chance_ms
    after_decode_ms = (finished - marks["heard"]) * 1000 if "heard" in marks else 0.0
    return Outcome(
        clip,
        heard,
        chosen,
        strict,
        full,
        second_chance_ms,
        after_decode_ms,
        session.scored,
    )


def report(outcomes: list[Outcome], misses: bool) -> None:
    commands = [o for o in outcomes if o.clip.utterance.intent is not None]
    others = [o for o in outcomes if o.clip.utterance.intent is None]
    said = {o.clip.utterance.text for o in commands}
    print(
        f"Accuracy: {len(said)} device commands and "
        f"{len({o.clip.utterance.text for o in others})} other utterances, "
        f"{len(SPEEDS)} speeds x {len(NOISES)} noises = {len(outcomes)} clips; "
        "test house of 203 entities; Whisper tiny.en int8"
    )
    print(f"  {'':40}{'strict match only':>18}{'full chain':>12}")

    def row(label: str, strict: float, full: float, unit: str = "%") -> None:
        print(f"  {label:40}{strict:17.1f}{unit}{full:11.1f}{unit}")

    def understood(label: str, group: list[Outcome]) -> None:
        if not group:
            return
        strict = sum(right(o.clip.utterance, o.strict) for o in group)
        full = sum(right(o.clip.utterance, o.full) for o in group)
        row(label, 100 * strict / len(group), 100 * full / len(group))

    understood("device commands understood", commands)
    for speed in SPEEDS:
        for noise in NOISES:
            understood(
                f"  {speed}, {noise}",
                [o for o in commands if (o.clip.speed, o.clip.noise) == (speed, noise)],
            )
    for voice in VOICES:
        understood(f"  voice {voice}", [o for o in commands if o.clip.voice == voice])
    row(
        f"false device actions (of {len(others)} other)",
        sum(o.strict is not None for o in others),
        sum(o.full is not None for o in others),
        "",
    )
    row(
        "commands taken for another command",
        sum(wrong(o, o.strict) for o in commands),
        sum(wrong(o, o.full) for o in commands),
        "",
    )
    ran = [o.second_chance_ms for o in outcomes if o.second_chance_ms is not None]
    taken = sum(o.chosen != o.heard for o in outcomes)
    print(f"  second chance: ran on {len(ran)} clips, took a candidate on {taken}")
    print(f"    time where it ran: {summary_ms(ran)}")
    scored = [
        o.second_chance_ms
        for o in outcomes
        if o.scored and o.second_chance_ms is not None
    ]
    print(f"    where it had candidates to score ({len(scored)}): {summary_ms(scored)}")
    matched = [o.after_decode_ms for o in outcomes if o.strict is not None]
    print(f"    time added where the strict match succeeded: {summary_ms(matched)}")
    for o in commands if misses else []:
        if not right(o.clip.utterance, o.full):
            print(
                f"  missed [{o.clip.speed}, {o.clip.noise}] {o.clip.utterance.text!r}:"
                f" {o.heard!r} -> {o.chosen!r}"
            )
    for o in others:
        if o.full is not None:
            print(
                f"  FALSE ACTION {o.clip.utterance.text!r}: {o.heard!r} -> {o.chosen!r}"
            )


def wrong(outcome: Outcome, match: Match | None) -> bool:
    return match is not None and not right(outcome.clip.utterance, match)


def dumped(outcome: Outcome) -> dict[str, Any]:
    return {
        "text": outcome.clip.utterance.text,
        "command": outcome.clip.utterance.intent is not None,
        "speed": outcome.clip.speed,
        "noise": outcome.clip.noise,
        "heard": outcome.heard,
        "chosen": outcome.chosen,
        "strict_right": right(outcome.clip.utterance, outcome.strict),
        "strict_matched": outcome.strict is not None,
        "scored": outcome.scored,
        "full_right": right(outcome.clip.utterance, outcome.full),
        "full_matched": outcome.full is not None,
        "label": [outcome.clip.utterance.intent, outcome.clip.utterance.slots],
    }


def every(limit: int | None) -> int:
    """Every how many clips to take for about `limit` of them."""
    count = len(utterances()) * len(SPEEDS) * len(NOISES)
    return 1 if limit is None else max(1, count // limit)


async def bench(limit: int | None, dump: Path | None, misses: bool) -> None:
    material = clips(every(limit))
    whisper = Whisper(model_path("tiny.en"), None, 1, "int8", 0)
    frames = SpeechFrames(TurnRule().vad_threshold)
    house = await asyncio.to_thread(
        HouseStore.load, HouseConfig(entities=str(HOUSE)), None
    )
    outcomes = []
    try:
        for index, clip in enumerate(material):
            outcomes.append(await run_clip(clip, whisper, frames, house))
            if (index + 1) % 100 == 0:
                print(f"  {index + 1}/{len(material)} clips", flush=True)
    finally:
        whisper.close()
        house.close()
    if dump is not None:
        dump.write_text(json.dumps([dumped(o) for o in outcomes], indent=1))
        print(f"  per clip: {dump}")
    report(outcomes, misses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, help="About this many clips, evenly taken")
    parser.add_argument("--dump", type=Path, help="Write per-clip results (JSON) here")
    parser.add_argument(
        "--misses", action="store_true", help="List the commands not understood"
    )
    parser.add_argument(
        "--prompts",
        action="store_true",
        help="Compare prompts instead (strict match, decode time)",
    )
    args = parser.parse_args()
    np.seterr(all="ignore")
    if args.prompts:
        asyncio.run(prompts(args.limit or 300))
    else:
        asyncio.run(bench(args.limit, args.dump, args.misses))


# --- what the prompt is best spent on ---------------------------------------


def prompt_strategies(snapshot: Snapshot) -> dict[str, PromptFor]:
    names = snapshot.every_name
    verbs = PROMPT_VERBS["en"]

    def any_shared_word(heard: str | None) -> str | None:
        """The rule before: names sharing any word with what was heard, in
        the house's order, then areas, floors, the rest (~50 tokens)."""
        heard_words = set((heard or "").lower().replace(".", " ").split())
        related = [n for n in names if heard_words & set(n.lower().split())]
        house = snapshot.house
        kept: list[str] = []
        length = 0
        for name in dict.fromkeys([*related, *house.areas, *house.floors, *names]):
            length += len(name) + 2
            if length > PROMPT_CHARS:
                break
            kept.append(name)
        return ". ".join(kept) + "." if kept else None

    return {
        "no prompt": lambda heard: None,
        "names sharing any word, ~50 tokens (first)": any_shared_word,
        "names sharing rare words first, ~50 tokens": (
            lambda heard: prompt(snapshot, heard, spot=False, verbs=False)
        ),
        "names spotted, then sharing rare words, ~50 tokens (before)": (
            lambda heard: prompt(snapshot, heard, verbs=False)
        ),
        "the verbs always, then names spotted": (
            lambda heard: verbs
            + str(prompt(snapshot, heard, chars=PROMPT_CHARS - len(verbs), verbs=False))
        ),
        "verbs where heard starts like no command, then names spotted (now)": (
            lambda heard: prompt(snapshot, heard)
        ),
        "the same, ~100 tokens": (
            lambda heard: prompt(snapshot, heard, chars=2 * PROMPT_CHARS)
        ),
        "every name, 223 tokens": lambda heard: ". ".join(names) + ".",
    }


async def prompts(limit: int) -> None:
    """Strict matching of the final decode with each prompt; decode time."""
    material = clips(every(limit))
    whisper = Whisper(model_path("tiny.en"), None, 1, "int8", 0, workers=1)
    house = await asyncio.to_thread(
        HouseStore.load, HouseConfig(entities=str(HOUSE)), None
    )
    strategies = prompt_strategies(house.snapshot)
    understood: dict[str, int] = Counter()
    false_actions: dict[str, int] = Counter()
    times: dict[str, list[float]] = {name: [] for name in strategies}
    commands = sum(c.utterance.intent is not None for c in material)
    try:
        for clip in material:
            audio = np.frombuffer(clip.audio, np.int16).astype(np.float32) / 32768
            # what a partial decode would have heard: the clip without a prompt
            heard = await asyncio.to_thread(whisper.transcribe, audio)
            for name, prompt_for in strategies.items():
                given = prompt_for(heard)
                started = time.perf_counter()
                text = await asyncio.to_thread(whisper.transcribe, audio, given)
                times[name].append((time.perf_counter() - started) * 1000)
                match = await house.match(text) if text else None
                if clip.utterance.intent is None:
                    false_actions[name] += match is not None
                else:
                    understood[name] += right(clip.utterance, match)
    finally:
        whisper.close()
        house.close()
    print(
        f"Prompt: {len(material)} clips ({commands} commands), final decode with "
        "each prompt, strict match; Whisper tiny.en int8, one thread at a time"
    )
    for name in strategies:
        print(
            f"  {name:58} understood {100 * understood[name] / commands:5.1f}%  "
            f"false {false_actions[name]}  decode {summary_ms(times[name])}"
        )


if __name__ == "__main__":
    main()
