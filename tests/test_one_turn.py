"""One turn, written once: the Wyoming services and the in-process pipeline
run the same engines, so they behave the same. Each behaviour is shown
through both, in process, with stand-in models (tests/fakes.py), the real
matcher, the real `anthropic` SDK against the fake Messages API and the real
`wyoming` client on loopback.

Also the ASR service ending the turn itself (what Home Assistant's own
pipeline relies on): early for a command, after the silence otherwise, never
in a mid-command pause; exactly one transcript, framed as a stream."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Iterator

import pytest
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

from bench.fake_llm import FakeLlm
from wyoming_rtvoice import asr, handle
from wyoming_rtvoice.asr import AsrConfig
from wyoming_rtvoice.asr.session import AsrSession, AsrSettings, no_prompt
from wyoming_rtvoice.handle import HandleConfig
from wyoming_rtvoice.handle.llm import Llm, LlmSettings
from wyoming_rtvoice.handle.responder import (
    ACK,
    LLM_DOWN,
    NO_LLM,
    AckPolicy,
    Responder,
)
from wyoming_rtvoice.house.matcher import Matcher
from wyoming_rtvoice.house.model import EntityState, House, state_key
from wyoming_rtvoice.house.questions import TIMERS_UNKNOWN, answered
from wyoming_rtvoice.house.store import HouseStore, Snapshot
from wyoming_rtvoice.pipeline import AudioSource, Engines, Pipeline
from wyoming_rtvoice.pipeline_handler import WyomingTurn
from wyoming_rtvoice.reader import Limits
from wyoming_rtvoice.server import Server
from wyoming_rtvoice.service import Service
from wyoming_rtvoice.trace import Metrics, Trace
from wyoming_rtvoice.tts.speaker import Speaker
from wyoming_rtvoice.turn import FRAME_S, TurnRule

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

TIMEOUT = 10
ANSWER = "It is about four hundred thousand kilometres away."
ANSWER_EVENTS = {"handled-start", "handled-chunk", "handled-stop", "handled"}
ANSWER_EVENTS |= {"not-handled", "intent"}


@pytest.fixture
def house(demo_matcher: Matcher) -> Iterator[HouseStore]:
    store = HouseStore(Snapshot(demo_matcher), None)
    yield store
    store.close()


@contextlib.asynccontextmanager
async def serving(service: Service) -> AsyncIterator[int]:
    """The service on a loopback port of this process."""
    limits = Limits()
    server = Server(
        "tcp://127.0.0.1:0", lambda r, w: service.handler_factory(r, w, limits), limits
    )
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


def responder(house: HouseStore, llm_url: str | None) -> Responder:
    llm = None if llm_url is None else Llm("sk-test", llm_url, LlmSettings())
    return Responder(house, llm, AckPolicy(ack_after_s=0.3))


async def through_handle_service(reply_by: Responder, text: str) -> list[Event]:
    service = handle.service(HandleConfig(), reply_by, Metrics())
    events: list[Event] = []
    async with serving(service) as port, AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Event("transcript", {"text": text}))
        async with asyncio.timeout(TIMEOUT):
            while (event := await client.read_event()) is not None:
                events.append(event)
                if event.type in ("intent", "handled", "not-handled"):
                    return events
    raise AssertionError(f"closed after {[e.type for e in events]}")


async def through_pipeline(reply_by: Responder, decoder: FakeDecoder) -> list[Event]:
    """The decoder's sentence spoken to the in-process pipeline."""
    engines = Engines(decoder, Speaker(FakeVoice()), reply_by)
    await engines.warm()
    pipeline = Pipeline(engines, frames=FakeFrames)
    audio = speech(len(decoder.sentence.split())) + silence(1)
    events, _ = await one_turn(pipeline, audio)
    await pipeline.close()
    wyoming = WyomingTurn()  # as the stack's pipeline endpoint sends them
    return [sent for event in events for sent in wyoming.events(event)]


def answer_part(events: list[Event]) -> list[tuple[str, object]]:
    return [(e.type, e.data.get("text")) for e in events if e.type in ANSWER_EVENTS]


async def both(reply_by: Responder, sentence: str) -> list[list[tuple[str, object]]]:
    service = answer_part(await through_handle_service(reply_by, sentence))
    pipeline = answer_part(await through_pipeline(reply_by, FakeDecoder(sentence)))
    assert service == pipeline, (service, pipeline)
    return [service, pipeline]


async def test_a_late_first_token_is_acknowledged_alike(
    house: HouseStore, fake_llm: FakeLlm
) -> None:
    fake_llm.answer, fake_llm.first_token_s, fake_llm.failure = ANSWER, 1.0, "none"
    reply_by = responder(house, fake_llm.url)
    service, _ = await both(reply_by, "how far away is the moon")
    assert service[:2] == [("handled-start", None), ("handled-chunk", ACK + " ")]
    assert service[-1] == ("handled", ANSWER)
    assert reply_by.llm is not None
    await reply_by.llm.close()


async def test_an_llm_down_before_its_first_token_is_not_handled_alike(
    house: HouseStore,
) -> None:
    reply_by = responder(house, f"http://127.0.0.1:{free_port()}")
    service, _ = await both(reply_by, "how far away is the moon")
    assert service == [("not-handled", LLM_DOWN)]  # nothing streamed
    assert reply_by.llm is not None
    await reply_by.llm.close()


async def test_without_an_llm_questions_are_answered_alike(house: HouseStore) -> None:
    service, _ = await both(responder(house, None), "how far away is the moon")
    assert service == [("not-handled", NO_LLM)]


async def test_a_command_on_a_device_assist_may_not_use_says_so_alike(
    demo_matcher: Matcher, fake_llm: FakeLlm
) -> None:
    """Not "no assistant is set up", and not the LLM's to answer: the name is
    one Assist may not use (its aliases too); anything else goes on."""
    json = demo_matcher.house.as_json()
    json["entities"] = [e for e in json["entities"] if e["name"] != "Front Door"]
    json["unexposed"] = [
        {"name": "Front Door", "domain": "lock"},
        {"name": "Garage Light", "domain": "light", "aliases": ["Workshop Light"]},
    ]
    matcher = copy.copy(demo_matcher)
    matcher.update(House.from_json(json))
    store = HouseStore(Snapshot(matcher), None)
    fake_llm.answer, fake_llm.first_token_s, fake_llm.failure = ANSWER, 0.0, "none"
    asked = len(fake_llm.requests)
    with_llm = responder(store, fake_llm.url)
    for reply_by in (responder(store, None), with_llm):
        service, _ = await both(reply_by, "lock the front door")
        assert service == [("not-handled", "Front Door is not exposed to Assist.")]
    service, _ = await both(with_llm, "turn on the workshop light")
    assert service == [("not-handled", "Garage Light is not exposed to Assist.")]
    assert len(fake_llm.requests) == asked
    service, _ = await both(responder(store, None), "turn off the kitchen lights")
    assert service == [("intent", "Turned off the light")]
    service, _ = await both(with_llm, "how far away is the moon")
    assert service[-1] == ("handled", ANSWER)
    assert with_llm.llm is not None
    await with_llm.llm.close()
    store.close()


async def test_a_command_is_the_same_intent(house: HouseStore) -> None:
    service, _ = await both(responder(house, None), "turn off the bedroom fan")
    assert service == [("intent", "Turned off the fan")]


async def test_a_question_is_answered_from_the_house_states_alike(
    house: HouseStore,
) -> None:
    """Never "No" for a door nobody knows the state of: what the house
    shares answers, else the answer says it is not known."""
    ask = "is the front door locked"
    service, _ = await both(responder(house, None), ask)
    assert service == [("intent", "I don't know the state of Front Door.")]
    for state, answer in (("locked", "Yes"), ("unlocked", "No, unlocked")):
        house.states = {state_key("lock", "Front Door"): EntityState(state)}
        service, _ = await both(responder(house, None), ask)
        assert service == [("intent", answer)], state
    house.states = {
        state_key("light", name): EntityState(state)
        for name, state in (("Kitchen Lights", "on"), ("Porch Light", "off"))
    }
    service, _ = await both(responder(house, None), "which lights are on")
    assert service == [("intent", "I don't know that.")]  # one lamp unknown
    house.states[state_key("light", "Living Room Lamp")] = EntityState("on")
    service, _ = await both(responder(house, None), "which lights are on")
    assert service == [("intent", "Kitchen Lights and Living Room Lamp")]
    service, _ = await both(responder(house, None), "how many minutes are left")
    assert service == [("intent", TIMERS_UNKNOWN)]  # Home Assistant's timers


def test_the_temperature_is_the_thermostats(demo_matcher: Matcher) -> None:
    house = House.from_json(
        {"entities": [{"name": "Thermostat", "domain": "climate", "area": "Hall"}]}
    )
    matcher = copy.copy(demo_matcher)
    matcher.update(house)
    match = matcher.match("what is the temperature in the hall")
    assert match is not None and match.response == "Done."  # Home Assistant's
    states = {state_key("climate", "Thermostat"): EntityState("heat")}
    unknown = answered(match, matcher, house, states)
    assert unknown.response == "I don't know that."
    states[state_key("climate", "Thermostat")].attributes["current_temperature"] = 21.0
    assert answered(match, matcher, house, states).response == "21 degrees"


# --- the ASR service ends the turn -----------------------------------------


@contextlib.asynccontextmanager
async def asr_service(
    house: HouseStore,
    decoder: FakeDecoder,
    external_vad: bool = False,
    metrics: Metrics | None = None,
) -> AsyncIterator[int]:
    config = AsrConfig(external_vad=external_vad)
    metrics = metrics or Metrics()
    service = asr.service(config, decoder, house, TurnRule(), metrics, FakeFrames)
    async with serving(service) as port:
        yield port


async def stream(
    port: int, audio: bytes, read_first: bool = True, request: Transcribe | None = None
) -> tuple[list[Event], int]:
    """Send `audio` (then audio-stop) as Home Assistant 2026.5+ does, reading
    while sending; or (read_first false) as older clients, reading after
    audio-stop. The events and how many chunks were sent before the transcript.

    Each chunk is followed by a ping whose pong is awaited: the server has
    taken the chunk before the next is sent, as at real-time pace."""
    events: list[Event] = []
    sent = 0
    pong = asyncio.Event()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event((request or Transcribe()).event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())

        async def read() -> None:
            while (event := await client.read_event()) is not None:
                if event.type == "pong":
                    pong.set()
                    continue
                events.append(event)
                if event.type == "transcript-stop":
                    pong.set()  # the pong of a ping sent meanwhile is not read
                    return

        reading = asyncio.create_task(read()) if read_first else None
        for chunk in chunks(audio):
            if any(e.type == "transcript" for e in events):
                break  # the newest Home Assistant stops at the first transcript
            await client.write_event(AudioChunk(16000, 2, 1, chunk).event())
            sent += 1
            if reading is not None:
                pong.clear()
                await client.write_event(Event("ping"))
                await asyncio.wait_for(pong.wait(), TIMEOUT)
        await client.write_event(AudioStop().event())
        await asyncio.wait_for(reading or read(), TIMEOUT)
    return events, sent


def transcripts(events: list[Event]) -> list[str]:
    return [e.data["text"] for e in events if e.type == "transcript"]


def audio_taken_s(metrics: Metrics) -> float:
    """Seconds of audio the last turn had taken when it ended, from its log
    line (chunks sent meanwhile are dropped: how many were sent before the
    transcript came back depends on the machine's load)."""
    notes = metrics.traces[-1].notes
    taken = [float(note.split()[0]) for note in notes if note.endswith(" s audio")]
    assert len(taken) == 1, notes
    return taken[0]


async def test_a_command_ends_the_turn_before_audio_stop(house: HouseStore) -> None:
    decoder = FakeDecoder("turn on the kitchen lights")
    audio = speech(5) + silence(3)
    async with asr_service(house, decoder) as port:
        events, sent = await stream(port, audio)
    assert transcripts(events) == ["turn on the kitchen lights"]
    assert sent < len(list(chunks(audio))) / 2  # long before the 3 s of silence
    assert [e.type for e in events][0] == "transcript-start"
    assert [e.type for e in events][-2:] == ["transcript", "transcript-stop"]


async def test_a_question_ends_after_its_silence(house: HouseStore) -> None:
    decoder = FakeDecoder("how far away is the moon")
    metrics = Metrics()
    async with asr_service(house, decoder, metrics=metrics) as port:
        events, _ = await stream(port, speech(6) + silence(3))
    assert transcripts(events) == ["how far away is the moon"]
    assert 1.5 + 0.5 <= audio_taken_s(metrics) < 1.5 + 1.0


@pytest.mark.parametrize(
    "sentence", ["turn on the kitchen lights", "turn off all the lights upstairs"]
)
async def test_a_pause_mid_command_does_not_end_the_turn(
    house: HouseStore, sentence: str
) -> None:
    decoder = FakeDecoder(sentence)
    rest = len(sentence.split()) - 3
    for pause_s in (0.3, 0.45, 0.6):
        audio = speech(3) + silence(pause_s) + speech(rest) + silence(2)
        async with asr_service(house, decoder) as port:
            events, _ = await stream(port, audio)
        assert transcripts(events) == [sentence], pause_s


async def test_a_command_ending_on_an_area_ends_at_the_first_silent_frame(
    house: HouseStore,
) -> None:
    metrics = Metrics()  # the demo house has an "Office" and "Office Blinds"
    decoder = FakeDecoder("close the blinds in the office")
    async with asr_service(house, decoder, metrics=metrics) as port:
        events, _ = await stream(port, speech(6) + silence(3))
    assert transcripts(events) == ["close the blinds in the office"]
    assert "turn over: command after 32 ms of silence" in metrics.traces[-1].notes


async def test_a_command_ends_as_its_final_decode_comes_in(house: HouseStore) -> None:
    """Not at the client's next chunk: here there is none after the first
    silent frames (nor audio-stop)."""
    decoder = FakeDecoder("turn on the kitchen lights", delay_s=0.05)
    audio = speech(5) + silence(2 * FRAME_S)
    async with asr_service(house, decoder) as port:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(16000, 2, 1).event())
            await client.write_event(AudioChunk(16000, 2, 1, audio).event())
            async with asyncio.timeout(TIMEOUT):
                while (event := await client.read_event()) is not None:
                    if event.type == "transcript":
                        break
    assert event is not None and event.data["text"] == "turn on the kitchen lights"


async def test_the_pipeline_ends_a_command_as_its_final_decode_comes_in(
    house: HouseStore,
) -> None:
    decoder = FakeDecoder("turn on the kitchen lights", delay_s=0.05)
    engines = Engines(decoder, Speaker(FakeVoice()), responder(house, None))
    pipeline = Pipeline(engines, frames=FakeFrames)
    source = AudioSource()  # not ended: nothing comes after the silent frames
    for chunk in chunks(speech(5) + silence(2 * FRAME_S)):
        source.put(chunk)
    turn = await asyncio.wait_for(pipeline.run(source), TIMEOUT)
    await pipeline.close()
    assert turn.transcript == "turn on the kitchen lights"
    assert turn.intent is not None


async def test_a_partial_decode_gives_way_to_the_final_one(house: HouseStore) -> None:
    """The decoder runs one decode at a time: a partial of less audio still
    running when the speech stops would hold up the final decode."""
    decoder = FakeDecoder("turn on the kitchen lights", delay_s=0.5)
    session = AsrSession(
        decoder, FakeFrames(), AsrSettings(), TurnRule(), no_prompt, Trace("test")
    )
    await session.add(speech(5))  # a partial starts at 1 s and runs on
    await session.add(silence(2 * FRAME_S))
    await asyncio.sleep(0)  # the cancellation reaches the partial
    assert decoder.cancelled == [pytest.approx(1.25, abs=0.1)]
    assert await session.finish() == "turn on the kitchen lights"


async def test_no_partial_decode_runs_in_the_silence_after_speech(
    house: HouseStore,
) -> None:
    decoder = FakeDecoder("how far away is the moon")
    session = AsrSession(
        decoder, FakeFrames(), AsrSettings(), TurnRule(), no_prompt, Trace("test")
    )
    for chunk in chunks(speech(6) + silence(2 * FRAME_S)):
        await session.add(chunk)
        await asyncio.sleep(0.001)  # each decode is done before the next chunk
    assert session.ready_transcript() == "how far away is the moon"
    decodes = decoder.decodes
    for chunk in chunks(silence(0.8)):  # short of the 1 s pause
        await session.add(chunk)
        await asyncio.sleep(0.001)
    assert decoder.decodes == decodes


async def test_a_door_waits_for_the_silence_where_home_assistant_runs_it(
    house: HouseStore,
) -> None:
    """Home Assistant runs the command without a question: "open the garage
    door... no wait" must be heard whole."""
    metrics = Metrics()
    decoder = FakeDecoder("open the garage door")
    async with asr_service(house, decoder, metrics=metrics) as port:
        events, _ = await stream(port, speech(4) + silence(3))
    assert transcripts(events) == ["open the garage door"]
    assert "turn over: confirm after 512 ms of silence" in metrics.traces[-1].notes


async def test_silence_ends_at_the_no_speech_timeout(house: HouseStore) -> None:
    metrics = Metrics()
    async with asr_service(house, FakeDecoder("anything"), metrics=metrics) as port:
        events, _ = await stream(port, silence(12))
    assert transcripts(events) == [""]
    assert audio_taken_s(metrics) == pytest.approx(TurnRule().no_speech_s, abs=0.05)


async def test_speech_at_the_cap_in_one_chunk_ends_at_the_longest_speech(
    house: HouseStore,
) -> None:
    """30 s of speech in one chunk: no decode runs on more than the rule's
    longest speech (a decode's memory grows with the square of its audio)."""
    decoder = FakeDecoder("turn on the kitchen lights")
    async with asr_service(house, decoder) as port:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(AudioStart(16000, 2, 1).event())
            await client.write_event(AudioChunk(16000, 2, 1, speech(120)).event())
            await client.write_event(AudioStop().event())
            events: list[Event] = []
            async with asyncio.timeout(TIMEOUT):
                while (event := await client.read_event()) is not None:
                    events.append(event)
                    if event.type == "transcript-stop":
                        break
    assert transcripts(events) == ["turn on the kitchen lights"]
    assert 0 < decoder.longest_s <= TurnRule().max_speech_s + 0.5


async def test_an_older_client_gets_exactly_one_finished_transcript(
    house: HouseStore,
) -> None:
    decoder = FakeDecoder("turn on the kitchen lights")
    async with asr_service(house, decoder) as port:
        events, sent = await stream(port, speech(5) + silence(2), read_first=False)
    assert transcripts(events) == ["turn on the kitchen lights"]
    assert sent == len(list(chunks(speech(5) + silence(2))))


async def test_with_external_vad_the_transcript_waits_for_audio_stop(
    house: HouseStore,
) -> None:
    decoder = FakeDecoder("turn on the kitchen lights")
    audio = speech(5) + silence(2)
    async with asr_service(house, decoder, external_vad=True) as port:
        events, sent = await stream(port, audio)
    assert sent == len(list(chunks(audio)))
    assert transcripts(events) == ["turn on the kitchen lights"]


async def test_a_short_clip_sent_at_once_is_still_framed_as_a_stream(
    house: HouseStore,
) -> None:
    async with asr_service(house, FakeDecoder("lights on")) as port:
        events, _ = await stream(port, speech(2), read_first=False)
    assert [e.type for e in events] == [
        "transcript-start",
        "transcript-chunk",
        "transcript",
        "transcript-stop",
    ]


async def test_names_pushed_once_bias_the_service_and_the_pipeline(
    house: HouseStore,
) -> None:
    await house.replace(names=["Zanzibar Lamp"])
    decoder = FakeDecoder("turn on the zanzibar lamp")
    async with asr_service(house, decoder) as port:
        await stream(port, speech(5) + silence(1))
    service_prompts = list(decoder.prompts)
    engines = Engines(decoder, Speaker(FakeVoice()), responder(house, None))
    pipeline = Pipeline(engines, frames=FakeFrames)
    source = AudioSource()
    for chunk in chunks(speech(5) + silence(1)):
        source.put(chunk)
    source.end()
    await asyncio.wait_for(pipeline.run(source), TIMEOUT)
    await pipeline.close()
    pipeline_prompts = decoder.prompts[len(service_prompts) :]
    for prompts in (service_prompts, pipeline_prompts):
        assert prompts and all("Zanzibar Lamp" in str(p) for p in prompts)
        assert all("Kitchen Lights" in str(p) for p in prompts)


# --- the second chance at a misheard command -------------------------------


async def test_a_misheard_command_is_heard_right_by_the_service_and_the_pipeline(
    house: HouseStore,
) -> None:
    # decoded "land", the audio fits "lamp" best (FakeDecoder's scores)
    decoder = FakeDecoder(
        "turn off the living room land", said="turn off the living room lamp"
    )
    metrics = Metrics()
    async with asr_service(house, decoder, metrics=metrics) as port:
        events, _ = await stream(port, speech(6) + silence(2))
    assert transcripts(events) == ["Turn off the Living Room Lamp"]
    # A command, misheard or not, ends the turn at the first silent frame.
    assert "turn over: command after 32 ms of silence" in metrics.traces[-1].notes
    turn_events = await through_pipeline(responder(house, None), decoder)
    intent = next(e for e in turn_events if e.type == "intent")
    assert intent.data["name"] == "HassTurnOff"
    assert {"name": "name", "value": "Living Room Lamp"} in intent.data["entities"]


async def test_speech_that_is_no_command_is_left_alone(house: HouseStore) -> None:
    # "did you turn off ..." is a question, whatever the audio fits best
    decoder = FakeDecoder(
        "did you turn off the living room lamp", said="turn off the living room lamp"
    )
    async with asr_service(house, decoder) as port:
        events, _ = await stream(port, speech(8) + silence(2))
    assert transcripts(events) == ["did you turn off the living room lamp"]
    assert decoder.scored == []  # no command near it: nothing to score


async def test_an_unclear_choice_changes_nothing(house: HouseStore) -> None:
    # the audio fits "on" and "off" alike: no clear margin
    decoder = FakeDecoder("turn of the porch light", said="turn the porch light")
    async with asr_service(house, decoder) as port:
        events, _ = await stream(port, speech(5) + silence(2))
    assert transcripts(events) == ["turn of the porch light"]
    assert decoder.scored and "Turn off the porch light." in decoder.scored[0]


async def test_a_command_heard_right_is_not_scored(house: HouseStore) -> None:
    decoder = FakeDecoder("turn on the kitchen lights")
    async with asr_service(house, decoder) as port:
        events, _ = await stream(port, speech(5) + silence(2))
    assert transcripts(events) == ["turn on the kitchen lights"]
    await through_pipeline(responder(house, None), decoder)
    assert decoder.scored == []
