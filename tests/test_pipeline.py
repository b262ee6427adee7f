"""The turn's behaviour on the in-process pipeline, with stand-in models
(tests/fakes.py), the real matcher and the real `anthropic` SDK against the
fake Messages API: milliseconds a test, no timing assumptions but the LLM's
deliberately late first token."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from bench.fake_llm import FakeLlm
from wyoming_rtvoice.handle.llm import Llm, LlmSettings
from wyoming_rtvoice.handle.responder import ACK, LLM_DOWN, AckPolicy, Responder
from wyoming_rtvoice.hass import HomeAssistant
from wyoming_rtvoice.house.matcher import Matcher
from wyoming_rtvoice.house.store import HouseStore, Snapshot
from wyoming_rtvoice.pipeline import (
    HASS_DOWN,
    AudioSource,
    Engines,
    Pipeline,
    Turn,
)
from wyoming_rtvoice.pipeline_handler import WyomingTurn
from wyoming_rtvoice.tts.speaker import APOLOGY, Speaker
from wyoming_rtvoice.turn import TurnRule
from wyoming_rtvoice.turn_events import Commands, Finished, Pcm, Said, TurnEvent

from .conftest import free_port
from .fakes import (
    FakeDecoder,
    FakeFrames,
    FakeVoice,
    chunks,
    one_turn,
    silence,
    speech,
)

ANSWER = "The moon is far away. About a second at the speed of light."


@pytest.fixture
async def engines(demo_matcher: Matcher, fake_llm: FakeLlm) -> AsyncIterator[Engines]:
    fake_llm.answer = ANSWER
    fake_llm.first_token_s, fake_llm.token_s, fake_llm.failure = 0.0, 0.0, "none"
    llm = Llm("sk-pipeline-test", fake_llm.url, LlmSettings())
    house = HouseStore(Snapshot(demo_matcher), None)
    responder = Responder(house, llm, AckPolicy(ack_after_s=0.3))
    made = Engines(FakeDecoder(), Speaker(FakeVoice()), responder)
    await made.warm()
    yield made
    await llm.close()
    house.close()


def said(engines: Engines, sentence: str) -> FakeDecoder:
    assert isinstance(engines.decoder, FakeDecoder)
    engines.decoder.sentence = sentence
    return engines.decoder


async def run_turn(
    engines: Engines, audio: bytes, pipeline: Pipeline | None = None
) -> tuple[list[TurnEvent], Turn]:
    """One turn of `audio`, all of it queued at once (the pipeline's rules go
    by audio time, not wall time); its events and the turn."""
    pipeline = pipeline or Pipeline(engines, frames=FakeFrames)
    events, turn = await one_turn(pipeline, audio)
    await pipeline.close()
    return events, turn


def kinds(events: list[TurnEvent]) -> list[str]:
    """The events' kinds, a run of audio chunks as one "Pcm"."""
    names = [type(event).__name__ for event in events]
    return [
        name
        for i, name in enumerate(names)
        if name != "Pcm" or names[i - 1 : i] != ["Pcm"]
    ]


def wyoming_types(events: list[TurnEvent]) -> list[str]:
    """The events as the stack's pipeline endpoint sends them, chunks left out."""
    wyoming = WyomingTurn()
    sent = [sent for event in events for sent in wyoming.events(event)]
    return [event.type for event in sent if event.type != "audio-chunk"]


def finished(events: list[TurnEvent]) -> Finished:
    (last,) = [event for event in events if isinstance(event, Finished)]
    return last


def notes(turn: Turn) -> str:
    return "; ".join(turn.trace.notes)


def ended(turn: Turn) -> tuple[str, int]:
    """How the turn ended, and after how many ms of silence."""
    found = re.search(r"turn over: (\w+) after (\d+) ms of silence", notes(turn))
    assert found is not None, notes(turn)
    return found.group(1), int(found.group(2))


async def test_a_command_ends_at_the_first_silent_frame(engines: Engines) -> None:
    said(engines, "turn off the bedroom fan")
    events, turn = await run_turn(engines, speech(5) + silence(3))
    assert kinds(events) == [
        "SpeechStarted",
        "SpeechStopped",
        "Transcribed",
        "Commands",
        "Pcm",
        "ReplyStopped",
    ]
    (commands,) = [event for event in events if isinstance(event, Commands)]
    assert [(m.intent, m.slots) for m in commands.matches] == [
        ("HassTurnOff", {"name": "Bedroom Fan"})
    ]
    assert wyoming_types(events) == [
        "voice-started",
        "voice-stopped",
        "transcript",
        "intent",
        "audio-start",
        "audio-stop",
    ]
    assert "turn over: command after 32 ms of silence" in notes(turn)
    assert "not executed" in turn.executed


async def test_other_speech_waits_for_its_silence(engines: Engines) -> None:
    said(engines, "how far away is the moon")
    _, short = await run_turn(engines, speech(6) + silence(0.4))
    assert "turn over" not in notes(short)  # the source ended first
    _, turn = await run_turn(engines, speech(6) + silence(1))
    assert "turn over: other after 512 ms of silence" in notes(turn)


async def test_a_question_is_asked_at_the_pause_not_after_the_silence(
    engines: Engines, fake_llm: FakeLlm
) -> None:
    said(engines, "how far away is the moon")
    asked = len(fake_llm.requests)
    _, turn = await run_turn(engines, speech(6) + silence(1))
    assert turn.answer == ANSWER
    assert len(fake_llm.requests) == asked + 1  # once, at the pause
    assert re.search(r"llm asked \d+ ms before the turn ended", notes(turn))


async def test_words_after_the_pause_drop_the_early_question(
    engines: Engines, fake_llm: FakeLlm
) -> None:
    said(engines, "how far away is the moon")
    asked = len(fake_llm.requests)
    _, turn = await run_turn(engines, speech(3) + silence(0.3) + speech(3) + silence(1))
    questions = [r["messages"][-1]["content"] for r in fake_llm.requests[asked:]]
    assert questions == ["how far away", "how far away is the moon"]
    assert turn.answer == ANSWER
    # The dropped question is in no history: the next turn's is the answered one.
    said(engines, "and the sun")
    await run_turn(engines, speech(3) + silence(1))
    history = fake_llm.requests[-1]["messages"]
    assert [m["content"] for m in history if m["role"] == "user"] == [
        "how far away is the moon",
        "and the sun",
    ]


async def test_a_client_gone_while_the_early_question_waits_leaves_no_trace(
    engines: Engines, fake_llm: FakeLlm
) -> None:
    said(engines, "how far away is the moon")
    fake_llm.first_token_s = 5.0  # the answer is still coming when the client goes
    asked = len(fake_llm.requests)
    pipeline = Pipeline(engines, frames=FakeFrames)
    source = AudioSource()
    for chunk in chunks(speech(6) + silence(0.3)):  # a pause; the turn goes on
        source.put(chunk)
    running = asyncio.create_task(pipeline.run(source))
    async with asyncio.timeout(5):
        while len(fake_llm.requests) == asked:  # asked at the pause
            await asyncio.sleep(0.01)
    running.cancel()  # what the pipeline endpoint does when its client goes
    with pytest.raises(asyncio.CancelledError):
        await running
    llm = engines.responder.llm
    assert llm is not None
    assert llm.conversations.messages("pipeline", "next") == [
        {"role": "user", "content": "next"}  # the question was not remembered
    ]
    fake_llm.first_token_s = 0.0
    _, turn = await run_turn(engines, speech(6) + silence(1), pipeline)
    assert turn.answer == ANSWER  # the same pipeline serves the next turn
    assert len(fake_llm.requests) == asked + 2  # asked afresh, not the old request


@pytest.fixture
async def named(named_matcher: Matcher) -> AsyncIterator[Engines]:
    """Engines on a house named the Home Assistant way ("Office Lamp" in
    the "Office"), without an LLM."""
    house = HouseStore(Snapshot(named_matcher), None)
    made = Engines(
        FakeDecoder(), Speaker(FakeVoice()), Responder(house, None, AckPolicy())
    )
    await made.warm()
    yield made
    house.close()


@pytest.mark.parametrize(
    "sentence",
    [
        "close the blinds in the office",
        "turn on the fan in the nursery",
        "pause the music in the kitchen",
        "what is the temperature in the garage",  # a question the matcher answers
    ],
)
async def test_a_command_ending_on_an_area_ends_at_the_first_silent_frame(
    named: Engines, sentence: str
) -> None:
    said(named, sentence)
    _, turn = await run_turn(named, speech(len(sentence.split())) + silence(2))
    assert turn.intent is not None and "area" in turn.intent.slots
    assert ended(turn) == ("command", 32)


async def test_a_name_that_begins_a_longer_name_waits_for_the_silence(
    named: Engines,
) -> None:
    said(named, "turn on the office lamp")  # ... "shelf"?
    _, turn = await run_turn(named, speech(5) + silence(2))
    assert ended(turn) == ("prefix", 512)
    said(named, "set the office lamp brightness to 50 percent")  # past the name
    _, turn = await run_turn(named, speech(8) + silence(2))
    assert turn.intent is not None and turn.intent.slots["brightness"] == 50
    ending, silence_ms = ended(turn)
    assert ending == "command" and silence_ms < 100  # a frame or two


async def test_a_pause_mid_number_does_not_end_the_turn(named: Engines) -> None:
    said(named, "set the nursery fan to twenty five percent")
    audio = speech(6) + silence(0.3) + speech(2) + silence(2)
    _, turn = await run_turn(named, audio)
    assert turn.intent is not None and turn.intent.slots["percentage"] == 25


async def test_a_pause_mid_command_does_not_end_the_turn(engines: Engines) -> None:
    said(engines, "turn on the kitchen lights")
    audio = speech(3) + silence(0.6) + speech(2) + silence(2)
    events, turn = await run_turn(engines, audio)
    assert turn.transcript == "turn on the kitchen lights"
    assert turn.intent is not None and turn.intent.slots == {"name": "Kitchen Lights"}
    assert "speech resumed" in notes(turn)


async def test_a_door_is_asked_about_at_once_and_opens_only_after_a_yes(
    engines: Engines,
) -> None:
    said(engines, "open the garage door")
    hass = HomeAssistant(f"http://127.0.0.1:{free_port()}", "token")
    guarded = Engines(engines.decoder, engines.speaker, engines.responder, hass)
    pipeline = Pipeline(guarded, frames=FakeFrames)
    events, turn = await run_turn(guarded, speech(4) + silence(2), pipeline)
    # The question hears a "no wait": no silence to wait for first.
    assert "turn over: confirm after 32 ms of silence" in notes(turn)
    assert turn.executed == "not executed: waiting for a yes"
    assert "Commands" not in kinds(events)
    assert turn.answer == "Open Garage Door?"
    said(engines, "yes")
    events, turn = await run_turn(guarded, speech(1) + silence(2), pipeline)
    await hass.close()
    assert "confirmed" in notes(turn)
    assert turn.executed.startswith("Home Assistant unreachable")  # it was sent
    assert kinds(events)[kinds(events).index("Transcribed") + 1] == "Commands"


async def test_a_late_first_token_is_acknowledged(
    engines: Engines, fake_llm: FakeLlm
) -> None:
    said(engines, "how far away is the moon")
    fake_llm.first_token_s = 1.0
    events, turn = await run_turn(engines, speech(6) + silence(1))
    assert "llm late: acknowledged" in notes(turn)
    replies = [event for event in events if isinstance(event, Said)]
    assert replies[0] == Said(ACK, acknowledgement=True)
    assert "".join(event.text for event in replies[1:]) == ANSWER
    assert kinds(events)[-2:] == ["Finished", "ReplyStopped"]
    assert finished(events).handled
    assert wyoming_types(events)[-3:] == ["handled-stop", "handled", "audio-stop"]
    spoken = engines.speaker.voice.spoken  # type: ignore[attr-defined]
    assert spoken.index(ACK) < spoken.index("The moon is far away.")
    assert turn.trace.marks["first_audio"] < turn.trace.marks["first_token"]


async def test_an_unreachable_llm_is_a_spoken_apology(engines: Engines) -> None:
    said(engines, "how far away is the moon")
    llm = Llm("sk-test", f"http://127.0.0.1:{free_port()}", LlmSettings())
    responder = Responder(engines.responder.house, llm, engines.responder.policy)
    broken = Engines(engines.decoder, engines.speaker, responder)
    events, turn = await run_turn(broken, speech(6) + silence(1))
    await llm.close()
    assert turn.answer == LLM_DOWN
    assert kinds(events)[-4:] == [  # nothing was streamed: no AnswerStarted
        "Transcribed",
        "Pcm",
        "Finished",
        "ReplyStopped",
    ]
    assert not finished(events).handled
    assert len(turn.audio) == 2 * 16 * len(LLM_DOWN)  # the rendered phrase


async def test_failing_synthesis_plays_the_rendered_apology(engines: Engines) -> None:
    said(engines, "how far away is the moon")
    engines.speaker.voice.fail = True  # type: ignore[attr-defined]
    events, turn = await run_turn(engines, speech(6) + silence(1))
    assert "tts failed: apology" in notes(turn)
    assert len(turn.audio) == 2 * 16 * len(APOLOGY)
    assert finished(events).handled


async def test_home_assistant_unreachable_is_said_not_confirmed(
    engines: Engines,
) -> None:
    said(engines, "turn off the bedroom fan")
    hass = HomeAssistant(f"http://127.0.0.1:{free_port()}", "token")
    with_hass = Engines(engines.decoder, engines.speaker, engines.responder, hass)
    _, turn = await run_turn(with_hass, speech(5) + silence(1))
    await hass.close()
    assert turn.executed.startswith("Home Assistant unreachable")
    assert turn.answer == HASS_DOWN


async def test_speech_over_the_reply_stops_it_and_is_the_next_turn(
    engines: Engines, fake_llm: FakeLlm
) -> None:
    said(engines, "how far away is the moon")
    fake_llm.token_s = 0.05  # the answer is still coming when the user speaks
    pipeline = Pipeline(engines, frames=FakeFrames)
    source = AudioSource()
    for chunk in chunks(speech(6) + silence(1)):
        source.put(chunk)
    events: list[TurnEvent] = []

    async def sink(event: TurnEvent) -> None:
        if isinstance(event, Pcm) and kinds(events)[-1:] != ["Pcm"]:
            for chunk in chunks(speech(5)):  # the user speaks over the reply
                source.put(chunk)
        events.append(event)

    turn = await asyncio.wait_for(pipeline.run(source, sink=sink), 10)
    assert turn.interrupted and "barge-in: reply stopped" in notes(turn)
    assert kinds(events)[-1] == "ReplyStopped" and "Finished" not in kinds(events)
    assert len(turn.answer) < len(ANSWER)
    said(engines, "turn on the kitchen lights")
    source.put(silence(1))
    source.end()
    nxt = await asyncio.wait_for(pipeline.run(source, sink=sink), 10)
    await pipeline.close()
    assert nxt.transcript == "turn on the kitchen lights"


async def test_names_pushed_to_the_house_bias_the_decoder(engines: Engines) -> None:
    decoder = said(engines, "turn on the living room lamp")
    await engines.responder.house.replace(names=["Zanzibar"])
    await run_turn(engines, speech(6) + silence(1))
    assert decoder.prompts and all("Zanzibar" in str(p) for p in decoder.prompts)
    assert all("Living Room Lamp" in str(p) for p in decoder.prompts)


async def test_the_rule_is_configurable(engines: Engines) -> None:
    said(engines, "how far away is the moon")
    quick = Engines(
        engines.decoder,
        engines.speaker,
        engines.responder,
        rule=TurnRule(silence_s=0.2),
    )
    _, turn = await run_turn(quick, speech(6) + silence(0.4))
    assert "turn over: other after 224 ms of silence" in notes(turn)


async def test_speech_and_silence_in_turn_cannot_multiply_decodes(
    engines: Engines,
) -> None:
    decoder = said(engines, "one two three four five six seven eight nine ten")
    decoder.delay_s = 0.05
    choppy = (speech(1) + silence(0.15)) * 30
    await run_turn(engines, choppy, Pipeline(engines, False, frames=FakeFrames))
    # 30 ends of speech; never more than one partial and two finals at once.
    assert decoder.most_running <= 3
