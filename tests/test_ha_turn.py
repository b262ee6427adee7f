"""Home Assistant's Assist pipeline at the project's speed.

The ASR service ends the turn for clients that behave exactly like Home
Assistant's `wyoming` speech to text: the newest one (2026.5+: uploads and
reads at once, returns at the first `transcript`, then cancels the upload
and closes) and 2025.4 (reads only after `audio-stop`). Against the real
model, a few cheap turns; the behaviours in detail are tested with stand-ins
in test_one_turn.py.

Then the stack answers the rest of the turn from work already done: the
transcript's match is kept for the handle service, and its confirmation is
synthesised into the TTS cache before Home Assistant asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from wyoming.asr import Transcribe, Transcript, VadSensitivity
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.tts import Synthesize

from bench.speech import speak, speak_with_pause
from bench.wer import normalize
from wyoming_rtvoice import asr, tts
from wyoming_rtvoice.asr import AsrConfig
from wyoming_rtvoice.converse import DEMO_HOUSE
from wyoming_rtvoice.house.matcher import Match, Matcher
from wyoming_rtvoice.house.store import HouseStore, Snapshot
from wyoming_rtvoice.stack import ReplyAhead
from wyoming_rtvoice.trace import Metrics
from wyoming_rtvoice.tts import TtsConfig
from wyoming_rtvoice.tts.speaker import Speaker
from wyoming_rtvoice.turn import TurnRule

from .conftest import RunningService, start_service
from .fakes import FakeDecoder, FakeFrames, FakeVoice, silence, speech
from .test_one_turn import serving, stream, transcripts

RATE, WIDTH = 16000, 2
CHUNK = RATE * WIDTH // 50  # 20 ms, as Home Assistant's pipeline sends it
TIMEOUT = 30


@dataclass
class Heard:
    text: str | None  # None: no transcript came
    sent_s: float  # seconds of audio uploaded when the transcript came
    events: list[Event]


async def _upload(
    client: AsyncTcpClient, audio: bytes, pace: float, heard: Heard
) -> None:
    """Audio as a microphone delivers it (`pace` 1 is real time), then
    audio-stop."""
    started = asyncio.get_running_loop().time()
    for index, offset in enumerate(range(0, len(audio), CHUNK)):
        due = started + index * CHUNK / (RATE * WIDTH) / pace
        await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
        chunk = audio[offset : offset + CHUNK]
        await client.write_event(AudioChunk(RATE, WIDTH, 1, chunk).event())
        heard.sent_s += len(chunk) / (RATE * WIDTH)
    await client.write_event(AudioStop().event())


async def _first_transcript(client: AsyncTcpClient, heard: Heard) -> None:
    while (event := await client.read_event()) is not None:
        heard.events.append(event)
        if Transcript.is_type(event.type):
            heard.text = Transcript.from_event(event).text
            return


async def like_newest_home_assistant(
    port: int, audio: bytes, pace: float = 1.0, request: Transcribe | None = None
) -> Heard:
    """Home Assistant 2026.5+'s `wyoming` STT: upload and read as two tasks,
    the first to finish wins, the other is cancelled, the connection closed."""
    heard = Heard(None, 0.0, [])
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event((request or Transcribe(language="en")).event())
        await client.write_event(AudioStart(RATE, WIDTH, 1).event())
        upload = asyncio.create_task(_upload(client, audio, pace, heard))
        receive = asyncio.create_task(_first_transcript(client, heard))
        tasks = (upload, receive)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                upload.result()
                await asyncio.wait_for(receive, TIMEOUT)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return heard


async def like_home_assistant_2025_4(port: int, audio: bytes) -> Heard:
    """Home Assistant up to 2026.4: all the audio (at real-time pace), then
    audio-stop, then read until the transcript."""
    heard = Heard(None, 0.0, [])
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(RATE, WIDTH, 1).event())
        await _upload(client, audio, 1.0, heard)
        await asyncio.wait_for(_first_transcript(client, heard), TIMEOUT)
        # Whatever else the server sends (only transcript-stop is due).
        with contextlib.suppress(TimeoutError):
            while (
                event := await asyncio.wait_for(client.read_event(), 0.5)
            ) is not None:
                heard.events.append(event)
    return heard


def noise_floor(seconds: float) -> bytes:
    """The room after the speaker stopped: light noise, not digital silence."""
    return speak(".", noise_db=-40, lead_s=0, tail_s=seconds).audio


# --- against the real model -------------------------------------------------


@pytest.fixture(scope="module")
def asr_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with start_service(
        "asr", "--entities", str(DEMO_HOUSE), log_dir=tmp_path_factory.mktemp("asr")
    ) as running:
        yield running


def words(text: str | None) -> list[str]:
    return normalize(text or "")


async def test_a_spoken_command_ends_before_the_audio_does(
    asr_service: RunningService,
) -> None:
    spoken = speak("Turn on the kitchen lights.", tail_s=3.0)
    heard = await like_newest_home_assistant(asr_service.port, spoken.audio)
    assert words(heard.text) == words(spoken.text)
    assert heard.sent_s < spoken.seconds - 1.0  # the server ended the turn
    types = [event.type for event in heard.events]
    assert types[0] == "transcript-start" and types[-1] == "transcript"


async def test_a_question_ends_after_its_silence(
    asr_service: RunningService,
) -> None:
    spoken = speak("What is the capital of France?", tail_s=3.0)
    heard = await like_newest_home_assistant(asr_service.port, spoken.audio)
    assert words(heard.text) == words(spoken.text)
    silence_heard = heard.sent_s - spoken.speech_end_s
    assert TurnRule().silence_s - 0.1 <= silence_heard < 2.0


@pytest.mark.parametrize("pause_s", [0.3, 0.6])
async def test_a_pause_mid_command_does_not_end_the_turn(
    asr_service: RunningService, pause_s: float
) -> None:
    spoken = speak_with_pause("Turn on the", pause_s, "kitchen lights.", tail_s=2.0)
    heard = await like_newest_home_assistant(asr_service.port, spoken.audio)
    assert words(heard.text) == words("Turn on the kitchen lights.")


async def test_silence_ends_at_the_no_speech_timeout(
    asr_service: RunningService,
) -> None:
    # The timeout counts audio, not wall time: sent four times faster.
    heard = await like_newest_home_assistant(
        asr_service.port, noise_floor(12), pace=4.0
    )
    assert heard.text == ""
    assert heard.sent_s == pytest.approx(TurnRule().no_speech_s, abs=0.3)


async def test_home_assistant_2025_4_gets_one_finished_transcript(
    asr_service: RunningService,
) -> None:
    spoken = speak("Turn off the bedroom fan.", tail_s=1.0)
    heard = await like_home_assistant_2025_4(asr_service.port, spoken.audio)
    assert words(heard.text) == words(spoken.text)
    assert heard.sent_s == pytest.approx(spoken.seconds, abs=0.03)
    types = [event.type for event in heard.events]
    assert types.count("transcript") == 1 and types[-1] == "transcript-stop"


# --- Home Assistant's VAD sensitivity, with stand-ins -----------------------


@pytest.fixture
def house(demo_matcher: Matcher) -> Iterator[HouseStore]:
    store = HouseStore(Snapshot(copy.copy(demo_matcher)), None)
    yield store
    store.close()


@pytest.mark.parametrize(
    ("sensitivity", "scale"),
    [
        (VadSensitivity.AGGRESSIVE, 0.5),
        (VadSensitivity.DEFAULT, 1.0),
        (VadSensitivity.RELAXED, 2.0),
        ("relaxed", 2.0),
    ],
)
async def test_vad_sensitivity_scales_the_silence(
    house: HouseStore, sensitivity: VadSensitivity | str, scale: float
) -> None:
    metrics = Metrics()
    service = asr.service(
        AsrConfig(),
        FakeDecoder("how far away is the moon"),
        house,
        TurnRule(),
        metrics,
        FakeFrames,
    )
    request = Transcribe(vad_sensitivity=sensitivity)
    async with serving(service) as port:
        events, _ = await stream(port, speech(6) + silence(3), request=request)
    assert transcripts(events) == ["how far away is the moon"]
    # The silence the service had heard when it ended the turn (the client
    # sends on until the transcript, which the second chance may delay).
    (why,) = [n for n in metrics.traces[-1].notes if n.startswith("turn over")]
    heard_ms = re.fullmatch(r"turn over: other after (\d+) ms of silence", why)
    assert heard_ms is not None, why
    expected_ms = TurnRule().silence_s * scale * 1000
    assert expected_ms <= int(heard_ms.group(1)) < expected_ms + 40  # a frame


# --- the rest of the turn from work already done ----------------------------


class SlowVoice(FakeVoice):
    """Takes a while per clause; counts syntheses running at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most_running = 0

    async def stream(self, text: str) -> AsyncIterator[bytes]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.05)
            async for pcm in super().stream(text):
                yield pcm
        finally:
            self.running -= 1


async def test_a_reply_made_ahead_is_not_made_twice() -> None:
    voice = SlowVoice()
    speaker = Speaker(voice)
    ahead = asyncio.create_task(speaker.prepare("Turned on the lights."))
    await asyncio.sleep(0.01)  # it is being made
    audio = b"".join([c.audio async for c in speaker.chunks("Turned on the lights.")])
    await ahead
    assert audio and voice.most_running == 1


async def test_the_stack_answers_the_command_from_work_already_done(
    house: HouseStore,
) -> None:
    matched: list[str] = []
    matcher = house.snapshot.matcher
    real_match = matcher.match

    def counted(text: str) -> Match | None:
        matched.append(text)
        return real_match(text)

    matcher.match = counted  # type: ignore[method-assign]
    voice = FakeVoice()
    speaker = Speaker(voice)
    reply_ahead = ReplyAhead(house, speaker)
    asr_metrics, tts_metrics = Metrics(), Metrics()
    asr_service = asr.service(
        AsrConfig(),
        FakeDecoder("turn on the kitchen lights"),
        house,
        TurnRule(),
        asr_metrics,
        FakeFrames,
        ahead=reply_ahead,
    )
    async with serving(asr_service) as port:
        events, _ = await stream(port, speech(5) + silence(3))
    [text] = transcripts(events)
    await asyncio.gather(*reply_ahead._tasks)
    command = real_match(text)
    assert command is not None
    confirmation = command.response
    assert voice.spoken == [confirmation]  # made ahead, once

    # Home Assistant's next two requests: the conversation agent's (the handle
    # service matches the same text), then the confirmation's speech.
    assert await house.match(text) == await house.match(text)
    assert matched.count(text) == 1
    tts_service = tts.service(TtsConfig(), speaker, tts_metrics)
    async with serving(tts_service) as port, AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Synthesize(text=confirmation).event())
        async with asyncio.timeout(TIMEOUT):
            while (event := await c.read_event()) is not None:
                if event.type == "audio-stop":
                    break
    [trace] = tts_metrics.traces
    assert "cache hit" in trace.notes
