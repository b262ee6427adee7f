"""`python -m wyoming_rtvoice stack`: the four services in one process and event loop.

Each keeps its own port and zeroconf advertisement, so Home Assistant finds
and chains them as usual; they share one HTTP API (/health, /metrics,
/api/turns, /api/stats, /api/info, /api/entities, /api/names) and one set of
metrics. With --zeroconf the HTTP API is advertised too, as
`_rtvoice._tcp.local.` with the Wyoming ports in its properties, for the
Home Assistant integration `rtvoice`. The pipeline endpoint
(--pipeline-port) runs the whole turn in process on the same models, for
satellites that talk to the stack directly.
"""

from __future__ import annotations

import argparse
import importlib
from urllib.parse import urlparse

from wyoming.info import Info

from . import __version__
from .cli import Service, add_shared_arguments, limits_from, serve
from .discovery import RTVOICE_TYPE, Advertisement, default_name, machine_id
from .hass import HomeAssistant, add_hass_arguments
from .pipeline import Pipeline
from .pipeline_handler import PipelineEventHandler
from .server import Part
from .trace import Metrics, add_budget_arguments, budgets_from

PORTS = {"tts": 10200, "asr": 10300, "wake": 10400, "handle": 10500}
PIPELINE_PORT = 10600
SHARED = ("max_payload_bytes", "max_connections", "idle_timeout", "debug", "log_format")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--host", default="0.0.0.0", help="Address to listen on (%(default)s)"
    )
    for name, port in PORTS.items():
        group.add_argument(
            f"--{name}-port", type=int, default=port, help=f"{name} port (%(default)s)"
        )
    group.add_argument(
        "--pipeline-port",
        type=int,
        default=PIPELINE_PORT,
        help="Pipeline endpoint for satellites in direct mode (%(default)s)",
    )
    add_shared_arguments(parser, group, "http://127.0.0.1:10580")
    group = parser.add_argument_group("services (see each service's --help)")
    group.add_argument("--voice", help="tts --voice")
    group.add_argument("--asr-model", help="asr --model")
    group.add_argument("--wake-engine", help="wake --engine")
    group.add_argument(
        "--wake-model", action="append", help="wake --model (repeatable)"
    )
    group.add_argument("--entities", help="handle --entities")
    group.add_argument("--llm-model", help="handle --llm-model")
    group.add_argument("--anthropic-base-url", help="handle --anthropic-base-url")
    add_hass_arguments(parser)
    add_budget_arguments(parser)


def service_args(args: argparse.Namespace, name: str) -> argparse.Namespace:
    """The namespace the service would get alone, with the stack's choices."""
    options = {
        "tts": [("--voice", args.voice)],
        "asr": [("--model", args.asr_model)],
        "wake": [("--engine", args.wake_engine)]
        + [("--model", model) for model in args.wake_model or []],
        "handle": [
            ("--entities", args.entities),
            ("--llm-model", args.llm_model),
            ("--anthropic-base-url", args.anthropic_base_url),
        ],
    }[name]
    argv = ["--uri", f"tcp://{args.host}:{getattr(args, f'{name}_port')}"]
    argv += [item for flag, value in options if value for item in (flag, value)]
    parser = argparse.ArgumentParser(prog=f"stack {name}")
    importlib.import_module(f"wyoming_rtvoice.{name}").add_arguments(parser)
    own = parser.parse_args(argv)
    for key in SHARED:
        setattr(own, key, getattr(args, key))
    if args.zeroconf is not None:
        own.zeroconf = f"{args.zeroconf}-{name}" if args.zeroconf else ""
    return own


async def pipeline_service(
    args: argparse.Namespace, services: list[Service], metrics: Metrics
) -> tuple[argparse.Namespace, Service]:
    """The pipeline endpoint, on the models the four services loaded."""
    models = {name: model for s in services for name, model in s.models.items()}
    hass = HomeAssistant.from_args(args)
    budgets = budgets_from(args)
    phrases: dict[str, bytes] = {}

    def new_pipeline() -> Pipeline:
        return Pipeline(
            models["whisper"],
            models["voice"],
            models["matcher"],
            models["llm"],
            hass,
            budgets,
            phrases=phrases,
            metrics=metrics,
        )

    await new_pipeline().warm()  # renders the phrases every pipeline shares
    own = argparse.Namespace(**vars(args))
    own.uri = f"tcp://{args.host}:{args.pipeline_port}"
    own.zeroconf = None  # not a service Home Assistant could use on its own
    limits = limits_from(args)

    async def close() -> None:
        if hass is not None:
            await hass.close()

    service = Service(
        "pipeline",
        lambda reader, writer: PipelineEventHandler(
            reader, writer, Info(), limits, new_pipeline
        ),
        close=close,
    )
    return own, service


async def run(args: argparse.Namespace) -> None:
    metrics = Metrics()
    services: list[tuple[argparse.Namespace, Service]] = []
    for name in PORTS:
        own = service_args(args, name)
        module = importlib.import_module(f"wyoming_rtvoice.{name}")
        services.append((own, await module.load(own, metrics)))
    loaded = [service for _, service in services]
    services.append(await pipeline_service(args, loaded, metrics))
    await serve(args, services, metrics, http_advertisement(args))


def http_advertisement(args: argparse.Namespace) -> list[Part]:
    """With --zeroconf, the HTTP API as `_rtvoice._tcp.local.`."""
    http = urlparse(args.http_uri or "")
    if args.zeroconf is None or http.hostname is None or http.port is None:
        return []
    properties = {name: str(getattr(args, f"{name}_port")) for name in PORTS}
    properties |= {
        "pipeline": str(args.pipeline_port),
        "id": machine_id(),
        "version": __version__,
    }
    name = args.zeroconf or default_name("stack")
    return [Advertisement(name, http.hostname, http.port, RTVOICE_TYPE, properties)]
