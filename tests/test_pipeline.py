"""The in-process pipeline on the real models: early end on commands, budgets
and their fallbacks, barge-in. Audio is fed at real-time pace."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from wyoming.event import Event

from bench.fake_llm import FakeLlm
from bench.speech import speak
from wyoming_rtvoice.converse import (
    add_pipeline_arguments,
    close_pipeline,
    load_pipeline,
    realtime_chunks,
)
from wyoming_rtvoice.handle.handler import LLM_DOWN
from wyoming_rtvoice.handle.llm import Llm, LlmSettings
from wyoming_rtvoice.hass import HomeAssistant
from wyoming_rtvoice.pipeline import (
    ACK,
    APOLOGY,
    HASS_DOWN,
    AudioSource,
    Pipeline,
    Turn,
)

from .conftest import free_port

LONG_ANSWER = (
    "The moon is about three hundred and eighty four thousand kilometres away. "
    "Light from it takes a little over a second to reach us. "
    "It is slowly drifting away, about four centimetres every year."
)


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm(answer=LONG_ANSWER, first_token_s=0.05, token_s=0.02)
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture(scope="module")
def loaded() -> Pipeline:
    """The models, loaded once for the module."""
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    return asyncio.run(load_pipeline(parser.parse_args([])))


@pytest.fixture
async def pipeline(loaded: Pipeline, fake_llm: FakeLlm) -> AsyncIterator[Pipeline]:
    """A fresh pipeline (as each connection gets) on the loaded models."""
    fake_llm.first_token_s, fake_llm.token_s, fake_llm.failure = 0.05, 0.02, "none"
    llm = Llm("sk-pipeline-test", fake_llm.url, LlmSettings())
    fresh = Pipeline(
        loaded.whisper, loaded.voice, loaded.matcher, llm, phrases=loaded.phrases
    )
    await fresh.warm()  # as at start-up: the phrases are there, the LLM warms
    yield fresh
    await close_pipeline(fresh)


async def run_turn(
    pipeline: Pipeline, text: str, after: bytes = b"", tail_s: float = 0.8
) -> tuple[list[Event], float, Turn]:
    """One turn of `text` (then `after`) at real-time pace; the events, the
    moment the speech ended and the turn."""
    spoken = speak(text, tail_s=tail_s)
    source = AudioSource()
    started = time.monotonic()
    feeding = asyncio.create_task(realtime_chunks(spoken.audio + after, source))
    events: list[Event] = []

    async def sink(event: Event) -> None:
        events.append(event)

    turn = await asyncio.wait_for(pipeline.run(source, sink=sink), 60)
    feeding.cancel()
    return events, started + spoken.speech_end_s, turn


def types(events: list[Event]) -> list[str]:
    return [event.type for event in events if event.type != "audio-chunk"]


async def test_a_command_ends_the_turn_and_is_answered_in_order(
    pipeline: Pipeline,
) -> None:
    events, _, turn = await run_turn(pipeline, "Turn off the bedroom fan.", tail_s=3)
    assert types(events) == [
        "voice-started",
        "voice-stopped",
        "transcript",
        "intent",
        "audio-start",
        "audio-stop",
    ]
    intent = next(event for event in events if event.type == "intent")
    assert intent.data["name"] == "HassTurnOff"
    assert "fan" in intent.data["text"]
    assert sum(1 for event in events if event.type == "audio-chunk") > 5
    # Ended by the VAD, not by the source running out (3 s of silence).
    notes = turn.trace.notes
    assert any(note.startswith("turn ended") for note in notes), turn.trace.waterfall()
    assert "not executed" in turn.executed


async def test_a_late_first_token_is_acknowledged_within_budget(
    pipeline: Pipeline, fake_llm: FakeLlm
) -> None:
    fake_llm.first_token_s = 1.0
    events, _, turn = await run_turn(pipeline, "How far away is the moon?")
    trace = turn.trace
    assert "llm over budget: acknowledged" in trace.notes
    # "One moment." is heard before the first token, soon after the transcript.
    assert trace.marks["first_audio"] < trace.marks["first_token"]
    budget_s = (pipeline.budgets_ms["llm"] + pipeline.budgets_ms["tts"]) / 1000
    assert trace.marks["first_audio"] - trace.marks["transcript"] < budget_s
    handled = next(event for event in events if event.type == "handled")
    assert handled.data["text"] == LONG_ANSWER
    assert turn.audio[: len(pipeline.phrases[ACK])] == pipeline.phrases[ACK]


async def test_an_unreachable_llm_is_a_spoken_apology(pipeline: Pipeline) -> None:
    assert pipeline.llm is not None
    await pipeline.llm.close()
    pipeline.llm = Llm("sk-test", f"http://127.0.0.1:{free_port()}", LlmSettings())
    events, _, turn = await run_turn(pipeline, "How far away is the moon?")
    assert turn.answer == LLM_DOWN
    assert bytes(turn.audio) == pipeline.phrases[LLM_DOWN]
    trace = turn.trace
    budget_s = (pipeline.budgets_ms["llm"] + pipeline.budgets_ms["tts"]) / 1000
    assert trace.marks["first_audio"] - trace.marks["transcript"] < budget_s
    assert types(events)[-3:] == ["handled-stop", "handled", "audio-stop"]


async def test_failing_synthesis_plays_the_rendered_apology(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(text: str) -> AsyncIterator[bytes]:
        raise RuntimeError("onnxruntime failed")
        yield b""  # an async generator, as Voice.stream is

    monkeypatch.setattr(pipeline.voice, "stream", broken)
    events, _, turn = await run_turn(pipeline, "How far away is the moon?")
    assert "tts failed: apology" in turn.trace.notes
    assert bytes(turn.audio) == pipeline.phrases[APOLOGY]
    marks = turn.trace.marks  # heard within the TTS budget of the first clause
    tts_budget_s = pipeline.budgets_ms["tts"] / 1000
    assert marks["first_audio"] - marks["first_clause"] < tts_budget_s
    assert "handled" in types(events)


async def test_home_assistant_unreachable_is_said_not_confirmed(
    pipeline: Pipeline,
) -> None:
    pipeline.hass = HomeAssistant(f"http://127.0.0.1:{free_port()}", "token")
    _, _, turn = await run_turn(pipeline, "Turn off the bedroom fan.")
    assert turn.executed.startswith("Home Assistant unreachable")
    assert turn.answer == HASS_DOWN
    assert bytes(turn.audio) == pipeline.phrases[HASS_DOWN]


async def test_speech_over_the_reply_stops_it(
    pipeline: Pipeline, fake_llm: FakeLlm
) -> None:
    fake_llm.token_s = 0.1  # the answer is still coming when the user speaks
    interruption = speak("Turn on the kitchen lights.", lead_s=0.6).audio
    events, _, turn = await run_turn(
        pipeline, "How far away is the moon?", interruption
    )
    assert turn.interrupted
    assert "barge-in: reply stopped" in turn.trace.notes
    assert types(events)[-1] == "audio-stop"
    assert "handled" not in types(events)
    # Stopped mid-answer, and while what was sent was still playing.
    assert len(turn.answer) < len(LONG_ANSWER)
    marks = turn.trace.marks
    sent_s = len(turn.audio) / 2 / pipeline.voice.rate
    assert marks["barge_in"] - marks["first_audio"] < sent_s
