"""Pure pieces of the TTS service: clause splitting, windows, cache bounds."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wyoming_rtvoice.tts.clauses import (
    MAX_CLAUSE_CHARS,
    MIN_COMMA_CHARS,
    ClauseSplitter,
    _is_boundary,
    split_clauses,
)
from wyoming_rtvoice.tts.voice import FIRST_WINDOW_FRAMES, AudioCache, _windows


def test_sentences_split_and_abbreviations_do_not() -> None:
    text = "Dr. Smith is here. Pi is 3.14, roughly! Is that right?\nYes"
    assert split_clauses(text) == [
        "Dr. Smith is here.",
        "Pi is 3.14, roughly!",
        "Is that right?",
        "Yes",
    ]


def test_long_clause_splits_at_comma_short_one_does_not() -> None:
    long_head = "The weather today is sunny with a high of twenty degrees,"
    assert len(long_head) >= MIN_COMMA_CHARS
    assert split_clauses(f"{long_head} and clear tonight.") == [
        long_head,
        "and clear tonight.",
    ]
    assert split_clauses("Yes, I can do that.") == ["Yes, I can do that."]


@pytest.mark.parametrize("piece", [1, 3, 7])
def test_token_by_token_gives_the_same_clauses(piece: int) -> None:
    text = "Sure. The lights are on; everything is fine. Anything else?"
    splitter = ClauseSplitter()
    clauses: list[str] = []
    for offset in range(0, len(text), piece):
        clauses += splitter.feed(text[offset : offset + piece])
    assert clauses + splitter.flush() == split_clauses(text)
    # A sentence is released only once the next token shows it has ended.
    assert ClauseSplitter().feed("Sure.") == []


class RegexSplitter:
    """The splitter as it was (one regex rescanning all pending text): the
    reference for where clauses end."""

    BOUNDARY = re.compile(r"([.!?…]+[\"')\]]*|[;:,])(?=\s)|\n")

    def __init__(self) -> None:
        self.pending = ""

    def feed(self, text: str) -> list[str]:
        self.pending += text
        clauses: list[str] = []
        start = 0
        for match in self.BOUNDARY.finditer(self.pending):
            clause = self.pending[start : match.end()].strip()
            if clause and _is_boundary(clause, match.group(1) or "\n"):
                clauses.append(clause)
                start = match.end()
        self.pending = self.pending[start:]
        return clauses


# Words, abbreviations, numbers, every mark and closer, odd white space.
PIECES = st.sampled_from(
    ["Sure", "the lights", "Dr", "no", "e.g", "3.14", "etc", "a", "x" * 12]
    + list(".!?…\"')];:,-")
    + [" ", "  ", "\n", "\t", "\u00a0", "...", '?")']
)
TEXTS = st.lists(PIECES, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_clauses_end_where_they_always_did(text: str, cuts: list[int]) -> None:
    """Same clauses as the regex splitter, whole or in any pieces."""
    reference = RegexSplitter()
    expected = reference.feed(text)
    rest = reference.pending.strip()
    expected += [rest] if rest else []
    assert max(map(len, expected), default=0) <= MAX_CLAUSE_CHARS
    assert split_clauses(text) == expected
    splitter = ClauseSplitter()
    clauses: list[str] = []
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    for start, end in zip(bounds, bounds[1:]):
        clauses += splitter.feed(text[start:end])
    assert clauses + splitter.flush() == expected


@pytest.mark.parametrize(
    "text",
    [
        "." * 10_000,  # one synthesize of punctuation: was 1.2 s on the loop
        "?" * 5_000 + '")' * 2_500,
        ", " * 5_000,
        "no. " * 2_500,
        "word " * 2_000,
        "x" * 10_000,
    ],
)
def test_long_text_is_cut_into_bounded_clauses_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    whole = split_clauses(text)
    pieces = ClauseSplitter()
    streamed = [c for char in text for c in pieces.feed(char)] + pieces.flush()
    # Linear: ~10 ms on this machine; the rescanning regex took 1.2 s whole
    # and 15 s for 1,500 one-character chunks.
    assert time.perf_counter() - started < 0.5
    assert streamed == whole
    assert max(map(len, whole)) <= MAX_CLAUSE_CHARS
    assert "".join("".join(whole).split()) == "".join(text.split())
    if " " in text:  # cut at a space, not inside a word
        assert all(" " + clause + " " in " " + text + " " for clause in whole)


@pytest.mark.parametrize("frames", [1, FIRST_WINDOW_FRAMES, 13, 125, 400])
def test_decoder_windows_cover_every_frame_once(frames: int) -> None:
    windows = list(_windows(frames))
    assert windows[0] == (0, min(frames, FIRST_WINDOW_FRAMES))
    covered = [f for start, end in windows for f in range(start, end)]
    assert covered == list(range(frames))


def test_cache_is_bounded_by_bytes_and_evicts_least_recent() -> None:
    cache = AudioCache(max_bytes=100)
    cache.put("a", b"x" * 40)
    cache.put("b", b"x" * 40)
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", b"x" * 40)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.size == 80
    cache.put("huge", b"x" * 101)
    assert "huge" not in cache
    cache.put("long text " * 20, b"x")
    assert len(cache) == 2
