"""`script/fuzz [SECONDS]`: coverage-guided fuzzing of the event reader and
every service's handler, in process, with the real models loaded.

Each input is what one client sends on one connection. Its first byte picks
the service (tts, asr, wake, handle); the rest is fed to the handler's
`run()` through an in-memory reader, and what the handler writes is parsed
back. A finding is: an exception escaping `run()`, a handler failing in a way
the runtime had to catch ("Connection from ... failed"), a reply that is not
a valid event, or a connection still busy 10 s after the client is gone.

atheris drives it where it installs (CPython 3.11 on Linux x86_64 here);
elsewhere random inputs mutated from a small corpus stand in, with no
coverage guidance.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from wyoming_rtvoice.server import EventHandler

SERVICES = ("tts", "asr", "wake", "handle")
SEEDS = [
    b'{"type": "synthesize", "data": {"text": "Hello there."}}\n',
    b'{"type": "synthesize-start"}\n'
    b'{"type": "synthesize-chunk", "data": {"text": "Hi"}}\n'
    b'{"type": "synthesize-stop"}\n',
    b'{"type": "transcribe", "data": {"transcript_names": ["Kitchen"]}}\n'
    b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, "channels": 1}}\n'
    b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, '
    b'"payload_length": 8}\n\x00\x01\x00\x01\x00\x01\x00\x01'
    b'{"type": "audio-stop"}\n',
    b'{"type": "detect", "data": {"names": ["okay_nabu"]}}\n',
    b'{"type": "transcript", "data": {"text": "turn on the kitchen lights"}}\n',
    b'{"type": "recognize", "data_length": 13}\n{"text": "hi"}',
    b'{"type": "ping", "data": {"text": "x"}}\n{"type": "describe"}\n',
]


class Sink:
    """The writer half of a connection, in memory."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.data += line

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return "fuzz" if name == "peername" else default


class Failures(logging.Handler):
    """Records what the runtime logs when a handler fails unexpectedly."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def bind(factory: Any, limits: Any, reader: Any, writer: Any) -> Any:
    return factory(reader, writer, limits)


async def load_factories() -> dict[str, Any]:
    """Each service's handler factory, with its real models."""
    from wyoming_rtvoice.__main__ import build_parser, load_service
    from wyoming_rtvoice.reader import Limits
    from wyoming_rtvoice.trace import Metrics

    factories = {}
    limits = Limits(idle_timeout_s=5.0, frame_timeout_s=1.0)
    for name in SERVICES:
        args = build_parser().parse_args([name, "--uri", "tcp://127.0.0.1:1"])
        service, _ = await load_service(args, Metrics())
        factories[name] = functools.partial(bind, service.handler_factory, limits)
    return factories


async def one_input(factories: dict[str, Any], data: bytes) -> None:
    from wyoming_rtvoice.reader import Limits, ProtocolError, read_event

    if not data:
        return
    name = SERVICES[data[0] % len(SERVICES)]
    reader = asyncio.StreamReader(limit=64 * 1024)
    sink = Sink()
    handler: EventHandler = factories[name](reader, cast(asyncio.StreamWriter, sink))
    running = asyncio.create_task(handler.run())
    reader.feed_data(data[1:])
    await asyncio.sleep(0.01)  # let it work on the input before the client leaves
    reader.feed_eof()
    try:
        await asyncio.wait_for(running, 10)
    except TimeoutError as err:
        raise AssertionError(f"{name}: still busy 10 s after the client left") from err
    replies = asyncio.StreamReader()
    replies.feed_data(bytes(sink.data))
    replies.feed_eof()
    try:
        while await read_event(replies, Limits(max_payload_bytes=1 << 22)):
            pass
    except (ProtocolError, asyncio.IncompleteReadError) as err:
        raise AssertionError(f"{name}: invalid reply: {err}") from err


def main() -> None:
    parser = argparse.ArgumentParser(prog="script/fuzz", description=__doc__)
    parser.add_argument("seconds", nargs="?", type=int, default=60)
    parser.add_argument("--random", action="store_true", help="do not use atheris")
    args, rest = parser.parse_known_args()
    logging.basicConfig(level=logging.CRITICAL)
    failures = Failures()
    logging.getLogger("wyoming_rtvoice").addHandler(failures)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        if args.random:
            raise ImportError
        import atheris
    except ImportError:
        atheris = None
    if atheris is not None:  # coverage of our code and the protocol library only
        with atheris.instrument_imports(include=["wyoming_rtvoice", "wyoming"]):
            factories = loop.run_until_complete(load_factories())
    else:
        factories = loop.run_until_complete(load_factories())
    runs = 0

    def target(data: bytes) -> None:
        nonlocal runs
        runs += 1
        loop.run_until_complete(one_input(factories, data))
        if failures.records:
            record = failures.records[0]
            raise AssertionError(f"{record.getMessage()}\n{record.exc_text or ''}")

    if atheris is None:
        random_inputs(target, args.seconds)
        print(f"fuzz (random, no coverage guidance): {runs} inputs, no finding")
        return
    with tempfile.TemporaryDirectory(prefix="rtvoice-fuzz-") as corpus:
        for index, seed in enumerate(SEEDS):
            for service in range(len(SERVICES)):
                path = Path(corpus) / f"seed-{index}-{service}"
                path.write_bytes(bytes([service]) + seed)
        atheris.Setup(
            [sys.argv[0], f"-max_total_time={args.seconds}", "-timeout=30"]
            + [*rest, corpus],
            target,
        )
        atheris.Fuzz()


def random_inputs(target: Any, seconds: int) -> None:
    rng = random.Random(0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data = bytearray(rng.choice(SEEDS))
        for _ in range(rng.randint(0, 8)):
            position = rng.randrange(len(data) + 1)
            data[position:position] = bytes([rng.randrange(256)])
            if data and rng.random() < 0.5:
                del data[rng.randrange(len(data))]
        target(bytes([rng.randrange(4)]) + bytes(data))


if __name__ == "__main__":
    main()
