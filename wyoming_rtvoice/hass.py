"""Device commands executed by Home Assistant's HTTP intent API.

One aiohttp session for the life of the process, so every command after the
first reuses its connection. The token comes from the environment or a file,
never from the command line, and is never logged.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from aiohttp import ClientError, ClientSession, ClientTimeout

from .config import HASS_TOKEN_ENV, read_secret
from .handle.matcher import Match

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class HassConfig:
    url: str | None = None
    token_file: str | None = None

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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> HassConfig:
        return cls(url=args.hass_url, token_file=args.hass_token_file)

    def client(self) -> HomeAssistant | None:
        if not self.url:
            return None
        return HomeAssistant(
            self.url, read_secret(self.token_file, HASS_TOKEN_ENV) or ""
        )


class HomeAssistant:
    def __init__(self, url: str, token: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = ClientTimeout(total=timeout_s)
        self._session: ClientSession | None = None

    async def execute(self, match: Match) -> str | None:
        """Run the intent; None when Home Assistant did it, else what went wrong."""
        if self._session is None:
            self._session = ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                f"{self.url}/api/intent/handle",
                json={"name": match.intent, "data": match.slots},
                headers={"Authorization": f"Bearer {self._token}"},
            ) as response:
                if response.status == 200:
                    return None
                return f"Home Assistant answered HTTP {response.status}"
        except (ClientError, OSError, TimeoutError) as err:
            _LOGGER.warning("Home Assistant unreachable: %s", type(err).__name__)
            return f"Home Assistant unreachable: {type(err).__name__}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
