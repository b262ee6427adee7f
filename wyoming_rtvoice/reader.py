"""The event reader every server uses.

The `wyoming` library's reader trusts what the client declares; this one
checks every declared length against a cap before reading anything, bounds
the time a started frame may take, and turns any malformed input into a
`ProtocolError` with an error code.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

from .errors import ErrorCode
from .limits import Limits

MAX_HEADER_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The client sent something that is not a valid Wyoming event."""

    def __init__(self, text: str, code: ErrorCode = ErrorCode.BAD_EVENT) -> None:
        super().__init__(text)
        self.code = code


def _declared_length(header: dict[str, Any], key: str, cap: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{key} must be an integer, got {value!r}")
    if value < 0:
        raise ProtocolError(f"{key} must not be negative, got {value}")
    if value > cap:
        raise ProtocolError(
            f"{key} {value} is over the limit of {cap} bytes", ErrorCode.TOO_BIG
        )
    return value


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:  # also UnicodeDecodeError
        raise ProtocolError(f"{what} is not usable JSON: {err}") from err
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


async def read_event(
    reader: asyncio.StreamReader, limits: Limits, wait_s: float | None = None
) -> Event | None:
    """Read one event; None at a clean end of stream.

    `wait_s` bounds the wait for the event to begin (None: no bound). Raises
    ProtocolError for malformed, oversized or stalled input and
    asyncio.IncompleteReadError when the client goes away mid-event.
    """
    try:
        async with asyncio.timeout(wait_s):
            line = await reader.readline()
    except TimeoutError as err:
        raise ProtocolError(
            f"no request for {limits.idle_timeout_s:.0f} s", ErrorCode.IDLE_TIMEOUT
        ) from err
    except (asyncio.LimitOverrunError, ValueError) as err:
        raise ProtocolError(
            f"header line is over the limit of {MAX_HEADER_BYTES} bytes",
            ErrorCode.TOO_BIG,
        ) from err
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise asyncio.IncompleteReadError(line, None)

    header = _json_object(line, "header")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ProtocolError("header has no event type")
    data_length = _declared_length(header, "data_length", limits.max_data_bytes)
    payload_length = _declared_length(
        header, "payload_length", limits.max_payload_bytes
    )
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("data must be a JSON object")
    try:
        async with asyncio.timeout(limits.frame_timeout_s):
            if data_length:
                extra = await reader.readexactly(data_length)
                data = {**data, **_json_object(extra, "data")}
            payload = (
                await reader.readexactly(payload_length) if payload_length else None
            )
    except TimeoutError as err:
        raise ProtocolError(
            f"event incomplete after {limits.frame_timeout_s:.0f} s", ErrorCode.TIMEOUT
        ) from err
    return Event(type=event_type, data=data, payload=payload)
