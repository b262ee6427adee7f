"""`python -m wyoming_rtvoice <service> ...` and the `wyoming-rtvoice` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from functools import partial
from types import ModuleType

from . import __version__, converse, stack
from .cli import http_api, serve, setup_logging
from .trace import Metrics

# Each name is a subpackage with `add_arguments(parser)` and
# `async load(args, metrics) -> Service`; `stack` runs them all in one process.
SERVICES = {
    "tts": "Text to speech (Piper), streaming audio while text arrives",
    "asr": "Speech to text (faster-whisper), done when the user stops talking",
    "wake": "Wake word detection (microWakeWord or openWakeWord), streaming",
    "handle": "Device commands by intent matching, anything else by a streaming LLM",
    "satellite": "Microphone and speaker for Home Assistant (or the pipeline directly)",
}
STACK_HELP = "All four services in one process, each on its default port"
CONVERSE_HELP = "One turn from a WAV file through the pipeline, with its waterfall"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wyoming-rtvoice", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for name, help_text in SERVICES.items():
        module = importlib.import_module(f"wyoming_rtvoice.{name}")
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=partial(run_service, module))
    sub = commands.add_parser("stack", help=STACK_HELP, description=STACK_HELP)
    stack.add_arguments(sub)
    sub.set_defaults(run=stack.run)
    sub = commands.add_parser("converse", help=CONVERSE_HELP, description=CONVERSE_HELP)
    converse.add_arguments(sub)
    sub.set_defaults(run=converse.run)
    return parser


async def run_service(module: ModuleType, args: argparse.Namespace) -> None:
    metrics = Metrics()
    service = await module.load(args, metrics)
    await serve(args, [(args, service)], metrics)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    if getattr(args, "http_uri", None):  # refuse a bad HTTP API before loading models
        http_api(args, args.service, Metrics())
    try:
        asyncio.run(args.run(args))
    except KeyboardInterrupt:  # a second Ctrl+C during shutdown
        sys.exit(130)


if __name__ == "__main__":
    main()
