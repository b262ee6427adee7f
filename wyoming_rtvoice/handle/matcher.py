"""Early intent matching: hassil with the home-assistant-intents sentences.

Entity names carry their domain as context, as Home Assistant's own agent
does, so a sentence that needs a lock only matches names of locks. The
sentences are narrowed to the house's domains, and compiled and warmed
when the house changes, so no request pays a cold cost.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from hassil import (
    Intents,
    RecognizeResult,
    SlotList,
    TextSlotList,
    filter_intents,
    recognize_best,
)
from home_assistant_intents import get_intents
from jinja2.sandbox import SandboxedEnvironment

from .house import House

_LOGGER = logging.getLogger(__name__)

FILLERS = re.compile(r"\b(um+|uh+|er+|hmm+|like|so|okay|ok|hey|well)\b[,]?\s*", re.I)
PUNCTUATION = re.compile(r"[^\w\s%'°.-]|(?<!\d)\.|\.(?!\d)")


@dataclass(frozen=True)
class Match:
    intent: str
    slots: dict[str, Any]
    response: str


def normalize(text: str) -> str:
    """What speech-to-text gives, as the sentences expect it."""
    text = PUNCTUATION.sub(" ", text)
    text = FILLERS.sub("", text)
    return " ".join(text.split()).lower()


class Matcher:
    def __init__(self, language: str, house: House) -> None:
        data = get_intents(language)
        if data is None:
            raise ValueError(f"no intents for language {language!r}")
        self.language = language
        self._all_intents = Intents.from_dict(data)
        self._skip_words = data.get("skip_words", [])
        self._responses: dict[str, dict[str, str]] = data["responses"]["intents"]
        self._templates = SandboxedEnvironment()
        self.house = house
        self.update(house)

    def update(self, house: House) -> None:
        """Adopt a new house: slot lists, narrowed sentences, one warm match."""
        started = time.monotonic()
        names = [
            (alias, entity["name"], {"domain": entity["domain"]})
            for entity in house.entities
            for alias in [entity["name"], *entity.get("aliases", [])]
        ]
        self._slot_lists: dict[str, SlotList] = {
            "name": TextSlotList.from_tuples(names, allow_template=False),
            "area": TextSlotList.from_strings(house.areas, allow_template=False),
            "floor": TextSlotList.from_strings(house.floors, allow_template=False),
        }
        self._domains = {entity["name"]: entity["domain"] for entity in house.entities}
        domains = set(self._domains.values())
        self._intents = filter_intents(self._all_intents, domains=domains)
        self.house = house
        self.match("turn on the light")  # warm
        _LOGGER.info(
            "House: %s entities, %s areas, %s floors (ready in %.0f ms)",
            len(house.entities),
            len(house.areas),
            len(house.floors),
            (time.monotonic() - started) * 1000,
        )

    def match(self, text: str) -> Match | None:
        result = recognize_best(
            normalize(text),
            self._intents,
            slot_lists=self._slot_lists,
            skip_words=self._skip_words,
            language=self.language,
            best_slot_name="name",
        )
        if result is None or result.intent is None:
            return None
        slots = {name: entity.value for name, entity in result.entities.items()}
        return Match(result.intent.name, slots, self._response(result, slots))

    def _response(self, result: RecognizeResult, slots: dict[str, Any]) -> str:
        return self.render(result.intent.name, slots, result.response or "default")

    def render(self, intent: str, slots: dict[str, Any], key: str = "default") -> str:
        """The intent's confirmation from the sentences' responses, as Home
        Assistant's own agent would say it ("Done." when it needs Home
        Assistant's states to be said)."""
        responses = self._responses.get(intent, {})
        template = responses.get(key, responses.get("default", ""))
        name = slots.get("name")
        domain = self._domains.get(str(name)) or slots.get("domain")
        state = {"domain": domain, "name": name}
        try:
            text = self._templates.from_string(template).render(
                slots=slots, state=state, query={"matched": [], "unmatched": []}
            )
        except Exception:  # a template that needs Home Assistant's states
            text = ""
        return " ".join(text.split()) or "Done."
