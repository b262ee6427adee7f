"""`script/bench wake`: recall, false accepts, latency, CPU and concurrent streams.

Wake phrases and at least 10 minutes of ordinary commands and questions are
spoken by our own TTS (three speeds, light noise). Recall and false accepts
run the engines' streams directly (the same code the server runs, faster
than real time); latency and concurrency go through the real server at
real-time pace, timed from the moment the last spoken sample was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import time

from wyoming.client import AsyncTcpClient
from wyoming.wake import Detect, Detection

from bench.speech import SPEEDS, Spoken, speak, stream_audio, summary_ms
from bench.tts import free_port, wait_ready
from wyoming_rtvoice.wake.engines import Stream, WakeModel, builtin_models

VARIANTS = {"okay_nabu": ["Okay Nabu.", "OK, Nabu."]}
ACTIONS = ["Turn on", "Turn off", "Switch off", "Dim", "Check"]
DEVICES = ["the lights", "the lamp", "the fan", "the heater", "the TV", "the speaker"]
ROOMS = ["kitchen", "living room", "bedroom", "office", "garage", "hallway"]
QUESTIONS = [
    "What is the weather going to be like tomorrow?",
    "How long should I boil an egg?",
    "What time is it in Tokyo?",
    "Tell me a fun fact about octopuses.",
    "Who wrote the book about the white whale?",
    "How far away is the moon?",
    "Set a timer for ten minutes.",
    "Add milk and bread to the shopping list.",
    "Play some quiet music in the evening.",
    "Remind me to call my sister at six.",
    "Is it going to rain this afternoon?",
    "What should I cook for dinner tonight?",
]


def phrases(model: WakeModel) -> list[str]:
    return VARIANTS.get(model.name, [f"{model.phrase}."])


def non_wake_corpus(minutes: float) -> list[Spoken]:
    sentences = [
        f"{action} {device} in the {room}."
        for action, device, room in itertools.product(ACTIONS, DEVICES, ROOMS)
    ] + QUESTIONS
    corpus: list[Spoken] = []
    for index, text in enumerate(itertools.cycle(sentences)):
        corpus.append(speak(text, length_scale=SPEEDS[index % 3], seed=index))
        if sum(s.seconds for s in corpus) >= minutes * 60:
            return corpus
    return corpus


def run_stream(models: list[WakeModel], audio: bytes) -> tuple[list[str], float]:
    """(names detected, CPU seconds) for one clip fed in 20 ms chunks."""
    stream = Stream(models, None, 1, 2.0)
    stream.process(b"\0\0" * 16000 * 2)  # let openWakeWord's start-up fill pass
    started = time.process_time()
    detected: list[str] = []
    for offset in range(0, len(audio), 640):
        detected += [name for name, _ in stream.process(audio[offset : offset + 640])]
    return detected, time.process_time() - started


def recall_and_false_accepts(engine: str, negatives: list[Spoken]) -> None:
    models = builtin_models(engine)
    print(f"  engine {engine}")
    for model in models:
        clips = [
            speak(text, length_scale=speed, seed=seed)
            for text in phrases(model)
            for speed in SPEEDS
            for seed in range(4)
        ]
        hits, cpu, seconds = 0, 0.0, 0.0
        for clip in clips:
            detected, cpu_s = run_stream([model], clip.audio)
            hits += detected == [model.name]
            cpu += cpu_s
            seconds += clip.seconds
        print(
            f"    {model.name:12} recall {100 * hits / len(clips):5.1f}% "
            f"({hits}/{len(clips)})   CPU {1000 * cpu / seconds:6.1f} ms per audio s"
        )
    audio = b"".join(clip.audio for clip in negatives)
    hours = len(audio) / 32000 / 3600
    detected, _ = run_stream(models, audio)
    counts = {m.name: detected.count(m.name) for m in models}
    print(
        f"    false accepts on {60 * hours:.1f} min of other speech: "
        f"{len(detected)} ({len(detected) / hours:.1f}/h) {counts}"
    )


async def detection_latency(port: int, clip: Spoken) -> float | None:
    """ms from sending the phrase's last spoken sample to receiving `detection`."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Detect(names=["okay_nabu"]).event())
        started = time.monotonic()
        sending = asyncio.create_task(stream_audio(client, clip.audio, realtime=True))
        last_sample_sent = started + clip.speech_end_s
        try:
            while True:
                event = await asyncio.wait_for(client.read_event(), clip.seconds + 2)
                if event is None or event.type == "not-detected":
                    return None
                if Detection.is_type(event.type):
                    return (time.monotonic() - last_sample_sent) * 1000
        except TimeoutError:
            return None
        finally:
            sending.cancel()


async def server_figures(engine: str, max_streams: int) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wyoming_rtvoice", "wake"]
        + ["--engine", engine, "--uri", f"tcp://127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_ready(port)
        clips = [
            speak(t, length_scale=s, seed=i)
            for i, (t, s) in enumerate(itertools.product(VARIANTS["okay_nabu"], SPEEDS))
        ]
        latencies = [
            ms
            for clip in clips * 2
            if (ms := await detection_latency(port, clip)) is not None
        ]
        print(
            f"  {engine} okay_nabu, one stream: last spoken sample -> detection "
            f"{summary_ms(latencies)} ({len(latencies)}/{2 * len(clips)} detected)"
        )
        streams = 1
        held = 0
        while streams <= max_streams:
            results = await asyncio.gather(
                *(
                    detection_latency(port, clips[i % len(clips)])
                    for i in range(streams)
                )
            )
            found = sorted(ms for ms in results if ms is not None)
            p95 = (
                found[min(len(found) - 1, round(0.95 * (len(found) - 1)))]
                if found
                else 9e9
            )
            print(
                f"    {streams:3} concurrent real-time streams: detected "
                f"{len(found)}/{streams}, latency {summary_ms(found)}"
            )
            if len(found) < 0.9 * streams or p95 > 300:
                break
            held = streams
            streams *= 2
        print(f"  {engine}: {held} concurrent streams held with p95 <= 300 ms")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="non-wake speech")
    parser.add_argument("--max-streams", type=int, default=32)
    args = parser.parse_args()
    negatives = non_wake_corpus(args.minutes)
    print(f"Wake words: TTS-spoken phrases, {len(SPEEDS)} speeds x 4 noise seeds")
    for engine in ("micro", "openwakeword"):
        recall_and_false_accepts(engine, negatives)
    for engine in ("micro", "openwakeword"):
        asyncio.run(server_figures(engine, args.max_streams))
    print(f"  (median clip {statistics.median(s.seconds for s in negatives):.1f} s)")


if __name__ == "__main__":
    main()
