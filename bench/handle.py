"""`script/bench handle`: matching and house updates at scale, labelled
accuracy, LLM path overhead.

Scale (`--entities 200 1000 5000`): generated houses (bench/houses.py) of
each size; the texts are the labelled commands and questions of tests/data,
the phrasings of the project's sentence file and commands naming the
generated devices. Per size: a house update (validation as PUT /api/entities
does it, then `Matcher.update`: the first push and a re-push with one name
changed) and match latency, for this checkout's matcher and, side by side in
the same process, the matcher of `--baseline REV` (read from git).

The labelled accuracy uses the test house; the overhead is measured through
the real service (a subprocess) against the local fake Messages API with a
known first-token delay: transcript sent -> first `handled-chunk` received,
minus that delay.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient

from bench.fake_llm import FakeLlm
from bench.houses import house_json
from bench.speech import summary_ms
from bench.tts import free_port, wait_ready
from wyoming_rtvoice.handle.house import House
from wyoming_rtvoice.handle.matcher import Matcher

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
BASELINE = "62642bb"  # main before the #17 work on the matcher
PHRASINGS = [
    "dim the desk lamp",
    "brighten the reading lamp",
    "dim the lights in the kitchen",
    "dim the desk lamp to 25%",
    "how many minutes are left on my timer",
    "how many minutes are left",
    "is the front door lock",
    "turn on garden spotlight three",
]


def matching(rounds: int) -> None:
    house = House.from_file(DATA / "house.json")
    labelled = json.loads((DATA / "commands.json").read_text(encoding="utf-8"))
    matcher = Matcher("en", house)
    texts = [c["text"] for c in labelled["commands"]] + labelled["questions"]
    times: list[float] = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            matcher.match(text)
            times.append((time.perf_counter() - started) * 1000)
    right = sum(1 for command in labelled["commands"] if is_right(matcher, command))
    questions_matched = sum(1 for q in labelled["questions"] if matcher.match(q))
    print(
        f"Handle: {len(house.entities)} entities, {len(labelled['commands'])} labelled "
        f"commands, {len(labelled['questions'])} questions"
    )
    print(f"  match latency (commands and questions) {summary_ms(times)}")
    print(
        f"  labelled commands right: {right}/{len(labelled['commands'])} "
        f"({100 * right / len(labelled['commands']):.1f}%); questions matched: "
        f"{questions_matched}/{len(labelled['questions'])}"
    )


def load_baseline(revision: str) -> ModuleType:
    """The matcher (and its house) of `revision`, imported as its own package."""
    package = Path(tempfile.mkdtemp(prefix="baseline-")) / "baseline_handle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("matcher.py", "house.py"):
        source = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "show",
                f"{revision}:wyoming_rtvoice/handle/{name}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (package / name).write_text(source)
    sys.path.insert(0, str(package.parent))
    return importlib.import_module("baseline_handle.matcher")


def scale_texts(house: dict[str, Any], rng: random.Random) -> list[str]:
    """What people say to a house like this: commands naming its devices,
    areas and floors, the labelled commands and questions, the phrasings."""
    labelled = json.loads((DATA / "commands.json").read_text(encoding="utf-8"))
    by_domain: dict[str, list[str]] = {}
    for entity in house["entities"]:
        by_domain.setdefault(entity["domain"], []).append(entity["name"].lower())
    pick = rng.choice
    texts = [c["text"] for c in labelled["commands"]] + labelled["questions"]
    texts += PHRASINGS
    for _ in range(10):
        texts += [
            f"turn on the {pick(by_domain['light'])}",
            f"turn off the {pick(by_domain['switch'])}",
            f"set the {pick(by_domain['light'])} to {rng.randrange(5, 100, 5)}%",
            f"what is the {pick(by_domain['sensor'])}",
            f"is the {pick(by_domain['lock'])} locked",
            f"open the {pick(by_domain['cover'])}",
            f"turn off the lights in the {pick(house['areas']).lower()}",
            f"turn on the lights on the {pick(house['floors']).lower()}",
        ]
    return texts


@dataclass
class Figures:
    """One matcher's figures at one house size (ms)."""

    validate: list[float] = field(default_factory=list)
    first_push: list[float] = field(default_factory=list)
    re_push: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def scale(entities: list[int], rounds: int, baseline: str) -> None:
    from wyoming_rtvoice.handle import house as house_module

    old = load_baseline(baseline)
    implementations = {
        "this": (Matcher, house_module.House),
        baseline: (old.Matcher, sys.modules["baseline_handle.house"].House),
    }
    print(
        "Scale: generated houses, the two matchers interleaved (the machine's load "
        "falls on both alike). update: validation as PUT /api/entities does it, "
        "then Matcher.update on a new matcher (1st push) and again with one name "
        "changed (re-push), medians of 3; cold: the first match of each text after "
        f"a 1st push; match: {rounds} more rounds, wall and CPU (thread) time."
    )
    print(
        f"  {'entities':>8} {'matcher':>8} {'validate':>9} {'1st push':>9} "
        f"{'re-push':>8} {'cold p95':>9}   match wall{'':23}max   "
        f"match CPU{'':16}labelled"
    )
    for count in entities:
        data = house_json(count)
        renamed = json.loads(json.dumps(data))
        renamed["entities"][-1]["name"] += " Renamed"
        texts = scale_texts(data, random.Random(count))
        figures = {label: Figures() for label in implementations}
        matchers: dict[str, Any] = {}
        for _ in range(3):
            for label, (matcher_class, house_class) in implementations.items():
                matchers[label] = pushed(
                    matcher_class, house_class, data, renamed, texts, figures[label]
                )
        for label, (_, house_class) in implementations.items():
            matchers[label].update(house_class.from_json(json.loads(json.dumps(data))))
        labels = list(implementations)
        for round_ in range(rounds):
            for index, text in enumerate(texts):
                for label in labels[:: 1 if (round_ + index) % 2 else -1]:
                    wall, cpu = timed(matchers[label], text)
                    figures[label].wall.append(wall)
                    figures[label].cpu.append(cpu)
        for label, got in figures.items():
            cold = sorted(got.cold)
            print(
                f"  {len(data['entities']):8} {label:>8} "
                f"{statistics.median(got.validate):7.1f}ms "
                f"{statistics.median(got.first_push):7.0f}ms "
                f"{statistics.median(got.re_push):6.0f}ms "
                f"{cold[round(0.95 * (len(cold) - 1))]:7.1f}ms   "
                f"{summary_ms(got.wall)} {max(got.wall):6.1f}   "
                f"{summary_ms(got.cpu)}   {labelled_right(matchers[label])}"
            )


def pushed(
    matcher_class: Any,
    house_class: Any,
    data: dict[str, Any],
    renamed: dict[str, Any],
    texts: list[str],
    figures: Figures,
) -> Any:
    """A new matcher given the house as a PUT gives it, timed; then the first
    match of each text, and a re-push with one name changed."""
    payload = json.loads(json.dumps(data))
    started = time.perf_counter()
    house = house_class.from_json(payload)
    figures.validate.append(1000 * (time.perf_counter() - started))
    matcher = matcher_class("en", house_class())
    started = time.perf_counter()
    matcher.update(house)
    figures.first_push.append(1000 * (time.perf_counter() - started))
    figures.cold += [timed(matcher, text)[0] for text in texts]
    started = time.perf_counter()
    matcher.update(house_class.from_json(json.loads(json.dumps(renamed))))
    figures.re_push.append(1000 * (time.perf_counter() - started))
    return matcher


def timed(matcher: Any, text: str) -> tuple[float, float]:
    """Wall and CPU ms of one match."""
    wall, cpu = time.perf_counter(), time.thread_time()
    matcher.match(text)
    return 1000 * (time.perf_counter() - wall), 1000 * (time.thread_time() - cpu)


def labelled_right(matcher: Any) -> str:
    labelled = json.loads((DATA / "commands.json").read_text(encoding="utf-8"))
    right = sum(1 for command in labelled["commands"] if is_right(matcher, command))
    return f"{right}/{len(labelled['commands'])}"


def is_right(matcher: Matcher, command: dict[str, Any]) -> bool:
    match = matcher.match(command["text"])
    if match is None or match.intent != command["intent"]:
        return False
    return all(
        str(match.slots.get(k)).lower() == str(v).lower() or match.slots.get(k) == v
        for k, v in command["slots"].items()
    )


async def first_chunk_ms(port: int, text: str) -> float:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.monotonic()
        await client.write_event(Transcript(text=text).event())
        first = None
        while True:
            event = await asyncio.wait_for(client.read_event(), 10)
            if event is None:
                raise ConnectionError("closed")
            if event.type == "handled-chunk" and first is None:
                first = (time.monotonic() - started) * 1000
            if event.type in ("handled", "not-handled"):
                assert first is not None, "no handled-chunk"
                return first


async def overhead(requests: int, first_token_ms: float) -> None:
    fake = FakeLlm(first_token_s=first_token_ms / 1000, token_s=0.005)
    fake.start_in_thread()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wyoming_rtvoice", "handle"]
        + [
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--http-uri",
            f"http://127.0.0.1:{free_port()}",
        ]
        + ["--entities", str(DATA / "house.json"), "--anthropic-base-url", fake.url],
        env={**os.environ, "ANTHROPIC_API_KEY": "sk-bench"},
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_ready(port)
        await first_chunk_ms(port, "Warm up the connection, please.")
        times = [
            await first_chunk_ms(port, f"Tell me something interesting, number {n}.")
            for n in range(requests)
        ]
    finally:
        server.terminate()
        server.wait()
        fake.stop_thread()
    extra = [t - first_token_ms for t in times]
    print(
        f"  LLM path: transcript -> first handled-chunk {summary_ms(times)} "
        f"with a fake first token at {first_token_ms:.0f} ms"
    )
    print(
        f"  service overhead above the first token {summary_ms(extra)} "
        f"(mean {statistics.mean(extra):.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entities",
        type=int,
        nargs="+",
        default=[200, 1000, 5000],
        help="house sizes for the scale figures (%(default)s)",
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE,
        help="git revision whose matcher runs side by side (%(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--first-token-ms", type=float, default=200.0)
    parser.add_argument(
        "--scale-only", action="store_true", help="only the scale figures"
    )
    args = parser.parse_args()
    scale(args.entities, args.rounds, args.baseline)
    if not args.scale_only:
        matching(args.rounds)
        asyncio.run(overhead(args.requests, args.first_token_ms))


if __name__ == "__main__":
    main()
