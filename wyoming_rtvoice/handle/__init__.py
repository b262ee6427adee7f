"""Handle service: early intent matching for device commands, streaming LLM fallback."""

from __future__ import annotations

from wyoming.info import (
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
)

from .. import __version__
from ..peers import Peers
from ..service import Service
from ..trace import Metrics
from .config import HandleConfig
from .handler import HandleEventHandler
from .responder import Responder

DEFAULT_URI = "tcp://0.0.0.0:10500"
ATTRIBUTION = Attribution(
    name="wyoming-rtvoice", url="https://github.com/OHF-Voice/intents"
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
