"""The HTTP side of a service: /health, /metrics (Prometheus text), /api/turns."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from aiohttp import web

from .trace import Metrics

_LOGGER = logging.getLogger(__name__)


class HttpApi:
    """An aiohttp app on `http://HOST:PORT`; services add their own routes."""

    def __init__(self, uri: str, service: str, metrics: Metrics) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "http" or parsed.hostname is None or parsed.port is None:
            raise ValueError(f"HTTP URI must be http://HOST:PORT, got {uri}")
        self.host, self.port = parsed.hostname, parsed.port
        self.service = service
        self.metrics = metrics
        self.app = web.Application(client_max_size=1024 * 1024)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/api/turns", self._turns)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        _LOGGER.info("HTTP API on http://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": self.service})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self.metrics.prometheus(), content_type="text/plain", charset="utf-8"
        )

    async def _turns(self, request: web.Request) -> web.Response:
        return web.json_response([trace.as_dict() for trace in self.metrics.traces])
