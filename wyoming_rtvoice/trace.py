"""Per-turn latency traces with per-stage budgets, and their Prometheus summary.

Timestamps are `time.monotonic()`; a trace is a list of named marks relative
to its start, and a stage is the time between two marks, judged against its
budget. Every service records its turns in the same shape so a waterfall can
be read across services.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import flag


def _budget(stage: str) -> dict[str, Any]:
    return flag(f"{stage} stage budget in ms (%(default)s)", name=f"{stage}-budget-ms")


@dataclass(frozen=True)
class Budgets:
    """Per-stage budgets in ms (the design target); over one, a turn degrades."""

    FLAGS: ClassVar[str] = "budgets (over budget, a turn degrades)"

    asr: float = field(default=80.0, metadata=_budget("asr"))
    intent: float = field(  # the match, or the LLM's first token
        default=120.0, metadata=_budget("intent")
    )
    tts: float = field(default=70.0, metadata=_budget("tts"))
    network: float = field(default=30.0, metadata=_budget("network"))

    def as_dict(self) -> dict[str, float]:
        return {
            "asr": self.asr,
            "intent": self.intent,
            "llm": self.intent,
            "tts": self.tts,
            "network": self.network,
        }


@dataclass
class Trace:
    """Monotonic marks of one turn; stages are measured between marks."""

    service: str
    budgets_ms: dict[str, float] = field(default_factory=Budgets().as_dict)
    turn_id: int = 0  # given when the turn is recorded
    start: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)
    stages_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def mark(self, name: str) -> float:
        """Record `name` now (the first time only); returns ms since start."""
        now = time.monotonic()
        self.marks.setdefault(name, now)
        return self.ms(name)

    def ms(self, name: str) -> float:
        return (self.marks[name] - self.start) * 1000.0

    def stage(self, stage: str, begin: str, end: str) -> float:
        """Record a stage as the time between two marks; returns its ms."""
        elapsed = (self.marks[end] - self.marks[begin]) * 1000.0
        self.stages_ms[stage] = elapsed
        return elapsed

    def over_budget(self) -> list[str]:
        return [
            stage
            for stage, elapsed in self.stages_ms.items()
            if stage in self.budgets_ms and elapsed > self.budgets_ms[stage]
        ]

    def waterfall(self) -> str:
        """One log line: marks in time order, then stages against budgets."""
        marks = " ".join(
            f"{name}=+{self.ms(name):.0f}"
            for name in sorted(self.marks, key=self.marks.__getitem__)
        )
        stages = " ".join(
            f"{stage}={elapsed:.0f}/{self.budgets_ms.get(stage, 0):.0f}ms"
            + ("!" if stage in self.over_budget() else "")
            for stage, elapsed in self.stages_ms.items()
        )
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.service} turn {self.turn_id}: {marks} | {stages}{notes}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "turn": self.turn_id,
            "marks_ms": {name: round(self.ms(name), 2) for name in self.marks},
            "stages_ms": {k: round(v, 2) for k, v in self.stages_ms.items()},
            "over_budget": self.over_budget(),
            "notes": list(self.notes),
        }


def _quantile(samples: Iterable[float], q: float) -> float | None:
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 2)


class Metrics:
    """Recent traces and running stage statistics, rendered as Prometheus text."""

    def __init__(self, keep_traces: int = 100, keep_samples: int = 1000) -> None:
        self.traces: deque[Trace] = deque(maxlen=keep_traces)
        self._turn_ids = itertools.count(1)
        self._samples: dict[tuple[str, str], deque[float]] = defaultdict(
            lambda: deque(maxlen=keep_samples)
        )
        self._counts: dict[tuple[str, str], int] = defaultdict(int)
        self._over: dict[tuple[str, str], int] = defaultdict(int)

    def record(self, trace: Trace) -> None:
        trace.turn_id = trace.turn_id or next(self._turn_ids)
        self.traces.append(trace)
        over = set(trace.over_budget())
        for stage, elapsed in trace.stages_ms.items():
            key = (trace.service, stage)
            self._samples[key].append(elapsed)
            self._counts[key] += 1
            self._over[key] += stage in over

    def quantile(self, service: str, stage: str, q: float) -> float | None:
        return _quantile(self._samples.get((service, stage), ()), q)

    def stats(self) -> dict[str, Any]:
        """Per stage (over every service that records it) p50/p95 in ms, and
        the last turn's time to first audio (from the end of speech when the
        turn heard it, else from the request)."""
        by_stage: dict[str, list[float]] = defaultdict(list)
        counts: dict[str, int] = defaultdict(int)
        for (service, stage), samples in self._samples.items():
            by_stage[stage].extend(samples)
            counts[stage] += self._counts[(service, stage)]
        stages = {
            stage: {
                "p50_ms": _rounded(_quantile(samples, 0.5)),
                "p95_ms": _rounded(_quantile(samples, 0.95)),
                "count": counts[stage],
            }
            for stage, samples in sorted(by_stage.items())
        }
        last = next(
            (trace for trace in reversed(self.traces) if "first_audio" in trace.marks),
            None,
        )
        last_turn = None
        if last is not None:
            begin = last.marks.get("speech_end", last.start)
            last_turn = {
                "service": last.service,
                "turn": last.turn_id,
                "first_audio_ms": round((last.marks["first_audio"] - begin) * 1000, 2),
            }
        return {"last_turn": last_turn, "stages": stages}

    def prometheus(self) -> str:
        lines = [
            "# HELP rtvoice_stage_seconds Stage latency over recent turns.",
            "# TYPE rtvoice_stage_seconds summary",
        ]
        for service, stage in sorted(self._samples):
            labels = f'service="{service}",stage="{stage}"'
            for q in (0.5, 0.95):
                seconds = (self.quantile(service, stage, q) or 0.0) / 1000
                lines.append(
                    f'rtvoice_stage_seconds{{{labels},quantile="{q}"}} {seconds}'
                )
            count = self._counts[(service, stage)]
            lines.append(f"rtvoice_stage_seconds_count{{{labels}}} {count}")
        lines += [
            "# HELP rtvoice_stage_over_budget_total Turns over the stage's budget.",
            "# TYPE rtvoice_stage_over_budget_total counter",
        ]
        for (service, stage), count in sorted(self._over.items()):
            labels = f'service="{service}",stage="{stage}"'
            lines.append(f"rtvoice_stage_over_budget_total{{{labels}}} {count}")
        return "\n".join(lines) + "\n"
