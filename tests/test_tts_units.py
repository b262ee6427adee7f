"""Pure pieces of the TTS service: clause splitting, windows, cache bounds."""

from __future__ import annotations

import pytest

from wyoming_rtvoice.tts.clauses import MIN_COMMA_CHARS, ClauseSplitter, split_clauses
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
