"""Shared server runtime: a hardened event reader, the handler base and start-up.

The `wyoming` library's reader trusts what the client declares; here every
declared length is checked against a cap before anything is read, and every
connection ends in one log line, a closed writer and no stray exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlparse

from wyoming.audio import AudioChunkConverter
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler

from .audio import checked_chunk

_LOGGER = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The client sent something that is not a valid Wyoming event."""

    def __init__(self, text: str, code: str = "bad-event") -> None:
        super().__init__(text)
        self.code = code


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one client may declare or hold."""

    max_data_bytes: int = 64 * 1024
    max_payload_bytes: int = 1024 * 1024
    max_connections: int = 64
    idle_timeout_s: float = 300.0  # no event for this long closes the connection
    frame_timeout_s: float = 10.0  # a started event must be complete by then


def _declared_length(header: dict[str, Any], key: str, cap: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{key} must be an integer, got {value!r}")
    if value < 0:
        raise ProtocolError(f"{key} must not be negative, got {value}")
    if value > cap:
        raise ProtocolError(
            f"{key} {value} is over the limit of {cap} bytes", "too-big"
        )
    return value


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as err:  # also UnicodeDecodeError
        raise ProtocolError(f"{what} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


async def read_event(reader: asyncio.StreamReader, limits: Limits) -> Event | None:
    """Read one event; None at a clean end of stream.

    Raises ProtocolError for malformed, oversized or stalled input and
    asyncio.IncompleteReadError when the client goes away mid-event.
    """
    try:
        async with asyncio.timeout(limits.idle_timeout_s or None):
            line = await reader.readline()
    except TimeoutError as err:
        raise ProtocolError(
            f"no event for {limits.idle_timeout_s:.0f} s", "idle-timeout"
        ) from err
    except (asyncio.LimitOverrunError, ValueError) as err:
        raise ProtocolError(
            f"header line is over the limit of {MAX_HEADER_BYTES} bytes", "too-big"
        ) from err
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise asyncio.IncompleteReadError(line, None)

    header = _json_object(line, "header")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ProtocolError("header has no event type")
    data_length = _declared_length(header, "data_length", limits.max_data_bytes)
    payload_length = _declared_length(
        header, "payload_length", limits.max_payload_bytes
    )
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("data must be a JSON object")
    try:
        async with asyncio.timeout(limits.frame_timeout_s):
            if data_length:
                extra = await reader.readexactly(data_length)
                data = {**data, **_json_object(extra, "data")}
            payload = (
                await reader.readexactly(payload_length) if payload_length else None
            )
    except TimeoutError as err:
        raise ProtocolError(
            f"event incomplete after {limits.frame_timeout_s:.0f} s", "timeout"
        ) from err
    return Event(type=event_type, data=data, payload=payload)


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
        self.peer = str(writer.get_extra_info("peername") or "local")

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
                await self.write_event(Error(text=text, code="internal").event())
        finally:
            await self.disconnect()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _serve_events(self) -> None:
        while True:
            event = await read_event(self.reader, self.limits)
            if event is None:
                return
            if Describe.is_type(event.type):
                await self.write_event(self.info.event())
            elif Ping.is_type(event.type):
                await self.write_event(Pong(text=Ping.from_event(event).text).event())
            elif not await self.handle_event(event):
                return

    async def audio_of(
        self, event: Event, converter: AudioChunkConverter
    ) -> bytes | None:
        """An `audio-chunk`'s audio, converted; None (the client is told why)
        when it cannot be."""
        try:
            return converter.convert(checked_chunk(event)).audio
        except Exception as err:  # audioop: odd-length buffer, bad width...
            await self.write_error(f"audio chunk not usable: {err}", "bad-audio")
            return None

    async def write_error(self, text: str, code: str) -> None:
        """Tell the client what was wrong with its request; the connection stays."""
        _LOGGER.info("Client %s: %s (%s)", self.peer, text, code)
        await self.write_event(Error(text=text, code=code).event())


HandlerFactory = Callable[[asyncio.StreamReader, asyncio.StreamWriter], EventHandler]


class Server:
    """One listening socket whose connection tasks are tracked and stopped together."""

    running: ClassVar[set[Server]] = set()  # for the gauges on /metrics

    def __init__(
        self, uri: str, handler_factory: HandlerFactory, max_connections: int = 64
    ) -> None:
        self.uri = uri
        self._handler_factory = handler_factory
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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
        else:
            raise ValueError(f"Only tcp:// and unix:// URIs are supported: {self.uri}")
        Server.running.add(self)
        _LOGGER.info("Listening on %s", self.uri)

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(self._tasks) >= self._max_connections:
            task = asyncio.create_task(self._refuse(writer))
        else:
            task = asyncio.create_task(self._handler_factory(reader, writer).run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        _LOGGER.warning("Refused a connection: %s open", self._max_connections)
        text = f"server is at its limit of {self._max_connections} connections"
        with contextlib.suppress(ConnectionError):
            await async_write_event(Error(text=text, code="busy").event(), writer)
        writer.close()

    async def stop(self) -> None:
        if self._server is None:
            return
        Server.running.discard(self)
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        parsed = urlparse(self.uri)
        if parsed.scheme == "unix":
            Path(parsed.path).unlink(missing_ok=True)


def runtime_gauges() -> str:
    """Prometheus gauges: open connections per server and the process's asyncio
    tasks (after a client goes away, both return to where they were)."""
    lines = [
        "# HELP rtvoice_open_connections Connections being served.",
        "# TYPE rtvoice_open_connections gauge",
    ]
    for server in sorted(Server.running, key=lambda s: s.uri):
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


async def run_until_stopped(parts: list[Part]) -> None:
    """Start the parts in order, wait for SIGINT/SIGTERM, stop them in reverse."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started: list[Part] = []
    try:
        for part in parts:
            try:
                await part.start()
            except OSError as err:  # e.g. the port is taken: one line, no traceback
                raise SystemExit(f"Cannot start: {err}") from err
            started.append(part)
        _LOGGER.info("Ready")
        await stop.wait()
        _LOGGER.info("Stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        for part in reversed(started):
            await part.stop()
