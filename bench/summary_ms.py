"""How the benchmarks state a distribution."""

from __future__ import annotations

import statistics


def summary_ms(values: list[float]) -> str:
    """'p50 X / p95 Y ms' of a list of millisecond values."""
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f} / p95 {p95:7.1f} ms"
