"""What a turn of the in-process pipeline does, as it happens: its own typed
events, no protocol. The stack's pipeline endpoint translates them to
Wyoming (`pipeline_handler.py`), `converse` prints them.

In a turn: SpeechStarted, SpeechStopped (when speech was heard), Transcribed,
then the reply: the responder's AnswerStarted, Said and Finished, Commands
(the device commands and what is said of each), the reply's audio as the
speaker's Pcm chunks and, once it has all been sent or was stopped,
ReplyStopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from .handle.responder import AnswerStarted, Finished, Said
from .house.matcher import Match
from .tts.speaker import Pcm


@dataclass(frozen=True)
class SpeechStarted:
    """The user began to speak."""


@dataclass(frozen=True)
class SpeechStopped:
    """The turn's speech is over (by the end-of-turn rule or the audio's end)."""


@dataclass(frozen=True)
class Transcribed:
    text: str


@dataclass(frozen=True)
class Commands:
    """Device commands, run by Home Assistant where the pipeline has it, and
    what is said of each (its confirmation, or that Home Assistant did not
    answer)."""

    matches: tuple[Match, ...]
    answers: tuple[str, ...]


@dataclass(frozen=True)
class ReplyStopped:
    """The reply's audio is all sent, or was stopped (barge-in)."""


TurnEvent = (
    SpeechStarted
    | SpeechStopped
    | Transcribed
    | AnswerStarted
    | Said
    | Finished
    | Commands
    | Pcm
    | ReplyStopped
)

__all__ = [
    "AnswerStarted",
    "Commands",
    "Finished",
    "Pcm",
    "ReplyStopped",
    "Said",
    "SpeechStarted",
    "SpeechStopped",
    "Transcribed",
    "TurnEvent",
]
