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
from ipaddress import ip_network
from pathlib import Path

from wyoming.info import Attribution, Info, Satellite

from .. import __version__
from .. import wake as wake_service
from ..cli import Service, add_common_arguments, limits_from, read_secret
from ..trace import Metrics
from ..wake.engines import ENGINES, find_model
from .detect import LocalWake, RemoteWake, Wake
from .devices import Speaker, command_mic, wav_mic
from .direct import run_direct
from .handler import Network, Peers, SatelliteEventHandler
from .room import MAX_TURN_S, Room, RoomSettings

BARGE_IN = ("vad", "wake", "off")
PIPELINE_TOKEN_ENV = "RTVOICE_PIPELINE_TOKEN"


def network(value: str) -> Network:
    try:
        return ip_network(value, strict=False)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "tcp://0.0.0.0:10700")
    group = parser.add_argument_group("satellite")
    group.add_argument("--name", default="rtvoice satellite", help="(%(default)s)")
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
        "--allow-peer",
        action="append",
        type=network,
        default=[],
        metavar="ADDRESS[/BITS]",
        help="Accept run-satellite only from this address or network "
        "(repeatable; default: the first address that sends it)",
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
        default="okay_nabu",
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
        "microphone that cancels the speaker's echo), the wake word, or nothing "
        "(%(default)s)",
    )
    group.add_argument(
        "--vad-threshold",
        type=float,
        default=0.5,
        help="Silero probability that counts as speech (%(default)s)",
    )


def describe(args: argparse.Namespace, wake_word: str) -> Info:
    """A satellite; its wake word too, so Home Assistant knows the phrase
    (it loads no wake platform for a satellite)."""
    try:
        wake = wake_service.describe([find_model(args.wake_engine, wake_word)]).wake
    except ValueError:  # a wake service's model we do not have here
        wake = []
    return Info(
        satellite=Satellite(
            name=args.name,
            description="wyoming-rtvoice satellite",
            attribution=Attribution(
                name="wyoming-rtvoice",
                url="https://github.com/OHF-Voice/wyoming",
            ),
            installed=True,
            version=__version__,
            area=args.area,
            has_vad=False,
            active_wake_words=[wake_word],
            max_active_wake_words=1,
            supports_trigger=False,
        ),
        wake=wake,
    )


def wake_factory(
    args: argparse.Namespace,
) -> tuple[str, Callable[[], Awaitable[Wake]]]:
    """(wake word name, coroutine function opening a detector per listening)."""
    if args.wake_uri:
        name = Path(args.wake_model).stem
        return name, functools.partial(RemoteWake.open, args.wake_uri, name)
    try:
        model = find_model(args.wake_engine, args.wake_model)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    return model.name, functools.partial(LocalWake.open, model)


async def load(args: argparse.Namespace, metrics: Metrics) -> Service:
    wake_word, open_wake = wake_factory(args)
    if not args.wake_uri:
        await (await open_wake()).close()  # fail at start-up, not at the first turn
    mic = (
        functools.partial(command_mic, args.mic_command)
        if args.mic_command
        else functools.partial(wav_mic, args.mic_wav)
    )
    speaker = Speaker(
        args.snd_rate, args.snd_width, args.snd_channels, args.snd_command, args.snd_wav
    )
    room = Room(
        RoomSettings(
            mic, open_wake, args.barge_in, args.vad_threshold, args.max_turn_seconds
        ),
        speaker,
        metrics,
    )
    token = read_secret(
        args.pipeline_token_file, PIPELINE_TOKEN_ENV, "--pipeline-token-file"
    )
    direct = None
    if args.pipeline_uri:
        direct = asyncio.create_task(run_direct(room, args.pipeline_uri, token))
    info = describe(args, wake_word)
    limits = limits_from(args)
    peers = Peers(args.allow_peer)

    async def close() -> None:
        if direct is not None:
            direct.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await direct
        await room.stop_listening()
        speaker.close()

    return Service(
        "satellite",
        lambda reader, writer: SatelliteEventHandler(
            reader, writer, info, limits, room, peers, direct is not None
        ),
        close=close,
    )
