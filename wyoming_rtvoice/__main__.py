"""`python -m wyoming_rtvoice <command> ...` and the `wyoming-rtvoice` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from . import __version__, asr, converse, handle, satellite, stack, tts, wake
from .api import HouseApi
from .asr.config import AsrConfig
from .config import ServerConfig, add_flags, from_flags, setup_logging
from .converse import ConverseConfig
from .handle.config import HandleConfig
from .house.store import HouseConfig
from .http import HttpApi
from .models import Build, Models, build
from .peers import trusted_peers
from .satellite.config import SatelliteConfig
from .service import Listener, Service, serve
from .stack import StackConfig
from .trace import Metrics
from .tts.config import TtsConfig
from .turn import TurnRule
from .wake.config import WakeConfig

Run = Callable[[argparse.Namespace, Build], Awaitable[None]]
Loaded = tuple[Service, Models]
T = TypeVar("T")


def _tts_arguments(parser: argparse.ArgumentParser) -> None:
    ServerConfig.add_arguments(parser, tts.DEFAULT_URI)
    add_flags(parser, TtsConfig)


async def _load_tts(args: argparse.Namespace, metrics: Metrics, build: Build) -> Loaded:
    config = from_flags(TtsConfig, args)
    models = await build(tts=config)
    return tts.service(config, _loaded(models.speaker), metrics), models


def _asr_arguments(parser: argparse.ArgumentParser) -> None:
    ServerConfig.add_arguments(parser, asr.DEFAULT_URI)
    add_flags(parser, AsrConfig)
    add_flags(parser, HouseConfig)
    add_flags(parser, TurnRule)


async def _load_asr(args: argparse.Namespace, metrics: Metrics, build: Build) -> Loaded:
    config = from_flags(AsrConfig, args)
    models = await build(
        asr=config,
        house=from_flags(HouseConfig, args),
        state_dir=ServerConfig.from_args(args).state_dir,
    )
    service = asr.service(
        config,
        _loaded(models.whisper),
        _loaded(models.house),
        from_flags(TurnRule, args),
        metrics,
    )
    return service, models


def _wake_arguments(parser: argparse.ArgumentParser) -> None:
    ServerConfig.add_arguments(parser, wake.DEFAULT_URI)
    add_flags(parser, WakeConfig)


async def _load_wake(
    args: argparse.Namespace, metrics: Metrics, build: Build
) -> Loaded:
    return wake.service(from_flags(WakeConfig, args), metrics), Models()


def _handle_arguments(parser: argparse.ArgumentParser) -> None:
    ServerConfig.add_arguments(parser, handle.DEFAULT_URI, stack.HTTP_URI)
    add_flags(parser, HandleConfig)
    add_flags(parser, HouseConfig)


async def _load_handle(
    args: argparse.Namespace, metrics: Metrics, build: Build
) -> Loaded:
    config = from_flags(HandleConfig, args)
    server = ServerConfig.from_args(args)
    models = await build(
        house=from_flags(HouseConfig, args), handle=config, state_dir=server.state_dir
    )
    peers = trusted_peers(server)
    return handle.service(config, _loaded(models.responder), metrics, peers), models


LOADERS = {
    "tts": _load_tts,
    "asr": _load_asr,
    "wake": _load_wake,
    "handle": _load_handle,
}


async def load_service(
    args: argparse.Namespace, metrics: Metrics, build: Build = build
) -> Loaded:
    """One service with its models, as its command serves it (tests and
    measurements run services in process this way)."""
    return await LOADERS[args.service](args, metrics, build)


async def _serve_one(args: argparse.Namespace, build: Build) -> None:
    """Load a service and serve it alone until stopped."""
    server = ServerConfig.from_args(args)
    metrics = Metrics()
    models = Models()
    try:
        service, models = await load_service(args, metrics, build)
        house = models.house
        routes = [HouseApi(house).add_routes] if house is not None else []
        listener = Listener(server.uri, server.zeroconf)
        await serve(server, [(service, listener)], metrics, routes)
    finally:
        await models.close()


def _loaded(model: T | None) -> T:
    if model is None:
        raise RuntimeError("model not loaded")
    return model


async def _run_satellite(args: argparse.Namespace, build: Build) -> None:
    await satellite.run(ServerConfig.from_args(args), from_flags(SatelliteConfig, args))


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    ServerConfig.add_arguments(parser, None, stack.HTTP_URI)
    add_flags(parser, StackConfig)


def _satellite_arguments(parser: argparse.ArgumentParser) -> None:
    # Home Assistant keeps its connection to a satellite open for hours
    # with nothing but pings: no idle timeout here by default.
    ServerConfig.add_arguments(parser, satellite.DEFAULT_URI, idle_timeout_s=0)
    add_flags(parser, SatelliteConfig)


def _converse_arguments(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, ConverseConfig)


async def _run_stack(args: argparse.Namespace, build: Build) -> None:
    config = from_flags(StackConfig, args)
    await stack.run(replace(config, server=ServerConfig.from_args(args)), build)


async def _run_converse(args: argparse.Namespace, build: Build) -> None:
    await converse.run(from_flags(ConverseConfig, args), build)


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Run]] = {
    "tts": (
        "Text to speech (Piper), streaming audio while text arrives",
        _tts_arguments,
        _serve_one,
    ),
    "asr": (
        "Speech to text (faster-whisper), done when the user stops talking",
        _asr_arguments,
        _serve_one,
    ),
    "wake": (
        "Wake word detection (microWakeWord or openWakeWord), streaming",
        _wake_arguments,
        _serve_one,
    ),
    "handle": (
        "Device commands by intent matching, anything else by a streaming LLM",
        _handle_arguments,
        _serve_one,
    ),
    "satellite": (
        "Microphone and speaker for Home Assistant (or the pipeline directly)",
        _satellite_arguments,
        _run_satellite,
    ),
    "stack": (
        "All four services in one process, each on its default port",
        _stack_arguments,
        _run_stack,
    ),
    "converse": (
        "One turn from a WAV file through the pipeline, with its waterfall",
        _converse_arguments,
        _run_converse,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wyoming-rtvoice", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None, build: Build = build) -> None:
    """Run a command; `build` loads its models (tests lend theirs)."""
    args = build_parser().parse_args(argv)
    if args.service == "converse":
        converse.setup_logging(from_flags(ConverseConfig, args))
    else:
        server = ServerConfig.from_args(args)
        setup_logging(server)
        if server.http_uri:  # refuse a bad HTTP API before loading models
            try:
                HttpApi(server.http_uri, {}, Metrics(), (), server.http_token())
            except ValueError as err:
                raise SystemExit(str(err)) from err
    try:
        asyncio.run(args.run(args, build))
    except KeyboardInterrupt:  # a second Ctrl+C during shutdown
        sys.exit(130)


if __name__ == "__main__":
    main()
