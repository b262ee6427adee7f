"""Client for the stack's HTTP API (/api/info, /api/stats, /api/entities),
and what its ASR service says of itself."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

TIMEOUT = aiohttp.ClientTimeout(total=10)


class RtvoiceError(Exception):
    """The stack did not answer as expected."""


class RtvoiceAuthError(RtvoiceError):
    """The stack refused the token."""


class RtvoiceRejected(RtvoiceError):
    """The stack refused the request itself (HTTP 4xx)."""


class RtvoiceClient:
    """The HTTP API of one rtvoice stack."""

    def __init__(
        self, session: aiohttp.ClientSession, host: str, port: int, token: str | None
    ) -> None:
        self.host = host
        self._base = f"http://{host}:{port}"
        self._session = session
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def info(self) -> dict[str, Any]:
        """id, version and the Wyoming port of each service."""
        info = await self._request("GET", "/api/info")
        if not isinstance(info, dict) or not isinstance(info.get("ports"), dict):
            raise RtvoiceError("not an rtvoice stack")
        return info

    async def stats(self) -> dict[str, Any]:
        """Per-stage p50/p95 and the last turn's time to first audio."""
        stats: dict[str, Any] = await self._request("GET", "/api/stats")
        return stats

    async def put_house(self, house: dict[str, Any]) -> None:
        """Replace the names the handle service matches against."""
        await self._request("PUT", "/api/entities", house)

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=body,
                headers=self._headers,
                timeout=TIMEOUT,
            ) as response:
                if response.status == 401:
                    raise RtvoiceAuthError("token refused")
                if response.status >= 400:
                    reason = (
                        f"{method} {path}: {response.status} {await response.text()}"
                    )
                    if response.status < 500:
                        raise RtvoiceRejected(reason)
                    raise RtvoiceError(reason)
                return await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            raise RtvoiceError(f"{method} {path}: {err or type(err).__name__}") from err


async def asr_languages(host: str, port: int) -> list[str]:
    """The languages of the ASR service's installed models (`describe`)."""
    try:
        async with asyncio.timeout(TIMEOUT.total):
            async with AsyncTcpClient(host, port) as client:
                await client.write_event(Describe().event())
                while (event := await client.read_event()) is not None:
                    if Info.is_type(event.type):
                        return sorted(
                            {
                                language
                                for program in Info.from_event(event).asr
                                for model in program.models
                                if model.installed
                                for language in model.languages
                            }
                        )
    except (OSError, TimeoutError) as err:
        raise RtvoiceError(f"ASR service: {err or type(err).__name__}") from err
    raise RtvoiceError("ASR service: closed without describing itself")
