"""Satellite: microphone and speaker in a room, wake word on the device.

Home Assistant's `wyoming` integration adopts it (`run-satellite`, ...), or,
with `--pipeline-uri`, it talks straight to the stack's pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from wyoming.info import Attribution, Info, Satellite

from .. import __version__
from .. import wake as wake_service
from ..config import PIPELINE_TOKEN_ENV, ServerConfig, read_token
from ..peers import Peers
from ..service import Listener, Service, serve
from ..trace import Metrics
from ..wake.engines import ENGINES, find_model
from .detect import LocalWake, RemoteWake, Wake
from .devices import Speaker, command_mic, wav_mic
from .direct import run_direct
from .handler import SatelliteEventHandler
from .room import MAX_TURN_S, Room, RoomSettings

BARGE_IN = ("vad", "wake", "off")
PEER_FILE = "satellite-peer"  # in --state-dir: the first address served


@dataclass(frozen=True)
class SatelliteConfig:
    mic_command: str | None = None
    mic_wav: str | None = None
    name: str = "rtvoice satellite"
    area: str | None = None
    pipeline_uri: str | None = None
    pipeline_token_file: str | None = None
    max_turn_seconds: float = MAX_TURN_S
    snd_command: str | None = None
    snd_wav: str | None = None
    snd_rate: int = 22050
    snd_width: int = 2
    snd_channels: int = 1
    wake_model: str = "okay_nabu"
    wake_engine: str = "micro"
    wake_uri: str | None = None
    barge_in: str = "vad"
    vad_threshold: float = 0.5

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        # Home Assistant keeps its connection to a satellite open for hours
        # with nothing but pings: no idle timeout here by default.
        ServerConfig.add_arguments(parser, "tcp://0.0.0.0:10700", idle_timeout_s=0)
        group = parser.add_argument_group("satellite")
        group.add_argument("--name", default=SatelliteConfig.name, help="(%(default)s)")
        group.add_argument("--area", help="Area Home Assistant puts the satellite in")
        group.add_argument(
            "--pipeline-uri",
            help="Direct mode: talk to the stack's pipeline at tcp://HOST:PORT "
            "instead of waiting for Home Assistant",
        )
        group.add_argument(
            "--pipeline-token-file",
            help="Direct mode: file holding the secret the stack's pipeline "
            f"endpoint asks for (or set {PIPELINE_TOKEN_ENV})",
        )
        group.add_argument(
            "--max-turn-seconds",
            type=float,
            default=MAX_TURN_S,
            help="Longest the microphone streams for one turn (%(default)s)",
        )
        group = parser.add_argument_group("microphone (16 kHz 16-bit mono)")
        mic = group.add_mutually_exclusive_group(required=True)
        mic.add_argument(
            "--mic-command", help="e.g. 'arecord -r 16000 -c 1 -f S16_LE -t raw'"
        )
        mic.add_argument(
            "--mic-wav",
            help="A WAV file played at real-time pace each time listening starts, "
            "then silence (for tests)",
        )
        group = parser.add_argument_group("speaker")
        snd = group.add_mutually_exclusive_group()
        snd.add_argument(
            "--snd-command", help="e.g. 'aplay -r 22050 -c 1 -f S16_LE -t raw'"
        )
        snd.add_argument("--snd-wav", help="Write what is played to a WAV file")
        group.add_argument("--snd-rate", type=int, default=22050, help="(%(default)s)")
        group.add_argument("--snd-width", type=int, default=2, help="(%(default)s)")
        group.add_argument("--snd-channels", type=int, default=1, help="(%(default)s)")
        group = parser.add_argument_group("wake word and barge-in")
        group.add_argument(
            "--wake-model",
            default=SatelliteConfig.wake_model,
            help="Built-in name or path of the wake word model (%(default)s)",
        )
        group.add_argument(
            "--wake-engine", choices=ENGINES, default="micro", help="(%(default)s)"
        )
        group.add_argument(
            "--wake-uri",
            help="Use a wake word service at tcp://HOST:PORT instead of in-process",
        )
        group.add_argument(
            "--barge-in",
            choices=BARGE_IN,
            default="vad",
            help="What stops a reply (Home Assistant mode): speech (vad; needs a "
            "microphone that cancels the speaker's echo), the wake word, or "
            "nothing (%(default)s)",
        )
        group.add_argument(
            "--vad-threshold",
            type=float,
            default=0.5,
            help="Silero probability that counts as speech (%(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SatelliteConfig:
        return cls(
            mic_command=args.mic_command,
            mic_wav=args.mic_wav,
            name=args.name,
            area=args.area,
            pipeline_uri=args.pipeline_uri,
            pipeline_token_file=args.pipeline_token_file,
            max_turn_seconds=args.max_turn_seconds,
            snd_command=args.snd_command,
            snd_wav=args.snd_wav,
            snd_rate=args.snd_rate,
            snd_width=args.snd_width,
            snd_channels=args.snd_channels,
            wake_model=args.wake_model,
            wake_engine=args.wake_engine,
            wake_uri=args.wake_uri,
            barge_in=args.barge_in,
            vad_threshold=args.vad_threshold,
        )


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
    model = wake_service.WakeConfig(engine=config.wake_engine).tuned(model)
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
