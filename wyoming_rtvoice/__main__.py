"""`python -m wyoming_rtvoice <service> ...` and the `wyoming-rtvoice` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from . import __version__
from .cli import setup_logging

# Each name is a subpackage with `add_arguments(parser)` and `async run(args)`.
SERVICES = {
    "tts": "Text to speech (Piper), streaming audio while text arrives",
    "asr": "Speech to text (faster-whisper), done when the user stops talking",
    "wake": "Wake word detection (microWakeWord or openWakeWord), streaming",
    "handle": "Device commands by intent matching, anything else by a streaming LLM",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wyoming-rtvoice", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for name, help_text in SERVICES.items():
        module = importlib.import_module(f"wyoming_rtvoice.{name}")
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    try:
        asyncio.run(args.run(args))
    except KeyboardInterrupt:  # a second Ctrl+C during shutdown
        sys.exit(130)


if __name__ == "__main__":
    main()
