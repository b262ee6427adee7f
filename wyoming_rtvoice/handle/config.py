"""The handle service's configuration, and its flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import flag, nested
from ..house.safety import CONFIRM_DOMAINS
from .llm import LlmSettings
from .responder import AckPolicy

API_KEY_ENV = "ANTHROPIC_API_KEY"


@dataclass(frozen=True)
class HandleConfig:
    FLAGS: ClassVar[str] = "handle"

    llm_model: str = field(
        default=LlmSettings.model,
        metadata=flag(f"Claude model (%(default)s; the key in {API_KEY_ENV})"),
    )
    anthropic_base_url: str | None = field(
        default=None, metadata=flag("Messages API base URL (proxies, tests)")
    )
    max_text_chars: int = field(
        default=2000,
        metadata=flag("Longest transcript one request may carry (%(default)s)"),
    )
    confirm_domains: frozenset[str] = field(
        default=CONFIRM_DOMAINS,
        metadata=flag(
            "Domains never operated from an LLM answer without a spoken yes, "
            "besides locks, alarm panels, sirens, valves, doors, gates, garage "
            "doors and odd thermostat set-points",
            nargs="*",
            default=[],
            metavar="DOMAIN",
            convert=lambda domains: CONFIRM_DOMAINS | frozenset(domains),
        ),
    )
    # A household asks a few questions a minute; a flood is someone else.
    llm_per_minute: int = field(
        default=30,
        metadata=flag(
            "LLM requests in any minute, from all clients together; more "
            "get a short spoken answer (%(default)s; 0: no limit)"
        ),
    )
    llm_per_client_per_minute: int = field(
        default=20,
        metadata=flag(
            "LLM requests in any minute from one client address "
            "(%(default)s; 0: no limit)"
        ),
    )
    policy: AckPolicy = field(default_factory=AckPolicy, metadata=nested())
