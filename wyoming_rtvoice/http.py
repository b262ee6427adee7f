"""The HTTP side of a service: /health, /metrics (Prometheus text), /api/turns,
/api/stats (the same figures as JSON) and /api/info (id, version, ports)."""

from __future__ import annotations

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
from .server import Server, runtime_gauges
from .trace import Metrics

_LOGGER = logging.getLogger(__name__)

OPEN_PATHS = {"/health"}  # for health checks; it tells nothing about the house
MAX_BODY_BYTES = 1024 * 1024  # over it: 413, before the rest is read


async def read_json(request: web.Request, what: str) -> Any:
    """The request's JSON body; 400 (`body must be WHAT`) when it is not JSON,
    nests too deeply for the parser or is not UTF-8, 413 over MAX_BODY_BYTES."""
    body = await request.read()
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # ValueError: also not UTF-8
        reason = "nested too deeply" if isinstance(err, RecursionError) else err
        raise web.HTTPBadRequest(text=f"body must be {what}: {reason}") from None


class HttpApi:
    """An aiohttp app on `http://HOST:PORT`; services add their own routes.

    Beyond loopback every path but /health needs `Authorization: Bearer TOKEN`.
    """

    def __init__(
        self,
        uri: str,
        info: dict[str, Any],
        metrics: Metrics,
        servers: Sequence[Server] = (),
        token: str | None = None,
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
        self.app = web.Application(
            client_max_size=MAX_BODY_BYTES, middlewares=[self._authorize]
        )
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/api/turns", self._turns)
        self.app.router.add_get("/api/stats", self._stats)
        self.app.router.add_get("/api/info", self._info)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        _LOGGER.info("HTTP API on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _authorize(
        self, request: web.Request, handler: Handler
    ) -> StreamResponse:
        if self._token is not None and request.path not in OPEN_PATHS:
            # Header bytes that are not UTF-8 arrive as lone surrogates: kept
            # as such, they never equal a token (and never fail to encode).
            offered = request.headers.get("Authorization", "")
            if not hmac.compare_digest(
                offered.encode("utf-8", "surrogatepass"),
                f"Bearer {self._token}".encode(),
            ):
                raise web.HTTPUnauthorized(text="bearer token required")
        return await handler(request)

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
