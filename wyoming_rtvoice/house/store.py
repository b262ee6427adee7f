"""The house the services share (entities, areas, floors, extra names) and
the matcher compiled for it.

Everything that reads the house (the matcher, the ASR prompt, the end of a
turn) reads one immutable `Snapshot`; a push swaps in a new snapshot whole,
under a lock, and writes it to the state file atomically, so a restart
comes back with the last house accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import math
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import voluptuous as vol

from ..config import option, write_atomically
from ..turn import Ending, open_ending
from .matcher import Match, Matcher
from .model import House, States, describe_error
from .questions import answered
from .safety import needs_confirmation
from .tools import Toolbox
from .vocabulary import Candidate, Vocabulary

_LOGGER = logging.getLogger(__name__)

STATE_FILE = "house.json"
RECENT_MATCHES = 64
_WORD = re.compile(r"[\w']+")
_COMMON_WORDS = frozenset(
    "the a an to on off in of and or my is are what turn set switch please".split()
)
NAMES_SCHEMA = vol.Schema(
    vol.All([vol.All(str, vol.Strip, vol.Length(max=200))], vol.Length(max=10_000))
)


@dataclass(frozen=True)
class HouseConfig:
    entities: str | None = None  # house JSON read at start-up
    names: str | None = None  # extra names, one a line
    language: str = "en"  # of the intents

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        group = parser.add_argument_group("house")
        group.add_argument(
            f"--{prefix}entities",
            help="House JSON: entities (name, domain, area, aliases), areas, floors; "
            "replaceable with PUT /api/entities (kept in --state-dir)",
        )
        group.add_argument(
            f"--{prefix}names",
            help="File of extra names (one a line) the speech decoder is biased "
            "towards; replaceable with PUT /api/names",
        )
        group.add_argument(
            f"--{prefix}intents-language",
            default=HouseConfig.language,
            help="Language of the device command sentences (%(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> HouseConfig:
        return cls(
            entities=option(args, prefix, "entities"),
            names=option(args, prefix, "names"),
            language=option(args, prefix, "intents-language"),
        )


@dataclass(frozen=True)
class Snapshot:
    matcher: Matcher  # compiled for this house; never changed once published
    names: tuple[str, ...] = ()
    # The latest matches by text: the ASR service looks at a transcript to end
    # the turn, the handle service answers the same text moments later.
    matches: dict[str, Match | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def house(self) -> House:
        return self.matcher.house

    @cached_property
    def every_name(self) -> list[str]:
        """Every name the decoder should spell right."""
        house = self.house
        names = [
            name
            for entity in house.entities
            for name in [entity["name"], *entity.get("aliases", [])]
        ]
        names += house.areas + house.floors + list(self.names)
        return list(dict.fromkeys(names))

    @cached_property
    def names_by_word(self) -> dict[str, list[tuple[int, float]]]:
        """Each word of the names: the names it is in (their place in
        `every_name`) and how rare it is among them ("lamp" in many,
        "nightstand" in one). A prompt looks up the heard words only: at
        5,000 entities, going through every name took ~4 ms a decode."""
        names = self.every_name
        words = [set(_WORD.findall(name.lower())) for name in names]
        counts = Counter(word for name_words in words for word in name_words)
        by_word: dict[str, list[tuple[int, float]]] = {}
        for place, name_words in enumerate(words):
            for word in name_words:
                rarity = math.log((len(names) + 1) / counts[word])
                by_word.setdefault(word, []).append((place, rarity))
        return by_word

    def sharing_words(self, heard: str | None) -> list[str]:
        """The names that share words with `heard`, the highest score first
        (rare words weigh more), then in the house's order."""
        shared: dict[int, float] = defaultdict(float)
        for word in set(_WORD.findall((heard or "").lower())) - _COMMON_WORDS:
            for place, rarity in self.names_by_word.get(word, ()):
                shared[place] += rarity
        names = self.every_name
        return [names[p] for p in sorted(shared, key=lambda p: (-shared[p], p))]

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The house's command sentences, for the ASR's second chance."""
        return Vocabulary(self.house, self.matcher.language)

    @cached_property
    def toolbox(self) -> Toolbox:
        """The house's intents as the LLM's tools."""
        return Toolbox(self.matcher)

    def remember(self, text: str, match: Match | None) -> None:
        self.matches[text] = match
        if len(self.matches) > RECENT_MATCHES:
            del self.matches[next(iter(self.matches))]

    def as_json(self) -> dict[str, Any]:
        return {"house": self.house.as_json(), "names": list(self.names)}


def read_names(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SystemExit(f"--names: {err}") from err
    return [line.strip() for line in lines if line.strip()]


def read_house(path: str) -> House:
    try:
        return House.from_file(path)
    except vol.Invalid as err:
        raise SystemExit(f"{path}: {describe_error(err)}") from err
    except (OSError, ValueError) as err:
        raise SystemExit(f"{path}: {err}") from err


class HouseStore:
    """The current snapshot, replaced whole; matching on its own thread.

    The entities' states (pushed with the house, or fetched from Home
    Assistant) are kept beside it: they change often, never recompile the
    matcher and are not written to the state file."""

    def __init__(self, snapshot: Snapshot, path: Path | None) -> None:
        self.snapshot = snapshot
        self.states: States = dict(snapshot.house.states)
        self._path = path
        self._lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="matcher")

    @classmethod
    def load(cls, config: HouseConfig, state_dir: Path | None) -> HouseStore:
        """The house of --entities if given, else the last one pushed (kept in
        the state directory), else an empty one. Blocking (compiles)."""
        path = None if state_dir is None else state_dir / STATE_FILE
        house, names = House(), read_names(config.names)
        if config.entities is not None:
            house = read_house(config.entities)
        elif path is not None and path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                house = House.from_json(saved["house"])
                names = names or NAMES_SCHEMA(saved.get("names", []))
            except (OSError, ValueError, KeyError, TypeError, vol.Invalid) as err:
                _LOGGER.warning("State file %s not usable (%s): ignored", path, err)
        try:
            matcher = Matcher(config.language, house)
        except ValueError as err:
            raise SystemExit(str(err)) from err
        snapshot = Snapshot(matcher, tuple(names))
        _made_ahead(snapshot)
        return cls(snapshot, path)

    async def match(self, text: str) -> Match | None:
        """The device command or question `text` is; a question answered
        from the states the house shares now."""
        snapshot = self.snapshot
        if text in snapshot.matches:
            match = snapshot.matches[text]
        else:
            loop = asyncio.get_running_loop()
            match = await loop.run_in_executor(
                self._executor, snapshot.matcher.match, text
            )
            snapshot.remember(text, match)
        if match is None:
            return None
        return answered(match, snapshot.matcher, snapshot.house, self.states)

    async def not_exposed(self, text: str) -> str | None:
        """The entity Assist may not use that `text` (which matched no
        command) names, if any."""
        matcher = self.snapshot.matcher
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, matcher.not_exposed, text)

    async def closest(self, text: str) -> list[Candidate]:
        """The house's device commands closest to `text` (which matched none);
        none for a command heard right that names a device Assist may not
        use (not another device's command)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _closest, self.snapshot, text)

    async def ending(self, text: str) -> Ending:
        """What `text` is for the end of a turn: a complete device command or
        question, one that a longer sentence of the house may go on from
        ("turn on the office" ... "lamp"), one on a lock or a door, a
        sentence stopped mid-way, or anything else."""
        match = await self.match(text)
        if match is None:
            return Ending.OPEN if open_ending(text) else Ending.OTHER
        snapshot = self.snapshot
        loop = asyncio.get_running_loop()
        # ~0.03 ms, up to ~4 ms at 5,000 entities ("turn on the kitchen ..."):
        # on the matcher's thread.
        goes_on = snapshot.vocabulary.goes_on
        if await loop.run_in_executor(self._executor, goes_on, text):
            return Ending.PREFIX
        if needs_confirmation(match, snapshot.house):
            return Ending.CONFIRM
        return Ending.COMMAND

    async def replace(
        self, house: House | None = None, names: list[str] | None = None
    ) -> Snapshot:
        """Swap in a new snapshot (compiled off the event loop) and keep it.
        A house that differs only in its states is not compiled again."""
        async with self._lock:
            old = self.snapshot
            matcher = old.matcher
            if house is not None and house.states:
                self.states = house.states
            if house == old.house:
                house = None
            if house is None and (names is None or tuple(names) == old.names):
                return old
            loop = asyncio.get_running_loop()
            if house is not None:
                matcher = await loop.run_in_executor(
                    self._executor, _compiled, matcher, house
                )
            snapshot = Snapshot(matcher, old.names if names is None else tuple(names))
            if matcher is old.matcher:  # the LLM's tools and the ASR's sentences
                snapshot.__dict__["toolbox"] = old.toolbox
                snapshot.__dict__["vocabulary"] = old.vocabulary
            await loop.run_in_executor(self._executor, _made_ahead, snapshot)
            if self._path is not None:
                await asyncio.to_thread(_save, self._path, snapshot)
            self.snapshot = snapshot
            return snapshot

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _save(path: Path, snapshot: Snapshot) -> None:
    write_atomically(path, json.dumps(snapshot.as_json(), indent=1))


def _closest(snapshot: Snapshot, text: str) -> list[Candidate]:
    if snapshot.matcher.not_exposed(text) is not None:
        return []
    return snapshot.vocabulary.closest(text)


def _made_ahead(snapshot: Snapshot) -> None:
    """What a turn should not wait for: made once per snapshot, off the loop."""
    snapshot.toolbox
    snapshot.vocabulary
    snapshot.names_by_word


def _compiled(matcher: Matcher, house: House) -> Matcher:
    """A matcher for `house` sharing the loaded sentences; `matcher` is untouched."""
    new = copy.copy(matcher)
    new.update(house)
    return new
