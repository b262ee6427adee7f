"""`script/bench asr`: audio-stop -> final transcript, this server vs. the usual path.

A corpus of spoken commands and questions (our own TTS, three speeds, light
noise) is streamed at real-time pace to the ASR service (a subprocess). For
each utterance, in the same run, plain faster-whisper `transcribe()` on the
same model is timed on the whole utterance, as a server that transcribes
only after `audio-stop` would. Word error rate and CPU seconds per audio
second are measured for both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.client import AsyncTcpClient

from bench.summary_ms import summary_ms
from bench.tts import free_port, wait_ready
from testing.speech import SPEEDS, Spoken, speak, stream_audio
from testing.wer import word_errors
from wyoming_rtvoice.audio import to_float

COMMANDS = [
    "Turn on the kitchen lights.",
    "Turn off the bedroom fan.",
    "Open the garage door.",
    "Set the living room lamp to fifty percent.",
    "Close the blinds in the office.",
    "Turn off all the lights upstairs.",
    "Set the thermostat to twenty one degrees.",
    "Start the robot vacuum.",
    "Lock the front door.",
    "Turn on the porch light.",
    "Dim the hallway lights to thirty percent.",
    "Turn on the TV in the den.",
]
QUESTIONS = [
    "What is the capital of France?",
    "What is the weather going to be like tomorrow?",
    "How long should I boil an egg?",
    "Is the back door locked?",
    "What time is it in Tokyo?",
    "Tell me a fun fact about octopuses.",
]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stream_one(port: int, spoken: Spoken) -> tuple[float, str]:
    """(ms from audio-stop to transcript, transcript)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe().event())
        stop_sent = await stream_audio(client, spoken.audio, realtime=True)
        while True:
            event = await asyncio.wait_for(client.read_event(), 30)
            if event is None:
                raise ConnectionError("server closed the connection")
            if Transcript.is_type(event.type):
                return (time.monotonic() - stop_sent) * 1000, Transcript.from_event(
                    event
                ).text


class Measured:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latency_ms: list[float] = []
        self.errors = 0
        self.words = 0
        self.cpu_s = 0.0
        self.audio_s = 0.0

    def add(
        self,
        reference: str,
        hypothesis: str,
        latency_ms: float,
        cpu_s: float,
        audio_s: float,
    ) -> None:
        errors, words = word_errors(reference, hypothesis)
        self.errors += errors
        self.words += words
        self.latency_ms.append(latency_ms)
        self.cpu_s += cpu_s
        self.audio_s += audio_s

    def row(self) -> str:
        wer = 100 * self.errors / max(1, self.words)
        return (
            f"  {self.name:28} audio-stop -> transcript {summary_ms(self.latency_ms)}"
            f"   WER {wer:4.1f}%   CPU {self.cpu_s / self.audio_s:.3f} s/s"
        )


async def bench(rounds: int) -> None:
    from faster_whisper import WhisperModel

    from wyoming_rtvoice.asr import model_path

    corpus = [
        speak(text, length_scale=speed, seed=index)
        for index, (text, speed) in enumerate(
            (text, speed) for text in COMMANDS + QUESTIONS for speed in SPEEDS
        )
    ]
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wyoming_rtvoice",
            "asr",
            "--uri",
            f"tcp://127.0.0.1:{port}",
        ],
        stderr=subprocess.DEVNULL,
    )
    plain = WhisperModel(model_path("tiny.en"), device="cpu", compute_type="int8")
    paths = {
        "rtvoice (streaming)": Measured("rtvoice asr, streamed"),
        "plain beam 1": Measured("plain transcribe(), beam 1"),
        "plain beam 5": Measured("plain transcribe(), beam 5"),
    }
    try:
        await wait_ready(port)
        await stream_one(port, corpus[0])  # warm the connection path
        for _ in range(rounds):
            for spoken in corpus:
                cpu_before = cpu_seconds(server.pid)
                latency, text = await stream_one(port, spoken)
                paths["rtvoice (streaming)"].add(
                    spoken.text,
                    text,
                    latency,
                    cpu_seconds(server.pid) - cpu_before,
                    spoken.seconds,
                )
                for beam, key in ((1, "plain beam 1"), (5, "plain beam 5")):
                    started, cpu_started = time.monotonic(), time.process_time()
                    segments, _ = plain.transcribe(
                        to_float(spoken.audio), beam_size=beam, language="en"
                    )
                    text = " ".join(segment.text for segment in segments).strip()
                    paths[key].add(
                        spoken.text,
                        text,
                        (time.monotonic() - started) * 1000,
                        time.process_time() - cpu_started,
                        spoken.seconds,
                    )
    finally:
        server.terminate()
        server.wait()
    seconds = [spoken.seconds for spoken in corpus]
    print(
        f"ASR: {len(corpus)} utterances x {rounds} round(s), "
        f"{min(seconds):.1f}-{max(seconds):.1f} s each (median "
        f"{statistics.median(seconds):.1f} s), real-time pace, Whisper tiny.en int8"
    )
    for path in paths.values():
        print(path.row())
    ours = statistics.median(paths["rtvoice (streaming)"].latency_ms)
    for key in ("plain beam 1", "plain beam 5"):
        ratio = statistics.median(paths[key].latency_ms) / max(ours, 1e-3)
        print(f"  p50 ratio vs {key}: {ratio:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    np.seterr(all="ignore")
    asyncio.run(bench(args.rounds))


if __name__ == "__main__":
    main()
