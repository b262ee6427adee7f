"""`script/bench wake`: recall on fast, slow and noisy wake phrases and false
accepts per hour on long other speech and noise, for the previous defaults
and the current ones side by side, with a sweep of thresholds and trigger
levels (the measurement the defaults come from); latency and concurrent
streams through the real server; and what a satellite's turn loses of the
words said right after the phrase ("Okay Nabu, turn on the lights" in one
breath), when its audio starts at the chunk the detection comes in (as it
did) or where the detection places the phrase (as it does now).

The material (bench/wake_material.py) is made once with the project's Piper
voice and cached in .cache/bench/. Each engine's probabilities over it are
computed once with the service's own `Stream` and each single-model setting
is replayed on them with the service's own firing rule; the current
defaults with a second opinion run the service's `Stream` itself. A wake
clip counts as found when a detection falls inside it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
from wyoming.client import AsyncTcpClient
from wyoming.wake import Detect, Detection

from bench.summary_ms import summary_ms
from bench.tts import free_port, wait_ready
from bench.wake_material import CACHE, CONDITIONS
from bench.wake_material import SPEEDS as SPEED_GROUPS
from bench.wake_material import WAKE_TEXTS, Segment, other_speech, wake_phrases
from testing.speech import SPEEDS, VOICED, Spoken, speak, stream_audio
from wyoming_rtvoice.audio import RATE_16K
from wyoming_rtvoice.config import add_flags, from_flags
from wyoming_rtvoice.satellite.devices import MIC_CHUNK_BYTES
from wyoming_rtvoice.satellite.room import RECENT_S
from wyoming_rtvoice.wake.config import WakeConfig
from wyoming_rtvoice.wake.engines import (
    ENGINES,
    Listener,
    Stream,
    WakeModel,
    find_model,
)

VARIANTS = {"okay_nabu": ["Okay Nabu.", "OK, Nabu."]}
MODEL = "okay_nabu"
SWEEP = {
    "micro": [0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.85],
    "openwakeword": [0.02, 0.05, 0.1, 0.2, 0.5],
}
TRIGGER_LEVELS = (1, 2, 3)
CHUNK = 640  # 20 ms


@dataclass
class Trace:
    """One model's probabilities over some audio."""

    model: WakeModel
    positions: np.ndarray
    probabilities: np.ndarray
    cpu_s: float


class _Replay:
    def probabilities(self, features: np.ndarray) -> Iterable[float]:
        return []


def trace(model: WakeModel, audio: np.ndarray) -> Trace:
    """The model's probability at each step it decides, fed 20 ms chunks."""
    stream = Stream([model], None, 1, 2.0)
    pcm = audio.tobytes()
    positions: list[int] = []
    probabilities: list[float] = []
    started = time.process_time()
    for offset in range(0, len(pcm), CHUNK):
        for _, position, probability in stream.scores(pcm[offset : offset + CHUNK]):
            positions.append(position)
            probabilities.append(probability)
    cpu = time.process_time() - started
    return Trace(model, np.array(positions), np.array(probabilities), cpu)


def cached_trace(model: WakeModel, name: str, audio: Callable[[], np.ndarray]) -> Trace:
    """The trace of `model` over the material `name`, kept in .cache/bench/
    (with the CPU time it took when it was made)."""
    path = CACHE / "traces" / f"{name}-{model.engine}-{model.path.stem}.npz"
    if path.is_file():
        kept = np.load(path)
        return Trace(
            model, kept["positions"], kept["probabilities"], float(kept["cpu_s"])
        )
    made = trace(model, audio())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        positions=made.positions,
        probabilities=made.probabilities,
        cpu_s=made.cpu_s,
    )
    return made


def replayed(trace: Trace, threshold: float, trigger_level: int) -> list[int]:
    """Where the service's rule fires on this trace with these settings."""
    listener = Listener(trace.model, _Replay(), threshold, trigger_level, 2 * 16000)
    return [
        int(position)
        for position, probability in zip(
            trace.positions.tolist(), trace.probabilities.tolist()
        )
        if Stream.fires(listener, probability, position)
    ]


def live(
    model: WakeModel, audio: np.ndarray, trigger_level: int
) -> tuple[list[int], float, list[float]]:
    """Detections of the service's own stream, its CPU seconds and the wall
    ms of each chunk that asked a second opinion."""
    stream = Stream([model], None, trigger_level, 2.0)
    pcm = audio.tobytes()
    fired: list[int] = []
    asked: list[float] = []
    cpu = time.process_time()
    for offset in range(0, len(pcm), CHUNK):
        started, opinions = time.perf_counter(), stream.second_opinions
        fired += [at for _, at in stream.process(pcm[offset : offset + CHUNK])]
        if stream.second_opinions > opinions:
            asked.append(1000 * (time.perf_counter() - started))
    return fired, time.process_time() - cpu, asked


def found(clips: list[dict[str, object]], fired: list[int]) -> list[bool]:
    """Per clip: did a detection fall inside it."""
    positions = np.array(sorted(fired))
    return [
        bool(
            np.any(
                (positions >= int(str(c["start"]))) & (positions <= int(str(c["end"])))
            )
        )
        for c in clips
    ]


def recall_text(clips: list[dict[str, object]], hits: list[bool]) -> str:
    """'89.4% (fast 86.2, normal 94.4, slow 90.0; quiet 100.0, ...)'"""

    def percent(key: str, value: str) -> str:
        chosen = [hit for clip, hit in zip(clips, hits) if clip[key] == value]
        return f"{value} {100 * sum(chosen) / len(chosen):.1f}"

    speeds = ", ".join(percent("speed", group) for group in SPEED_GROUPS)
    conditions = ", ".join(percent("condition", name) for name in CONDITIONS)
    return f"{100 * sum(hits) / len(hits):5.1f}% ({speeds}; {conditions})"


def hours(segments: list[Segment]) -> float:
    return sum(segment.samples for segment in segments) / RATE_16K / 3600


def poisson_upper(count: int, confidence: float = 0.95) -> float:
    """The one-sided upper confidence bound of a Poisson mean after seeing
    `count` events (2.996 for none at 95%)."""

    def at_most(mean: float) -> float:
        term = total = math.exp(-mean)
        for k in range(1, count + 1):
            term *= mean / k
            total += term
        return total

    low, high = float(count), count + 10 * math.sqrt(count + 1) + 10
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if at_most(middle) > 1 - confidence else (low, middle)
        )
    return high


def rate(segments: list[Segment], fired: list[list[int]]) -> str:
    """'2 in 6.41 h: 0.31/h (95% upper bound 0.98/h; fan 10 dB 1, ...)'"""
    count, span = sum(len(f) for f in fired), hours(segments)
    where: dict[str, int] = {}
    for segment, detections in zip(segments, fired):
        if detections:
            where[segment.condition] = where.get(segment.condition, 0) + len(detections)
    places = "".join(f"; {condition} {n}" for condition, n in sorted(where.items()))
    return (
        f"{count} in {span:.2f} h: {count / span:.2f}/h "
        f"(95% upper bound {poisson_upper(count) / span:.2f}/h{places})"
    )


def current(model: WakeModel, flags: list[str]) -> tuple[WakeModel, int]:
    """The model as the service runs it with these flags (its defaults, [])."""
    parser = argparse.ArgumentParser()
    add_flags(parser, WakeConfig)
    defaults = from_flags(WakeConfig, parser.parse_args(flags))
    now = defaults.tuned(model)
    if defaults.threshold is not None:
        now = replace(now, cutoff=defaults.threshold)
    return now, defaults.trigger_level


def recall_and_false_accepts(span_hours: float, sweep: bool) -> None:
    positives, negatives = wake_phrases(MODEL), other_speech(span_hours)
    takes = len(positives.clips) // len(WAKE_TEXTS[MODEL]) // len(CONDITIONS)
    conditions = sorted({segment.condition for segment in negatives})
    print(
        f"Wake word {MODEL}: {len(positives.clips)} clips ({positives.minutes:.1f} "
        f"min: {len(WAKE_TEXTS[MODEL])} texts x {takes} takes (2 each at speeds "
        f"{dict(SPEED_GROUPS)}, in 2 voices) x {len(CONDITIONS)} rooms); "
        f"other speech and noise: {hours(negatives):.2f} h "
        f"({', '.join(conditions)})"
    )
    for engine in ENGINES:
        model = find_model(engine, MODEL)
        wake = cached_trace(model, positives.name, lambda: positives.audio)
        other = [cached_trace(model, s.name, s.audio) for s in negatives]
        cpu = (wake.cpu_s + sum(t.cpu_s for t in other)) / (
            positives.minutes * 60 + hours(negatives) * 3600
        )
        print(f"  {engine}: {1000 * cpu:.1f} ms CPU per audio second")

        def show(
            settings: str, wake_fired: list[int], other_fired: list[list[int]]
        ) -> None:
            hits = found(positives.clips, wake_fired)
            print(
                f"    {settings}\n      recall {recall_text(positives.clips, hits)}\n"
                f"      false accepts {rate(negatives, other_fired)}"
            )

        before = model.cutoff
        show(
            f"before: threshold {before:.2f} (the model's own), trigger level 1",
            replayed(wake, before, 1),
            [replayed(t, before, 1) for t in other],
        )
        now, level = current(model, [])
        settings = f"now: threshold {now.cutoff:.2f}, trigger level {level}"
        if now.second_opinion is None:
            show(
                settings,
                replayed(wake, now.cutoff, level),
                [replayed(t, now.cutoff, level) for t in other],
            )
        else:
            wake_fired, cpu_w, asked_w = live(now, positives.audio, level)
            other_fired, cpu_o, asked_o = [], 0.0, []
            for segment in negatives:
                fired, cpu_s, asked = live(now, segment.audio(), level)
                other_fired.append(fired)
                cpu_o += cpu_s
                asked_o += asked
            show(
                f"{settings}, second opinion {now.second_opinion.engine} at "
                f"{now.second_opinion.cutoff:.2f} when above {now.unsure_above:.2f}",
                wake_fired,
                other_fired,
            )
            other_s = hours(negatives) * 3600
            print(
                f"      CPU per audio second: {1000 * cpu_o / other_s:.1f} ms on "
                f"other speech, {cpu_w / positives.minutes / 0.06:.1f} ms on the "
                f"wake clips; second opinions: {len(asked_o)} on other speech "
                f"({len(asked_o) / other_s * 60:.1f}/min), {len(asked_w)} on the "
                f"wake clips; each {summary_ms(asked_w + asked_o)}"
            )
        if sweep:
            print("    sweep, one model: recall % / false accepts per hour")
            for threshold in SWEEP[engine]:
                cells = []
                for level in TRIGGER_LEVELS:
                    hits = found(positives.clips, replayed(wake, threshold, level))
                    count = sum(len(replayed(t, threshold, level)) for t in other)
                    recall = 100 * sum(hits) / len(hits)
                    cells.append(
                        f"level {level}: {recall:5.1f} / "
                        f"{count / hours(negatives):5.2f}"
                    )
                print(f"      threshold {threshold:.2f}   " + "   ".join(cells))


def phrase_ends(clips: list[dict[str, object]], audio: np.ndarray) -> list[int]:
    """Each clip's last spoken sample of the phrase, found in the quiet room's
    clip of its take (the noisy rooms' clips of that take follow it)."""
    ends: list[int] = []
    said = 0
    for clip in clips:
        start, end = int(str(clip["start"])), int(str(clip["end"]))
        if clip["condition"] == "quiet":
            said = int(np.flatnonzero(np.abs(audio[start:end]) > VOICED)[-1]) + 1
        ends.append(start + said)
    return ends


def lost_after_phrase(engine: str, flags: list[str]) -> None:
    """Over the wake clips, fed in the satellite's microphone chunks: ms said
    after the phrase that a turn loses when its audio starts at the chunk the
    detection comes in, and when it starts where the detection places the
    phrase (the last RECENT_S of microphone kept)."""
    positives = wake_phrases(MODEL)
    model, level = current(find_model(engine, MODEL), flags)
    stream = Stream([model], None, level, 2.0)
    pcm = positives.audio.tobytes()
    heard: list[tuple[int, int, bool]] = []  # placed at, came at, by the opinion
    asking: list[float] = []  # ms of the chunks that asked the opinion
    for offset in range(0, len(pcm), MIC_CHUNK_BYTES):
        started, asked = time.perf_counter(), stream.second_opinions
        placed = stream.process(pcm[offset : offset + MIC_CHUNK_BYTES])
        if stream.second_opinions > asked:
            asking.append(1000 * (time.perf_counter() - started))
        heard += [
            (at, stream.samples, stream.second_opinions > asked) for _, at in placed
        ]
    before: list[float] = []
    now: list[float] = []
    waited: list[float] = []  # ms from the place to the detection
    within = opinions = 0  # placed before the phrase's end; by the opinion
    for clip, end in zip(
        positives.clips, phrase_ends(positives.clips, positives.audio)
    ):
        start, stop = int(str(clip["start"])), int(str(clip["end"]))
        here = [found for found in heard if start <= found[0] <= stop]
        if not here:
            continue
        at, came, by_opinion = here[0]
        opinions += by_opinion
        kept_from = max(at, came - int(RECENT_S * RATE_16K))
        before.append(max(0, came - end) / 16)
        waited.append((came - at) / 16)
        now.append(max(0, kept_from - end) / 16)
        within += kept_from < end
    settings = " ".join(flags) or "default flags"
    print(
        f"  {engine} ({settings}): {len(before)} of {len(positives.clips)} phrases "
        f"found; audio after the phrase lost by the turn, from the chunk the "
        f"detection comes in (before) {summary_ms(before)}, from where it places "
        f"the phrase (now, {RECENT_S:g} s kept) {summary_ms(now)}; the detection "
        f"came {summary_ms(waited)} of audio after its place, {opinions} by the "
        f"second opinion (asking it took {summary_ms(asking)}: a wake service's "
        f"detection comes that much later still); placed before the phrase's "
        f"last spoken sample: {within}"
    )


async def detection_latency(
    port: int, clip: Spoken
) -> tuple[float, float, float] | None:
    """ms from sending the phrase's last spoken sample to receiving
    `detection`; and, in ms of audio after that sample, the end of the audio
    sent when it came and where it places the phrase (its timestamp)."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Detect(names=["okay_nabu"]).event())
        started = time.monotonic()
        sending = asyncio.create_task(stream_audio(client, clip.audio, realtime=True))
        last_sample_sent = started + clip.speech_end_s
        try:
            while True:
                event = await asyncio.wait_for(client.read_event(), clip.seconds + 2)
                if event is None or event.type == "not-detected":
                    return None
                if Detection.is_type(event.type):
                    now = time.monotonic()
                    sent = min(clip.seconds, ((now - started) // 0.02 + 1) * 0.02)
                    placed = Detection.from_event(event).timestamp or 0
                    return (
                        (now - last_sample_sent) * 1000,
                        (sent - clip.speech_end_s) * 1000,
                        placed - clip.speech_end_s * 1000,
                    )
        except TimeoutError:
            return None
        finally:
            sending.cancel()


async def server_figures(engine: str, max_streams: int, flags: list[str]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wyoming_rtvoice", "wake"]
        + ["--engine", engine, "--uri", f"tcp://127.0.0.1:{port}"]
        # every stream comes from this machine's one address
        + ["--max-connections-per-client", str(max(16, 2 * max_streams)), *flags],
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_ready(port)
        clips = [
            speak(t, length_scale=s, seed=i)
            for i, (t, s) in enumerate(itertools.product(VARIANTS["okay_nabu"], SPEEDS))
        ]
        heard = [
            ms
            for clip in clips * 2
            if (ms := await detection_latency(port, clip)) is not None
        ]
        # A satellite's turn lost the audio sent before the detection came;
        # now it starts where the detection places the phrase.
        before = [max(0.0, sent) for _, sent, _ in heard]
        now = [max(0.0, placed, sent - RECENT_S * 1000) for _, sent, placed in heard]
        print(
            f"  {engine} okay_nabu ({' '.join(flags) or 'default flags'}), one "
            f"stream: last spoken sample -> detection "
            f"{summary_ms([came for came, _, _ in heard])} ({len(heard)}/"
            f"{2 * len(clips)} detected); audio after the phrase lost by a "
            f"satellite's turn (20 ms chunks), before {summary_ms(before)}, now "
            f"{summary_ms(now)}"
        )
        streams = 1
        held = 0
        while streams <= max_streams:
            results = await asyncio.gather(
                *(
                    detection_latency(port, clips[i % len(clips)])
                    for i in range(streams)
                )
            )
            found = sorted(ms[0] for ms in results if ms is not None)
            p95 = (
                found[min(len(found) - 1, round(0.95 * (len(found) - 1)))]
                if found
                else 9e9
            )
            print(
                f"    {streams:3} concurrent real-time streams: detected "
                f"{len(found)}/{streams}, latency {summary_ms(found)}"
            )
            if len(found) < 0.9 * streams or p95 > 300:
                break
            held = streams
            streams *= 2
        print(f"  {engine}: {held} concurrent streams held with p95 <= 300 ms")
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=6.0,
        help="of other speech and noise, made in blocks of about 32 min: 10 min "
        "of distinct sentences heard three ways, and noise alone; the first run "
        "makes it (about 2 min of CPU a block) (%(default)s)",
    )
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--no-recall", action="store_true")
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--max-streams", type=int, default=32)
    parser.add_argument("--engine", choices=ENGINES, action="append")
    parser.add_argument(
        "--wake-flag",
        action="append",
        default=[],
        help="a flag of the wake service for the lost-audio and server figures, "
        "e.g. --wake-flag=--threshold=0.9 (repeatable)",
    )
    args = parser.parse_args()
    if not args.no_recall:
        recall_and_false_accepts(args.hours, not args.no_sweep)
    engines = args.engine or ENGINES
    print("Words said right after the phrase, lost by a satellite's turn")
    for engine in engines:
        lost_after_phrase(engine, args.wake_flag)
    if not args.no_server:
        for engine in engines:
            asyncio.run(server_figures(engine, args.max_streams, args.wake_flag))


if __name__ == "__main__":
    main()
