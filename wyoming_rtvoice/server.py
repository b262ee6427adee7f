"""Shared server runtime: the handler base and listening servers.

Every connection is served by one task that reads with the hardened reader
(`reader.py`), answers `describe` and `ping` itself, and ends in one log
line, a closed writer and no stray exception, whatever the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from wyoming.audio import AudioChunkConverter
from wyoming.error import Error
from wyoming.event import Event, async_get_stdin, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from .audio import checked_chunk
from .errors import ErrorCode
from .reader import MAX_HEADER_BYTES, Limits, ProtocolError, read_event

_LOGGER = logging.getLogger(__name__)


class EventHandler(AsyncEventHandler):
    """Handler base: answers describe and ping, survives any client input.

    Subclasses implement `handle_event` for their own protocol and
    `disconnect` to cancel work that belongs to the connection.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        info: Info,
        limits: Limits,
    ) -> None:
        super().__init__(reader, writer)
        self.info = info
        self.limits = limits
        self.peer = peer_of(writer)

    async def run(self) -> None:
        try:
            await self._serve_events()
        except ProtocolError as err:
            _LOGGER.warning("Client %s sent a bad event: %s", self.peer, err)
            with contextlib.suppress(ConnectionError):
                await self.write_event(Error(text=str(err), code=err.code).event())
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            _LOGGER.info("Client %s went away: %s", self.peer, type(err).__name__)
        except Exception as err:  # one failed connection must never reach the others
            _LOGGER.exception("Connection from %s failed", self.peer)
            with contextlib.suppress(Exception):
                text = f"internal error: {type(err).__name__}"
                await self.write_event(
                    Error(text=text, code=ErrorCode.INTERNAL).event()
                )
        finally:
            with contextlib.suppress(Exception):
                await self.disconnect()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _serve_events(self) -> None:
        idle_s = self.limits.idle_timeout_s or None
        last_request = time.monotonic()
        while True:
            wait_s = (
                None if idle_s is None else last_request + idle_s - time.monotonic()
            )
            event = await read_event(self.reader, self.limits, wait_s)
            if event is None:
                return
            if Describe.is_type(event.type):
                await self.write_event(self.info.event())
            elif Ping.is_type(event.type):
                await self.write_event(Pong(text=Ping.from_event(event).text).event())
            else:
                last_request = time.monotonic()
                if not await self.handle_event(event):
                    return
            # Events already buffered are read without a pause: without this
            # a burst of thousands holds the loop from every other client.
            await asyncio.sleep(0)

    async def audio_of(
        self, event: Event, converter: AudioChunkConverter
    ) -> bytes | None:
        """An `audio-chunk`'s audio, converted; None (the client is told why)
        when it cannot be."""
        try:
            return converter.convert(checked_chunk(event)).audio
        except Exception as err:  # audioop: odd-length buffer, bad width...
            await self.write_error(
                f"audio chunk not usable: {err}", ErrorCode.BAD_AUDIO
            )
            return None

    async def write_error(self, text: str, code: ErrorCode) -> None:
        """Tell the client what was wrong with its request; the connection stays."""
        _LOGGER.info("Client %s: %s (%s)", self.peer, text, code)
        await self.write_event(Error(text=text, code=code).event())


def peer_of(writer: asyncio.StreamWriter) -> str:
    """The client's address (its host for TCP), or 'local'."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "local"


HandlerFactory = Callable[[asyncio.StreamReader, asyncio.StreamWriter], EventHandler]


class Server:
    """One listening socket (tcp://, unix://) or stdin/stdout (stdio://), whose
    connection tasks are tracked and stopped together."""

    def __init__(self, uri: str, handler_factory: HandlerFactory, limits: Limits):
        self.uri = uri
        self.limits = limits
        self.ended = asyncio.Event()  # a stdio:// connection has ended
        self._handler_factory = handler_factory
        self._server: asyncio.Server | None = None
        self._tasks: dict[asyncio.Task[None], str] = {}

    async def start(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme == "tcp":
            if parsed.hostname is None or parsed.port is None:
                raise ValueError(f"tcp URI needs a host and a port: {self.uri}")
            self._server = await asyncio.start_server(
                self._on_connect, parsed.hostname, parsed.port, limit=MAX_HEADER_BYTES
            )
        elif parsed.scheme == "unix":
            Path(parsed.path).unlink(missing_ok=True)
            self._server = await asyncio.start_unix_server(
                self._on_connect, parsed.path, limit=MAX_HEADER_BYTES
            )
        elif parsed.scheme == "stdio":
            await self._serve_stdio()
        else:
            raise ValueError(f"URI must be tcp://, unix:// or stdio://: {self.uri}")
        _LOGGER.info("Listening on %s", self.uri)

    async def _serve_stdio(self) -> None:
        """One connection: stdin and stdout (logs go to stderr)."""
        reader = await async_get_stdin()
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, sys.stdout
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
        task = asyncio.create_task(self._handler_factory(reader, writer).run())
        self._tasks[task] = "stdio"
        task.add_done_callback(self._tasks.pop)
        task.add_done_callback(lambda _: self.ended.set())

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = peer_of(writer)
        refusal = self._refusal(peer)
        if refusal is not None:
            task = asyncio.create_task(self._refuse(writer, refusal))
        else:
            task = asyncio.create_task(self._handler_factory(reader, writer).run())
        self._tasks[task] = peer
        task.add_done_callback(self._tasks.pop)

    def _refusal(self, peer: str) -> str | None:
        if len(self._tasks) >= self.limits.max_connections:
            return (
                f"server is at its limit of {self.limits.max_connections} connections"
            )
        per_client = self.limits.max_connections_per_client
        if peer != "local" and Counter(self._tasks.values())[peer] >= per_client:
            return f"{peer} already has {per_client} connections"
        return None

    async def _refuse(self, writer: asyncio.StreamWriter, text: str) -> None:
        _LOGGER.warning("Refused a connection: %s", text)
        with contextlib.suppress(ConnectionError):
            await async_write_event(
                Error(text=text, code=ErrorCode.BUSY).event(), writer
            )
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        parsed = urlparse(self.uri)
        if parsed.scheme == "unix":
            Path(parsed.path).unlink(missing_ok=True)


def runtime_gauges(servers: Sequence[Server]) -> str:
    """Prometheus gauges: open connections per server and the process's asyncio
    tasks (after a client goes away, both return to where they were)."""
    lines = [
        "# HELP rtvoice_open_connections Connections being served.",
        "# TYPE rtvoice_open_connections gauge",
    ]
    for server in sorted(servers, key=lambda s: s.uri):
        lines.append(
            f'rtvoice_open_connections{{uri="{server.uri}"}} {server.open_connections}'
        )
    lines += [
        "# HELP rtvoice_asyncio_tasks Asyncio tasks alive in the process.",
        "# TYPE rtvoice_asyncio_tasks gauge",
        f"rtvoice_asyncio_tasks {len(asyncio.all_tasks())}",
    ]
    return "\n".join(lines) + "\n"


class Part(Protocol):
    """Anything that runs for the life of the process: servers, HTTP, zeroconf."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_stopped(parts: Sequence[Part]) -> None:
    """Start the parts in order, wait for SIGINT/SIGTERM (or the end of a
    stdio:// connection), stop them in reverse."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started: list[Part] = []
    ends = [stop.wait()] + [p.ended.wait() for p in parts if isinstance(p, Server)]
    waiters = [asyncio.ensure_future(end) for end in ends]
    try:
        for part in parts:
            try:
                await part.start()
            except OSError as err:  # e.g. the port is taken: one line, no traceback
                raise SystemExit(f"Cannot start: {err}") from err
            started.append(part)
        _LOGGER.info("Ready")
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        _LOGGER.info("Stopping")
    finally:
        for waiter in waiters:
            waiter.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for part in reversed(started):
            await part.stop()
