"""Command-line pieces every service shares: common flags, logging, serving."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from .discovery import Advertisement, default_name
from .http import TOKEN_ENV, HttpApi
from .server import HandlerFactory, Limits, Part, Server, run_until_stopped
from .trace import Metrics


def add_common_arguments(
    parser: argparse.ArgumentParser,
    default_uri: str,
    default_http_uri: str | None = None,
) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--uri",
        default=default_uri,
        help=f"tcp://HOST:PORT or unix://PATH ({default_uri})",
    )
    add_shared_arguments(parser, group, default_http_uri)


def add_shared_arguments(
    parser: argparse.ArgumentParser,
    group: argparse._ArgumentGroup,
    default_http_uri: str | None,
) -> None:
    """Flags a single service and the whole stack have alike."""
    group.add_argument(
        "--zeroconf",
        nargs="?",
        const="",
        metavar="NAME",
        help="Advertise over zeroconf as _wyoming._tcp.local. (tcp only)",
    )
    group.add_argument(
        "--http-uri",
        default=default_http_uri,
        help="Serve /health, /metrics and /api/* on http://HOST:PORT "
        f"({default_http_uri or 'off'})",
    )
    group.add_argument(
        "--http-token-file",
        help="File holding the bearer token for the HTTP API (or set "
        f"{TOKEN_ENV}); required when it listens beyond loopback",
    )
    group.add_argument(
        "--max-payload-bytes",
        type=int,
        default=Limits.max_payload_bytes,
        help="Largest event payload a client may send (%(default)s)",
    )
    group.add_argument(
        "--max-connections",
        type=int,
        default=Limits.max_connections,
        help="Connections served at once; more are refused (%(default)s)",
    )
    group.add_argument(
        "--idle-timeout",
        type=float,
        default=Limits.idle_timeout_s,
        help="Seconds without an event before a connection is closed; "
        "0 never (%(default)s)",
    )
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--debug",
        action="store_true",
        help="Log DEBUG messages, which include what users said and full LLM "
        "requests (transcripts, conversation history); INFO logs neither",
    )
    group.add_argument(
        "--log-format", default=logging.BASIC_FORMAT, help="Format for log messages"
    )


def setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format=args.log_format
    )


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(
        max_payload_bytes=args.max_payload_bytes,
        max_connections=args.max_connections,
        idle_timeout_s=args.idle_timeout,
    )


def read_secret(path: str | None, env: str, flag: str) -> str | None:
    """A secret from the file at `path` or else the environment variable `env`
    (never a flag's value: the command line is visible to every user); an
    empty one is none (it would let anyone in)."""
    if path:
        try:
            secret = Path(path).read_text(encoding="utf-8")
        except (OSError, ValueError) as err:
            raise SystemExit(f"{flag}: {err}") from err
        return secret.strip() or None
    return os.environ.get(env, "").strip() or None


def http_token(args: argparse.Namespace) -> str | None:
    """The HTTP API's bearer token."""
    return read_secret(args.http_token_file, TOKEN_ENV, "--http-token-file")


def http_api(
    args: argparse.Namespace, service: str, metrics: Metrics
) -> HttpApi | None:
    if not args.http_uri:
        return None
    try:
        return HttpApi(args.http_uri, service, metrics, http_token(args))
    except ValueError as err:
        raise SystemExit(str(err)) from err


@dataclass
class Service:
    """A loaded service: what serving it, alone or in the stack, needs."""

    name: str
    handler_factory: HandlerFactory
    add_routes: Callable[[web.Application], None] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    # Loaded models by name ("whisper", "voice", ...), for the stack's pipeline.
    models: dict[str, Any] = field(default_factory=dict)


def service_parts(args: argparse.Namespace, service: Service) -> list[Part]:
    """Its listening socket and, with --zeroconf, its advertisement."""
    parts: list[Part] = [
        Server(args.uri, service.handler_factory, args.max_connections)
    ]
    if args.zeroconf is not None:
        parsed = urlparse(args.uri)
        if parsed.scheme != "tcp" or parsed.hostname is None or parsed.port is None:
            raise SystemExit("--zeroconf needs a tcp://HOST:PORT --uri")
        name = args.zeroconf or default_name(service.name)
        parts.append(Advertisement(name, parsed.hostname, parsed.port))
    return parts


async def serve(
    args: argparse.Namespace,
    services: list[tuple[argparse.Namespace, Service]],
    metrics: Metrics,
    extra: Sequence[Part] = (),
) -> None:
    """Serve until SIGINT/SIGTERM: each service's socket and zeroconf, one HTTP
    API, and any `extra` parts."""
    parts = [
        part
        for service_args, service in services
        for part in service_parts(service_args, service)
    ]
    parts += extra
    http = http_api(args, "+".join(service.name for _, service in services), metrics)
    if http is not None:
        http.ports = {
            service.name: urlparse(service_args.uri).port
            for service_args, service in services
        }
        for _, service in services:
            if service.add_routes is not None:
                service.add_routes(http.app)
        parts.append(http)
    try:
        await run_until_stopped(parts)
    finally:
        for _, service in services:
            if service.close is not None:
                await service.close()
