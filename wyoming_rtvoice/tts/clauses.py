"""Split text into clauses that can be spoken as soon as they are complete.

Text may arrive token by token. A clause ends at a sentence end (.!? or a
line break) followed by white space, at ; or : after a few words, and at a
comma once the clause is long enough that waiting for its end would be heard.
A run of text with no such end is cut at `MAX_CLAUSE_CHARS` (at a space when
there is one).

The work is linear in the text: `feed()` looks only at what is new, and a
boundary is found from the white space that follows it by looking back over
the marks before it (each character is looked at a bounded number of times),
so no input makes it stall the event loop.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "no"}
_SENTENCE_ENDS = ".!?…"
_CLOSERS = "\"')]"
_MID_MARKS = ";:,"
# White space right after a mark or a closer, or a line break: where a
# boundary may end. One character of look-behind: no backtracking.
_CANDIDATE = re.compile(r"(?<=[.!?…\"')\];:,])\s|\n")
_MIN_SEMICOLON_CHARS = 12
MIN_COMMA_CHARS = 30
MAX_CLAUSE_CHARS = 300


def _is_boundary(clause: str, mark: str) -> bool:
    if mark == "\n" or mark[0] in _SENTENCE_ENDS:
        if mark == ".":
            last_word = clause.rsplit(maxsplit=1)[-1].rstrip(".").lower()
            return last_word not in _ABBREVIATIONS
        return True
    if mark in ";:":
        return len(clause) >= _MIN_SEMICOLON_CHARS
    return len(clause) >= MIN_COMMA_CHARS


def _mark_before(text: str, end: int, start: int) -> int:
    """Where the mark that ends at `end` begins (`end` when there is none):
    sentence ends then closing quotes or brackets (`?")`), or one of ;:,"""
    at = end
    while at > start and text[at - 1] in _CLOSERS:
        at -= 1
    closers = at
    while at > start and text[at - 1] in _SENTENCE_ENDS:
        at -= 1
    if at < closers:
        return at
    if end > start and text[end - 1] in _MID_MARKS:
        return end - 1
    return end


class ClauseSplitter:
    """Incremental splitter: `feed()` returns finished clauses, `flush()` the rest."""

    def __init__(self) -> None:
        self._pending = ""
        self._scanned = 0  # boundaries before this index were decided

    def feed(self, text: str) -> list[str]:
        pending = self._pending + text
        clauses: list[str] = []
        start = 0
        for candidate in _CANDIDATE.finditer(pending, self._scanned):
            space = candidate.start()
            start = self._cut_long(pending, start, space, clauses)
            mark = _mark_before(pending, space, start)
            if mark < space:
                start = self._release(
                    pending, start, space, pending[mark:space], clauses
                )
            if pending[space] == "\n":
                start = self._release(pending, start, space + 1, "\n", clauses)
        start = self._cut_long(pending, start, len(pending), clauses)
        self._pending = pending[start:]
        self._scanned = len(self._pending)
        return clauses

    def flush(self) -> list[str]:
        rest, self._pending, self._scanned = self._pending.strip(), "", 0
        return [rest] if rest else []

    @staticmethod
    def _release(text: str, start: int, end: int, mark: str, clauses: list[str]) -> int:
        """The new start: `end` when text[start:end] is a clause."""
        clause = text[start:end].strip()
        if clause and _is_boundary(clause, mark):
            clauses.append(clause)
            return end
        return start

    @staticmethod
    def _cut_long(text: str, start: int, end: int, clauses: list[str]) -> int:
        """Cut text[start:end] into clauses of at most MAX_CLAUSE_CHARS, at the
        last space when there is one; the new start."""
        while end - start > MAX_CLAUSE_CHARS:
            limit = start + MAX_CLAUSE_CHARS
            space = text.rfind(" ", start + 1, limit)
            cut = space if space > start else limit
            clause = text[start:cut].strip()
            if clause:
                clauses.append(clause)
            start = cut
        return start


def split_clauses(text: str) -> list[str]:
    """All clauses of a complete text."""
    splitter = ClauseSplitter()
    return splitter.feed(text) + splitter.flush()
