"""Shared test helpers: real services as subprocesses on loopback ports.

Subprocesses are started together and waited for together (`start_services`),
since most of a start is loading models; the stack with default flags is one
process for the whole session (`stack`).

Only the standard library and pytest at module level: tests_ha imports this
module in Home Assistant's environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from testing.fake_llm import FakeLlm

# The stand-in models' fixtures (imported by name: tests_ha imports this
# module in Home Assistant's environment, which cannot load them).
pytest_plugins = ["tests.fakes", "tests.real_models"]

DATA = Path(__file__).parent / "data"
STACK_SERVICES = ("tts", "asr", "wake", "handle")
STACK_API_KEY = "sk-shared-stack-test"


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
    ports: dict[str, int] = field(default_factory=dict)  # all it listens on
    name: str = ""

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


def launch(
    service: str,
    *args: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    ports: dict[str, int] | None = None,
) -> RunningService:
    """`python -m wyoming_rtvoice SERVICE ...` with its own state directory,
    not waited for. `ports` are where it will listen (a stack names them in
    `args`); without them it gets `--uri tcp://127.0.0.1:PORT`."""
    argv = [sys.executable, "-m", "wyoming_rtvoice", service]
    if "--http-uri" not in args:  # not the default port: another may hold it
        argv += ["--http-uri", ""]
    if ports is None:
        ports = {service: free_port()}
        argv += ["--uri", f"tcp://127.0.0.1:{ports[service]}"]
    port = next(iter(ports.values()))
    log_path = log_dir / f"{service}-{port}.log"
    state_dir = log_dir / f"state-{service}-{port}"  # nothing kept between tests
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            argv + ["--state-dir", str(state_dir), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    return RunningService(process, port, log_path, ports, service)


def wait_ready(services: Sequence[RunningService], startup_s: float = 240.0) -> None:
    """Until every port of every service answers ping; a service that exits
    or is late is an error naming it, with its log."""
    deadline = time.monotonic() + startup_s
    waiting = [(s, p) for s in services for p in s.ports.values()]
    while waiting:
        service, port = waiting[0]
        if _answers_ping(port):
            waiting.pop(0)
            continue
        for other in services:
            if other.process.poll() is not None:
                raise RuntimeError(f"{other.name} did not start:\n{other.log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service.name} did not start:\n{service.log}")
        time.sleep(0.1)


def stop(services: Sequence[RunningService], signum: int = signal.SIGTERM) -> None:
    """Signal them all, then wait: each must exit 0 (a clean shutdown)."""
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signum)
    for service in services:
        try:
            service.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            raise
    for service in services:
        assert service.process.returncode == 0, service.log[-3000:]


@contextmanager
def start_services(
    *commands: Sequence[str], log_dir: Path, startup_s: float = 240.0
) -> Iterator[list[RunningService]]:
    """Several services (each `[SERVICE, ARGS...]`) started at once, ready
    when all are; stopped with SIGTERM, which must end each with exit 0."""
    running = [launch(c[0], *c[1:], log_dir=log_dir) for c in commands]
    try:
        wait_ready(running, startup_s)
    except BaseException:
        for service in running:
            service.process.kill()
            service.process.wait()
        raise
    try:
        yield running
    finally:
        stop(running)


@contextmanager
def start_service(
    service: str, *args: str, log_dir: Path, startup_s: float = 240.0
) -> Iterator[RunningService]:
    """`python -m wyoming_rtvoice SERVICE --uri tcp://127.0.0.1:PORT ARGS...`,
    ready when it answers ping; stopped with SIGTERM, which must exit 0."""
    with start_services([service, *args], log_dir=log_dir, startup_s=startup_s) as (
        running,
    ):
        yield running


# --- the stack with default flags, one for the session ----------------------


@dataclass
class Stack:
    """The shared stack: its Wyoming ports (with `pipeline`), HTTP API and the
    fake LLM it asks (tests set its answer; `reset_llm` puts it back)."""

    service: RunningService
    ports: dict[str, int]
    http: str
    zeroconf: str
    llm: FakeLlm

    @property
    def log(self) -> str:
        return self.service.log


@pytest.fixture(scope="session")
def session_llm() -> Iterator[FakeLlm]:
    """One fake Anthropic Messages API for the session's shared servers."""
    from testing.fake_llm import FakeLlm

    fake = FakeLlm()
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


def reset_llm(fake: FakeLlm, **values: object) -> FakeLlm:
    """The fake LLM with its defaults, then `values`; its records kept."""
    from testing.fake_llm import FakeLlm

    fresh = FakeLlm()
    for name in ("answer", "first_token_s", "token_s", "failure", "tool_use"):
        setattr(fake, name, values.pop(name, getattr(fresh, name)))
    assert not values, values
    return fake


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, session_llm: FakeLlm
) -> Iterator[Stack]:
    """`python -m wyoming_rtvoice stack` with its default flags but ports:
    all four services, the pipeline endpoint, the HTTP API without a token,
    zeroconf under a name of its own, the 200-entity house and the fake LLM."""
    ports = {name: free_port() for name in (*STACK_SERVICES, "pipeline")}
    http = f"http://127.0.0.1:{free_port()}"
    zeroconf = f"stacktest{os.getpid()}"  # unique if several suites share a host
    args = ["--host", "127.0.0.1"]
    args += [f"--{name}-port={port}" for name, port in ports.items()]
    args += ["--http-uri", http, "--zeroconf", zeroconf]
    args += ["--entities", str(DATA / "house.json")]
    args += ["--anthropic-base-url", session_llm.url]
    service = launch(
        "stack",
        *args,
        log_dir=tmp_path_factory.mktemp("stack"),
        env={"ANTHROPIC_API_KEY": STACK_API_KEY},
        ports=ports,
    )
    try:
        wait_ready([service])
    except BaseException:
        service.process.kill()
        service.process.wait()
        raise
    try:
        yield Stack(service, ports, http, zeroconf, session_llm)
    finally:
        stop([service])
    assert "Traceback" not in service.log, service.log[-3000:]


# The modules that use the session's shared stack. Under pytest-xdist they run
# in one worker, so it starts once; a module that starts using it must be
# listed (the collection says so).
SHARED_STACK_MODULES = (
    "tests/test_fuzz.py",
    "tests/test_install.py",
    "tests/test_satellite.py",
    "tests/test_stack.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The shared stack's modules first (together the longest part of the
    suite, so a worker starts on them at once), each in collection order."""
    using = {
        item.nodeid.split("::", 1)[0]
        for item in items
        if isinstance(item, pytest.Function)
        and "stack" in item.fixturenames
        and not hasattr(item.module, "stack")  # a module with a stack of its own
    }
    if unlisted := using - set(SHARED_STACK_MODULES):
        raise pytest.UsageError(f"add {sorted(unlisted)} to SHARED_STACK_MODULES")
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in using)


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # a checkout whose .venv predates it: no -n
    LoadScopeScheduling = None

if LoadScopeScheduling is not None:

    class ByModule(LoadScopeScheduling):
        """A module goes to one worker (its module fixtures start once), the
        shared stack's modules all to the same one, in collection order."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shared stack" if module in SHARED_STACK_MODULES else module

    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        """`script/test` runs the suite in two pytest-xdist workers."""
        config.option.loadscopereorder = False
        return ByModule(config, log)
