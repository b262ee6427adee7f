"""Device commands executed by Home Assistant's HTTP intent API, and the
house's states read from its REST API for the LLM.

One aiohttp session for the life of the process, so every command after the
first reuses its connection. The token comes from the environment or a file,
never from the command line, and is never logged.

States are fetched on a timer and when someone starts speaking (the answer
then knows the house as it was when the question began), never on a
command's path; the JSON is parsed off the event loop and only the house's
entities are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from aiohttp import ClientError, ClientSession, ClientTimeout

from .config import HASS_TOKEN_ENV, is_loopback, read_secret
from .house.matcher import Match
from .house.model import EntityState, States, state_key

if TYPE_CHECKING:
    from .house.store import HouseStore

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class HassConfig:
    url: str | None = None
    token_file: str | None = None
    states_every_s: float = 5.0

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("Home Assistant")
        group.add_argument(
            "--hass-url",
            help="Execute device commands through Home Assistant's "
            f"/api/intent/handle (token from {HASS_TOKEN_ENV} or --hass-token-file)",
        )
        group.add_argument(
            "--hass-token-file", help="File holding a long-lived access token"
        )
        group.add_argument(
            "--hass-states-every",
            type=float,
            default=HassConfig.states_every_s,
            metavar="SECONDS",
            help="Read the house's states from Home Assistant this often, and when "
            "speech starts, for the LLM (%(default)s; 0: never)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HassConfig:
        return cls(
            url=args.hass_url,
            token_file=args.hass_token_file,
            states_every_s=args.hass_states_every,
        )

    def client(self) -> HomeAssistant | None:
        if not self.url:
            return None
        url = urlparse(self.url)
        if url.scheme == "http" and not is_loopback(url.hostname or ""):
            _LOGGER.warning(
                "--hass-url %s is plain http: Home Assistant's token crosses "
                "the network readable by anyone on it; use https",
                url.hostname,
            )
        return HomeAssistant(
            self.url, read_secret(self.token_file, HASS_TOKEN_ENV) or ""
        )


class HomeAssistant:
    def __init__(self, url: str, token: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = ClientTimeout(total=timeout_s)
        self._session: ClientSession | None = None
        self._watching: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def _client(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession(timeout=self._timeout)
        return self._session

    async def execute(self, match: Match) -> str | None:
        """Run the intent; None when Home Assistant did it, else what went wrong."""
        try:
            async with self._client().post(
                f"{self.url}/api/intent/handle",
                json={"name": match.intent, "data": match.slots},
                headers=self._headers,
            ) as response:
                if response.status == 200:
                    return None
                return f"Home Assistant answered HTTP {response.status}"
        except (ClientError, OSError, TimeoutError) as err:
            _LOGGER.warning("Home Assistant unreachable: %s", type(err).__name__)
            return f"Home Assistant unreachable: {type(err).__name__}"

    async def states(self, store: HouseStore) -> States | None:
        """The states of the house's entities, or None when Home Assistant
        did not give them."""
        try:
            async with self._client().get(
                f"{self.url}/api/states", headers=self._headers
            ) as response:
                if response.status != 200:
                    _LOGGER.warning("Home Assistant states: HTTP %s", response.status)
                    return None
                body = await response.read()
        except (ClientError, OSError, TimeoutError) as err:
            _LOGGER.warning("Home Assistant states: %s", type(err).__name__)
            return None
        wanted = {
            state_key(entity["domain"], entity["name"])
            for entity in store.snapshot.house.entities
        }
        return await asyncio.to_thread(_house_states, body, wanted)

    def watch_states(self, store: HouseStore, every_s: float) -> None:
        """Keep `store.states` fresh: every `every_s` and on `refresh_states()`."""
        if every_s > 0 and self._watching is None:
            self._watching = asyncio.create_task(self._watch(store, every_s))

    def refresh_states(self) -> None:
        """Read the states now (someone started speaking)."""
        self._wake.set()

    async def _watch(self, store: HouseStore, every_s: float) -> None:
        while True:
            self._wake.clear()
            states = await self.states(store)
            if states is not None:
                store.states = states
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every_s)

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        if self._session is not None:
            await self._session.close()


def _house_states(body: bytes, wanted: set[tuple[str, str]]) -> States:
    """Home Assistant's /api/states, only the entities in `wanted`."""
    states: States = {}
    try:
        listed = json.loads(body)
    except ValueError:
        return states
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("entity_id"), str):
            continue
        attributes = item.get("attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        domain, _, object_id = item["entity_id"].partition(".")
        name = attributes.get("friendly_name") or object_id
        key = state_key(domain, str(name))
        if key in wanted and isinstance(item.get("state"), str):
            states[key] = EntityState.of(item["state"], attributes)
    return states
