"""One utterance being transcribed while it is spoken, and where its turn ends.

Audio (16 kHz mono) is kept and followed by the VAD. While speech goes on,
the audio so far is decoded at intervals and the words two consecutive
decodes agree on become stable. At the first silent frame the final decode
starts (a partial still running gives way to it; none runs in the silence
after); speech that resumes drops it, and its driver is told when it ends.
Whether the turn is over is decided by `turn.TurnRule` from what that
decode says, or, when it is no command, from what the second chance makes
of it (a misheard command ends the turn like one heard right). The ASR
service's handler and the in-process pipeline both drive a session.

At most one partial and two final decodes of a session run at a time (a
final that speech made stale, and the current one), so a client cannot
multiply the work by what it sends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..audio import RATE_16K, WIDTH, to_float
from ..trace import Trace
from ..turn import FRAME_BYTES, FRAME_S, Ending, Frames, TurnRule, open_ending

_LOGGER = logging.getLogger(__name__)

BYTES_PER_SECOND = RATE_16K * WIDTH
FINALS_AT_ONCE = 2  # a stale final decode need not delay the current one
# The second chance, in natural log-probability of the transcript, from the
# benchmark: a right candidate was up to ~6.5 below the transcript, the best
# candidate for other speech never less than 9 below.
WITHIN_HEARD = 5.0  # a candidate may fit the audio this much worse than it
MARGIN = 2.0  # and must fit it this much better than any other candidate


class Candidate(Protocol):
    """A command sentence of the house near what was heard
    (`house.vocabulary.Candidate`)."""

    @property
    def text(self) -> str: ...

    @property
    def action(self) -> int:
        """Candidates with the same number do the same to the house."""


class Decoder(Protocol):
    """Speech to text (`whisper.Whisper`, or a stand-in in tests)."""

    language: str

    @property
    def busy(self) -> bool:
        """A decode of any stream is running."""

    async def decode(self, audio: np.ndarray, prompt: str | None) -> str: ...

    async def score(self, audio: np.ndarray, texts: list[str]) -> list[float]:
        """Log-probability of each text as the transcript of `audio`."""


Classify = Callable[[str], Awaitable[Ending]]
Prompt = Callable[[str | None], str | None]  # what was heard -> names to bias
Closest = Callable[[str], Awaitable[Sequence[Candidate]]]  # heard -> commands near it


def no_prompt(heard: str | None) -> str | None:
    return None


async def by_text(text: str) -> Ending:
    """What can be told without the house: an open ending, or not."""
    return Ending.OPEN if open_ending(text) else Ending.OTHER


@dataclass(frozen=True)
class AsrSettings:
    max_seconds: float = 30.0  # audio kept per stream; the rest is ignored
    partial_interval_s: float = 0.5
    first_partial_s: float = 1.0  # earlier decodes of a word's start are guesses


@dataclass
class Decode:
    """A decode of the first `audio_bytes` of the stream, running or done."""

    audio: np.ndarray
    task: asyncio.Task[str]
    chosen: str | None = None  # what the second chance made of it, once run

    @property
    def audio_bytes(self) -> int:
        return len(self.audio) * WIDTH

    @property
    def text(self) -> str | None:
        """The transcript; None while it runs, or if cancelled or failed."""
        task = self.task
        if not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()


def _log_failure(task: asyncio.Task[str]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _LOGGER.error("Decoding failed: %r", task.exception())


def _plain(word: str) -> str:
    return word.strip(".,!?").lower()


def spoken_form(text: str) -> str:
    """`text` written one way, so transcripts that differ in words only are
    scored alike: lowercase but the first letter, no punctuation but a
    final full stop, a number's "percent" written "%" as Whisper writes it
    (the house's sentences say "percent": 1-2 nats lost to the spelling)."""
    words = re.sub(r"[^\w\s'%-]", " ", text).lower().split()
    sentence = re.sub(r"(\d) percent\b", r"\1%", " ".join(words))
    return sentence[:1].upper() + sentence[1:] + "." if sentence else ""


def choose(scores: list[float], actions: list[int]) -> int | None:
    """Which candidate the audio says (scores[0] is the free transcript's,
    the rest are the candidates', whose `actions` tell which do the same),
    or None. A candidate is taken when the audio fits it nearly as well as
    what was heard, and clearly better than any candidate that does
    something else: a clear margin, else nothing is changed."""
    if len(scores) < 2:
        return None
    heard, candidates = scores[0], scores[1:]
    best = max(range(len(candidates)), key=candidates.__getitem__)
    runner_up = max(
        (
            score
            for score, action in zip(candidates, actions)
            if action != actions[best]
        ),
        default=-math.inf,
    )
    if candidates[best] < heard - WITHIN_HEARD:
        return None
    if candidates[best] - runner_up < MARGIN:
        return None
    return best


def stable_prefix(previous: list[str], current: list[str]) -> list[str]:
    """Words two consecutive hypotheses agree on, from the start, except the
    current last word (the audio may end inside it)."""
    agreed: list[str] = []
    for old, new in zip(previous, current[:-1]):
        if _plain(old) != _plain(new):
            break
        agreed.append(new.rstrip(".!?"))
    return agreed


class AsrSession:
    def __init__(
        self,
        decoder: Decoder,
        frames: Frames,
        settings: AsrSettings,
        rule: TurnRule,
        prompt: Prompt,
        trace: Trace,
        classify: Classify = by_text,
        closest: Closest | None = None,
        on_decoded: Callable[[], object] | None = None,
    ) -> None:
        self.decoder = decoder
        self.settings = settings
        self.rule = rule
        self.trace = trace
        self.audio = bytearray()
        self.heard_speech = False
        self.stable_words: list[str] = []
        self._frames = frames
        self._frames.reset()
        self._prompt = prompt
        self._classify = classify
        self._closest = closest
        # Told when a final decode ends, so the turn can end then, not at
        # the next chunk of audio.
        self._on_decoded = on_decoded
        self.heard = ""  # the final transcript as decoded, before a second chance
        self.scored: list[tuple[str, float]] = []  # by the second chance, if it ran
        self.second_chance_ms: float | None = None  # its time, if it ran
        self._endings: dict[str, Ending] = {}
        self._in_speech = False
        self._speech_start_bytes = 0
        self._silence_s = 0.0
        self._cut = False
        self._partial: Decode | None = None
        self._heard_so_far: str | None = None  # the newest finished partial's
        self._final: Decode | None = None
        self._finals_running = 0
        self._decoding: set[asyncio.Task[str]] = set()
        self._final_due = False  # wanted while FINALS_AT_ONCE run
        self._previous_words: list[str] = []
        self._compared: asyncio.Task[str] | None = None

    @property
    def seconds(self) -> float:
        return len(self.audio) / BYTES_PER_SECOND

    @property
    def silence_s(self) -> float:
        """Silence since the last speech (0 while speaking or before any)."""
        return self._silence_s if self.heard_speech else 0.0

    async def add(self, audio: bytes) -> list[str]:
        """Feed 16 kHz mono audio; returns words that have newly become stable."""
        room = int(self.settings.max_seconds * BYTES_PER_SECOND) - len(self.audio)
        if len(audio) > room:
            if not self._cut:
                _LOGGER.warning(
                    "Stream over %.0f s, the rest is ignored", self.settings.max_seconds
                )
                self.trace.notes.append("cut at max seconds")
            self._cut = True
            audio = audio[: max(0, room)]
        if not audio:
            return []
        verdicts = await asyncio.to_thread(list, self._frames.frames(audio))
        start = len(self.audio)
        self.audio += audio
        for index, speech in enumerate(verdicts):
            self._follow(speech, start + (index + 1) * FRAME_BYTES)
        new_words = self._take_stable_words()
        if self._in_speech_now() and self._partial_due():
            self._partial = self._decode()
            self._partial.task.add_done_callback(self._partial_done)
        return new_words

    async def turn_over(self) -> str | None:
        """Why the turn is over by now (None while it goes on)."""
        if not self.heard_speech:
            if self.seconds >= self.rule.no_speech_s:
                return "no speech"
            return None
        speech_s = (len(self.audio) - self._speech_start_bytes) / BYTES_PER_SECOND
        if speech_s >= self.rule.max_speech_s:
            return "longest speech"
        if self._in_speech and self._silence_s == 0.0:
            return None
        if self._silence_s >= self.rule.pause_s:
            return "long silence"
        ready = self.ready_transcript()
        if ready is None or self._final is None:
            return None
        ending = await self._ending(ready)
        if ending is Ending.OTHER and self._closest is not None:
            # A misheard command is a command: its second chance now, while
            # the silence runs, not after it (finish() takes its result).
            ending = await self._ending(await self._chosen(self._final, ready))
        if self._silence_s >= self.rule.silence_for(ending):
            return f"{ending.value} after {self._silence_s * 1000:.0f} ms of silence"
        return None

    async def _ending(self, text: str) -> Ending:
        if text not in self._endings:
            self._endings[text] = await self._classify(text) if text else Ending.OTHER
        return self._endings[text]

    async def finish(self, budget_s: float | None = None) -> str:
        """The final transcript ('' if no speech was heard).

        With a budget, a final decode still running after it gives way to the
        newest partial transcript, if there is one (recorded in the trace).
        """
        partial = self.latest_partial()
        if self._partial is not None:
            self._partial.task.cancel()
        if not self.heard_speech:
            return ""
        final = self._final
        if final is not None and final.audio_bytes < self._speech_bytes():
            final = None  # it ran on less than the speech: decode again
        if final is None or (final.task.done() and final.text is None):
            self.trace.notes.append("decoded after the turn ended")
            final = self._final = self._decode()
        elif final.task.done():
            self.trace.notes.append("ready at the end of the turn")
        if budget_s is not None and partial is not None:
            done, _ = await asyncio.wait({final.task}, timeout=budget_s)
            if not done:
                final.task.cancel()
                self.trace.notes.append("asr over budget: last partial used")
                return partial
        self.heard = await final.task
        self.trace.mark("heard")
        return await self._chosen(final, self.heard)

    async def _chosen(self, final: Decode, heard: str) -> str:
        """The second chance's transcript of a final decode, run once."""
        if final.chosen is None:
            final.chosen = await self.second_chance(heard, final.audio)
        return final.chosen

    async def second_chance(self, heard: str, audio: np.ndarray) -> str:
        """`heard`, or, when it is no device command, the command of this
        house the audio says, if the acoustic model tells it clearly."""
        if self._closest is None or not heard:
            return heard
        if await self._ending(heard) not in (Ending.OPEN, Ending.OTHER):
            return heard  # a device command already
        self.trace.mark("second_chance")
        candidates = await self._closest(heard)
        chosen = None
        if candidates:
            said = [candidate.text for candidate in candidates]
            texts = [spoken_form(text) for text in [heard, *said]]
            # Whether each is a command of this house (the matcher's thread)
            # while the decoder scores them (the decoder's).
            scores, endings = await asyncio.gather(
                self.decoder.score(audio, texts),
                asyncio.gather(*(self._ending(text) for text in said)),
            )
            actions = [candidate.action for candidate in candidates]
            chosen = choose(scores, actions)
            if chosen is not None and endings[chosen] in (Ending.OPEN, Ending.OTHER):
                chosen = None  # not a command of this house after all
            self.scored = list(zip(texts, scores))
            _LOGGER.debug("Second chance for %r: %s", heard, self.scored)
        elapsed_ms = (time.monotonic() - self.trace.marks["second_chance"]) * 1000
        self.second_chance_ms = elapsed_ms
        self.trace.notes.append(
            f"second chance {'taken' if chosen is not None else 'not taken'} "
            f"({len(candidates)} candidates, {elapsed_ms:.0f} ms)"
        )
        return heard if chosen is None else candidates[chosen].text

    def latest_partial(self) -> str | None:
        """The newest finished partial decode, for speculation."""
        return self._heard_so_far

    def ready_transcript(self) -> str | None:
        """The final transcript decoded since the speech stopped, if it is
        done and still current."""
        final = self._final
        if final is None or self._final_due or self._in_speech_now():
            return None
        return final.text

    def cancel(self) -> None:
        self._final_due = False
        for task in self._decoding:
            task.cancel()

    def _in_speech_now(self) -> bool:
        return self._in_speech and self._silence_s == 0.0

    def _speech_bytes(self) -> int:
        """Audio up to the last speech frame."""
        return len(self.audio) - int(self._silence_s * BYTES_PER_SECOND)

    def _follow(self, speech: bool, position: int) -> None:
        if speech:
            if self._final is not None and self._silence_s > 0:
                self.trace.notes.append("speech resumed")
                self._final_due = False
            if not self.heard_speech:
                self._speech_start_bytes = position - FRAME_BYTES
                self.trace.mark("speech_start")
            self._in_speech = self.heard_speech = True
            self._silence_s = 0.0
            return
        if not self.heard_speech:
            return
        self._silence_s += FRAME_S
        if self._silence_s == FRAME_S:  # the first silent frame: decode now
            self.trace.marks["speech_end"] = time.monotonic() - FRAME_S
            self._want_final()
        if self._silence_s >= self.rule.pause_s:
            self._in_speech = False

    def _want_final(self) -> None:
        """Decode everything so far, now, or as soon as a running final
        decode ends."""
        if self._finals_running >= FINALS_AT_ONCE:
            self._final_due = True
            return
        if self._partial is not None and not self._partial.task.done():
            # A partial of less audio is of no use now: it stops after its
            # current step and leaves the cores to the final and the reply.
            self._partial.task.cancel()
        self._final_due = False
        self._finals_running += 1
        self._final = self._decode()
        self._final.task.add_done_callback(self._final_done)

    def _final_done(self, task: asyncio.Task[str]) -> None:
        self._finals_running -= 1
        if self._final_due and self._silence_s > 0 and not task.cancelled():
            self._want_final()
        elif self._final is not None and task is self._final.task:
            if task.cancelled():
                return
            self.trace.marks["decoded"] = time.monotonic()  # the newest final's
            if self._on_decoded is not None:
                self._on_decoded()

    def _partial_done(self, task: asyncio.Task[str]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._heard_so_far = task.result()

    def _partial_due(self) -> bool:
        running = self._partial
        if self.decoder.busy or (running is not None and not running.task.done()):
            # Partials are a head start, final decodes are what is awaited:
            # with streams sharing the cores, partials wait for an idle decoder.
            return False
        speech = len(self.audio) - self._speech_start_bytes
        if running is None:
            return speech >= self.settings.first_partial_s * BYTES_PER_SECOND
        interval = self.settings.partial_interval_s * BYTES_PER_SECOND
        return len(self.audio) - running.audio_bytes >= interval

    def _decode(self) -> Decode:
        audio = to_float(bytes(self.audio))
        prompt = self._prompt(self.latest_partial())
        task = asyncio.ensure_future(self.decoder.decode(audio, prompt))
        task.add_done_callback(_log_failure)
        self._decoding.add(task)
        task.add_done_callback(self._decoding.discard)
        return Decode(audio, task)

    def _take_stable_words(self) -> list[str]:
        partial = self._partial
        text = None if partial is None else partial.text
        if partial is None or text is None or partial.task is self._compared:
            return []  # each decode is compared with the one before it once
        self._compared = partial.task
        words = text.split()
        stable = stable_prefix(self._previous_words, words)
        self._previous_words = words
        if len(stable) <= len(self.stable_words):
            return []
        new_words = stable[len(self.stable_words) :]
        self.stable_words = stable
        return new_words
