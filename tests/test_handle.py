"""The handle service: real hassil matching over a 200+ entity house, and the
real `anthropic` SDK against a local fake of the Messages streaming API."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from aiohttp import ClientSession
from hypothesis import given, settings
from hypothesis import strategies as st
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.intent import Recognize

from bench.fake_llm import FakeLlm
from bench.houses import house_json
from wyoming_rtvoice.handle.llm import Conversations
from wyoming_rtvoice.house.matcher import Matcher
from wyoming_rtvoice.house.model import HOUSE_SCHEMA, EntityState, House

from .conftest import RunningService, free_port, start_service
from .real_models import ServeCommand, start_up

DATA = Path(__file__).parent / "data"
HOUSE = DATA / "house.json"
LABELLED = json.loads((DATA / "commands.json").read_text(encoding="utf-8"))
API_KEY = "sk-ant-test-secret-0123456789"
TIMEOUT = 15


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher("en", House.from_file(HOUSE))


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeLlm]:
    fake = FakeLlm()
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


@pytest.fixture
def fake_llm(fake_server: FakeLlm) -> FakeLlm:
    """The module's fake, reset to answer promptly and well."""
    fresh = FakeLlm()
    fake_server.answer, fake_server.failure = fresh.answer, fresh.failure
    fake_server.first_token_s, fake_server.token_s = fresh.first_token_s, fresh.token_s
    return fake_server


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def handle(
    tmp_path_factory: pytest.TempPathFactory, fake_server: FakeLlm, http_port: int
) -> Iterator[RunningService]:
    os.environ["ANTHROPIC_API_KEY"] = API_KEY
    try:
        with start_service(
            "handle",
            "--entities",
            str(HOUSE),
            "--anthropic-base-url",
            fake_server.url,
            "--http-uri",
            f"http://127.0.0.1:{http_port}",
            "--ack-after-ms",
            "300",
            "--llm-timeout-ms",
            "1500",
            "--debug",
            log_dir=tmp_path_factory.mktemp("handle"),
        ) as running:
            yield running
    finally:
        del os.environ["ANTHROPIC_API_KEY"]


def slots_agree(got: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(
        str(got.get(name)).lower() == str(value).lower() or got.get(name) == value
        for name, value in wanted.items()
    )


def test_house_is_realistic() -> None:
    house = House.from_file(HOUSE)
    assert len(house.entities) >= 200
    assert len({e["domain"] for e in house.entities}) >= 8


def test_labelled_commands_match_with_right_slots(matcher: Matcher) -> None:
    right = [
        c
        for c in LABELLED["commands"]
        if (m := matcher.match(c["text"])) is not None
        and m.intent == c["intent"]
        and slots_agree(m.slots, c["slots"])
    ]
    assert len(right) / len(LABELLED["commands"]) >= 0.95


@pytest.mark.parametrize("question", LABELLED["questions"])
def test_questions_are_not_matched(matcher: Matcher, question: str) -> None:
    assert matcher.match(question) is None


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("Lock the front door.", "HassTurnOn", {"name": "Front Door"}),
        ("UM, LOCK THE FRONT DOOR!", "HassTurnOn", {"name": "Front Door"}),
        ("set the living room lamp to 50%", "HassLightSet", {"brightness": 50}),
        (
            "set the living room lamp to fifty percent",
            "HassLightSet",
            {"brightness": 50},
        ),
        ("Turn on the television", "HassTurnOn", {"name": "TV"}),
    ],
)
def test_spoken_forms(
    matcher: Matcher, text: str, intent: str, slots: dict[str, Any]
) -> None:
    match = matcher.match(text)
    assert (
        match is not None and match.intent == intent and slots_agree(match.slots, slots)
    )


# The project's sentence file (house/sentences/en.yaml) and spoken numbers.
PHRASINGS = [
    ("dim the desk lamp", "HassLightSet", {"name": "Desk Lamp", "brightness": 25}),
    ("Dim the reading lamp.", "HassLightSet", {"name": "Reading Lamp"}),
    ("make the desk lamp dimmer", "HassLightSet", {"brightness": 25}),
    ("brighten the desk lamp", "HassLightSet", {"brightness": 100}),
    ("make the mirror light brighter", "HassLightSet", {"name": "Mirror Light"}),
    (
        "dim the lights in the kitchen",
        "HassLightSet",
        {"area": "Kitchen", "domain": "light", "brightness": 25},
    ),
    (
        "brighten the living room lights",
        "HassLightSet",
        {"area": "Living Room", "brightness": 100},
    ),
    (
        "dim the desk lamp to 25%",
        "HassLightSet",
        {"name": "Desk Lamp", "brightness": 25},
    ),
    ("Dim the desk lamp to 25 percent.", "HassLightSet", {"brightness": 25}),
    ("brighten the desk lamp to 80%", "HassLightSet", {"brightness": 80}),
    ("How many minutes are left on my timer?", "HassTimerStatus", {}),
    ("how many minutes are left", "HassTimerStatus", {}),
    ("how much time is remaining on the timer", "HassTimerStatus", {}),
    (
        "how many minutes are left on the kitchen timer",
        "HassTimerStatus",
        {"area": "Kitchen"},
    ),
    ("how much longer on my timer", "HassTimerStatus", {}),
    (
        "Is the front door lock?",
        "HassGetState",
        {"name": "Front Door", "state": "locked"},
    ),
    (
        "is the back door unlock",
        "HassGetState",
        {"name": "Back Door", "state": "unlocked"},
    ),
    ("is the front door locked", "HassGetState", {"state": "locked"}),
    ("Turn on garden spotlight three.", "HassTurnOn", {"name": "Garden Spotlight 3"}),
    ("turn off garden spotlight ten", "HassTurnOff", {"name": "Garden Spotlight 10"}),
    ("turn on garden spotlight 3", "HassTurnOn", {"name": "Garden Spotlight 3"}),
]

# Ordinary speech and near-misses: none of it may become a device action.
NOT_COMMANDS = [
    "lock the kitchen lights",
    "lock the kitchen lamp",
    "make it warmer",  # no relative temperature intent: left to the LLM
    "make it cooler in here",
    "dim sum is my favourite food",
    "what does dim mean",
    "the lights are a bit dim today",
    "why is my desk lamp so dim",
    "is the front door lock broken",
    "is the kitchen lamp lock",
    "dim the front door",
    "brighten the TV",
    "brighten my day",
    "how many minutes are left in the game",
    "how many minutes are left until midnight",
    "how long until christmas",
    "turn on garden spotlight eleven",
    "turn on the garden spotlight three times",
    "tell me about garden spotlight three",
    "is the front door",
    "lock",
    "timer",
]


@pytest.mark.parametrize(("text", "intent", "slots"), PHRASINGS)
def test_phrasings_of_the_sentence_file(
    matcher: Matcher, text: str, intent: str, slots: dict[str, Any]
) -> None:
    match = matcher.match(text)
    assert match is not None, text
    assert (match.intent, slots_agree(match.slots, slots)) == (intent, True), match


@pytest.mark.parametrize("text", NOT_COMMANDS)
def test_near_misses_are_not_commands(matcher: Matcher, text: str) -> None:
    assert matcher.match(text) is None


def test_own_responses_are_spoken(matcher: Matcher) -> None:
    dim = matcher.match("dim the desk lamp")
    lights = matcher.match("brighten the lights in the office")
    assert dim is not None and dim.response == "Dimmed the light"
    assert lights is not None and lights.response == "Brightened the lights"


def test_a_big_house_changes_no_match(matcher: Matcher) -> None:
    """5,000 entities (the test house and generated ones): the labelled
    commands still match as in the test house alone, and a re-push with one
    name changed is adopted."""
    big = Matcher("en", House.from_json(house_json(5000)))
    for command in LABELLED["commands"] + [{"text": q} for q in LABELLED["questions"]]:
        assert big.match(command["text"]) == matcher.match(command["text"])
    data = house_json(5000)
    data["entities"].append({"name": "Sauna Heater", "domain": "switch"})
    big.update(House.from_json(data))
    assert len(big.house.entities) == 5001
    sauna = big.match("turn on the sauna heater")
    assert sauna is not None and sauna.slots == {"name": "Sauna Heater"}


_good_name = st.sampled_from(["Lamp", " Desk Lamp 2 ", "Lamp\n", "x" * 200])
_bad_name = st.one_of(st.sampled_from(["", " ", "x" * 201]), st.integers(), st.none())
_good_domain = st.sampled_from(["light", "binary_sensor", "light\n"])


def _houses(name: Any, domain: Any, extra: Any) -> Any:
    entity = st.fixed_dictionaries(
        {"name": name, "domain": domain},
        optional={
            "area": st.one_of(st.none(), name),
            "aliases": st.lists(name, max_size=2),
            "extra": st.integers(),
            "device_class": st.one_of(
                st.none(), st.sampled_from(["gate", "°C", "x" * 201]), st.integers()
            ),
            "temperature_unit": st.one_of(
                st.none(), st.sampled_from(["°F", "x" * 201]), st.integers()
            ),
            "state": st.one_of(
                st.none(), st.sampled_from(["on", "x" * 256]), st.integers()
            ),
            "attributes": st.one_of(
                st.none(),
                st.lists(st.integers(), max_size=1),
                st.dictionaries(
                    st.sampled_from(["brightness", "media_title", "friendly_name"]),
                    st.one_of(
                        st.none(),
                        st.integers(),
                        st.floats(allow_nan=False),
                        st.sampled_from(["Jazz", "x" * 201]),
                        st.lists(st.integers(), max_size=1),
                    ),
                    max_size=3,
                ),
            ),
        },
    )
    return st.fixed_dictionaries(
        {"entities": st.lists(entity, max_size=3)},
        optional={
            "areas": st.lists(name, max_size=2),
            "floors": st.lists(name, max_size=2),
            "unexposed": st.one_of(st.lists(entity, max_size=2), name),
            **extra,
        },
    )


_any_name = st.one_of(_good_name, _bad_name)
_house = st.one_of(
    _houses(_good_name, _good_domain, {}),  # valid
    _houses(
        _any_name,
        st.one_of(_good_domain, st.sampled_from(["Light", "x-y", 1])),
        {"other": st.integers()},
    ),
    st.lists(_any_name, max_size=1),
    _any_name,
)


@settings(max_examples=400, deadline=None)
@given(_house)
def test_house_validation_is_the_schema(data: Any) -> None:
    """The fast validation accepts exactly what the schema accepts, with the
    same result; anything else raises the schema's own error."""
    try:
        expected: Any = HOUSE_SCHEMA(data)
    except vol.Invalid as err:
        expected = str(err)
    try:
        got: Any = House.from_json(data)
    except vol.Invalid as err:
        assert str(err) == expected
    else:
        assert isinstance(expected, dict)
        states = {}
        for entity in expected["entities"]:
            state, attributes = entity.pop("state", None), entity.pop("attributes", {})
            if state is not None:
                key = (entity["domain"], entity["name"].lower())
                states[key] = EntityState(state, attributes)
        assert got.entities == expected["entities"]
        assert got.floors == expected["floors"]
        assert got.unexposed == expected["unexposed"]
        assert got.states == states


def test_names_carry_their_domain(matcher: Matcher) -> None:
    # "Front Door Contact" is a binary sensor and "Kitchen Lamp" a light:
    # neither can be locked.
    assert matcher.match("lock the front door contact") is None
    assert matcher.match("lock the kitchen lamp") is None


def test_response_comes_from_the_intents_package(matcher: Matcher) -> None:
    on = matcher.match("turn on the porch light")
    lock = matcher.match("lock the back door")
    assert on is not None and on.response == "Turned on the light"
    assert lock is not None and lock.response == "Locking"


def test_conversation_history_is_bounded() -> None:
    conversations = Conversations(max_conversations=3, history_chars=100)
    for n in range(10):
        conversations.remember(f"c{n}", "question " * 5, "answer " * 5)
    assert len(conversations) == 3
    for _ in range(10):
        conversations.remember("c9", "q" * 30, "a" * 30)
    messages = conversations.messages("c9", "new question")
    assert sum(len(str(m["content"])) for m in messages) <= 100
    assert messages[-1] == {"role": "user", "content": "new question"}
    assert messages[0]["role"] == "user"


async def exchange(port: int, event: Event, last: set[str]) -> list[Event]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(event)
        events: list[Event] = []
        while True:
            reply = await asyncio.wait_for(client.read_event(), TIMEOUT)
            assert reply is not None, [e.type for e in events]
            events.append(reply)
            if reply.type in last:
                return events


ENDS = {"intent", "handled", "not-handled", "not-recognized", "error"}


def transcript(text: str, conversation_id: str = "conv-1") -> Event:
    return Transcript(text=text, context={"conversation_id": conversation_id}).event()


async def test_describe_advertises_intents_and_streaming(
    handle: RunningService,
) -> None:
    events = await exchange(handle.port, Describe().event(), {"info"})
    info = Info.from_event(events[-1])
    assert info.intent[0].models[0].languages == ["en"]
    assert info.handle[0].supports_handled_streaming
    assert info.handle[0].supports_home_control


async def test_device_command_answers_intent(handle: RunningService) -> None:
    events = await exchange(
        handle.port, transcript("Turn off the kitchen lights."), ENDS
    )
    assert [e.type for e in events] == ["intent"]
    data = events[0].data
    assert data["name"] == "HassTurnOff"
    assert {"name": "name", "value": "Kitchen Lights"} in data["entities"]
    assert data["text"] == "Turned off the light"
    assert data["context"]["conversation_id"] == "conv-1"


async def test_recognize(handle: RunningService) -> None:
    events = await exchange(
        handle.port, Recognize(text="open the garage door").event(), ENDS
    )
    assert events[-1].type == "intent" and events[-1].data["name"] == "HassTurnOn"
    events = await exchange(
        handle.port, Recognize(text="why is the sky blue").event(), ENDS
    )
    assert events[-1].type == "not-recognized"


async def test_question_streams_the_llm_answer(
    handle: RunningService, fake_llm: FakeLlm
) -> None:
    fake_llm.answer = "Paris is the capital of France."
    events = await exchange(
        handle.port, transcript("What is the capital of France?"), ENDS
    )
    types = [e.type for e in events]
    assert types[0] == "handled-start" and types[-2:] == ["handled-stop", "handled"]
    chunks = "".join(e.data["text"] for e in events if e.type == "handled-chunk")
    assert chunks == "Paris is the capital of France."
    assert events[-1].data["text"] == chunks
    # The real SDK sent the key and the system prompt; the house was not in it.
    headers = fake_llm.headers[-1]
    assert API_KEY in headers.get("X-Api-Key", "") + headers.get("Authorization", "")
    request = fake_llm.requests[-1]
    assert request["stream"] is True and "voice assistant" in request["system"]
    assert request["messages"][-1]["content"] == "What is the capital of France?"


async def test_history_follows_the_conversation(
    handle: RunningService, fake_llm: FakeLlm
) -> None:
    await exchange(handle.port, transcript("Who wrote Moby Dick?", "conv-h"), ENDS)
    await exchange(handle.port, transcript("When was he born?", "conv-h"), ENDS)
    messages = fake_llm.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "Who wrote Moby Dick?"
    await exchange(handle.port, transcript("When was he born?", "conv-other"), ENDS)
    assert len(fake_llm.requests[-1]["messages"]) == 1


async def test_slow_first_token_gets_an_acknowledgement(
    handle: RunningService, fake_llm: FakeLlm
) -> None:
    fake_llm.first_token_s = 0.8  # the service acknowledges after 300 ms
    started = time.monotonic()
    async with AsyncTcpClient("127.0.0.1", handle.port) as client:
        await client.write_event(transcript("Tell me a joke."))
        first_chunk_at = None
        events: list[Event] = []
        while True:
            event = await asyncio.wait_for(client.read_event(), TIMEOUT)
            assert event is not None
            events.append(event)
            if event.type == "handled-chunk" and first_chunk_at is None:
                first_chunk_at = time.monotonic() - started
            if event.type in ENDS:
                break
    chunks = [e.data["text"] for e in events if e.type == "handled-chunk"]
    assert chunks[0].strip() == "One moment."
    assert first_chunk_at is not None and first_chunk_at < 0.7
    assert events[-1].type == "handled"
    assert not events[-1].data["text"].startswith("One moment")


@pytest.mark.parametrize("failure", ["429", "500", "timeout"])
async def test_llm_failure_is_a_spoken_not_handled(
    handle: RunningService, fake_llm: FakeLlm, failure: str
) -> None:
    fake_llm.failure = failure
    started = time.monotonic()
    events = await exchange(handle.port, transcript("What is love?"), ENDS)
    assert events[-1].type == "not-handled"
    assert "can't reach" in events[-1].data["text"]
    assert (
        time.monotonic() - started < 2.5
    )  # the 1.5 s first-token limit, not the SDK's


async def test_stream_cut_mid_answer_still_ends_cleanly(
    handle: RunningService, fake_llm: FakeLlm
) -> None:
    fake_llm.failure = "cut"
    fake_llm.answer = "one two three four five six seven eight"
    events = await exchange(handle.port, transcript("Count for me."), ENDS)
    assert events[-1].type == "handled"
    assert events[-1].data["text"].startswith("one two")
    assert events[-1].data["text"].endswith("Sorry, I lost my train of thought.")


async def test_disconnect_mid_answer_closes_the_llm_stream(
    handle: RunningService, fake_llm: FakeLlm
) -> None:
    fake_llm.answer = " ".join(["word"] * 200)
    fake_llm.token_s = 0.02
    async with AsyncTcpClient("127.0.0.1", handle.port) as client:
        await client.write_event(transcript("Tell me a long story."))
        while (event := await client.read_event()) is not None:
            if event.type == "handled-chunk":
                break
    await asyncio.sleep(0.5)  # 200 words at 20 ms would take 4 s
    assert fake_llm.aborted >= 1
    # The server is fine and answers the next one.
    fake_llm.answer = "Yes."
    fake_llm.token_s = 0.0
    events = await exchange(handle.port, transcript("Still there?"), ENDS)
    assert events[-1].type == "handled" and events[-1].data["text"] == "Yes."


@pytest.mark.parametrize(
    ("event", "code_or_type"),
    [
        (Transcript(text="").event(), "not-handled"),
        (Transcript(text="   ").event(), "not-handled"),
        (Transcript(text="x" * 5000).event(), "text-too-long"),
        (Event("transcript", {"text": 12}), "bad-text"),
        (Event("transcript", {"text": "turn on the tv", "context": "nope"}), "intent"),
    ],
)
async def test_bad_transcripts(
    handle: RunningService, event: Event, code_or_type: str
) -> None:
    events = await exchange(handle.port, event, ENDS)
    last = events[-1]
    assert last.type == code_or_type or Error.from_event(last).code == code_or_type


async def test_house_api_replaces_and_validates(
    handle: RunningService, http_port: int
) -> None:
    url = f"http://127.0.0.1:{http_port}/api/entities"
    small = {"entities": [{"name": "Sauna", "domain": "switch", "area": "Basement"}]}
    async with ClientSession() as session:
        async with session.put(
            url, json={"entities": [{"name": "", "domain": "light"}]}
        ) as r:
            assert r.status == 400
            assert "entities.0.name" in await r.text()
        async with session.put(url, data=b"not json") as r:
            assert r.status == 400
        async with session.get(url) as r:
            assert len((await r.json())["entities"]) >= 200  # unchanged
        async with session.put(url, json=small) as r:
            assert r.status == 200
        events = await exchange(handle.port, transcript("turn on the sauna"), ENDS)
        assert events[-1].type == "intent"
        async with session.put(url, data=HOUSE.read_bytes()) as r:
            assert r.status == 200
    events = await exchange(handle.port, transcript("turn on the sauna"), ENDS)
    assert events[-1].type != "intent"


def test_bad_house_file_stops_startup_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "house.json"
    bad.write_text(json.dumps({"entities": [{"name": "Lamp", "domain": "Light!"}]}))
    with pytest.raises(SystemExit, match=r"entities\.0\.domain"):
        start_up("handle", "--entities", str(bad), "--state-dir", str(tmp_path))


async def test_without_a_key_questions_get_a_spoken_explanation(
    serve_command: ServeCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    async with serve_command("handle") as port:
        events = await exchange(
            port, transcript("What is the capital of France?"), ENDS
        )
    assert [e.type for e in events] == ["not-handled"]
    assert "no assistant" in events[0].data["text"]


def test_api_key_never_logged(handle: RunningService) -> None:
    assert API_KEY not in handle.log
