"""`script/bench tts`: time to first audio, this server vs. whole-text synthesis.

Both servers run as subprocesses with the same Piper voice and are measured
in one run, request by request in turn, over the same texts:
  (a) rtvoice tts: clause by clause, audio sent as each clause is ready;
  (b) baseline: synthesise the whole text, then send it (the usual server).
Streaming rows feed text the way an LLM does (a few characters every 20 ms)
and time first audio from the moment the first sentence has fully arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from piper import PiperVoice
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from bench.summary_ms import summary_ms
from wyoming_rtvoice.tts.clauses import split_clauses
from wyoming_rtvoice.tts.config import DEFAULT_VOICE
from wyoming_rtvoice.tts.voice import resolve_voice

CONFIRMATIONS = [
    "Turned on the kitchen lights.",
    "Turned off the living room lamp.",
    "The garage door is now closed.",
    "Set the thermostat to twenty one degrees.",
    "Locked the front door.",
    "Opened the bedroom blinds.",
    "The temperature outside is eight degrees.",
    "Started the robot vacuum.",
]
ANSWERS = [
    "The weather today is sunny with a high of twenty degrees, and tonight it "
    "will be clear. Tomorrow brings some clouds in the afternoon.",
    "Sure. A good pasta needs plenty of salted water. Cook it for about nine "
    "minutes, then taste it before you drain it.",
    "The moon is about three hundred eighty thousand kilometres away. Light "
    "from it takes a little more than a second to reach us.",
    "Your next meeting is at three o'clock with the design team. After that "
    "the afternoon is free, so you could go for a walk.",
]
TOKEN_CHARS = 4
TOKEN_DELAY_S = 0.02


@dataclass
class Result:
    first_audio_ms: list[float] = field(default_factory=list)
    rtf: list[float] = field(default_factory=list)


async def send_text(client: AsyncTcpClient, text: str, stream: bool) -> float:
    """Send the request; returns when its first sentence had fully arrived."""
    if not stream:
        await client.write_event(Synthesize(text=text).event())
        return time.monotonic()
    first_sentence_end = len(split_clauses(text)[0]) + 1  # with the space after it
    ready_at = 0.0
    await client.write_event(SynthesizeStart().event())
    for offset in range(0, len(text), TOKEN_CHARS):
        await client.write_event(
            SynthesizeChunk(text=text[offset : offset + TOKEN_CHARS]).event()
        )
        if not ready_at and offset + TOKEN_CHARS >= first_sentence_end:
            ready_at = time.monotonic()
        await asyncio.sleep(TOKEN_DELAY_S)
    await client.write_event(Synthesize(text=text).event())
    await client.write_event(SynthesizeStop().event())
    return ready_at


async def receive_audio(client: AsyncTcpClient) -> tuple[float, float, float]:
    """(time of first audio-chunk, time of audio-stop, seconds of audio)."""
    first_audio, samples, rate = 0.0, 0, 22050
    while True:
        event = await client.read_event()
        if event is None:
            raise ConnectionError("server closed the connection")
        if AudioStart.is_type(event.type):
            rate = AudioStart.from_event(event).rate
        if AudioChunk.is_type(event.type):
            first_audio = first_audio or time.monotonic()
            samples += len(event.payload or b"") // 2
        if AudioStop.is_type(event.type):
            return first_audio, time.monotonic(), samples / rate


async def run_request(port: int, text: str, stream: bool) -> tuple[float, float]:
    """(ms to first audio from the moment its first sentence was sent, RTF)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.monotonic()
        receiving = asyncio.create_task(receive_audio(client))
        ready_at = await send_text(client, text, stream)
        first_audio, done, seconds = await receiving
    # Real-time factor is only meaningful when all text was there at the start.
    rtf = float("nan") if stream else (done - started) / seconds
    return (first_audio - ready_at) * 1000, rtf


class WholeTextHandler(AsyncEventHandler):
    """Baseline: the usual server, plain Piper on the whole text, then send."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        voice: PiperVoice,
    ) -> None:
        super().__init__(reader, writer)
        self.voice = voice

    def synthesize(self, text: str) -> bytes:
        return b"".join(
            chunk.audio_int16_bytes for chunk in self.voice.synthesize(text)
        )

    async def handle_event(self, event: Event) -> bool:
        if not Synthesize.is_type(event.type):
            return True  # streaming events are ignored: it waits for the full text
        text = Synthesize.from_event(event).text
        loop = asyncio.get_running_loop()
        audio = await loop.run_in_executor(None, self.synthesize, text)
        audio_format = {
            "rate": self.voice.config.sample_rate,
            "width": 2,
            "channels": 1,
        }
        await self.write_event(AudioStart(**audio_format).event())
        for offset in range(0, len(audio), 2048):
            chunk = AudioChunk(audio=audio[offset : offset + 2048], **audio_format)
            await self.write_event(chunk.event())
        await self.write_event(AudioStop().event())
        return True


async def serve_baseline(port: int) -> None:
    voice = PiperVoice.load(resolve_voice(DEFAULT_VOICE))
    list(voice.synthesize("Ready."))  # warm, as the usual server does not; fair to it
    server = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
    await server.run(lambda r, w: WholeTextHandler(r, w, voice))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *args], stderr=subprocess.DEVNULL)


async def wait_ready(port: int) -> None:
    """Both servers listen only once their voice is loaded and warmed."""
    for _ in range(600):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


async def bench(repeats: int) -> None:
    ports = {name: free_port() for name in ("rtvoice", "rtvoice cached", "whole text")}
    processes = [
        start(
            ["wyoming_rtvoice", "tts", "--uri", f"tcp://127.0.0.1:{ports['rtvoice']}"]
            + ["--cache-bytes", "0"]
        ),
        start(
            [
                "wyoming_rtvoice",
                "tts",
                "--uri",
                f"tcp://127.0.0.1:{ports['rtvoice cached']}",
            ]
        ),
        start(["bench.tts", "--serve-baseline", str(ports["whole text"])]),
    ]
    try:
        for port in ports.values():
            await wait_ready(port)
        rows = {
            "confirmation": (CONFIRMATIONS, False),
            "long answer": (ANSWERS, False),
            "streamed answer": (ANSWERS, True),
        }
        print(f"TTS first audio, {repeats} rounds, real Piper en_US-joe-medium")
        for row, (texts, stream) in rows.items():
            results = {name: Result() for name in ports if name != "rtvoice cached"}
            for _ in range(repeats):
                for text in texts:
                    for name in results:  # interleaved so noise hits both alike
                        first_ms, rtf = await run_request(ports[name], text, stream)
                        results[name].first_audio_ms.append(first_ms)
                        results[name].rtf.append(rtf)
            report(row, results)
        cached = Result()
        for _ in range(repeats):
            for text in CONFIRMATIONS:
                await run_request(ports["rtvoice cached"], text, False)  # fill
                first_ms, rtf = await run_request(ports["rtvoice cached"], text, False)
                cached.first_audio_ms.append(first_ms)
                cached.rtf.append(rtf)
        report("confirmation, cache hit", {"rtvoice": cached})
    finally:
        for process in processes:
            process.terminate()
            process.wait()


def report(row: str, results: dict[str, Result]) -> None:
    for name, result in results.items():
        print(
            f"  {row:24} {name:11} first audio {summary_ms(result.first_audio_ms)}"
            f"   RTF p50 {statistics.median(result.rtf):.3f}"
        )
    if len(results) == 2:
        ours, base = (statistics.median(r.first_audio_ms) for r in results.values())
        print(f"  {row:24} ratio       first audio p50 {base / ours:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.serve_baseline:
        asyncio.run(serve_baseline(args.serve_baseline))
    else:
        asyncio.run(bench(args.repeats))


if __name__ == "__main__":
    main()
