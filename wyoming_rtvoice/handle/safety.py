"""Which device commands need a spoken confirmation before they run: locks,
alarm panels, doors and garage doors (and any domain the user names)."""

from __future__ import annotations

from .house import House
from .matcher import Match

CONFIRM_DOMAINS = frozenset({"lock", "alarm_control_panel"})
CONFIRM_COVER_WORDS = ("door", "garage", "gate")


def needs_confirmation(
    match: Match, house: House, domains: frozenset[str] = CONFIRM_DOMAINS
) -> bool:
    """Does the command act on something a stranger must not operate?"""
    slots = {key: str(value).lower() for key, value in match.slots.items()}
    names = {slots.get("name", "")}
    targets = [e for e in house.entities if e["name"].lower() in names]
    kinds = {slots.get("domain", "")} | {e["domain"] for e in targets}
    if kinds & domains:
        return True
    if "cover" not in kinds and match.intent not in ("HassOpenCover", "HassCloseCover"):
        return False
    described = " ".join([slots.get("device_class", ""), *names])
    return any(word in described for word in CONFIRM_COVER_WORDS)
