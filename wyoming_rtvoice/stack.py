"""`python -m wyoming_rtvoice stack`: the four services in one process and event loop.

Each keeps its own port and zeroconf advertisement, so Home Assistant finds
and chains them as usual; they share the loaded models, the house, one HTTP
API (/health, /metrics, /api/turns, /api/stats, /api/info, /api/entities,
/api/states, /api/names) and one set of metrics. With --zeroconf the HTTP API is
advertised too, as `_rtvoice._tcp.local.` with the Wyoming ports in its
properties, for the Home Assistant integration `rtvoice`.

When the ASR service sends a transcript that is a device command, the stack
starts the rest of the turn at once: the confirmation is synthesised into
the TTS cache and the match is kept, so Home Assistant's next two requests
(the conversation agent's, then the confirmation's speech) find both ready.

The pipeline endpoint runs the whole turn in process on the same engines,
for satellites that talk to the stack directly. It can operate the house
(with --hass-url), so it listens on loopback unless told otherwise, and
beyond loopback only with a shared token.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlparse

from wyoming.info import Info

from . import asr, handle, tts, wake
from .api import HouseApi
from .asr.config import AsrConfig
from .config import (
    PIPELINE_TOKEN_ENV,
    ServerConfig,
    flag,
    is_loopback,
    nested,
    read_token,
)
from .handle.config import HandleConfig
from .hass import HassConfig
from .house.store import HouseConfig, HouseStore
from .models import Build, Models, build
from .peers import Guesses, host_networks, trusted_peers
from .pipeline import Engines, Pipeline
from .pipeline_handler import PipelineEventHandler
from .service import Listener, Service, serve
from .trace import Budgets, Metrics
from .tts.config import TtsConfig
from .tts.speaker import Speaker
from .turn import TurnRule
from .wake.config import WakeConfig

_LOGGER = logging.getLogger(__name__)

PORTS = {"tts": 10200, "asr": 10300, "wake": 10400, "handle": 10500}
PIPELINE_PORT = 10600
HTTP_URI = "http://127.0.0.1:10580"


@dataclass(frozen=True)
class StackConfig:
    FLAGS: ClassVar[str] = "stack"

    server: ServerConfig = field(  # its flags: ServerConfig.add_arguments
        default_factory=lambda: ServerConfig(http_uri=HTTP_URI)
    )
    host: str = field(
        default="0.0.0.0", metadata=flag("Address of the services (%(default)s)")
    )
    ports: dict[str, int] = field(
        default_factory=lambda: dict(PORTS),
        metadata=flag("{key} port (%(default)s)", name="{key}-port"),
    )
    pipeline_host: str = field(
        default="127.0.0.1",
        metadata=flag(
            "Address of the pipeline endpoint (%(default)s); beyond loopback "
            "it needs --pipeline-token-file"
        ),
    )
    pipeline_port: int = field(
        default=PIPELINE_PORT,
        metadata=flag("Pipeline endpoint for satellites in direct mode (%(default)s)"),
    )
    pipeline_token_file: str | None = field(
        default=None,
        metadata=flag(
            "File holding the token a satellite must send in run-pipeline "
            f"(or set {PIPELINE_TOKEN_ENV})"
        ),
    )
    reply_ahead: bool = field(
        default=True,
        metadata=flag(
            "Do not synthesise a device command's confirmation when the ASR "
            "service sends its transcript (saves CPU when Home Assistant "
            "speaks with another TTS)",
            name="no-reply-ahead",
        ),
    )
    tts: TtsConfig = field(default_factory=TtsConfig, metadata=nested("tts-"))
    asr: AsrConfig = field(default_factory=AsrConfig, metadata=nested("asr-"))
    wake: WakeConfig = field(default_factory=WakeConfig, metadata=nested("wake-"))
    handle: HandleConfig = field(default_factory=HandleConfig, metadata=nested())
    house: HouseConfig = field(default_factory=HouseConfig, metadata=nested())
    rule: TurnRule = field(default_factory=TurnRule, metadata=nested())
    budgets: Budgets = field(default_factory=Budgets, metadata=nested())
    hass: HassConfig = field(default_factory=HassConfig, metadata=nested())

    def pipeline_token(self) -> str | None:
        """The endpoint's token; refuses an endpoint beyond loopback without one."""
        token = read_token(self.pipeline_token_file, PIPELINE_TOKEN_ENV)
        if token is None and not is_loopback(self.pipeline_host):
            raise SystemExit(
                f"The pipeline endpoint on {self.pipeline_host} can "
                + ("operate the house" if self.hass.url else "spend your LLM key")
                + f": give it a token (--pipeline-token-file or {PIPELINE_TOKEN_ENV})"
                " or keep it on loopback"
            )
        return token


class ReplyAhead:
    """Told each transcript the ASR service sends: a device command's
    confirmation goes into the speaker's cache (and its match stays in the
    house's recent matches) before Home Assistant asks for either."""

    def __init__(self, house: HouseStore, speaker: Speaker) -> None:
        self.house = house
        self.speaker = speaker
        self._tasks: set[asyncio.Task[None]] = set()  # outlive the connection

    def __call__(self, transcript: str) -> None:
        task = asyncio.create_task(self._prepare(transcript))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prepare(self, transcript: str) -> None:
        try:
            match = await self.house.match(transcript)
            if match is not None:
                await self.speaker.prepare(match.response)
        except Exception as err:  # the TTS request will say so, if it comes
            _LOGGER.warning("Reply ahead failed: %s", type(err).__name__)


def _listener(config: StackConfig, name: str) -> Listener:
    prefix = config.server.zeroconf
    zeroconf = None if prefix is None else (f"{prefix}-{name}" if prefix else "")
    return Listener(f"tcp://{config.host}:{config.ports[name]}", zeroconf)


def _pipeline_service(engines: Engines, token: str | None) -> Service:
    guesses = Guesses()
    return Service(
        "pipeline",
        lambda reader, writer, limits: PipelineEventHandler(
            reader, writer, Info(), limits, lambda: Pipeline(engines), token, guesses
        ),
    )


async def run(config: StackConfig, build: Build = build) -> None:
    token = config.pipeline_token()
    hass_host = urlparse(config.hass.url or "").hostname
    peers = trusted_peers(
        config.server, await host_networks(hass_host) if hass_host else []
    )
    metrics = Metrics()
    models = Models()
    hass = config.hass.client()
    try:
        models = await build(
            tts=config.tts,
            asr=config.asr,
            house=config.house,
            handle=config.handle,
            state_dir=config.server.state_dir,
        )
        assert models.speaker and models.whisper and models.house and models.responder
        engines = Engines(
            models.whisper,
            models.speaker,
            models.responder,
            hass,
            config.rule,
            config.budgets,
            metrics,
        )
        await engines.warm()
        if hass is not None:
            hass.watch_states(models.house, config.hass.states_every_s)
        services = [
            (
                tts.service(config.tts, models.speaker, metrics),
                _listener(config, "tts"),
            ),
            (
                asr.service(
                    config.asr,
                    models.whisper,
                    models.house,
                    config.rule,
                    metrics,
                    ahead=(
                        ReplyAhead(models.house, models.speaker)
                        if config.reply_ahead
                        else None
                    ),
                ),
                _listener(config, "asr"),
            ),
            (wake.service(config.wake, metrics), _listener(config, "wake")),
            (
                handle.service(config.handle, models.responder, metrics, peers),
                _listener(config, "handle"),
            ),
            (
                _pipeline_service(engines, token),
                Listener(f"tcp://{config.pipeline_host}:{config.pipeline_port}"),
            ),
        ]
        await serve(
            config.server,
            services,
            metrics,
            routes=[HouseApi(models.house).add_routes],
            advertise_api=True,
        )
    finally:
        await models.close()
        if hass is not None:
            await hass.close()
