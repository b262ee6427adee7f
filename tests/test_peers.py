"""Who a port trusts, and what the rest may cost (issue #25).

Other loopback addresses (127.0.0.2...) stand for hosts on the LAN: the
services under test trust 127.0.0.1 only (`--allow-peer`), or the defaults
where the test is about them (this machine's network address then stands
for the LAN).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.intent import Recognize
from wyoming.ping import Ping

from testing.fake_llm import FakeLlm
from wyoming_rtvoice.config import write_atomically
from wyoming_rtvoice.discovery import advertised_address
from wyoming_rtvoice.handle.handler import NOT_TRUSTED
from wyoming_rtvoice.handle.responder import OVER_BUDGET
from wyoming_rtvoice.hass import HassConfig
from wyoming_rtvoice.server import OutOfDescriptors

from .conftest import RunningService, free_port, launch, start_service, stop, wait_ready
from .test_satellite import ClientFrom

TIMEOUT = 30.0
API_KEY = "sk-peers-test"
LAN = advertised_address("0.0.0.0")  # this machine's address on the network
HOUSE = {
    "entities": [
        {"name": "Front Door", "domain": "lock", "state": "unlocked"},
        {"name": "Garage Door", "domain": "cover", "state": "closed"},
        {"name": "Kitchen Lights", "domain": "light", "area": "Kitchen"},
    ],
    "areas": ["Kitchen"],
}
ENDS = {"intent", "handled", "not-handled", "not-recognized", "error"}


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("house") / "house.json"
    path.write_text(json.dumps(HOUSE))
    return path


def handle_args(house: Path, fake_llm: FakeLlm, *more: str) -> list[str]:
    return ["--entities", str(house), "--anthropic-base-url", fake_llm.url, *more]


@pytest.fixture(scope="module")
def handle(
    house: Path, fake_llm: FakeLlm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """handle trusting 127.0.0.1 only, with its HTTP API on loopback."""
    os.environ["ANTHROPIC_API_KEY"] = API_KEY
    http = f"http://127.0.0.1:{free_port()}"
    args = handle_args(house, fake_llm, "--allow-peer", "127.0.0.1", "--http-uri", http)
    try:
        with start_service(
            "handle", *args, log_dir=tmp_path_factory.mktemp("handle")
        ) as running:
            running.ports["http"] = int(http.rsplit(":", 1)[1])
            yield running
    finally:
        del os.environ["ANTHROPIC_API_KEY"]


async def ask(port: int, event: Event, source: str = "127.0.0.1") -> Event:
    """The last event of the answer to `event`, sent from `source`."""
    async with ClientFrom(source, port) as client:
        await client.write_event(event)
        async with asyncio.timeout(TIMEOUT):
            while (reply := await client.read_event()) is not None:
                if reply.type in ENDS:
                    return reply
    raise AssertionError("connection closed without an answer")


def said(text: str) -> Event:
    return Transcript(text=text, context={"conversation_id": "c1"}).event()


async def test_a_host_not_trusted_hears_no_state_and_reaches_no_llm(
    handle: RunningService, fake_llm: FakeLlm
) -> None:
    asked = len(fake_llm.requests)
    for question in ("Is the front door locked?", "Is the garage door open?"):
        for request in (said(question), Recognize(text=question).event()):
            answer = await ask(handle.port, request, "127.0.0.2")
            assert answer.type in ("not-handled", "not-recognized"), answer
            assert answer.data["text"] == NOT_TRUSTED
    answer = await ask(handle.port, said("Is anyone home?"), "127.0.0.2")
    assert answer.type == "not-handled" and answer.data["text"] == NOT_TRUSTED
    assert len(fake_llm.requests) == asked
    # Device commands still work from there (the client runs them itself).
    answer = await ask(handle.port, said("Turn off the kitchen lights"), "127.0.0.2")
    assert answer.type == "intent" and answer.data["name"] == "HassTurnOff"
    # The trusted peer is told.
    answer = await ask(handle.port, said("Is the front door locked?"))
    assert answer.type == "intent" and "unlocked" in answer.data["text"].lower()
    answer = await ask(handle.port, said("Is anyone home?"))
    assert answer.type == "handled" and len(fake_llm.requests) == asked + 1
    # Who asked is in the turn's log line.
    lines = [line for line in handle.log.splitlines() if "handle turn" in line]
    assert any("from 127.0.0.2" in line for line in lines)
    assert any("from 127.0.0.1" in line for line in lines)


async def test_slots_are_kept_for_the_trusted_peer(handle: RunningService) -> None:
    """Four addresses at 16 connections each used to fill the 64 slots."""
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for host in range(2, 6):
            for _ in range(16):
                held.append(
                    await asyncio.open_connection(
                        "127.0.0.1", handle.port, local_addr=(f"127.0.0.{host}", 0)
                    )
                )
        async with AsyncTcpClient("127.0.0.1", handle.port) as client:
            await client.write_event(Describe().event())
            reply = await asyncio.wait_for(client.read_event(), TIMEOUT)
            assert reply is not None and reply.type == "info"
    finally:
        for _, writer in held:
            writer.close()


async def test_the_llm_has_a_budget_per_client_and_in_all(
    house: Path, fake_llm: FakeLlm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    args = handle_args(house, fake_llm, "--allow-peer", "127.0.0.0/8")
    args += ["--llm-per-minute", "3", "--llm-per-client-per-minute", "2"]
    with start_service("handle", *args, log_dir=tmp_path) as running:
        asked = len(fake_llm.requests)
        answers = [await ask(running.port, said("Is anyone home?")) for _ in range(3)]
        assert [a.type for a in answers] == ["handled", "handled", "not-handled"]
        assert answers[-1].data["text"] == OVER_BUDGET  # said, never silence
        assert len(fake_llm.requests) == asked + 2
        answers = [
            await ask(running.port, said("Is anyone home?"), "127.0.0.3")
            for _ in range(2)
        ]  # one left in all
        assert [a.type for a in answers] == ["handled", "not-handled"]
        assert len(fake_llm.requests) == asked + 3
        assert "llm over budget" in running.log


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def half_open(port: int, source: str) -> Connection:
    """An HTTP request whose head never ends (slowloris)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0)
    )
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


def few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def test_a_slow_http_flood_takes_no_port_down(
    house: Path, fake_llm: FakeLlm, tmp_path: Path
) -> None:
    """300 half-open HTTP requests under a 256-descriptor limit (systemd's
    default soft limit is 1024) used to leave no descriptor for a Wyoming
    client and log a traceback per retried accept."""
    http_port = free_port()
    args = handle_args(house, fake_llm, "--allow-peer", "127.0.0.1")
    args += ["--http-uri", f"http://127.0.0.1:{http_port}"]
    argv = [sys.executable, "-m", "wyoming_rtvoice", "handle"]
    port = free_port()
    argv += ["--uri", f"tcp://127.0.0.1:{port}", "--state-dir", str(tmp_path), *args]
    log_path = tmp_path / "handle.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=few_descriptors,
        )
    service = RunningService(process, port, log_path, {"handle": port}, "handle")
    wait_ready([service])
    held: list[Connection] = []
    try:
        for n in range(300):
            try:
                held.append(await half_open(http_port, f"127.0.0.{2 + n % 20}"))
            except OSError:
                pass  # refused while the server is out of descriptors: today's bug
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Ping(text="still here").event())
            pong = await asyncio.wait_for(client.read_event(), TIMEOUT)
            assert pong is not None and pong.type == "pong"
        async with ClientSession() as session:
            url = f"http://127.0.0.1:{http_port}/health"
            async with session.get(url, timeout=ClientTimeout(TIMEOUT)) as response:
                assert response.status == 200
        # The half-open requests are closed by the server (read() returns
        # at the end of the stream), not held.
        for reader, _ in held[:40]:
            await asyncio.wait_for(reader.read(), TIMEOUT)
        assert "Traceback" not in service.log
    finally:
        for _, writer in held:
            writer.close()
        stop([service])


async def test_the_loopback_api_wants_a_loopback_host_header(
    handle: RunningService,
) -> None:
    """A web page's script reaching 127.0.0.1 through DNS rebinding sends its
    own host name."""
    url = f"http://127.0.0.1:{handle.ports['http']}/api/entities"
    async with ClientSession() as session:
        async with session.get(url, headers={"Host": "evil.example"}) as response:
            assert response.status == 421
        async with session.get(url, headers={"Host": "evil.example:80"}) as response:
            assert response.status == 421
        async with session.get(url) as response:
            assert response.status == 200
        async with session.get(url, headers={"Host": "localhost"}) as response:
            assert response.status == 200


def test_a_short_token_is_refused_at_start(tmp_path: Path) -> None:
    for env, args in (
        ("RTVOICE_HTTP_TOKEN", ["--http-uri", f"http://0.0.0.0:{free_port()}"]),
        ("RTVOICE_PIPELINE_TOKEN", ["--pipeline-uri", "tcp://127.0.0.1:1"]),
    ):
        service = "handle" if env == "RTVOICE_HTTP_TOKEN" else "satellite"
        if service == "satellite":
            args += ["--mic-command", "cat /dev/zero", "--uri", "tcp://127.0.0.1:0"]
        done = subprocess.run(
            [sys.executable, "-m", "wyoming_rtvoice", service, *args],
            env={**os.environ, env: "short-token"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert "at least 16" in done.stderr, done.stderr[-2000:]
        assert "short-token" not in done.stdout + done.stderr


def test_state_files_are_private_and_never_follow_a_link(tmp_path: Path) -> None:
    path = tmp_path / "state" / "house.json"
    write_atomically(path, "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched")
    (path.parent / ".house.json.partial").symlink_to(elsewhere)
    write_atomically(path, '{"house": 1}')
    assert elsewhere.read_text() == "untouched"
    assert path.read_text() == '{"house": 1}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_out_of_descriptors_is_one_line_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    report = OutOfDescriptors()
    error = OSError(24, "Too many open files")
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            report(loop, {"message": OutOfDescriptors.MESSAGE, "exception": error})
    loop.close()
    assert len(caplog.records) == 1
    assert "EMFILE" in caplog.text and "Traceback" not in caplog.text


def test_plain_http_to_home_assistant_beyond_loopback_is_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        HassConfig(url="http://127.0.0.1:8123").client()
        HassConfig(url="https://192.0.2.7:8123").client()
        assert not caplog.records
        HassConfig(url="http://192.0.2.7:8123").client()
    assert "plain http" in caplog.text


@asynccontextmanager
async def satellite_peer(port: int, source: str) -> AsyncIterator[Event | None]:
    """run-satellite from `source`: the first event back (None: none came)."""
    async with ClientFrom(source, port) as client:
        await client.write_event(Event("run-satellite"))
        try:
            yield await asyncio.wait_for(client.read_event(), 1.0)
        except TimeoutError:
            yield None


async def test_a_silent_satellite_client_is_closed(tmp_path: Path) -> None:
    mic = ["--mic-command", "cat /dev/zero"]
    with start_service("satellite", *mic, log_dir=tmp_path) as running:
        async with AsyncTcpClient("127.0.0.1", running.port) as client:
            await client.write_event(Describe().event())
            info = await asyncio.wait_for(client.read_event(), TIMEOUT)
            assert info is not None and info.type == "info"
            # ... and nothing more: closed (it used to hold its slot for ever).
            end = await asyncio.wait_for(client.read_event(), TIMEOUT)
            while end is not None and end.type != "error":
                end = await asyncio.wait_for(client.read_event(), TIMEOUT)
            assert end is not None and "run-satellite" in end.data["text"]
            assert await asyncio.wait_for(client.read_event(), TIMEOUT) is None


async def test_the_satellites_peer_is_kept_over_a_restart(tmp_path: Path) -> None:
    """After a power cut a polling device used to beat Home Assistant."""
    state = tmp_path / "satellite-state"
    port = free_port()
    args = ["--mic-command", "cat /dev/zero", "--uri", f"tcp://127.0.0.1:{port}"]
    args += ["--state-dir", str(state)]
    for first in ("127.0.0.1", "127.0.0.5"):
        running = launch("satellite", *args, log_dir=tmp_path, ports={"s": port})
        wait_ready([running])
        try:
            async with satellite_peer(port, first) as reply:
                if first == "127.0.0.1":  # the first ever: served from now on
                    assert reply is None or reply.type != "error", reply
                else:  # after the restart: refused, the one kept still served
                    assert reply is not None and reply.data["code"] == "not-allowed"
            if first == "127.0.0.5":
                async with satellite_peer(port, "127.0.0.1") as reply:
                    assert reply is None or reply.type != "error", reply
        finally:
            stop([running])
    kept = state / "satellite-peer"
    assert kept.read_text().strip() == "127.0.0.1"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


@pytest.mark.skipif(LAN is None or LAN.startswith("127."), reason="no LAN address")
async def test_the_address_that_pushed_the_house_is_trusted(
    house: Path, fake_llm: FakeLlm, tmp_path: Path
) -> None:
    """Without --allow-peer: loopback and the rtvoice integration's address
    (it pushes the house with the bearer token), kept over a restart."""
    assert LAN is not None
    http_port = free_port()
    token = "a-token-of-enough-length-3f9c"
    args = handle_args(house, fake_llm, "--http-uri", f"http://0.0.0.0:{http_port}")
    args += ["--uri", f"tcp://0.0.0.0:{free_port()}"]
    port = int(args[-1].rsplit(":", 1)[1])
    env = {"ANTHROPIC_API_KEY": API_KEY, "RTVOICE_HTTP_TOKEN": token}
    running = launch("handle", *args, log_dir=tmp_path, env=env, ports={"h": port})
    wait_ready([running])
    try:
        question = said("Is the front door locked?")
        answer = await ask(port, question, LAN)
        assert answer.data["text"] == NOT_TRUSTED
        async with ClientSession() as session:
            async with session.put(
                f"http://{LAN}:{http_port}/api/entities",
                json=HOUSE,
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status == 200
        answer = await ask(port, question, LAN)
        assert answer.type == "intent" and "unlocked" in answer.data["text"].lower()
    finally:
        stop([running])
