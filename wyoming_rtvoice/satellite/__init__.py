"""Satellite: microphone and speaker in a room, wake word on the device.

Home Assistant's `wyoming` integration adopts it (`run-satellite`, ...), or,
with `--pipeline-uri`, it talks straight to the stack's pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

from wyoming.info import Attribution, Info, Satellite

from .. import __version__
from .. import wake as wake_service
from ..config import PIPELINE_TOKEN_ENV, ServerConfig, read_token
from ..peers import Peers
from ..service import Listener, Service, serve
from ..trace import Metrics
from ..wake.config import WakeConfig
from ..wake.engines import find_model
from .config import SatelliteConfig
from .detect import LocalWake, RemoteWake, Wake
from .devices import Speaker, command_mic, wav_mic
from .direct import run_direct
from .handler import SatelliteEventHandler
from .room import Room, RoomSettings

DEFAULT_URI = "tcp://0.0.0.0:10700"
PEER_FILE = "satellite-peer"  # in --state-dir: the first address served


def describe(config: SatelliteConfig, wake_word: str) -> Info:
    """A satellite; its wake word too, so Home Assistant knows the phrase
    (it loads no wake platform for a satellite)."""
    try:
        model = find_model(config.wake_engine, wake_word)
        wake = wake_service.describe([model]).wake
    except ValueError:  # a wake service's model we do not have here
        wake = []
    return Info(
        satellite=Satellite(
            name=config.name,
            description="wyoming-rtvoice satellite",
            attribution=Attribution(
                name="wyoming-rtvoice",
                url="https://github.com/OHF-Voice/wyoming",
            ),
            installed=True,
            version=__version__,
            area=config.area,
            has_vad=False,
            active_wake_words=[wake_word],
            max_active_wake_words=1,
            supports_trigger=False,
        ),
        wake=wake,
    )


def wake_factory(
    config: SatelliteConfig,
) -> tuple[str, Callable[[], Awaitable[Wake]]]:
    """(wake word name, coroutine function opening a detector per listening)."""
    if config.wake_uri:
        name = Path(config.wake_model).stem
        return name, functools.partial(RemoteWake.open, config.wake_uri, name)
    try:
        model = find_model(config.wake_engine, config.wake_model)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    # The wake service's measured threshold and second opinion, here too.
    model = WakeConfig(engine=config.wake_engine).tuned(model)
    return model.name, functools.partial(LocalWake.open, model)


async def run(server: ServerConfig, config: SatelliteConfig) -> None:
    metrics = Metrics()
    wake_word, open_wake = wake_factory(config)
    if not config.wake_uri:
        await (await open_wake()).close()  # fail at start-up, not at the first turn
    mic = (
        functools.partial(command_mic, config.mic_command)
        if config.mic_command
        else functools.partial(wav_mic, str(config.mic_wav))
    )
    speaker = Speaker(
        config.snd_rate,
        config.snd_width,
        config.snd_channels,
        config.snd_command,
        config.snd_wav,
    )
    settings = RoomSettings(
        mic, open_wake, config.barge_in, config.vad_threshold, config.max_turn_seconds
    )
    room = Room(settings, speaker, metrics)
    token = read_token(config.pipeline_token_file, PIPELINE_TOKEN_ENV)
    direct = None
    if config.pipeline_uri:
        direct = asyncio.create_task(run_direct(room, config.pipeline_uri, token))
    info = describe(config, wake_word)
    peers = Peers(server.allow_peer, (), server.state_dir / PEER_FILE)
    service = Service(
        "satellite",
        lambda reader, writer, limits: SatelliteEventHandler(
            reader, writer, info, limits, room, peers, direct is not None
        ),
        peers,
    )
    try:
        await serve(server, [(service, Listener(server.uri, server.zeroconf))], metrics)
    finally:
        if direct is not None:
            direct.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await direct
        await room.stop_listening()
        speaker.close()
