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


def percentiles(values: list[float]) -> str:
    """'p50 X / p90 Y / p95 Z ms (n)'."""
    if not values:
        return "n/a"
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    return (
        f"p50 {statistics.median(ordered):6.1f} / p90 {at(0.9):6.1f} / "
        f"p95 {at(0.95):6.1f} ms ({len(ordered)})"
    )
