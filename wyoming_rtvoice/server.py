"""Shared server runtime: the handler base and listening servers.

Every connection is served by one task that reads with the hardened reader
(`reader.py`), answers `describe` and `ping` itself, and ends in one log
line, a closed writer and no stray exception, whatever the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
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

if TYPE_CHECKING:
    from .peers import Peers

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
        # Set by a subclass: the connection is closed at this time.monotonic()
        # (saying `late`) unless the handler clears it.
        self.deadline: float | None = None
        self.late = ""

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
            ends = [t for t in (idle_s and last_request + idle_s, self.deadline) if t]
            wait_s = min(ends) - time.monotonic() if ends else None
            try:
                event = await read_event(self.reader, self.limits, wait_s)
            except ProtocolError as err:
                if self.deadline is None or time.monotonic() < self.deadline:
                    raise
                raise ProtocolError(self.late, ErrorCode.IDLE_TIMEOUT) from err
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


def peer_of(connection: asyncio.StreamWriter | asyncio.BaseTransport) -> str:
    """The client's address (its host for TCP), or 'local'."""
    peer = connection.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "local"


HandlerFactory = Callable[[asyncio.StreamReader, asyncio.StreamWriter], EventHandler]


class Slots:
    """Connections held by address, within the limits. The last quarter of
    `max_connections` is kept for the trusted peers: addresses that are not
    trusted cannot fill the server (Home Assistant still gets in)."""

    def __init__(self, limits: Limits, peers: Peers | None = None) -> None:
        self.limits = limits
        self.peers = peers
        self.held: Counter[str] = Counter()
        self.total = 0

    def refusal(self, peer: str) -> str | None:
        """Why `peer` ("local": a unix socket) cannot have one more; None: it can."""
        limits = self.limits
        if self.total >= limits.max_connections:
            return f"server is at its limit of {limits.max_connections} connections"
        if peer == "local":
            return None
        if self.held[peer] >= limits.max_connections_per_client:
            return f"{peer} already has {limits.max_connections_per_client} connections"
        kept = limits.max_connections // 4
        if (
            self.peers is not None
            and self.total >= limits.max_connections - kept
            and not self.peers.allows(peer)
        ):
            return f"the last {kept} connections are kept for trusted clients"
        return None

    def take(self, peer: str) -> None:
        self.held[peer] += 1
        self.total += 1

    def free(self, peer: str) -> None:
        self.held[peer] -= 1
        if self.held[peer] <= 0:
            del self.held[peer]
        self.total -= 1


class Server:
    """One listening socket (tcp://, unix://) or stdin/stdout (stdio://), whose
    connection tasks are tracked and stopped together."""

    def __init__(
        self,
        uri: str,
        handler_factory: HandlerFactory,
        limits: Limits,
        peers: Peers | None = None,
    ):
        self.uri = uri
        self.limits = limits
        self.ended = asyncio.Event()  # a stdio:// connection has ended
        self._handler_factory = handler_factory
        self._server: asyncio.Server | None = None
        self._tasks: dict[asyncio.Task[None], str] = {}
        self.slots = Slots(limits, peers)

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
        refusal = self.slots.refusal(peer)
        if refusal is not None:  # not counted: it is over at once
            task = asyncio.create_task(self._refuse(writer, refusal))
            task.add_done_callback(self._tasks.pop)
        else:
            task = asyncio.create_task(self._handler_factory(reader, writer).run())
            self.slots.take(peer)
            task.add_done_callback(self._done)
        self._tasks[task] = peer

    def _done(self, task: asyncio.Task[None]) -> None:
        self.slots.free(self._tasks.pop(task))

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


def raise_descriptor_limit() -> None:
    """The soft limit on open files up to the hard one (systemd's soft
    default, 1024, is a few hundred half-open connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class OutOfDescriptors:
    """The loop's exception handler: asyncio reports every retried accept()
    that fails for lack of file descriptors with a traceback (megabytes a
    minute under a flood); this says it in one line, at most once a minute."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self) -> None:
        self.last = -60.0
        self.missed = 0

    def __call__(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]
    ) -> None:
        error = context.get("exception")
        if context.get("message") != self.MESSAGE or not isinstance(error, OSError):
            loop.default_exception_handler(context)
            return
        self.missed += 1
        if time.monotonic() - self.last >= 60:
            self.last = time.monotonic()
            _LOGGER.warning(
                "Cannot accept connections: %s (%d times in the last minute; "
                "open files limit %d)",
                errno.errorcode.get(error.errno or 0, error),
                self.missed,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )
            self.missed = 0


async def run_until_stopped(parts: Sequence[Part]) -> None:
    """Start the parts in order, wait for SIGINT/SIGTERM (or the end of a
    stdio:// connection), stop them in reverse."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    raise_descriptor_limit()
    loop.set_exception_handler(OutOfDescriptors())
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
