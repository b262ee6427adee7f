"""Serving loaded services: each on its socket (and zeroconf advert), one
HTTP API for all of them, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from aiohttp import web

from . import __version__
from .config import ServerConfig, stack_id
from .discovery import RTVOICE_TYPE, Advertisement
from .http import HttpApi
from .peers import Peers
from .reader import Limits
from .server import EventHandler
from .server import HandlerFactory as ServerHandlerFactory
from .server import Part, Server, run_until_stopped
from .trace import Metrics

HandlerFactory = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter, Limits], EventHandler
]


@dataclass
class Service:
    """A loaded service: its name, how to serve one connection, and the
    clients it trusts (the process's for every server and the HTTP API)."""

    name: str
    handler_factory: HandlerFactory
    peers: Peers | None = None


@dataclass(frozen=True)
class Listener:
    """Where a service listens, and its zeroconf name (None: not advertised)."""

    uri: str
    zeroconf: str | None = None
    limits: Limits | None = None  # the server's own limits if None


async def serve(
    config: ServerConfig,
    services: Sequence[tuple[Service, Listener]],
    metrics: Metrics,
    routes: Sequence[Callable[[web.Application], None]] = (),
    advertise_api: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM (or the end of a stdio:// connection)."""
    # The models are loaded: keep their objects out of every later garbage
    # collection (a full one over them stalled single requests by ~0.3 s).
    gc.collect()
    gc.freeze()
    ident = stack_id(config)
    peers = next((s.peers for s, _ in services if s.peers), None)
    peers = peers or Peers(config.allow_peer)
    servers: list[Server] = []
    parts: list[Part] = []
    for service, listener in services:
        limits = listener.limits or config.limits
        factory = _with(service.handler_factory, limits)
        server = Server(listener.uri, factory, limits, peers)
        servers.append(server)
        parts.append(server)
        if listener.zeroconf is not None:
            parts.append(_advertisement(listener, service, ident))
    ports = {
        service.name: urlparse(listener.uri).port for service, listener in services
    }
    if config.http_uri:
        info = {
            "id": ident,
            "boot_id": secrets.token_hex(8),
            "service": "+".join(service.name for service, _ in services),
            "version": __version__,
            "ports": ports,
        }
        token = config.http_token()
        http = HttpApi(
            config.http_uri, info, metrics, servers, token, config.limits, peers
        )
        for add_routes in routes:
            add_routes(http.app)
        parts.append(http)
        if advertise_api and config.zeroconf is not None:
            name = config.zeroconf or f"rtvoice-stack-{ident}"
            properties = {n: str(p) for n, p in ports.items() if p is not None}
            properties |= {"id": ident, "version": __version__}
            parts.append(
                Advertisement(name, http.host, http.port, RTVOICE_TYPE, properties)
            )
    await run_until_stopped(parts)


def _with(factory: HandlerFactory, limits: Limits) -> ServerHandlerFactory:
    return lambda reader, writer: factory(reader, writer, limits)


def _advertisement(listener: Listener, service: Service, ident: str) -> Advertisement:
    parsed = urlparse(listener.uri)
    if parsed.scheme != "tcp" or parsed.hostname is None or parsed.port is None:
        raise SystemExit("--zeroconf needs a tcp://HOST:PORT --uri")
    name = listener.zeroconf or f"rtvoice-{service.name}-{ident}"
    return Advertisement(name, parsed.hostname, parsed.port)
