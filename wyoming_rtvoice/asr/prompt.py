"""The words that bias a decode towards the house: its command verbs and
names, within a budget, from what was heard so far."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from ..house.store import HouseStore, Snapshot
from .session import Prompt

PROMPT_CHARS = 200  # about 50 tokens
# Command words tiny.en mishears without a hint ("Dim" as "Den" or "Then",
# "Turn on" as "Pern on", "Unlock" as "A Mott"), at the start of the prompt
# within its budget when what was heard so far starts like no command
# (`script/bench accuracy`, docs/benchmarks.md).
PROMPT_VERBS = {"en": "Turn on. Turn off. Dim. Brighten. Lock. Unlock. Pause. "}


def house_prompt(house: HouseStore, asked: Sequence[str] = ()) -> Prompt:
    """The prompt of the house as it is at each decode, with the names the
    client asked for."""
    return lambda heard: prompt(house.snapshot, heard, asked)


def prompt(
    snapshot: Snapshot,
    heard: str | None,
    asked: Sequence[str] = (),
    chars: int = PROMPT_CHARS,
    spot: bool = True,
    verbs: bool = True,
) -> str | None:
    """The words that bias a decode, within a budget (a long prompt slows
    every decode: ~40 tokens cost nothing, 220 about 80 ms): the language's
    command verbs when what was heard starts like no command sentence of the
    house ("Den the desk lamp"; `verbs`), then the names what was heard so
    far says or nearly says, written or as it sounds (`spot`), those that
    share words with it, rare words first, those the client asked for, the
    extra names, the areas, then the rest.

    Only then the verbs: given a prompt of commands, Whisper repeats a
    command it heard right ("Turn on the porch light. Turn on the porch
    light. ...", cut off later) on ~1 decode in 2, up to 3x its time.

    Measured (`script/bench accuracy --prompts`, docs/benchmarks.md): this
    understood 92.5% of spoken commands, without the verbs 89.8%, rare shared
    words alone 85%, any shared word 78% (none 67%); twice the budget gained
    nothing, every name (223 tokens) lost 18 points and cost ~12 ms a
    decode."""
    house = snapshot.house
    spotted = snapshot.vocabulary.spotted(heard) if heard and spot else []
    ranked = chain(
        spotted,
        snapshot.sharing_words(heard),
        asked,
        snapshot.names,
        house.areas,
        house.floors,
        snapshot.every_name,
    )
    start = ""
    if verbs and heard and not snapshot.vocabulary.starts_like_a_command(heard):
        start = PROMPT_VERBS.get(snapshot.matcher.language, "")
    kept: dict[str, None] = {}
    length = len(start)
    for name in ranked:
        if name in kept:
            continue
        length += len(name) + 2
        if length > chars:
            break
        kept[name] = None
    # As sentences: a comma-separated list makes the decoder end on a comma.
    return start + ". ".join(kept) + "." if kept else start.strip() or None
