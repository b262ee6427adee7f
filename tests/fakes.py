"""The stand-in models' fixtures (a pytest plugin, tests/conftest.py): the
demo house's matcher, compiled once, its house, and the fake Messages API."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from testing.engines import NAMED_HOUSE
from testing.fake_llm import FakeLlm
from wyoming_rtvoice.converse import DEMO_HOUSE
from wyoming_rtvoice.house.matcher import Matcher
from wyoming_rtvoice.house.model import House
from wyoming_rtvoice.house.store import HouseStore, Snapshot
from wyoming_rtvoice.house.vocabulary import frames_for


@pytest.fixture(scope="session")
def demo_matcher() -> Matcher:
    """The demo house's matcher, compiled once (a house store copies it),
    and the command sentences, expanded once."""
    frames_for("en")
    return Matcher("en", House.from_file(DEMO_HOUSE))


@pytest.fixture(scope="session")
def named_matcher(demo_matcher: Matcher) -> Matcher:
    """A matcher for NAMED_HOUSE (sharing the demo matcher's sentences)."""
    matcher = copy.copy(demo_matcher)
    matcher.update(House.from_json(NAMED_HOUSE))
    return matcher


@pytest.fixture
def house(demo_matcher: Matcher) -> Iterator[HouseStore]:
    """The demo house in memory (its matcher a copy: a test may patch it)."""
    store = HouseStore(Snapshot(copy.copy(demo_matcher)), None)
    yield store
    store.close()


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    """The fake Messages API, answering at once (tests set what they need)."""
    fake = FakeLlm(first_token_s=0.0, token_s=0.0)
    fake.start_in_thread()
    yield fake
    fake.stop_thread()
