"""Command-line pieces every service shares: common flags, logging, serving."""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlparse

from .discovery import Advertisement, default_name
from .http import HttpApi
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
        "--max-payload-bytes",
        type=int,
        default=Limits.max_payload_bytes,
        help="Largest event payload a client may send (%(default)s)",
    )
    group = parser.add_argument_group("logging")
    group.add_argument("--debug", action="store_true", help="Log DEBUG messages")
    group.add_argument(
        "--log-format", default=logging.BASIC_FORMAT, help="Format for log messages"
    )


def setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format=args.log_format
    )


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(max_payload_bytes=args.max_payload_bytes)


def http_api(
    args: argparse.Namespace, service: str, metrics: Metrics
) -> HttpApi | None:
    return HttpApi(args.http_uri, service, metrics) if args.http_uri else None


async def serve(
    args: argparse.Namespace,
    service: str,
    handler_factory: HandlerFactory,
    http: HttpApi | None = None,
) -> None:
    """Serve one service until SIGINT/SIGTERM: socket, optional HTTP, zeroconf."""
    server = Server(args.uri, handler_factory)
    parts: list[Part] = [server]
    if http is not None:
        parts.append(http)
    if args.zeroconf is not None:
        parsed = urlparse(args.uri)
        if parsed.scheme != "tcp" or parsed.hostname is None or parsed.port is None:
            raise SystemExit("--zeroconf needs a tcp://HOST:PORT --uri")
        name = args.zeroconf or default_name(service)
        parts.append(Advertisement(name, parsed.hostname, parsed.port))
    await run_until_stopped(parts)
