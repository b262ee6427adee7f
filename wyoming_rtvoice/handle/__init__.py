"""Handle service: early intent matching for device commands, streaming LLM fallback."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from wyoming.info import (
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
)

from .. import __version__
from ..config import option
from ..house.safety import CONFIRM_DOMAINS
from ..peers import Peers
from ..service import Service
from ..trace import Metrics
from .llm import LlmSettings
from .responder import AckPolicy, Responder

DEFAULT_URI = "tcp://0.0.0.0:10500"
ATTRIBUTION = Attribution(
    name="wyoming-rtvoice", url="https://github.com/OHF-Voice/intents"
)
API_KEY_ENV = "ANTHROPIC_API_KEY"


@dataclass(frozen=True)
class HandleConfig:
    llm_model: str = LlmSettings.model
    anthropic_base_url: str | None = None
    policy: AckPolicy = field(default_factory=AckPolicy)
    max_text_chars: int = 2000
    confirm_domains: frozenset[str] = CONFIRM_DOMAINS
    # A household asks a few questions a minute; a flood is someone else.
    llm_per_minute: int = 30
    llm_per_client_per_minute: int = 20

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        group = parser.add_argument_group("handle")
        group.add_argument(
            f"--{prefix}llm-model",
            default=LlmSettings.model,
            help=f"Claude model (%(default)s; the key in {API_KEY_ENV})",
        )
        group.add_argument(
            f"--{prefix}anthropic-base-url",
            help="Messages API base URL (proxies, tests)",
        )
        group.add_argument(
            f"--{prefix}max-text-chars",
            type=int,
            default=HandleConfig.max_text_chars,
            help="Longest transcript one request may carry (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}confirm-domains",
            nargs="*",
            default=[],
            metavar="DOMAIN",
            help="Domains never operated from an LLM answer without a spoken yes, "
            "besides locks, alarm panels, sirens, valves, doors, gates, garage doors "
            "and odd thermostat set-points",
        )
        group.add_argument(
            f"--{prefix}llm-per-minute",
            type=int,
            default=HandleConfig.llm_per_minute,
            help="LLM requests in any minute, from all clients together; more "
            "get a short spoken answer (%(default)s; 0: no limit)",
        )
        group.add_argument(
            f"--{prefix}llm-per-client-per-minute",
            type=int,
            default=HandleConfig.llm_per_client_per_minute,
            help="LLM requests in any minute from one client address "
            "(%(default)s; 0: no limit)",
        )
        AckPolicy.add_arguments(parser, prefix)

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> HandleConfig:
        return cls(
            llm_model=option(args, prefix, "llm-model"),
            anthropic_base_url=option(args, prefix, "anthropic-base-url"),
            policy=AckPolicy.from_args(args, prefix),
            max_text_chars=option(args, prefix, "max-text-chars"),
            confirm_domains=CONFIRM_DOMAINS
            | frozenset(option(args, prefix, "confirm-domains")),
            llm_per_minute=option(args, prefix, "llm-per-minute"),
            llm_per_client_per_minute=option(args, prefix, "llm-per-client-per-minute"),
        )


def describe(language: str, llm_model: str) -> Info:
    return Info(
        intent=[
            IntentProgram(
                name="rtvoice-intent",
                description="Home Assistant intents, matched in milliseconds",
                attribution=ATTRIBUTION,
                installed=True,
                version=__version__,
                models=[
                    IntentModel(
                        name="home-assistant-intents",
                        description="hassil with the house's names",
                        attribution=ATTRIBUTION,
                        installed=True,
                        version=None,
                        languages=[language],
                    )
                ],
            )
        ],
        handle=[
            HandleProgram(
                name="rtvoice-handle",
                description=f"device commands, else {llm_model} (streaming)",
                attribution=ATTRIBUTION,
                installed=True,
                version=__version__,
                supports_handled_streaming=True,
                supports_home_control=True,
                models=[
                    HandleModel(
                        name=llm_model,
                        description="LLM fallback for anything but device commands",
                        attribution=ATTRIBUTION,
                        installed=True,
                        version=None,
                        languages=[language],
                    )
                ],
            )
        ],
    )


def service(
    config: HandleConfig,
    responder: Responder,
    metrics: Metrics,
    peers: Peers | None = None,
) -> Service:
    """`peers`: who hears the house's state and reaches the LLM (loopback
    if None)."""
    from .handler import HandleEventHandler

    peers = peers or Peers()
    language = responder.house.snapshot.matcher.language
    info = describe(language, config.llm_model)
    return Service(
        "handle",
        lambda reader, writer, limits: HandleEventHandler(
            reader, writer, info, limits, responder, config, metrics, peers
        ),
        peers,
    )
