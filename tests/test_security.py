"""Security: the HTTP API and the pipeline endpoint stay on loopback unless
guarded by a token (another machine on the network is this one's own network
address), secrets never leave the process except to their own service, and
the LLM cannot act on devices."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiohttp import ClientSession, TCPConnector
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe

from bench.abuse import listening
from bench.fake_llm import FakeLlm
from bench.speech import speak, stream_audio
from wyoming_rtvoice import stack as stack_module
from wyoming_rtvoice.__main__ import build_parser, main
from wyoming_rtvoice.audio import RATE_16K, write_wav
from wyoming_rtvoice.config import is_loopback
from wyoming_rtvoice.discovery import advertised_address
from wyoming_rtvoice.house.tools import TOOL_INTENTS
from wyoming_rtvoice.http import HttpApi
from wyoming_rtvoice.stack import PORTS
from wyoming_rtvoice.trace import Metrics

from .conftest import free_port
from .real_models import RunCommand

DATA = Path(__file__).parent / "data"
API_KEY = "sk-ant-secret-key-5d1e0c7b9a"
HTTP_TOKEN = "http-token-secret-93be27"
HASS_TOKEN = "hass-token-secret-41f0d6"
TIMEOUT = 30
LAN = advertised_address("0.0.0.0")  # this machine's address on the network
WYOMING = (*PORTS, "pipeline")
ENDS = {"intent", "handled", "not-handled", "not-recognized", "error"}


def test_http_api_is_on_loopback_by_default() -> None:
    parser = build_parser()
    commands = [["tts"], ["asr"], ["wake"], ["handle"], ["stack"]]
    commands.append(["satellite", "--mic-wav", "mic.wav"])
    for command, *rest in commands:
        uri = parser.parse_args([command, *rest]).http_uri
        if uri is not None:  # off unless given, or on loopback
            api = HttpApi(uri, {"service": command}, Metrics())
            assert is_loopback(api.host), (command, uri)


def test_refuses_to_listen_beyond_loopback_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line refuses it before any model is loaded."""
    loaded: list[object] = []
    monkeypatch.setattr(stack_module, "build", lambda **config: loaded.append(config))
    monkeypatch.delenv("RTVOICE_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("RTVOICE_PIPELINE_TOKEN", raising=False)
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    http = ["--http-uri", f"http://0.0.0.0:{free_port()}"]
    pipeline = ["--pipeline-host", "0.0.0.0", "--hass-url", "http://127.0.0.1:1"]
    for extra, refusal in (
        (http, "needs a bearer token"),
        (http + ["--http-token-file", str(empty)], "needs a bearer token"),
        (pipeline, "can operate the house: give it a token"),
        (pipeline + ["--pipeline-token-file", str(empty)], "give it a token"),
    ):
        argv = ["stack", "--host", "127.0.0.1", *extra]
        with pytest.raises(SystemExit, match=refusal):
            main(argv)  # a message for the user, not an exception's traceback
    assert loaded == []


# --- one stack with every secret it can hold ---------------------------------------


class FakeHass(BaseHTTPRequestHandler):
    """Home Assistant's intent API refusing the request; records what it got."""

    received: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        FakeHass.received.append(dict(self.headers))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def fake_hass() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHass)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@dataclass
class Stack:
    ports: dict[str, int]
    http: str
    log_path: Path
    fake: FakeLlm
    pid: int

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack's Wyoming ports and pipeline endpoint where the defaults put
    them, its API on 0.0.0.0 with a token (reached through 127.0.0.1), an
    Anthropic key, the fake LLM, a Home Assistant token, debug logging."""
    fake = FakeLlm(first_token_s=0.01, token_s=0.0)
    fake.start_in_thread()
    hass = contextlib.ExitStack()
    hass_url = hass.enter_context(fake_hass())
    folder = tmp_path_factory.mktemp("secure")
    token_file = folder / "token"
    token_file.write_text(HTTP_TOKEN + "\n")
    ports = {name: free_port() for name in (*PORTS, "pipeline", "http")}
    argv = [sys.executable, "-m", "wyoming_rtvoice", "stack"]
    argv += [f for name in WYOMING for f in (f"--{name}-port", str(ports[name]))]
    argv += ["--hass-url", hass_url]
    argv += ["--http-uri", f"http://0.0.0.0:{ports['http']}"]
    argv += ["--http-token-file", str(token_file), "--debug"]
    argv += ["--anthropic-base-url", fake.url, "--entities", str(DATA / "house.json")]
    log_path = folder / "stack.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANTHROPIC_API_KEY": API_KEY, "HASS_TOKEN": HASS_TOKEN},
        )
    deadline = time.monotonic() + 240
    while "Ready" not in log_path.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log_path
        time.sleep(0.2)
    try:
        yield Stack(
            ports, f"http://127.0.0.1:{ports['http']}", log_path, fake, process.pid
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        fake.stop_thread()
        hass.close()


async def exchange(port: int, event: Event, last: set[str]) -> list[Event]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(event)
        events: list[Event] = []
        async with asyncio.timeout(TIMEOUT):
            while (reply := await client.read_event()) is not None:
                events.append(reply)
                if reply.type in last:
                    break
    return events


async def converse_once(port: int, text: str) -> list[Event]:
    """Speak to the pipeline endpoint as a satellite does, until the reply ends."""
    audio = speak(text).audio + bytes(RATE_16K * 2 * 2)
    events: list[Event] = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        streaming = asyncio.create_task(stream_audio(client, audio, send_stop=False))
        try:
            async with asyncio.timeout(TIMEOUT):
                while (event := await client.read_event()) is not None:
                    if event.type != "audio-chunk":
                        events.append(event)
                    if event.type == "audio-stop":
                        break
        finally:
            streaming.cancel()
    return events


PATHS = [
    ("GET", "/metrics"),
    ("GET", "/api/turns"),
    ("GET", "/api/stats"),
    ("GET", "/api/info"),
    ("GET", "/api/entities"),
    ("PUT", "/api/entities"),
    ("GET", "/api/states"),
    ("GET", "/api/names"),
    ("PUT", "/api/names"),
    ("GET", "/no-such-path"),
]


async def test_every_path_but_health_needs_the_token(stack: Stack) -> None:
    bearer = {"Authorization": f"Bearer {HTTP_TOKEN}"}
    async with ClientSession() as session:
        async with session.get(f"{stack.http}/health") as response:
            assert response.status == 200
        for method, path in PATHS:
            for headers in ({}, {"X": HTTP_TOKEN}):
                async with session.request(
                    method, stack.http + path, headers=headers, json=[]
                ) as response:
                    assert response.status == 401, (method, path, headers)
        for method, path in PATHS[:5]:
            async with session.request(
                method, stack.http + path, headers=bearer
            ) as response:
                assert response.status == 200, (method, path)


async def test_wrong_tokens_make_their_address_wait(stack: Stack) -> None:
    """Three different guesses (a stale token retried counts once), then the
    right token from the same address at once: 429 (it used to be compared);
    another address is not held up."""
    bearer = {"Authorization": f"Bearer {HTTP_TOKEN}"}
    url = f"{stack.http}/api/info"
    guesser = TCPConnector(local_addr=("127.0.0.7", 0))
    async with ClientSession(connector=guesser) as session:
        for guess in ("stale", "stale", "stale", "typo"):
            headers = {"Authorization": f"Bearer {guess}"}
            async with session.get(url, headers=headers) as response:
                assert response.status == 401
        async with session.get(url, headers=bearer) as response:
            assert response.status == 200  # two different wrong ones are free
        for guess in ("guess-1", "guess-2", "guess-3"):
            headers = {"Authorization": f"Bearer {guess}"}
            async with session.get(url, headers=headers) as response:
                assert response.status == 401
        async with session.get(url, headers=bearer) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
    async with ClientSession() as session:
        async with session.get(url, headers=bearer) as response:
            assert response.status == 200


def test_what_listens_where(stack: Stack) -> None:
    """By default the services listen on every interface (they act on
    nothing); the pipeline endpoint, which can operate the house, on loopback."""
    bound = {
        int(port): address
        for address, port in (entry.rsplit(":", 1) for entry in listening(stack.pid))
    }
    for name in PORTS:
        assert bound[stack.ports[name]] == "0.0.0.0", name
    assert bound[stack.ports["pipeline"]] == "127.0.0.1"


async def test_no_command_from_the_network(stack: Stack) -> None:
    """Another machine (this one's network address) cannot reach the pipeline
    endpoint; a satellite on this machine is served."""
    with pytest.raises(OSError):
        await AsyncTcpClient(LAN, stack.ports["pipeline"]).connect()
    asked = len(FakeHass.received)
    events = await converse_once(stack.ports["pipeline"], "Turn on the kitchen lights.")
    assert "intent" in [event.type for event in events]
    assert len(FakeHass.received) == asked + 1


async def raw_http(url: str, request: bytes, source: str = "127.0.0.1") -> bytes:
    """Bytes no HTTP client library would send, from `source`; the status
    line of the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(
        host, int(port), local_addr=(source, 0)
    )
    try:
        writer.write(request)
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), TIMEOUT)).strip()
    finally:
        writer.close()


async def test_a_header_that_is_not_utf8_is_refused_not_a_crash(stack: Stack) -> None:
    offers = (b"Bearer \xff\xfe", b"\xc3\x28", b"Bearer " + HTTP_TOKEN.encode())
    for n, offered in enumerate(offers):  # a wrong one makes its address wait
        request = b"GET /api/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        status = await raw_http(
            stack.http,
            request + b"Authorization: %s\r\n\r\n" % offered,
            f"127.0.0.{20 + n}",
        )
        assert status == (
            b"HTTP/1.1 200 OK"
            if HTTP_TOKEN.encode() in offered
            else b"HTTP/1.1 401 Unauthorized"
        ), offered


@pytest.mark.parametrize("path", ["/api/entities", "/api/names"])
async def test_bodies_deep_undecodable_or_too_big_are_refused(
    stack: Stack, path: str
) -> None:
    bearer = {"Authorization": f"Bearer {HTTP_TOKEN}"}
    bodies = {
        b"[" * 100_000: 400,  # the parser's recursion limit: was a 500
        b'{"entities": ' + b"[" * 50_000 + b"]" * 50_000 + b"}": 400,
        b'["\xff\xfe"]': 400,  # not UTF-8: was a 500 on /api/entities
        b'["' + b"x" * (1 << 20) + b'"]': 413,
    }
    async with ClientSession(headers=bearer) as session:
        for body, status in bodies.items():
            async with session.put(stack.http + path, data=body) as response:
                assert response.status == status, (body[:20], await response.text())
        async with session.get(stack.http + path) as response:
            assert response.status == 200
    assert "Error handling request" not in stack.log


async def test_secrets_never_leave_the_process(stack: Stack) -> None:
    seen: list[str] = []  # everything a client or an operator can read
    handle = stack.ports["handle"]
    for name in WYOMING:
        events = await exchange(stack.ports[name], Describe().event(), {"info"})
        seen += [json.dumps(e.data) for e in events]
    # A spoken command on the pipeline endpoint: Home Assistant refuses it.
    events = await converse_once(stack.ports["pipeline"], "Turn on the kitchen lights.")
    assert "intent" in [e.type for e in events]
    seen += [json.dumps(e.data) for e in events]
    stack.fake.answer = "Paris."
    for text in ("What is the capital of France?", "Turn on the kitchen lights."):
        events = await exchange(handle, Transcript(text=text).event(), ENDS)
        seen += [json.dumps(e.data) for e in events]
    for failure in ("500", "429"):  # the SDK's errors carry the request
        stack.fake.failure = failure
        events = await exchange(handle, Transcript(text="Why?").event(), ENDS)
        seen += [json.dumps(e.data) for e in events]
    stack.fake.failure = "none"
    events = await exchange(handle, Event("transcript", {"text": 5}), ENDS)
    assert events[-1].type == "error"
    seen += [json.dumps(e.data) for e in events]
    async with ClientSession(
        headers={"Authorization": f"Bearer {HTTP_TOKEN}"}
    ) as session:
        for path in (
            "/health",
            "/metrics",
            "/api/turns",
            "/api/stats",
            "/api/info",
            "/api/entities",
            "/api/states",
            "/api/names",
        ):
            async with session.get(stack.http + path) as response:
                seen.append(await response.text())
        async with session.put(stack.http + "/api/entities", data=b"{") as response:
            assert response.status == 400
            seen.append(await response.text())
    seen.append(stack.log)
    everything = "\n".join(seen)
    assert "rtvoice_asyncio_tasks" in everything and "HassTurnOn" in everything
    for secret in (API_KEY, HTTP_TOKEN, HASS_TOKEN):
        assert secret not in everything
    # The secrets went where they belong: the key to the LLM, the token to HA.
    assert any(API_KEY in str(headers) for headers in stack.fake.headers)
    assert FakeHass.received[-1]["Authorization"] == f"Bearer {HASS_TOKEN}"


@pytest.mark.parametrize(
    ("answer", "tool_use", "ends"),
    [
        ("Turn on the kitchen lights.", None, "handled"),
        ('{"type": "tool_use", "name": "HassTurnOn", "input": {}}', None, "handled"),
        ("Sure.", {"name": "HassTurnOn", "input": {"name": "Shed"}}, "not-handled"),
        ("Sure.", {"name": "HassTurnOff", "input": {"name": "Back Door"}}, "handled"),
        ("Sure.", {"name": "HassTurnOn", "input": {"entity_id": "x"}}, "not-handled"),
    ],
)
async def test_the_llm_acts_only_through_checked_tool_calls(
    stack: Stack, answer: str, tool_use: dict[str, object] | None, ends: str
) -> None:
    """Text that reads like a command is only spoken; a tool call naming what
    the house does not have, or a slot its tool lacks, is refused; one on a
    lock is asked about (handled: the question), never run at once."""
    stack.fake.answer, stack.fake.tool_use = answer, tool_use
    try:
        events = await exchange(
            stack.ports["handle"],
            Transcript(text="Tell me something surprising.").event(),
            ENDS,
        )
    finally:
        stack.fake.answer, stack.fake.tool_use = "Paris.", None
    assert "intent" not in [e.type for e in events]
    assert events[-1].type == ends
    request = stack.fake.requests[-1]
    assert {tool["name"] for tool in request["tools"]} <= set(TOOL_INTENTS)
    if tool_use is None:
        assert events[-1].data["text"] == answer  # only ever spoken


# --- converse and the Home Assistant token ---------------------------------------


def test_hass_token_goes_only_to_home_assistant(
    tmp_path: Path, run_converse: RunCommand
) -> None:
    wav, token_file = tmp_path / "in.wav", tmp_path / "hass-token"
    write_wav(wav, speak("Turn on the kitchen lights.").audio, RATE_16K)
    token_file.write_text(HASS_TOKEN)
    with fake_hass() as hass_url:
        done = run_converse(
            str(wav),
            "--debug",
            "--hass-url",
            hass_url,
            "--hass-token-file",
            str(token_file),
            env={"ANTHROPIC_API_KEY": None},
        )
    assert done.code == 0, done.stderr
    assert "Home Assistant answered HTTP 401" in done.stdout
    assert "DEBUG:" in done.stderr  # what --debug logs was looked at
    assert HASS_TOKEN not in done.stdout + done.stderr
    assert FakeHass.received[-1]["Authorization"] == f"Bearer {HASS_TOKEN}"
