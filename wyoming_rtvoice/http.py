"""The HTTP side of a service: /health, /metrics (Prometheus text), /api/turns,
/api/stats (the same figures as JSON) and /api/info (id, version, ports);
where a service keeps the house, its routes come from `api.py`.

Under the Wyoming servers' limits: connections in all and per address
(`Slots`, a quarter kept for trusted peers), a request's head within the
frame timeout of connecting, its body within BODY_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web import StreamResponse

from .config import HTTP_TOKEN_ENV, is_loopback
from .peers import Guesses, Peers
from .reader import Limits
from .server import Server, Slots, peer_of, runtime_gauges
from .trace import Metrics

_LOGGER = logging.getLogger(__name__)

OPEN_PATHS = {"/health"}  # for health checks; it tells nothing about the house
MAX_BODY_BYTES = 1024 * 1024  # over it: 413, before the rest is read
BODY_TIMEOUT_S = 30.0  # over it: 408
PUSH_PATH = "/api/entities"  # who PUTs the house is Home Assistant: trusted
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
)


async def read_json(request: web.Request, what: str) -> Any:
    """The request's JSON body; 400 (`body must be WHAT`) when it is not JSON,
    nests too deeply for the parser or is not UTF-8, 413 over MAX_BODY_BYTES,
    408 when it has not all come after BODY_TIMEOUT_S."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            body = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="body too slow") from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # ValueError: also not UTF-8
        reason = "nested too deeply" if isinstance(err, RecursionError) else err
        raise web.HTTPBadRequest(text=f"body must be {what}: {reason}") from None


class _Connection(asyncio.Protocol):
    """One HTTP connection, counted in the API's slots, handed to aiohttp's
    handler; closed when no request has come within the frame timeout."""

    def __init__(self, api: HttpApi, handler: asyncio.Protocol) -> None:
        self.api = api
        self.handler = handler
        self.peer = "local"
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None  # once accepted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.peer = peer_of(transport)
        refusal = self.api.slots.refusal(self.peer)
        if refusal is not None:
            _LOGGER.warning("Refused an HTTP connection: %s", refusal)
            transport.write(BUSY)
            transport.close()
            return
        self.api.slots.take(self.peer)
        self.transport = transport
        self.api.connections[transport] = self
        self.timer = asyncio.get_running_loop().call_later(
            self.api.limits.frame_timeout_s, self._too_slow, transport
        )
        self.handler.connection_made(transport)

    def _too_slow(self, transport: asyncio.Transport) -> None:
        _LOGGER.info("HTTP client %s sent no request in time: closed", self.peer)
        transport.close()

    def answered(self) -> None:
        """A request reached the app: no timer from now on (aiohttp closes
        idle keep-alive connections)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # refused: aiohttp never saw it
        self.answered()
        self.api.slots.free(self.peer)
        del self.api.connections[self.transport]
        self.handler.connection_lost(exc)


class HttpApi:
    """An aiohttp app on `http://HOST:PORT`; services add their own routes.

    Beyond loopback every path but /health needs `Authorization: Bearer TOKEN`;
    on loopback the Host header must name loopback (a web page's script,
    through DNS rebinding, cannot reach it).
    """

    def __init__(
        self,
        uri: str,
        info: dict[str, Any],
        metrics: Metrics,
        servers: Sequence[Server] = (),
        token: str | None = None,
        limits: Limits = Limits(),
        peers: Peers | None = None,
    ) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "http" or parsed.hostname is None or parsed.port is None:
            raise ValueError(f"HTTP URI must be http://HOST:PORT, got {uri}")
        if token is None and not is_loopback(parsed.hostname):
            raise ValueError(
                f"The HTTP API on {parsed.hostname} needs a bearer token: "
                f"set {HTTP_TOKEN_ENV} or --http-token-file"
            )
        self.host, self.port = parsed.hostname, parsed.port
        self.info = info  # id, boot_id, service, version, ports
        self.metrics = metrics
        self._servers = servers
        self._token = token
        self.limits = limits
        self.peers = peers
        self.slots = Slots(limits, peers)
        self.connections: dict[asyncio.Transport, _Connection] = {}
        self.guesses = Guesses()
        self.app = web.Application(
            client_max_size=MAX_BODY_BYTES, middlewares=[self._authorize]
        )
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/api/turns", self._turns)
        self.app.router.add_get("/api/stats", self._stats)
        self.app.router.add_get("/api/info", self._info)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self, server()),
            self.host,
            self.port,
            reuse_address=True,
        )
        _LOGGER.info("HTTP API on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _authorize(
        self, request: web.Request, handler: Handler
    ) -> StreamResponse:
        connection = self.connections.get(request.transport)  # type: ignore[arg-type]
        if connection is not None:
            connection.answered()
        if self._token is None:
            if not _names_loopback(request.host):
                raise web.HTTPMisdirectedRequest(text="Host must be loopback")
        elif request.path not in OPEN_PATHS:
            await self._check_token(request)
        response = await handler(request)
        if request.path == PUSH_PATH and request.method == "PUT":
            if self.peers is not None and await self.peers.remember(request.remote):
                _LOGGER.info("Trusting %s, which pushed the house", request.remote)
        return response

    async def _check_token(self, request: web.Request) -> None:
        """401 without the token; an address that guessed wrong waits (429)."""
        remote = request.remote or "local"
        wait_s = self.guesses.wait_s(remote)
        if wait_s > 0:
            raise web.HTTPTooManyRequests(
                text=f"wrong token: try again in {wait_s:.0f} s",
                headers={"Retry-After": str(int(wait_s) + 1)},
            )
        # Header bytes that are not UTF-8 arrive as lone surrogates: kept
        # as such, they never equal a token (and never fail to encode).
        offered = request.headers.get("Authorization", "")
        if not hmac.compare_digest(
            offered.encode("utf-8", "surrogatepass"),
            f"Bearer {self._token}".encode(),
        ):
            if offered:  # no header at all is not a guess
                self.guesses.wrong(remote, offered)
            raise web.HTTPUnauthorized(text="bearer token required")
        self.guesses.right(remote)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": self.info["service"]})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self.metrics.prometheus() + runtime_gauges(self._servers),
            content_type="text/plain",
            charset="utf-8",
        )

    async def _turns(self, request: web.Request) -> web.Response:
        return web.json_response([trace.as_dict() for trace in self.metrics.traces])

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            self.metrics.stats() | {"boot_id": self.info.get("boot_id")}
        )

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info)


def _names_loopback(host: str | None) -> bool:
    """A Host header naming this machine's loopback (with or without a port)."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("["):
        name = host[1 : host.index("]")] if "]" in host else host
    return is_loopback(name.lower())
