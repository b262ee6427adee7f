"""`script/bench handle`: matching and house updates at scale, labelled
accuracy, LLM path overhead.

Scale (`--entities 200 1000 5000`): generated houses (testing/houses.py) of
each size; the texts are the labelled commands and questions of tests/data,
the phrasings of the project's sentence file and commands naming the
generated devices. Per size: a house update (validation as PUT /api/entities
does it, then `Matcher.update`: the first push and a re-push with one name
changed) and match latency, for this checkout's matcher and, side by side in
the same process, the matcher of `--baseline REV` (read from git).

The labelled accuracy uses the test house. The LLM path: what each request
carries (tools, the house and its states) at 200 and 1,000 entities; its
overhead through the real service (a subprocess) against the local fake
Messages API with a known first-token delay (transcript sent -> first
`handled-chunk` or `intent` received, minus that delay), with the tools
offered and without; a tool call's confirmation rendered (final) or from a
second request; with --warm, TLS handshakes for ten questions 20 s apart.
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

from bench.summary_ms import summary_ms
from bench.tts import free_port, wait_ready
from testing.fake_llm import FakeLlm, Reply
from testing.houses import house_json
from wyoming_rtvoice.handle.llm import Llm, LlmSettings, Prompt, ToolCall
from wyoming_rtvoice.house.matcher import Matcher
from wyoming_rtvoice.house.model import House
from wyoming_rtvoice.house.tools import Toolbox, home_data

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
DIM = {"name": "HassLightSet", "input": {"name": "Dining Room Lamp", "brightness": 30}}
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
    """The matcher (and its house) of `revision`, imported as its own package
    (in `house/` since the house got a package of its own, in `handle/` before)."""
    package = Path(tempfile.mkdtemp(prefix="baseline-")) / "baseline_handle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for folder, names in (
        ("house", ("matcher.py", "model.py")),
        ("handle", ("matcher.py", "house.py")),
    ):
        shown = [_show(f"{revision}:wyoming_rtvoice/{folder}/{name}") for name in names]
        if None not in shown:
            break
    else:
        raise SystemExit(f"--baseline {revision}: no matcher found")
    for name, source in zip(names, shown):
        (package / name).write_text(source or "")
    sys.path.insert(0, str(package.parent))
    return importlib.import_module("baseline_handle.matcher")


def _show(spec: str) -> str | None:
    """A file at a revision (`git show REV:PATH`), None where it has none."""
    shown = subprocess.run(
        ["git", "-C", str(REPO), "show", spec], capture_output=True, text=True
    )
    return shown.stdout if shown.returncode == 0 else None


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
    from wyoming_rtvoice.house import model as house_module

    old = load_baseline(baseline)
    implementations = {
        "this": (Matcher, house_module.House),
        baseline: (old.Matcher, old.House),
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


async def reply_ms(port: int, text: str) -> float:
    """Transcript sent -> the first `handled-chunk` or `intent` received."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.monotonic()
        await client.write_event(Transcript(text=text).event())
        first = None
        while True:
            event = await asyncio.wait_for(client.read_event(), 10)
            if event is None:
                raise ConnectionError("closed")
            if event.type in ("handled-chunk", "intent") and first is None:
                first = (time.monotonic() - started) * 1000
            if event.type in ("handled", "not-handled", "intent"):
                assert first is not None, "no handled-chunk"
                return first


def big_house(entities: int) -> dict[str, Any]:
    """A generated house (testing/houses.py) whose entities have a state and
    the attributes Home Assistant would push."""
    house = house_json(entities)
    for entity in house["entities"]:
        entity.update(STATES.get(entity["domain"], {"state": "off"}))
    return house


STATES: dict[str, dict[str, Any]] = {
    "light": {"state": "on", "attributes": {"brightness": 128}},
    "sensor": {
        "state": "21.5",
        "attributes": {"unit_of_measurement": "°C", "device_class": "temperature"},
    },
    "climate": {
        "state": "heat",
        "attributes": {"current_temperature": 20.5, "temperature": 21},
    },
    "cover": {"state": "open", "attributes": {"current_position": 100}},
    "media_player": {
        "state": "playing",
        "attributes": {"volume_level": 0.3, "media_title": "Blue in Green"},
    },
    "lock": {"state": "locked"},
}


def sizes() -> None:
    """What each LLM request carries besides the conversation, by house size."""
    for entities in (200, 1000):
        house = House.from_json(big_house(entities))
        toolbox = Toolbox(Matcher("en", house))
        tools = json.dumps(toolbox.tools)
        home = home_data(house, house.states)
        system = Prompt(home, tuple(toolbox.tools)).system
        print(
            f"  request at {entities} entities: {len(toolbox.tools)} tools "
            f"{len(tools)} chars (~{len(tools) / CHARS_PER_TOKEN:.0f} tokens), "
            f"system prompt with the house and its states {len(system)} chars "
            f"(~{len(system) / CHARS_PER_TOKEN:.0f} tokens)"
        )


CHARS_PER_TOKEN = 3.5  # Claude's tokenizer on English and JSON, about


async def overhead(requests: int, first_token_ms: float, token_ms: float) -> None:
    """Through the real service (a subprocess) with a 200-entity house with
    states (the tools offered), against the fake API: the time above the
    fake's first token, for a spoken answer and for a tool call (whose
    input takes three more tokens); and without a house (no tools) as the
    baseline."""
    fake = FakeLlm(first_token_s=first_token_ms / 1000, token_s=token_ms / 1000)
    fake.rules = {"dim": Reply(tools=[DIM])}
    fake.start_in_thread()
    with tempfile.TemporaryDirectory() as folder:
        house = Path(folder) / "house.json"
        house.write_text(json.dumps(big_house(200)), encoding="utf-8")
        try:
            for label, argv in (
                ("no house, no tools (baseline)", []),
                ("200 entities, tools and states", ["--entities", str(house)]),
            ):
                answer, call = await _through_service(argv, fake, requests)
                extra = [t - first_token_ms for t in answer]
                print(f"  LLM path, {label}: above the first token {summary_ms(extra)}")
                if call:
                    late = [t - first_token_ms - 3 * token_ms for t in call]
                    print(
                        f"  LLM path, {label}: a tool call's intent above its last "
                        f"input token {summary_ms(late)}"
                    )
        finally:
            fake.stop_thread()
    print(
        f"  (fake first token {first_token_ms:.0f} ms, {token_ms:.0f} ms a token; "
        "transcript sent -> first handled-chunk or intent received)"
    )


async def _through_service(
    argv: list[str], fake: FakeLlm, requests: int
) -> tuple[list[float], list[float]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wyoming_rtvoice", "handle"]
        + ["--uri", f"tcp://127.0.0.1:{port}"]
        + ["--http-uri", f"http://127.0.0.1:{free_port()}"]
        + ["--anthropic-base-url", fake.url, "--ack-after-ms", "5000", *argv]
        # The requests come faster than a person asks: past the LLM budget.
        + ["--llm-per-minute", "1000", "--llm-per-client-per-minute", "1000"]
        + ["--state-dir", tempfile.mkdtemp()],
        env={**os.environ, "ANTHROPIC_API_KEY": "sk-bench"},
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_ready(port)
        await reply_ms(port, "Warm up the connection, please.")
        answer, call = [], []
        for n in range(requests):
            answer.append(await reply_ms(port, f"Tell me something, number {n}."))
            if argv:
                call.append(await reply_ms(port, f"Dim it a bit, number {n}."))
        return answer, call
    finally:
        server.terminate()
        server.wait()


async def round_trips(requests: int, first_token_ms: float, token_ms: float) -> None:
    """A tool call's confirmation: rendered and final (one request), or the
    model told the result and answering (a second request)."""
    fake = FakeLlm(first_token_s=first_token_ms / 1000, token_s=token_ms / 1000)
    fake.rules = {"dim": Reply(tools=[DIM])}
    fake.follow_up = "Done, the dining room is dimmed."
    await fake.start()
    house = House.from_json(big_house(200))
    toolbox = Toolbox(Matcher("en", house))
    prompt = Prompt(home_data(house, house.states), tuple(toolbox.tools))
    llm = Llm("sk-bench", fake.url, LlmSettings())
    final, second = [], []
    try:
        await llm.warm()
        for n in range(requests):
            started = time.monotonic()
            async for item in llm.stream(f"c{n}", "Dim the dining room.", prompt):
                if isinstance(item, ToolCall):
                    match = toolbox.command(item.name, item.input)
                    final.append((time.monotonic() - started) * 1000)
            llm.conversations.resolve(f"c{n}", {"toolu_fake0": match.response})
            async for item in llm.stream(f"c{n}", None, prompt):
                second.append((time.monotonic() - started) * 1000)
                break
    finally:
        await llm.close()
        await fake.stop()
    print(
        f"  tool call -> what to say: the rendered confirmation (final) "
        f"{summary_ms(final)}; the model's answer to the result (a second "
        f"request) {summary_ms(second)}"
    )


async def connections(
    questions: int, gap_s: float, settings: LlmSettings, idle_close_s: float = 400
) -> tuple[int, int]:
    """TLS handshakes and keep-warm requests for `questions` questions `gap_s`
    apart, through the real client against the fake API over HTTPS (which
    closes connections idle `idle_close_s`, as the API's edge does)."""
    fake = FakeLlm(first_token_s=0.0, token_s=0.0, tls=True, idle_close_s=idle_close_s)
    await fake.start()
    llm = Llm("sk-bench", fake.url, settings, verify=fake.client_ssl())
    try:
        await llm.warm()  # start-up
        for n in range(questions):
            await asyncio.sleep(gap_s)
            async for _ in llm.stream(f"c{n}", "How far away is the moon?"):
                pass
    finally:
        await llm.close()
        await fake.stop()
    return fake.handshakes, fake.model_lists


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
    parser.add_argument("--token-ms", type=float, default=5.0)
    parser.add_argument(
        "--scale-only", action="store_true", help="only the scale figures"
    )
    parser.add_argument(
        "--llm-only", action="store_true", help="only the LLM path's figures"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="also ten questions 20 s apart over TLS: handshakes (takes ~7 min)",
    )
    args = parser.parse_args()
    if not args.llm_only:
        scale(args.entities, args.rounds, args.baseline)
    if not args.scale_only and not args.llm_only:
        matching(args.rounds)
    if not args.scale_only:
        sizes()
        asyncio.run(overhead(args.requests, args.first_token_ms, args.token_ms))
        asyncio.run(round_trips(args.requests, args.first_token_ms, args.token_ms))
    if args.warm:
        asyncio.run(warm())


async def warm() -> None:
    for label, settings in (
        ("the SDK's pool", LlmSettings(keep_alive_s=5, keep_warm_s=0)),
        ("ours", LlmSettings()),
    ):
        handshakes, pings = await connections(10, 20.0, settings)
        print(
            f"  ten questions 20 s apart, {label}: {handshakes} TLS handshakes "
            f"(start-up included), {pings} keep-warm requests"
        )


if __name__ == "__main__":
    main()
