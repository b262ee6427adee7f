"""The house's HTTP routes, where a service keeps the house (asr, handle,
the stack): GET/PUT /api/entities, GET /api/states, GET/PUT /api/names.

Apart from http.py so that the services without a house (tts, wake, the
satellite) do not import it."""

from __future__ import annotations

import asyncio

import voluptuous as vol
from aiohttp import web

from .house.model import House, describe_error
from .house.store import NAMES_SCHEMA, HouseStore
from .http import read_json


class HouseApi:
    """The house's routes: GET/PUT /api/entities (the house), GET /api/states
    (the entities' states), GET/PUT /api/names (extra names)."""

    def __init__(self, house: HouseStore) -> None:
        self.house = house

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/entities", self._get_house)
        app.router.add_put("/api/entities", self._put_house)
        app.router.add_get("/api/states", self._get_states)
        app.router.add_get("/api/names", self._get_names)
        app.router.add_put("/api/names", self._put_names)

    async def _get_house(self, request: web.Request) -> web.Response:
        return web.json_response(self.house.snapshot.house.as_json())

    async def _put_house(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request, "a JSON house")
            # Off the loop: a house near the body cap takes ~0.5 s to validate.
            house = await asyncio.to_thread(House.from_json, body)
        except vol.Invalid as err:
            raise web.HTTPBadRequest(text=describe_error(err))
        snapshot = await self.house.replace(house=house)
        return web.json_response(snapshot.house.as_json())

    async def _get_states(self, request: web.Request) -> web.Response:
        """What the LLM is told the entities are doing."""
        return web.json_response(
            [
                {"domain": domain, "name": name, **vars(state)}
                for (domain, name), state in self.house.states.items()
            ]
        )

    async def _get_names(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.house.snapshot.names))

    async def _put_names(self, request: web.Request) -> web.Response:
        try:
            names = NAMES_SCHEMA(await read_json(request, "a JSON list of names"))
        except vol.Invalid:
            raise web.HTTPBadRequest(text="body must be a JSON list of names")
        snapshot = await self.house.replace(names=[name for name in names if name])
        return web.json_response(list(snapshot.names))
