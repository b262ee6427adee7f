"""Shared test helpers: run a real service as a subprocess on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

# The stand-in models' fixtures (imported by name: tests_ha imports this
# module in Home Assistant's environment, which cannot load them).
pytest_plugins = ["tests.fakes"]


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Services started without --state-dir keep their state out of $HOME."""
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if previous is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = previous


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningService:
    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(json.dumps({"type": "ping", "data": {}}).encode() + b"\n")
            sock.settimeout(5)
            return b"pong" in sock.recv(4096)
    except OSError:
        return False


@contextmanager
def start_service(
    service: str, *args: str, log_dir: Path, startup_s: float = 180.0
) -> Iterator[RunningService]:
    """`python -m wyoming_rtvoice SERVICE --uri tcp://127.0.0.1:PORT ARGS...`,
    ready when it answers ping; stopped with SIGTERM, which must exit 0."""
    port = free_port()
    log_path = log_dir / f"{service}-{port}.log"
    state_dir = log_dir / f"state-{service}-{port}"  # nothing kept between tests
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "wyoming_rtvoice", service]
            + ["--uri", f"tcp://127.0.0.1:{port}", "--state-dir", str(state_dir)]
            + list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    running = RunningService(process, port, log_path)
    deadline = time.monotonic() + startup_s
    while not _answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{service} did not start:\n{running.log}")
        time.sleep(0.2)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
