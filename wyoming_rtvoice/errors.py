"""The codes of the `error` events every service sends: one list, so a client
can rely on them."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # The frame itself (the connection is closed after these).
    BAD_EVENT = "bad-event"
    TOO_BIG = "too-big"
    TIMEOUT = "timeout"
    IDLE_TIMEOUT = "idle-timeout"
    TOO_OLD = "too-old"
    BUSY = "busy"
    INTERNAL = "internal"
    UNAUTHORIZED = "unauthorized"
    NOT_ALLOWED = "not-allowed"
    # A request the service cannot take (the connection stays).
    BAD_ORDER = "bad-order"
    BAD_AUDIO = "bad-audio"
    TOO_MUCH_AUDIO = "too-much-audio"
    TOO_LONG = "too-long"
    BAD_TEXT = "bad-text"
    EMPTY_TEXT = "empty-text"
    TEXT_TOO_LONG = "text-too-long"
    TOO_MANY_REQUESTS = "too-many-requests"
    BAD_VOICE = "bad-voice"
    UNKNOWN_VOICE = "unknown-voice"
    BAD_NAMES = "bad-names"
    UNKNOWN_MODEL = "unknown-model"
    DIRECT_MODE = "direct-mode"
    # The engine failed on a valid request.
    SYNTHESIS_FAILED = "synthesis-failed"
    TRANSCRIPTION_FAILED = "transcription-failed"
