"""The device commands of a house closest to a transcript that matched none:
the candidates of the ASR's second chance (the acoustic model chooses).

The sentences are the short canonical forms of each intent that
Speech-to-Phrase, Home Assistant's closed-vocabulary recogniser, is built
from (home-assistant-intents ships them), and the project's own sentence
file; they are expanded once per language into frames, with the house's
lists left as slots ("turn off the {name}") and numbers as "{number}".
For a transcript:
1. names, areas and floors of the house are spotted in it, misheard too
   ("living room land" ~ "Living Room Lamp", "shandal air" ~ "Chandelier"):
   by the letters they share with it, as written and as said, then by how
   alike they are written or said;
2. each is put in as its slot, and the frames within two word edits of the
   result are looked up (an index of the frames with up to two words left
   out: no scan of every frame);
3. the frames that fit are filled (a lock sentence needs a lock) and the
   closest sentence of each meaning is kept.

The same sentences tell where a turn may end (`goes_on`): a transcript ends
a command unless a longer sentence of the house begins with its words and
acts on other devices ("turn on the office lamp" in a house with an "Office
Lamp Shelf"; not "close the blinds in the office", though "Office" begins
"Office Blinds").
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cache, lru_cache
from typing import Any

from hassil import Intents
from hassil.expression import Sentence
from hassil.intents import RangeSlotList, TextSlotList
from hassil.parse_expression import parse_sentence
from hassil.sample import sample_expression, sample_sentence
from hassil.util import merge_dict
from home_assistant_intents import get_speech_to_phrase_intents

from .matcher import normalize, own_sentences, spoken_variants
from .model import House

HOUSE_LISTS = ("name", "area", "floor")
NUMBER = "{number}"
MAX_EDITS = 2  # words changed between what was heard and a frame
SPELLING_WEIGHT = 2.0  # a name spelled half wrong costs one word edit
MAX_COST = 3.0
CANDIDATES = 4
SPOTTED_PER_LIST = 4
MIN_SHARED = 0.4  # of a name's letter triples, for it to be compared at all
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty "
    "thirty forty fifty sixty seventy eighty ninety hundred".split()
)
_DIGITS = re.compile(r"^\d+(\.\d+)?$")
# Numbers a longer number begins ("twenty" of "twenty five"; "20" as written).
_TENS = frozenset(
    "twenty thirty forty fifty sixty seventy eighty ninety "
    "20 30 40 50 60 70 80 90".split()
)
# What may be heard around a command and dropped ("um" and the like are
# gone already, see matcher.normalize).
DROPPABLE = frozenset(
    "please now just oh ah i'm and the a um uh er hmm so okay ok hey well".split()
)


# A rough English sound of each letter or pair, in order: what Whisper
# writes for a word it does not know sounds like it ("Shandal Air",
# "Add-A-C") more often than it is spelled like it.
_SOUNDS = [
    (re.compile(pattern), sound)
    for pattern, sound in (
        ("[^a-z0-9]", ""),
        ("x", "ks"),
        ("tch|ch|sh", "X"),
        ("ph", "f"),
        ("gh", ""),
        ("th", "t"),
        ("ck", "k"),
        ("c(?=[eiy])", "s"),
        ("[cqg]", "k"),
        ("z", "s"),
        ("v", "f"),
        ("d", "t"),
        ("b", "p"),
        ("n", "m"),
    )
]


@lru_cache(maxsize=65536)
def sounds(word: str) -> str:
    """`word` as it roughly sounds: its consonants, voiced and unvoiced
    alike (d/t, b/p, g/k), m and n alike, and whether it starts with a
    vowel ("chandelier" -> "Xmtlr", "attic" -> "atk")."""
    key = word.lower()
    for pattern, sound in _SOUNDS:
        key = pattern.sub(sound, key)
    consonants = re.sub("[aeiouyhw]", "", key[1:])
    if key[:1] in tuple("aeiouy"):  # a vowel alone is the end of the one before
        head = "a" if consonants else ""
    else:
        head = key[:1]
    return re.sub(r"(.)\1+", r"\1", head + consonants)


@dataclass(frozen=True)
class Spelling:
    """One way heard words and names are compared."""

    of: Callable[[str], str]
    alike: float  # the least similarity of a spotted name
    # As said, a name is short and its edges are much of it: its first and
    # last letters may be found at any heard word's, and the first must be
    # the first heard ("turn" is no "bathroom", though "trm" is in "ptrm").
    by_edges: bool


SPELLINGS = (Spelling(str, 0.6, False), Spelling(sounds, 0.75, True))


def words_of(text: str) -> list[str]:
    """Lowercase words, '%' said as 'percent', as frames and transcripts are
    compared."""
    text = text.lower().replace("%", " percent ").replace("-", " ")
    return re.sub(r"[^\w\s'{}]", " ", text).split()


def is_number(word: str) -> bool:
    return word in _NUMBER_WORDS or bool(_DIGITS.match(word))


@dataclass(frozen=True)
class Frame:
    words: tuple[str, ...]  # with "{name}", "{area}", "{floor}", "{number}"
    meaning: tuple[Any, ...]  # intent, its fixed slots, values of other lists
    # The same but for the fixed domain, which says what an {area} reaches.
    action: tuple[Any, ...]
    domains: frozenset[str] | None  # what a {name} may be
    domain: str | None  # what an {area} must have


@dataclass(eq=False)
class Node:
    """A word of a trie of frames or of the house's names; what ends at it
    and what goes on past it."""

    depth: int = 0
    children: dict[str, Node] = field(default_factory=dict)
    ends: list[Any] = field(default_factory=list)
    below: list[Any] = field(default_factory=list)

    def add(self, words: Iterable[str], item: Any) -> None:
        node = self
        for word in words:
            node.below.append(item)
            node = node.children.setdefault(word, Node(node.depth + 1))
        node.ends.append(item)


@dataclass(frozen=True)
class Frames:
    frames: tuple[Frame, ...]
    index: dict[tuple[str, ...], tuple[int, ...]]  # words less up to 2 -> frames
    # A word of a rule, and the rule's other one-word wordings ("light":
    # "lights", "lamp"...): a frame says each rule one way, people say any.
    alike: dict[str, frozenset[str]]
    trie: Node = field(default_factory=Node)  # the frames, word by word
    # A word as said, and the frame words it may stand for ("lights": "light").
    stands_for: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def near(self, words: tuple[str, ...]) -> Iterator[tuple[Frame, int]]:
        """Frames within a word edit per two words of `words` (MAX_EDITS at
        most), with the edits: "yes please" is near no command."""
        allowed = min(MAX_EDITS, len(words) // 2)
        seen: set[int] = set()
        for key in _deletions(words):
            for number in self.index.get(key, ()):
                if number in seen:
                    continue
                seen.add(number)
                frame = self.frames[number]
                if _slots(frame.words) != _slots(words):
                    continue
                edits = changes(words, frame.words, self.alike)
                if edits <= allowed:
                    yield frame, edits


def _slots(words: Iterable[str]) -> list[str]:
    return [word for word in words if word.startswith("{")]


def _deletions(words: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """`words` with up to two (MAX_EDITS) of its plain words left out."""
    yield words
    plain = [i for i, word in enumerate(words) if not word.startswith("{")]
    for first in plain:
        once = words[:first] + words[first + 1 :]
        yield once
        for second in plain:
            if second > first:
                yield once[: second - 1] + once[second:]


def changes(
    heard: tuple[str, ...],
    frame: tuple[str, ...],
    alike: dict[str, frozenset[str]],
) -> int:
    """Words to change, add or drop to make `heard` the frame, where only
    filler words may be dropped: a word said is never ignored ("did you turn
    off the lamp" is no "turn off the lamp")."""
    never = MAX_EDITS + 1
    before = list(range(len(frame) + 1))
    for word in heard:
        drop = 1 if word in DROPPABLE else never
        row = [before[0] + drop]
        for j, other in enumerate(frame, 1):
            same = word == other or word in alike.get(other, ())
            edits = min(before[j] + drop, row[j - 1] + 1, before[j - 1] + (not same))
            if (
                j > 1
                and len(word) + 1 >= len(frame[j - 2]) + len(other)
                and run_together(word, frame[j - 2], other)
            ):
                edits = min(edits, before[j - 2] + 1)  # "pernon": "turn on"
            row.append(edits)
        before = row
    return before[-1]


def _run_together_in(heard: list[str], said: list[str]) -> int:
    """How many heard words are two said words run together."""
    pairs = list(zip(said, said[1:]))
    return sum(
        word not in said and any(run_together(word, *pair) for pair in pairs)
        for word in heard
    )


@lru_cache(maxsize=65536)
def run_together(word: str, first: str, second: str) -> bool:
    """Whether a heard word is two words of a frame said as one, misheard
    ("pernon" for "turn on"): one edit, not two."""
    both = first + second
    if "{" in both or len(word) < len(both) - 1:  # not "dime" for "dim all"
        return False
    return SequenceMatcher(None, word, both).ratio() >= SPELLINGS[0].alike


def word_edits(first: tuple[str, ...], second: tuple[str, ...]) -> int:
    row = list(range(len(second) + 1))
    for i, word in enumerate(first, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(second, 1):
            previous, row[j] = row[j], min(
                row[j] + 1, row[j - 1] + 1, previous + (word != other)
            )
    return row[-1]


@lru_cache(maxsize=4)
def frames_for(language: str) -> Frames:
    """Every frame of the language (none without Speech-to-Phrase sentences)."""
    data = get_speech_to_phrase_intents(language)
    if data is None:
        return Frames((), {}, {})
    own = own_sentences(language)
    if own is not None:
        merge_dict(data, own)
    intents = Intents.from_dict(data)
    # The same words may be a command of another domain ("set the {name} to
    # {number}": a fan's speed, a light's brightness): a frame of each.
    frames: dict[tuple[Any, ...], Frame] = {}
    for name, intent in intents.intents.items():
        for intent_data in intent.data:
            if "area" in intent_data.requires_context:
                continue  # needs the satellite's area, which a transcript lacks
            lists = {**intents.slot_lists, **intent_data.slot_lists}
            rules = _plainest(
                {**intents.expansion_rules, **intent_data.expansion_rules}, lists
            )
            slots = intent_data.slots
            fixed = {key: value for key, value in slots.items() if key != "domain"}
            domains = intent_data.requires_context.get("domain")
            if isinstance(domains, str):
                domains = [domains]
            for sentence in intent_data.sentences:
                texts = sample_sentence(
                    sentence, lists, rules, language, expand_lists=False
                )
                for text in texts:
                    for words, values in _filled(words_of(text), lists, rules):
                        frames.setdefault(
                            (words, name, None if domains is None else tuple(domains)),
                            Frame(
                                words,
                                (name, repr(sorted(slots.items())), values),
                                (name, repr(sorted(fixed.items())), values),
                                None if domains is None else frozenset(domains),
                                slots.get("domain"),
                            ),
                        )
    ordered = tuple(frames.values())
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    trie = Node()
    for number, frame in enumerate(ordered):
        for key in set(_deletions(frame.words)):
            index[key].append(number)
        trie.add(frame.words, frame)
    alike = _alike(intents.expansion_rules, intents.slot_lists)
    stands_for: dict[str, set[str]] = defaultdict(set)
    for plain, wordings in alike.items():
        for wording in wordings | {plain}:
            stands_for[wording].add(plain)
    return Frames(
        ordered,
        {key: tuple(value) for key, value in index.items()},
        alike,
        trie,
        {word: tuple(sorted(plains)) for word, plains in stands_for.items()},
    )


def _plainest(rules: dict[str, Sentence], lists: dict[str, Any]) -> dict[str, Sentence]:
    """Each rule in its first wording, without its optional words: a rule
    says one thing many ways ("the|my|our"), and the candidates need one."""
    return {
        name: parse_sentence(_plainest_text(rule, lists, rules))
        for name, rule in rules.items()
    }


def _plainest_text(
    rule: Sentence, lists: dict[str, Any], rules: dict[str, Sentence]
) -> str:
    said = sample_expression(rule.expression, lists, rules, skip_optionals=True)
    return next(iter(said))


def _alike(
    rules: dict[str, Sentence], lists: dict[str, Any]
) -> dict[str, frozenset[str]]:
    """Of each rule worded in one word only ("light|lights|lamp"), the word
    a frame gives it and its other wordings."""
    alike: dict[str, set[str]] = defaultdict(set)
    for name, rule in rules.items():
        wordings = [
            words_of(text) for text in sample_expression(rule.expression, lists, rules)
        ]
        if all(len(wording) == 1 for wording in wordings):  # (light|lights|lamp)
            plain = words_of(_plainest_text(rule, lists, rules))
            alike[plain[0]].update(wording[0] for wording in wordings)
    return {word: frozenset(others) for word, others in alike.items()}


def _filled(
    words: list[str], lists: dict[str, Any], rules: dict[str, Any]
) -> Iterator[tuple[tuple[str, ...], tuple[Any, ...]]]:
    """The frame's words with the lists that are not the house's said out
    (each value a meaning of its own) and ranges as {number}."""
    choices: list[list[tuple[list[str], Any]]] = []
    for word in words:
        if not (word.startswith("{") and word.endswith("}")):
            choices.append([([word], None)])
            continue
        name = word[1:-1]
        slot_list = lists.get(name)
        if name in HOUSE_LISTS:
            choices.append([([word], None)])
        elif isinstance(slot_list, RangeSlotList):
            choices.append([([NUMBER], None)])
        elif isinstance(slot_list, TextSlotList):
            said = [
                (words_of(text), value.value_out)
                for value in slot_list.values
                for text in sample_expression(value.text_in, lists, rules)
            ]
            choices.append(said)
        else:  # a wildcard or an unknown list: no closed sentence
            return
    for picked in itertools.product(*choices):
        yield (
            tuple(w for said, _ in picked for w in said),
            tuple(value for _, value in picked if value is not None),
        )


@dataclass(frozen=True)
class Candidate:
    """A command sentence of the house near what was heard."""

    text: str
    # Candidates with the same number do the same to the same devices
    # ("Turn off the Office Fan", "Turn off the office fans" when the office
    # has one fan): the audio need not tell them apart.
    action: int


@dataclass(frozen=True)
class Value:
    """A name, area or floor of the house as it may be said."""

    slot: str  # "name", "area", "floor"
    text: str  # as the house writes it
    canonical: str  # the entity's name for an alias
    domain: str | None
    words: tuple[str, ...]


@dataclass(frozen=True)
class Spotted:
    value: Value
    start: int
    end: int
    similarity: float


class Vocabulary:
    """The house's command sentences, as close to a transcript as they come."""

    def __init__(self, house: House, language: str) -> None:
        self.frames = frames_for(language)
        self._first_words = frozenset(
            frame.words[0]
            for frame in self.frames.frames
            if not frame.words[0].startswith("{")
        )
        values = [
            Value("name", said, entity["name"], entity["domain"], tuple(words_of(said)))
            for entity in house.entities
            for alias in [entity["name"], *entity.get("aliases", [])]
            for said in [alias, *spoken_variants(alias, language)]
        ]
        values += [Value("area", a, a, None, tuple(words_of(a))) for a in house.areas]
        values += [Value("floor", f, f, None, tuple(words_of(f))) for f in house.floors]
        self._values = [value for value in values if value.words]
        # Per spelling: each value's letters, and which values hold a triple.
        self._letters = [
            ["".join(map(spelling.of, value.words)) for value in self._values]
            for spelling in SPELLINGS
        ]
        self._by_trigram: list[dict[str, list[int]]] = []
        self._trigram_counts: list[list[int]] = []
        for letters in self._letters:
            by_trigram: dict[str, list[int]] = defaultdict(list)
            counts = []
            for number, text in enumerate(letters):
                trigrams = _trigrams(text)
                counts.append(len(trigrams))
                for trigram in trigrams:
                    by_trigram[trigram].append(number)
            self._by_trigram.append(by_trigram)
            self._trigram_counts.append(counts)
        in_area: dict[tuple[str | None, str], set[str]] = defaultdict(set)
        for entity in house.entities:
            in_area[(entity.get("area"), entity["domain"])].add(entity["name"])
        self._in_area = {key: frozenset(names) for key, names in in_area.items()}
        # Per list, its values word by word (where a name may go on).
        self._tries = {slot: Node() for slot in HOUSE_LISTS}
        for value in self._values:
            self._tries[value.slot].add(value.words, value)

    def goes_on(self, heard: str) -> bool:
        """Whether a longer command sentence of the house begins with the
        words of `heard` and acts on other devices: a longer name, area or
        floor ("turn on the office lamp": "... shelf"), a name, area or
        floor where `heard` names no device ("turn off the lights": "in the
        kitchen"), or a longer number ("set the fan to 20": "25"). Words
        that only add to the same devices ("dim the desk lamp": "to 25%",
        "turn on the TV": "in the den") do not count."""
        words = words_of(normalize(heard))

        @cache
        def walk(start: int, node: Node, named: bool) -> bool:
            if start == len(words):
                return any(_acts_on_more(f, node.depth, named) for f in node.below)
            word = words[start]
            for key in {word, *self.frames.stands_for.get(word, ())}:
                child = node.children.get(key)
                if child is not None and walk(start + 1, child, named):
                    return True
            if word in DROPPABLE and walk(start + 1, node, named):
                return True
            for slot, trie in self._tries.items():
                child = node.children.get("{" + slot + "}")
                said: Node | None = trie
                end = start
                while child is not None and said is not None and end < len(words):
                    said = said.children.get(words[end])
                    end += 1
                    if said is None:
                        break
                    if end == len(words) and self._longer_fits(said, child):
                        return True
                    if said.ends and walk(end, child, named or slot == "name"):
                        return True
            child = node.children.get(NUMBER)
            if child is not None and is_number(word):
                end = start
                while end < len(words) and is_number(words[end]):
                    end += 1
                if end == len(words) and words[-1] in _TENS:
                    return True
                return walk(end, child, named)
            return False

        return bool(words) and walk(0, self.frames.trie, False)

    def _longer_fits(self, values: Node, after: Node) -> bool:
        """Whether a value longer than those ending at `values` fits a frame
        going on from `after` (a sentence that has the value's slot there)."""
        frames = after.ends + after.below
        return any(
            self._fits(frame, (Spotted(value, 0, 0, 1.0),))
            for value in values.below
            for frame in frames
        )

    def closest(self, heard: str) -> list[Candidate]:
        """Up to CANDIDATES sentences of different meanings, closest first."""
        if not self.frames.frames:
            return []
        words = words_of(heard)
        heard_text = " ".join(words)
        # per meaning: (cost, unlikeness to what was heard, text, action)
        best: dict[Any, tuple[float, tuple[int, float], str, tuple[Any, ...]]] = {}
        for spotted in self._readings(words):
            abstract, numbers = _abstracted(words, spotted)
            for frame, edits in self.frames.near(abstract):
                if not self._fits(frame, spotted):
                    continue
                cost = edits + sum(
                    SPELLING_WEIGHT * (1 - s.similarity) for s in spotted
                )
                if cost > MAX_COST:
                    continue
                text = _said(frame.words, spotted, numbers, abstract, self.frames.alike)
                text_words = words_of(text)
                if text_words == words:
                    continue
                meaning = (
                    frame.meaning,
                    tuple((s.value.slot, s.value.canonical) for s in spotted),
                    tuple(numbers),
                )
                if meaning in best and cost > best[meaning][0]:
                    continue
                # Wordings as near as each other: the one most like what was
                # heard, which the acoustic model scores best: as many words
                # ("turn off the lamp" for "turn off a lamp", not "turn off
                # lamp"), then as many letters alike ("brighten the lamp" for
                # "brighten to lamp", not "brighten up lamp").
                unlike = (
                    abs(
                        len(text_words)
                        - len(words)
                        - _run_together_in(words, text_words)
                    ),
                    -SequenceMatcher(None, heard_text, " ".join(text_words)).ratio(),
                )
                if meaning not in best or (cost, unlike) < best[meaning][:2]:
                    action = (frame.action, self._reached(frame, spotted), meaning[2])
                    best[meaning] = (cost, unlike, text, action)
        # The same words can mean two things (a name, an area): the matcher
        # decides, and the acoustic model cannot tell them apart.
        said: dict[tuple[str, ...], tuple[str, tuple[Any, ...]]] = {}
        for _, _, text, action in sorted(best.values(), key=lambda v: v[:3]):
            said.setdefault(tuple(words_of(text)), (text, action))
        actions: dict[tuple[Any, ...], int] = {}
        return [
            Candidate(text, actions.setdefault(action, len(actions)))
            for text, action in list(said.values())[:CANDIDATES]
        ]

    def _reached(self, frame: Frame, spotted: tuple[Spotted, ...]) -> tuple[Any, ...]:
        """What a sentence's names, areas and floors reach: an area's devices
        of the sentence's domain are those devices, however named."""
        reached: list[Any] = []
        for s in spotted:
            value = s.value
            if value.slot == "name":
                reached.append(frozenset({value.canonical}))
            elif value.slot == "area" and frame.domain is not None:
                reached.append(self._in_area[(value.canonical, frame.domain)])
            else:
                reached.append((value.slot, value.canonical))
        return tuple(reached)

    def starts_like_a_command(self, heard: str) -> bool:
        """Whether `heard` starts with a word a command sentence starts with."""
        words = words_of(heard)
        return bool(words) and words[0] in self._first_words

    def spotted(self, heard: str) -> list[str]:
        """The names, areas and floors `heard` says or nearly says, as the
        house writes them, the likeliest first."""
        found = sorted(self._spot(words_of(heard)), key=lambda s: -s.similarity)
        return list(dict.fromkeys(s.value.text for s in found))

    def _fits(self, frame: Frame, spotted: tuple[Spotted, ...]) -> bool:
        for s in spotted:
            value = s.value
            if value.slot == "name" and frame.domains is not None:
                if value.domain not in frame.domains:
                    return False
            if value.slot == "area" and frame.domain is not None:
                if (value.canonical, frame.domain) not in self._in_area:
                    return False
        return True

    def _readings(self, words: list[str]) -> Iterator[tuple[Spotted, ...]]:
        """What the heard words may name: nothing, one name, area or floor,
        or two of them that do not overlap."""
        spotted = self._spot(words)
        yield ()
        yield from ((s,) for s in spotted)
        for first, second in itertools.combinations(spotted, 2):
            if first.value.slot != second.value.slot and (
                first.end <= second.start or second.end <= first.start
            ):
                yield tuple(sorted((first, second), key=lambda s: s.start))

    def _spot(self, words: list[str]) -> list[Spotted]:
        """Names, areas and floors said, or nearly, in `words`: those sharing
        most of their letter triples with it, written or said, where they
        are most alike."""
        best: dict[tuple[int, bool], Spotted] = {}
        for spelling, letters, by_trigram, counts in zip(
            SPELLINGS, self._letters, self._by_trigram, self._trigram_counts
        ):
            heard = _Letters([spelling.of(word) for word in words], spelling)
            shared: Counter[int] = Counter()
            for trigram in heard.trigrams:
                shared.update(by_trigram.get(trigram, ()))
            compared: Counter[str] = Counter()
            # Ties in the house's order: the same words spot the same names
            # in every process (sets of strings iterate by a random hash).
            for number in sorted(shared, key=lambda n: (-shared[n] / counts[n], n)):
                value = self._values[number]
                if shared[number] < MIN_SHARED * counts[number]:
                    break
                if compared[value.slot] >= 3 * SPOTTED_PER_LIST:
                    continue
                compared[value.slot] += 1
                for kind, spot in heard.spot(value, letters[number]).items():
                    key = (number, kind)
                    if key not in best or spot.similarity > best[key].similarity:
                        best[key] = spot
        kept: list[Spotted] = []
        for slot in HOUSE_LISTS:
            found = [key for key, spot in best.items() if spot.value.slot == slot]
            found.sort(key=lambda key: (-best[key].similarity, key))
            numbers = list(dict.fromkeys(key[0] for key in found))[:SPOTTED_PER_LIST]
            kept += dict.fromkeys(best[key] for key in found if key[0] in numbers)
        return kept


def _acts_on_more(frame: Frame, depth: int, named: bool) -> bool:
    """Whether the frame, past its first `depth` words, names other devices
    than its start: a name, or a place for devices of a kind ("the lights"
    ... "in the kitchen"; a timer's place is no device) where none was named."""
    rest = frame.words[depth:]
    places = "{area}" in rest or "{floor}" in rest
    return "{name}" in rest or (places and not named and frame.domain is not None)


def _trigrams(letters: str) -> set[str]:
    padded = f" {letters} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class _Letters:
    """Heard words run together, so a name heard as other words ("nights and"
    for "nightstand") is still found, and where each word starts."""

    def __init__(self, words: list[str], spelling: Spelling) -> None:
        self.words = words
        self.spelling = spelling
        self.text = "".join(words)
        self.trigrams = _trigrams(self.text)
        if spelling.by_edges:
            self.trigrams |= {f" {word[:2]}" for word in words}
            self.trigrams |= {f"{word[-2:]} " for word in words}
        self.starts: list[int] = []
        position = 0
        for word in words:
            self.starts.append(position)
            position += len(word)

    def spot(self, value: Value, target: str) -> dict[bool, Spotted]:
        """The value, whose letters are `target`, where the words are most
        alike it, if alike enough; and where as many words as it has are
        alike enough, if that is elsewhere ("rule pump" for "Pool Pump",
        though "pump" alone is more alike: the frames tell)."""
        wanted = _trigrams(target)
        padded = f" {self.text} "
        hits = [i for i in range(len(padded) - 2) if padded[i : i + 3] in wanted]
        if not hits:
            return {}
        # Where a run of shared letters starts, a stretch as long as the value.
        spans = set()
        for number, hit in enumerate(hits):
            if number and hit - hits[number - 1] <= 2:
                continue
            last = max(h for h in hits if hit <= h < hit + len(target))
            start = self._word_at(hit - 1)
            end = self._word_at(last + 1) + 1
            spans |= {(start, end), (start - 1, end), (start, end + 1)}
        best: dict[bool, Spotted] = {}  # of any length, of the value's
        for s, e in sorted(spans):
            if s < 0 or e > len(self.words) or e <= s:
                continue
            said = "".join(self.words[s:e])
            if self.spelling.by_edges and said[:1] != target[:1]:
                continue
            similarity = SequenceMatcher(None, said, target).ratio()
            if similarity < self.spelling.alike:
                continue
            spot = Spotted(value, s, e, similarity)
            for kind in {False, e - s == len(value.words)}:
                if kind not in best or (similarity, e - s) > (
                    best[kind].similarity,
                    best[kind].end - best[kind].start,
                ):
                    best[kind] = spot
        return best

    def _word_at(self, position: int) -> int:
        """The word holding the letter at `position` of the run-together text."""
        index = 0
        for number, start in enumerate(self.starts):
            if start <= position:
                index = number
        return index


def _abstracted(
    words: list[str], spotted: tuple[Spotted, ...]
) -> tuple[tuple[str, ...], list[str]]:
    """`words` with the spotted values as their slots and the numbers left
    as {number}; and the numbers, as said."""
    out: list[str] = []
    numbers: list[str] = []
    position = 0
    spans = {s.start: s for s in spotted}
    while position < len(words):
        if position in spans:
            out.append("{" + spans[position].value.slot + "}")
            position = spans[position].end
            continue
        if is_number(words[position]):
            end = position
            while end < len(words) and is_number(words[end]):
                end += 1
            out.append(NUMBER)
            numbers.append(" ".join(words[position:end]))
            position = end
            continue
        out.append(words[position])
        position += 1
    return tuple(out), numbers


def _said(
    frame: tuple[str, ...],
    spotted: tuple[Spotted, ...],
    numbers: list[str],
    heard: tuple[str, ...],
    alike: dict[str, frozenset[str]],
) -> str:
    """The frame filled in, each rule worded as heard ("lights", not "light")."""
    values = {"{" + s.value.slot + "}": s.value.text for s in spotted}
    remaining = iter(numbers)
    said = []
    for word in frame:
        if word in values:
            said.append(values[word])
        elif word == NUMBER:
            said.append(next(remaining, word))
        else:
            others = alike.get(word, frozenset())
            same_place = heard[len(said)] if len(said) < len(heard) else ""
            if same_place in others:
                said.append(same_place)
            else:
                said.append(next((h for h in heard if h in others), word))
    sentence = " ".join(said)
    return sentence[:1].upper() + sentence[1:]
