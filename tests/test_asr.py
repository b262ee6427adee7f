"""The ASR service on the real Whisper model, fed speech made by our own TTS;
the protocol's order and errors on a stand-in decoder (milliseconds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import ClientSession
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from testing.engines import FakeDecoder, FakeFrames, silence, speech
from testing.serving import serving
from testing.speech import Spoken, speak, stream_audio
from testing.wer import normalize, word_errors
from wyoming_rtvoice import asr as asr_service
from wyoming_rtvoice.asr import whisper as whisper_module
from wyoming_rtvoice.asr.config import AsrConfig
from wyoming_rtvoice.asr.session import stable_prefix
from wyoming_rtvoice.asr.whisper import (
    echoes,
    in_rounds,
    max_length,
    trim_repetition,
    window_samples,
)
from wyoming_rtvoice.audio import to_float
from wyoming_rtvoice.converse import DEMO_HOUSE
from wyoming_rtvoice.house.store import HouseStore
from wyoming_rtvoice.trace import Metrics
from wyoming_rtvoice.turn import TurnRule

from .conftest import RunningService, free_port, start_service
from .real_models import SessionModels, start_up
from .test_tts import cpu_seconds

TIMEOUT = 30


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def asr(
    tmp_path_factory: pytest.TempPathFactory, http_port: int
) -> Iterator[RunningService]:
    with start_service(
        "asr",
        "--max-seconds",
        "8",
        "--entities",
        str(DEMO_HOUSE),
        "--http-uri",
        f"http://127.0.0.1:{http_port}",
        log_dir=tmp_path_factory.mktemp("asr"),
    ) as running:
        yield running


def words(text: str) -> list[str]:
    return normalize(text)


async def read_all(client: AsyncTcpClient) -> list[Event]:
    """Events until the transcript (and transcript-stop, when streaming)."""
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None, f"closed after {[e.type for e in events]}"
        events.append(event)
        streaming = any(e.type == "transcript-start" for e in events)
        if event.type == "transcript-stop" or (
            event.type == "transcript" and not streaming
        ):
            return events


def transcript_of(events: list[Event]) -> str:
    return next(Transcript.from_event(e).text for e in events if e.type == "transcript")


async def transcribe(
    port: int, spoken: Spoken, realtime: bool = False, request: Transcribe | None = None
) -> list[Event]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event((request or Transcribe()).event())
        await stream_audio(client, spoken.audio, realtime=realtime)
        return await read_all(client)


async def test_describe_is_truthful(asr: RunningService) -> None:
    async with AsyncTcpClient("127.0.0.1", asr.port) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
    assert event is not None
    program = Info.from_event(event).asr[0]
    assert program.supports_transcript_streaming
    assert program.models[0].name == "tiny.en"
    assert program.models[0].languages == ["en"]


@pytest.mark.parametrize(
    ("text", "speed"),
    [
        ("Turn on the kitchen lights.", 1.0),
        ("Turn off the bedroom fan.", 0.85),
        ("What is the capital of France?", 1.2),
    ],
)
async def test_spoken_command_gives_the_right_words(
    asr: RunningService, text: str, speed: float
) -> None:
    events = await transcribe(asr.port, speak(text, length_scale=speed))
    # tiny.en sometimes mishears a command's first word ("Turn" as "Pern");
    # allow that one word, never the device or the room.
    errors, _ = word_errors(text, transcript_of(events))
    assert errors <= 1, transcript_of(events)
    assert words(text)[-2:] == words(transcript_of(events))[-2:]


async def test_partials_arrive_before_audio_stop_at_real_time_pace(
    asr: RunningService,
) -> None:
    text = "What is the weather going to be like tomorrow afternoon?"
    spoken = speak(text)
    received: list[tuple[bool, Event]] = []
    stop_sent = asyncio.Event()
    async with AsyncTcpClient("127.0.0.1", asr.port) as client:

        async def receive() -> None:
            while True:
                event = await asyncio.wait_for(client.read_event(), TIMEOUT)
                assert event is not None
                received.append((stop_sent.is_set(), event))
                if event.type == "transcript-stop":
                    return

        receiving = asyncio.create_task(receive())
        await client.write_event(Transcribe().event())
        await stream_audio(client, spoken.audio, realtime=True)
        stop_sent.set()
        await receiving
    types = [event.type for _, event in received]
    assert types[0] == "transcript-start"
    assert types[-2:] == ["transcript", "transcript-stop"]
    early = [e for after, e in received if not after and e.type == "transcript-chunk"]
    assert early, "no partial transcript before audio-stop"
    streamed = "".join(
        e.data["text"] for _, e in received if e.type == "transcript-chunk"
    )
    final = transcript_of([e for _, e in received])
    assert words(final) == words(text)
    assert words(streamed) == words(final)


async def test_other_audio_formats_are_converted(asr: RunningService) -> None:
    spoken = speak("What is the capital of France?")
    mono = np.frombuffer(spoken.audio, dtype=np.int16)
    stereo_22k = np.repeat(
        np.interp(np.arange(0, len(mono), 16000 / 22050), np.arange(len(mono)), mono), 2
    )
    pcm = stereo_22k.astype(np.int16).tobytes()
    async with AsyncTcpClient("127.0.0.1", asr.port) as client:
        await client.write_event(AudioStart(rate=22050, width=2, channels=2).event())
        for offset in range(0, len(pcm), 4096):
            chunk = AudioChunk(
                rate=22050, width=2, channels=2, audio=pcm[offset : offset + 4096]
            )
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        events = await read_all(client)
    assert words(transcript_of(events)) == words("What is the capital of France?")


async def test_silence_gives_an_empty_transcript(asr: RunningService) -> None:
    silence = Spoken("", np.zeros(16000 * 3, dtype=np.int16).tobytes(), 0.0)
    noise = speak(".", noise_db=-45)  # a bare pause: only light noise
    for spoken in (silence, noise):
        assert transcript_of(await transcribe(asr.port, spoken)) == ""


async def test_names_bias_the_decoder(asr: RunningService, http_port: int) -> None:
    text = "Turn off the Zigbee dehumidifier in Bjorn's office."
    spoken = speak(text)
    request = Transcribe(transcript_names=["Zigbee Dehumidifier", "Bjorn's Office"])
    biased = transcript_of(await transcribe(asr.port, spoken, request=request))
    assert "Zigbee Dehumidifier" in biased and "Bjorn's Office" in biased
    async with ClientSession() as session:
        url = f"http://127.0.0.1:{http_port}/api/names"
        async with session.put(
            url, json=["Zigbee Dehumidifier", "Bjorn's Office"]
        ) as r:
            assert r.status == 200
        async with session.put(url, json={"not": "a list"}) as r:
            assert r.status == 400
        async with session.get(url) as r:
            assert await r.json() == ["Zigbee Dehumidifier", "Bjorn's Office"]
    pushed = transcript_of(await transcribe(asr.port, spoken))
    assert "Zigbee Dehumidifier" in pushed
    async with ClientSession() as session:
        async with session.put(url, json=[]) as r:
            assert r.status == 200


async def test_concurrent_clients_do_not_mix(asr: RunningService) -> None:
    texts = [
        "What is the capital of France?",
        "Open the garage door.",
        "Set a timer for five minutes.",
    ]
    results = await asyncio.gather(
        *(transcribe(asr.port, speak(t), realtime=True) for t in texts)
    )
    for text, events in zip(texts, results):
        assert words(transcript_of(events)) == words(text)


async def test_disconnect_mid_stream_stops_decoding(asr: RunningService) -> None:
    spoken = speak(" ".join(["Tell me a long story about the sea."] * 4))
    async with AsyncTcpClient("127.0.0.1", asr.port) as client:
        await client.write_event(Transcribe().event())
        await stream_audio(
            client, spoken.audio[: len(spoken.audio) // 2], send_stop=False
        )
    await asyncio.sleep(0.5)
    before = cpu_seconds(asr.process.pid)
    await asyncio.sleep(1.5)
    assert cpu_seconds(asr.process.pid) - before < 0.3
    events = await transcribe(asr.port, speak("Good night."))
    assert words(transcript_of(events)) == ["good", "night"]


def test_word_errors_normalise_numbers_case_and_punctuation() -> None:
    assert word_errors(
        "Set a timer for five minutes.", "set a timer for 5 minutes"
    ) == (0, 6)
    assert word_errors("Dim it to thirty percent", "Dim it to 30%.") == (0, 5)
    assert word_errors("turn on the light", "turn the lights") == (2, 4)


def test_stable_prefix_holds_back_the_last_word() -> None:
    assert stable_prefix(["turn", "on", "the"], ["Turn", "on", "the", "kit"]) == [
        "Turn",
        "on",
        "the",
    ]
    assert stable_prefix(["colonel"], ["Turn", "on"]) == []
    assert stable_prefix(["going?"], ["going", "to"]) == ["going"]


def test_repetition_is_trimmed_and_window_is_bounded() -> None:
    assert trim_repetition([1, 2, 3, 4, 1, 2, 3, 4, 1]) == [1, 2, 3, 4]
    assert trim_repetition([1, 2, 3, 4, 5]) == [1, 2, 3, 4, 5]


class Greedy:
    """Stands in for CTranslate2's greedy Whisper: the same tokens whatever
    the budget, cut at it, up to the end token (EOT); counts the tokens it
    works out (a forced prefix is not counted)."""

    EOT = 99

    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.made = 0

    def __call__(self, prompt: list[int], max_length: int, first: bool) -> object:
        prefix = prompt[len(PROMPT) :]
        assert prefix == self.script[: len(prefix)]  # resumed where it was
        # CTranslate2's two bounds (measured on tiny.en)
        allowed = min(max_length - len(PROMPT) + 1, max_length // 2)
        out = self.script[:allowed]
        if self.EOT in out:
            out = out[: out.index(self.EOT)]
        self.made += len(out) - len(prefix) + (len(out) < allowed)

        class Result:
            sequences_ids = [out]
            no_speech_prob = 0.0 if first else None

        return Result()


PROMPT = [50360, 11, 12, 50257, 50362]


def test_generation_stops_where_the_transcript_starts_over() -> None:
    # "Turn off the television. Turn off the television. ..." to the bound
    sentence = [1, 2, 3, 4, 5]
    greedy = Greedy(sentence * 10)
    assert in_rounds(greedy, PROMPT, [12, 30], Greedy.EOT) == sentence
    assert greedy.made == 12  # not 30: the first round saw it start over


def test_generation_in_rounds_gives_what_one_call_gives() -> None:
    long_sentence = list(range(1, 21))  # more than the first round allows
    for script in (long_sentence + [Greedy.EOT], [1, 2, 3, Greedy.EOT]):
        in_two, in_one = Greedy(script), Greedy(script)
        assert in_rounds(in_two, PROMPT, [12, 30], Greedy.EOT) == in_rounds(
            in_one, PROMPT, [30], Greedy.EOT
        )
        assert in_rounds(in_two, PROMPT, [12, 30], Greedy.EOT) == script[:-1]


async def test_a_resumed_decode_gives_the_transcript_of_one_call(
    real_models: SessionModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CTranslate2 itself: the tokens a round is forced through, and its
    # max_length, are taken as `in_rounds` takes them
    whisper = await real_models.whisper()
    spoken = speak("Set the living room lamp to fifty percent and close the blinds.")
    audio = to_float(spoken.audio)
    prompt = "Living Room Lamp. Office Blinds."
    monkeypatch.setattr(whisper_module, "FIRST_ROUND_TOKENS", 1000)
    in_one = whisper.transcribe(audio, prompt)
    monkeypatch.setattr(whisper_module, "FIRST_ROUND_TOKENS", 2)
    monkeypatch.setattr(whisper_module, "FIRST_ROUND_PER_SECOND", 0)
    resumed = whisper.transcribe(audio, prompt)
    assert normalize(in_one)[:7] == normalize("set the living room lamp to fifty")
    assert resumed == in_one


async def test_a_long_decode_without_a_prompt_is_not_cut_short(
    real_models: SessionModels,
) -> None:
    # CTranslate2 writes at most max_length // 2 tokens: with no prompt the
    # first round stopped halfway ("... the kitchen lights, the porch") and
    # was taken for the end of the transcript
    whisper = await real_models.whisper()
    said = (
        "Set the living room lamp to fifty percent, close the blinds in the "
        "office, and turn off the kitchen lights, the porch light and the "
        "garage door opener please."
    )
    audio = to_float(speak(said, length_scale=0.8).audio)
    ending = normalize("the garage door opener please")
    assert normalize(whisper.transcribe(audio, None))[-len(ending) :] == ending


def test_the_bound_lets_every_token_be_written_that_the_decoder_has_room_for() -> None:
    # CTranslate2's Whisper writes at most max_length - len(prompt) + 1 and
    # max_length // 2 tokens, and has positions for 448 in all
    for prompt_length in (4, 56, 227):
        for tokens in (1, 12, 246):
            bound = max_length([0] * prompt_length, tokens)
            written = min(bound - prompt_length + 1, bound // 2)
            assert written == min(tokens, 448 - prompt_length)


async def test_a_long_prompt_and_window_stay_within_the_decoders_positions(
    real_models: SessionModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A prompt at Whisper's limit (223 tokens: 200 characters of a client's
    # names in emoji make one) and 29 s of audio, generated in one round: the
    # bound asked for 492 tokens, and CTranslate2 failed the decode ("No
    # position encodings are defined for positions >= 448")
    whisper = await real_models.whisper()
    monkeypatch.setattr(whisper_module, "FIRST_ROUND_TOKENS", 1000)
    noise = np.random.default_rng(0).normal(0, 0.01, 29 * 16000).astype(np.float32)
    prompt = " ".join(["kitchen lights porch lamp"] * 80)
    assert len(whisper.prompt_tokens(prompt)) > 220
    assert isinstance(whisper.transcribe(noise, prompt), str)


def test_a_decode_that_only_repeats_its_prompt_is_told() -> None:
    # tiny.en heard "The kitchen lights look nice today." as the prompt's
    # first name: a command, which the decode without the prompt is not
    prompt = "Kitchen Lights. Kitchen. Kitchen Island Lights."
    assert echoes("Kitchen Lights.", prompt)
    assert echoes("kitchen island lights", prompt)
    assert not echoes("Turn on the kitchen lights.", prompt)
    assert not echoes("The kitchen lights look nice today.", prompt)
    assert not echoes("", prompt)
    assert window_samples(16000) == 3 * 16000
    assert window_samples(16000 * 29) == 30 * 16000


def test_bad_model_stops_startup(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="model directory not found"):
        start_up("asr", "--model", str(tmp_path / "missing"))


# --- the protocol, on a stand-in decoder -----------------------------------


@pytest.fixture
async def fake_asr(house: HouseStore) -> AsyncIterator[int]:
    """The service (8 s kept per stream) on a decoder that hears "open the
    garage door", in process (its port)."""
    config = AsrConfig(max_seconds=8)
    decoder = FakeDecoder("open the garage door")
    service = asr_service.service(
        config, decoder, house, TurnRule(), Metrics(), FakeFrames
    )
    async with serving(service) as port:
        yield port


async def test_a_clip_sent_at_once_is_framed_as_a_stream(fake_asr: int) -> None:
    async with AsyncTcpClient("127.0.0.1", fake_asr) as client:
        await client.write_event(Transcribe().event())
        await stream_audio(client, speech(4) + silence(1), realtime=False)
        events = await read_all(client)
    types = [e.type for e in events]
    chunks = types.count("transcript-chunk")
    assert chunks and types == [
        "transcript-start",
        *["transcript-chunk"] * chunks,
        "transcript",
        "transcript-stop",
    ]
    streamed = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    assert (
        words(streamed) == words(transcript_of(events)) == words("Open the garage door")
    )


async def test_chunk_before_start_and_odd_buffer_are_errors(fake_asr: int) -> None:
    async with AsyncTcpClient("127.0.0.1", fake_asr) as client:
        await client.write_event(
            AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0").event()
        )
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None and Error.from_event(event).code == "bad-order"
        await client.write_event(AudioStart(rate=16000, width=2, channels=2).event())
        await client.write_event(
            AudioChunk(rate=16000, width=2, channels=2, audio=b"\0\0\0").event()
        )
        event = await asyncio.wait_for(client.read_event(), TIMEOUT)
        assert event is not None and Error.from_event(event).code == "bad-audio"
        # The same connection still transcribes.
        await stream_audio(client, speech(4) + silence(1), realtime=False)
        events = await read_all(client)
    assert transcript_of(events) == "open the garage door"


async def test_stream_over_the_cap_is_cut_and_transcribed(
    fake_asr: int, caplog: pytest.LogCaptureFixture
) -> None:
    # 12 s of speech without a pause, over the 8 s kept.
    async with AsyncTcpClient("127.0.0.1", fake_asr) as client:
        await client.write_event(Transcribe().event())
        await stream_audio(client, speech(48), realtime=False)
        events = await read_all(client)
    assert transcript_of(events) == "open the garage door"
    assert "Stream over 8 s, the rest is ignored" in caplog.text
