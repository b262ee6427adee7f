"""Early intent matching: hassil with the home-assistant-intents sentences and
the project's own (sentences/<language>.yaml, merged the way Home Assistant
merges custom sentences).

Entity names carry their domain as context, as Home Assistant's own agent
does, so a sentence that needs a lock only matches names of locks. A house is
compiled whole (slot lists indexed, sentences narrowed to its domains and
parsed) and swapped in at once: no request pays a cold cost or sees half of
a house.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from hassil import (
    Intents,
    SlotList,
    TextSlotList,
    TextSlotValue,
    filter_intents,
    recognize_best,
)
from hassil.numbers import get_rbnf_engine
from hassil.util import merge_dict
from home_assistant_intents import get_intents
from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment

from .model import House

_LOGGER = logging.getLogger(__name__)

SENTENCES_DIR = Path(__file__).parent / "sentences"
FILLERS = re.compile(
    r"\b(u+h*m+|uh+|er+m*|hmm+|like|so|okay|ok|hey|well)\b[,]?\s*", re.I
)
PUNCTUATION = re.compile(r"[^\w\s%'°.-]|(?<!\d)\.|\.(?!\d)")
NUMBER = re.compile(r"\b\d{1,4}\b")
# Number words build hassil's (process-wide) number tables on first use.
WARM_TEXTS = (
    "turn on the light",
    "set the brightness to fifty percent",
    "set the temperature to twenty one degrees",
    "set the volume to forty",
    "set a timer for five minutes and ten seconds",
    "set a timer for two hours",
    "set the fan speed to thirty percent",
)


@dataclass(frozen=True)
class Match:
    intent: str
    slots: dict[str, Any]
    response: str
    key: str = "default"  # which of the intent's responses the sentence chose


@dataclass(frozen=True)
class Query:
    """What a question reached, each as {"name", "state", "state_with_unit"}:
    those in the state asked about, and the others."""

    matched: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]

    @property
    def reached(self) -> list[dict[str, Any]]:
        return self.matched + self.unmatched


@dataclass(frozen=True)
class _Compiled:
    """Everything a match needs for one house; never changed once built."""

    house: House
    intents: Intents
    slot_lists: dict[str, SlotList]
    domains: dict[str, str]  # entity name -> domain
    name_values: dict[tuple[str, str, str], TextSlotValue]  # exposed or not
    # The sentences and names of the entities Assist may not use, if any.
    unexposed: tuple[Intents, TextSlotList] | None = None


def normalize(text: str) -> str:
    """What speech-to-text gives, as the sentences expect it."""
    text = PUNCTUATION.sub(" ", text)
    text = FILLERS.sub("", text)
    return " ".join(text.split()).lower()


def load_intents(language: str) -> dict[str, Any]:
    """home-assistant-intents for `language` with the project's sentences merged in."""
    data = get_intents(language)
    if data is None:
        raise ValueError(f"no intents for language {language!r}")
    own = own_sentences(language)
    if own is not None:
        merge_dict(data, own)
    return data


def own_sentences(language: str) -> dict[str, Any] | None:
    """The project's sentence file for `language`, if there is one."""
    own = SENTENCES_DIR / f"{language}.yaml"
    if not own.is_file():
        return None
    data: dict[str, Any] = yaml.safe_load(own.read_text(encoding="utf-8"))
    return data


def spoken_variants(name: str, language: str) -> list[str]:
    """`name` with its numbers as words too ("Spotlight 21": "Spotlight twenty-one",
    "Spotlight twenty one"), since speech-to-text writes either."""
    if not NUMBER.search(name):
        return []
    try:
        words = NUMBER.sub(lambda m: number_words(int(m.group()), language), name)
    except ValueError:  # no number words for the language
        return []
    return list(dict.fromkeys([words, words.replace("-", " ")]))


@lru_cache(maxsize=4096)
def number_words(number: int, language: str) -> str:
    return str(get_rbnf_engine(language).format_number(number).text)


class Matcher:
    def __init__(self, language: str, house: House) -> None:
        data = load_intents(language)
        self.language = language
        self._all_intents = Intents.from_dict(data)
        for intent in self._all_intents.intents.values():
            for intent_data in intent.data:
                rules = {
                    **self._all_intents.expansion_rules,
                    **intent_data.expansion_rules,
                }
                for sentence in intent_data.sentences:  # parsed here, not in a request
                    sentence.get_required_clauses(rules)
        self._skip_words = data.get("skip_words", [])
        environment = SandboxedEnvironment()
        self._responses: dict[tuple[str, str], Template] = {
            (intent, key): environment.from_string(source)
            for intent, responses in data["responses"]["intents"].items()
            for key, source in responses.items()
        }
        self._narrowed: dict[frozenset[str], Intents] = {}
        self._compiled = self._compile(house, {})
        for text in WARM_TEXTS:
            self.match(text)

    @property
    def house(self) -> House:
        return self._compiled.house

    def update(self, house: House) -> None:
        """Adopt a new house: compiled aside (indexes built), then swapped in."""
        started = time.monotonic()
        self._compiled = self._compile(house, self._compiled.name_values)
        _LOGGER.info(
            "House: %s entities, %s areas, %s floors (ready in %.0f ms)",
            len(house.entities),
            len(house.areas),
            len(house.floors),
            (time.monotonic() - started) * 1000,
        )

    def _compile(
        self, house: House, known: dict[tuple[str, str, str], TextSlotValue]
    ) -> _Compiled:
        # Slot values of unchanged names are reused: most pushes change a few.
        exposed = self._name_values(house.entities, known)
        slot_lists: dict[str, SlotList] = {
            "name": TextSlotList(name="name", values=list(exposed.values())),
            "area": TextSlotList.from_strings(house.areas, allow_template=False),
            "floor": TextSlotList.from_strings(house.floors, allow_template=False),
        }
        unexposed = None
        name_values = exposed
        if house.unexposed:
            values = self._name_values(house.unexposed, known)
            names = TextSlotList(name="name", values=list(values.values()))
            domains = frozenset(entity["domain"] for entity in house.unexposed)
            unexposed = (self._intents_for(domains), names)
            name_values = {**exposed, **values}
            names.get_candidates("")
        for slot_list in slot_lists.values():
            if isinstance(slot_list, TextSlotList):
                slot_list.get_candidates("")  # builds its index now
        domains_by_name = {
            entity["name"]: entity["domain"] for entity in house.entities
        }
        return _Compiled(
            house,
            self._intents_for(frozenset(domains_by_name.values())),
            slot_lists,
            domains_by_name,
            name_values,
            unexposed,
        )

    def _name_values(
        self,
        entities: list[dict[str, Any]],
        known: dict[tuple[str, str, str], TextSlotValue],
    ) -> dict[tuple[str, str, str], TextSlotValue]:
        """The entities' names and aliases (and their numbers said as words)
        as slot values: the name, with the domain as context."""
        values: dict[tuple[str, str, str], TextSlotValue] = {}
        for entity in entities:
            name, domain = entity["name"], entity["domain"]
            for alias in [name, *entity.get("aliases", [])]:
                for text in [alias, *spoken_variants(alias, self.language)]:
                    key = (text, name, domain)
                    if key not in values:
                        values[key] = known.get(key) or TextSlotValue.from_tuple(
                            (text, name, {"domain": domain}), allow_template=False
                        )
        return values

    def _intents_for(self, domains: frozenset[str]) -> Intents:
        """The sentences that can name something of these domains (the last
        two sets asked for are kept: the exposed and the others)."""
        intents = self._narrowed.get(domains)
        if intents is None:
            intents = filter_intents(self._all_intents, domains=domains)
            last = list(self._narrowed.items())[-1:]
            self._narrowed = {**dict(last), domains: intents}
        return intents

    def match(self, text: str) -> Match | None:
        compiled = self._compiled
        result = recognize_best(
            normalize(text),
            compiled.intents,
            slot_lists=compiled.slot_lists,
            skip_words=self._skip_words,
            language=self.language,
            best_slot_name="name",
        )
        if result is None or result.intent is None:
            return None
        slots = {name: plain(entity.value) for name, entity in result.entities.items()}
        key = result.response or "default"
        response = self._render(result.intent.name, slots, key, compiled)
        return Match(result.intent.name, slots, response, key)

    def not_exposed(self, text: str) -> str | None:
        """The name of the entity Assist may not use that `text`, a command,
        names (matched as Home Assistant's own agent does, after the exposed
        ones failed); None if it names none."""
        compiled = self._compiled
        if compiled.unexposed is None:
            return None
        intents, names = compiled.unexposed
        result = recognize_best(
            normalize(text),
            intents,
            slot_lists={**compiled.slot_lists, "name": names},
            skip_words=self._skip_words,
            language=self.language,
            best_slot_name="name",
        )
        if result is None or "name" not in result.entities:
            return None
        return str(result.entities["name"].value)

    def render(
        self,
        intent: str,
        slots: dict[str, Any],
        key: str = "default",
        query: Query | None = None,
    ) -> str:
        """The intent's confirmation from the sentences' responses, as Home
        Assistant's own agent would say it (its default response when `key`
        is not one; "Done." when it needs Home Assistant's states). `query`:
        the entities a question reached, as its answer needs them."""
        return self._render(intent, slots, key, self._compiled, query)

    def _render(
        self,
        intent: str,
        slots: dict[str, Any],
        key: str,
        compiled: _Compiled,
        query: Query | None = None,
    ) -> str:
        template = self._responses.get((intent, key)) or self._responses.get(
            (intent, "default")
        )
        if template is None:
            return "Done."
        name = slots.get("name")
        domain = compiled.domains.get(str(name)) or slots.get("domain")
        state: dict[str, Any] = {"domain": domain, "name": name}
        if query is not None and len(query.reached) == 1:
            state = query.reached[0]
        try:
            text = template.render(
                slots=slots,
                state=state,
                query={
                    "matched": [] if query is None else query.matched,
                    "unmatched": [] if query is None else query.unmatched,
                },
            )
        except Exception:  # a template that needs Home Assistant's states
            text = ""
        return " ".join(text.split()) or "Done."


def plain(value: Any) -> Any:
    """50.0 -> 50: ranges come back as floats, and responses say them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
