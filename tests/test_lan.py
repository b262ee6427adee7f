"""The stack as installed, seen from another machine on the network.

The stack runs with its default flags (only the ports are free ones) and
`--hass-url`, a stand-in Home Assistant that counts the intents it is asked
to execute. Another machine on the network is this machine's own
non-loopback address: a connection to it comes from a non-loopback peer,
as one from the LAN does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from wyoming.client import AsyncTcpClient

from bench.abuse import listening
from wyoming_rtvoice.discovery import advertised_address
from wyoming_rtvoice.stack import PORTS

from .conftest import free_port
from .test_security import HASS_TOKEN, FakeHass, converse_once, fake_hass

DATA = Path(__file__).parent / "data"
LAN = advertised_address("0.0.0.0")


@dataclass
class Stack:
    pid: int
    ports: dict[str, int]
    hass_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`stack` with its defaults but free ports, and --hass-url."""
    assert not LAN.startswith("127."), "this machine has no address on a network"
    folder = tmp_path_factory.mktemp("lan")
    ports = {name: free_port() for name in (*PORTS, "pipeline", "http")}
    argv = [sys.executable, "-m", "wyoming_rtvoice", "stack"]
    argv += [
        f for name in (*PORTS, "pipeline") for f in (f"--{name}-port", str(ports[name]))
    ]
    argv += ["--http-uri", f"http://127.0.0.1:{ports['http']}"]
    argv += ["--entities", str(DATA / "house.json")]
    with contextlib.ExitStack() as cleanup:
        hass_url = cleanup.enter_context(fake_hass())
        log_path = folder / "stack.log"
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [*argv, "--hass-url", hass_url],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "HASS_TOKEN": HASS_TOKEN},
            )
        deadline = time.monotonic() + 240
        while "Ready" not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path
            time.sleep(0.2)
        try:
            yield Stack(process.pid, ports, hass_url)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_what_listens_where(stack: Stack) -> None:
    """The services on every interface (they act on nothing); what can act
    on the house (the pipeline endpoint) and the HTTP API on loopback only."""
    bound = {
        int(entry.rsplit(":", 1)[1]): entry.rsplit(":", 1)[0]
        for entry in listening(stack.pid)
    }
    for name in PORTS:
        assert bound[stack.ports[name]] == "0.0.0.0", name
    assert bound[stack.ports["pipeline"]] == "127.0.0.1"
    assert bound[stack.ports["http"]] == "127.0.0.1"


async def test_no_command_from_the_network(stack: Stack) -> None:
    with pytest.raises(OSError):
        await AsyncTcpClient(LAN, stack.ports["pipeline"]).connect()
    # A satellite on this machine is served (and Home Assistant asked).
    asked = len(FakeHass.received)
    events = await converse_once(stack.ports["pipeline"], "Turn on the kitchen lights.")
    assert "intent" in [event.type for event in events]
    assert len(FakeHass.received) == asked + 1


def test_the_pipeline_leaves_loopback_only_with_a_token(tmp_path: Path) -> None:
    """`--pipeline-host 0.0.0.0` with --hass-url and no token: refused at
    start-up, before any model loads."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "wyoming_rtvoice", "stack", "--pipeline-host", "0.0.0.0"]
        + ["--pipeline-port", str(free_port()), "--http-uri", ""]
        + ["--hass-url", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "RTVOICE_PIPELINE_TOKEN"},
    )
    assert done.returncode != 0
    assert "token" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 20
