"""`script/bench handle`: match latency, labelled accuracy, LLM path overhead.

The house (200+ entities) and the labelled commands are the test data in
tests/data. Matching runs the service's matcher; the overhead is measured
through the real service (a subprocess) against the local fake Messages API
with a known first-token delay: transcript sent -> first `handled-chunk`
received, minus that delay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient

from bench.fake_llm import FakeLlm
from bench.speech import summary_ms
from bench.tts import free_port, wait_ready
from wyoming_rtvoice.handle.house import House
from wyoming_rtvoice.handle.llm import Llm, LlmSettings
from wyoming_rtvoice.handle.matcher import Matcher

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--first-token-ms", type=float, default=200.0)
    args = parser.parse_args()
    matching(args.rounds)
    asyncio.run(overhead(args.requests, args.first_token_ms))


if __name__ == "__main__":
    main()
