"""`script/bench ha` runs its Home Assistant side in this environment."""

from __future__ import annotations

import importlib


def test_the_bench_loads_beside_this_home_assistant() -> None:
    # Its spoken material and judging come from .venv: what it imports here
    # must not need the project's wyoming (2025.4.4 pins an older one).
    bench = importlib.import_module("bench.ha")
    assert bench.TEST_HOUSE.is_file()
