"""Split text into clauses that can be spoken as soon as they are complete.

Text may arrive token by token. A clause ends at a sentence end (.!? or a
line break) followed by white space, at ; or : after a few words, and at a
comma once the clause is long enough that waiting for its end would be heard.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "no"}
_BOUNDARY = re.compile(r"([.!?…]+[\"')\]]*|[;:,])(?=\s)|\n")
_MIN_SEMICOLON_CHARS = 12
MIN_COMMA_CHARS = 30


def _is_boundary(clause: str, mark: str) -> bool:
    if mark == "\n" or mark[0] in ".!?…":
        if mark == ".":
            last_word = clause.rsplit(maxsplit=1)[-1].rstrip(".").lower()
            return last_word not in _ABBREVIATIONS
        return True
    if mark in ";:":
        return len(clause) >= _MIN_SEMICOLON_CHARS
    return len(clause) >= MIN_COMMA_CHARS


class ClauseSplitter:
    """Incremental splitter: `feed()` returns finished clauses, `flush()` the rest."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        self._pending += text
        clauses: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._pending):
            clause = self._pending[start : match.end()].strip()
            if clause and _is_boundary(clause, match.group(1) or "\n"):
                clauses.append(clause)
                start = match.end()
        self._pending = self._pending[start:]
        return clauses

    def flush(self) -> list[str]:
        rest, self._pending = self._pending.strip(), ""
        return [rest] if rest else []


def split_clauses(text: str) -> list[str]:
    """All clauses of a complete text."""
    splitter = ClauseSplitter()
    return splitter.feed(text) + splitter.flush()
