"""Handle service: early intent matching for device commands, streaming LLM fallback."""

from __future__ import annotations

import argparse
import asyncio
import os

import voluptuous as vol
from aiohttp import web
from wyoming.info import (
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
)

from .. import __version__
from ..cli import Service, add_common_arguments, limits_from
from ..http import read_json
from ..trace import Metrics
from .handler import HandleEventHandler, HandleSettings
from .house import House, describe_error
from .llm import Llm, LlmSettings
from .matcher import Matcher

ATTRIBUTION = Attribution(
    name="wyoming-rtvoice", url="https://github.com/OHF-Voice/intents"
)
API_KEY_ENV = "ANTHROPIC_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "tcp://0.0.0.0:10500", "http://127.0.0.1:10580")
    group = parser.add_argument_group("handle")
    group.add_argument(
        "--language", default="en", help="Intents language (%(default)s)"
    )
    group.add_argument(
        "--entities",
        help="House JSON: entities (name, domain, area, aliases), areas, floors; "
        "replaceable with PUT /api/entities",
    )
    group.add_argument(
        "--llm-model", default=LlmSettings.model, help="Claude model (%(default)s)"
    )
    group.add_argument(
        "--anthropic-base-url", help="Messages API base URL (proxies, tests)"
    )
    group.add_argument(
        "--ack-after-ms",
        type=float,
        default=HandleSettings.ack_after_s * 1000,
        help="Stream an acknowledgement when the first token is later (%(default)s)",
    )
    group.add_argument(
        "--llm-timeout-ms",
        type=float,
        default=HandleSettings.first_token_timeout_s * 1000,
        help="Give up on a first token later than this (%(default)s)",
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


def load_house(path: str | None) -> House:
    if path is None:
        return House()
    try:
        return House.from_file(path)
    except vol.Invalid as err:
        raise SystemExit(f"{path}: {describe_error(err)}") from err
    except (OSError, ValueError) as err:
        raise SystemExit(f"{path}: {err}") from err


def add_house_routes(app: web.Application, matcher: Matcher) -> None:
    async def get_house(request: web.Request) -> web.Response:
        return web.json_response(matcher.house.as_json())

    async def put_house(request: web.Request) -> web.Response:
        data = await read_json(request, "a JSON house")
        try:
            house = House.from_json(data)
        except vol.Invalid as err:
            raise web.HTTPBadRequest(text=describe_error(err))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, matcher.update, house)
        return web.json_response(house.as_json())

    app.router.add_get("/api/entities", get_house)
    app.router.add_put("/api/entities", put_house)


async def load(args: argparse.Namespace, metrics: Metrics) -> Service:
    house = load_house(args.entities)
    loop = asyncio.get_running_loop()
    try:
        matcher = await loop.run_in_executor(None, Matcher, args.language, house)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    llm = Llm(
        os.environ.get(API_KEY_ENV),
        args.anthropic_base_url,
        LlmSettings(model=args.llm_model, timeout_s=args.llm_timeout_ms / 1000),
    )
    if llm.available:
        await llm.warm()
    settings = HandleSettings(
        ack_after_s=args.ack_after_ms / 1000,
        first_token_timeout_s=args.llm_timeout_ms / 1000,
    )
    info = describe(args.language, args.llm_model)
    limits = limits_from(args)
    return Service(
        "handle",
        lambda reader, writer: HandleEventHandler(
            reader, writer, info, limits, matcher, llm, settings, metrics
        ),
        add_routes=lambda app: add_house_routes(app, matcher),
        close=llm.close,
        models={"matcher": matcher, "llm": llm},
    )
