"""The project's real servers for the Home Assistant tests.

They run as subprocesses of the project's own `.venv` (Python 3.11, the
models, wyoming>=1.10) on free loopback ports, exactly like tests/test_stack.py;
Home Assistant and these tests run in `.venv-ha` (2025.4.4, Python 3.13) and
`.venv-ha-current` (2026.10.4, Python 3.14; script/ha-current).

Home Assistant's detection of blocking calls in its event loop is on, as in a
real Home Assistant: starting and stopping servers happens in executors.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_socket
from aiohttp import web
from homeassistant import block_async_io
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components  # noqa: F401  ours, before the plugin's testing_config one
from tests.conftest import free_port

REPO = Path(__file__).parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
TOKEN = "rtvoice-test-token-0123456789"
DOMAIN = "rtvoice"
SERVICES = ("tts", "asr", "wake", "handle")
FAKE_LLM = """
import sys, time
from testing.fake_llm import FakeLlm
FakeLlm(port=int(sys.argv[1])).start_in_thread()
print("Ready", flush=True)
time.sleep(3600)
"""


# A template entity's options under their legacy platform's names.
LEGACY_TEMPLATE_KEYS = {"name": "friendly_name", "state": "value_template"}


def template_entities(entities: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Configuration for template entities (options by their current names),
    the way the running Home Assistant takes them: under the template
    integration (2026.x refuses `light: - platform: template`), and as that
    legacy platform for a domain the integration does not take yet (2025.4:
    covers and fans)."""
    from homeassistant.components.template import config as template_config
    from homeassistant.util import slugify

    modern: dict[str, Any] = {}
    config: dict[str, Any] = {}
    for domain, items in entities.items():
        if f"{domain.upper()}_DOMAIN" in vars(template_config):
            modern[domain] = items
            continue
        legacy = {
            slugify(item["name"]): {
                LEGACY_TEMPLATE_KEYS.get(k, k): v for k, v in item.items()
            }
            for item in items
        }
        config[domain] = [{"platform": "template", f"{domain}s": legacy}]
    return {**config, "template": [modern]} if modern else config


def loopback_sockets() -> None:
    """Sockets on, connections to loopback only: the servers are real.

    (pytest-homeassistant-custom-component turns sockets off before each test.)
    """
    pytest_socket.enable_socket()
    # 127.0.0.2: another host on the network (a spoofed stack).
    pytest_socket.socket_allow_hosts(["127.0.0.1", "127.0.0.2"], allow_unix_socket=True)


@pytest.fixture(scope="session", autouse=True)
def blocking_call_detection() -> Iterator[None]:
    """Home Assistant's detection of blocking calls in its event loop's thread,
    on as its bootstrap turns it on; off again before pytest's own teardown."""
    block_async_io.enable()
    yield
    calls = block_async_io._BLOCKED_CALLS.calls
    for call in calls:
        setattr(call.object, call.function, call.original_func)
    calls.clear()


@pytest.fixture(autouse=True)
def auto_loopback_sockets() -> None:
    loopback_sockets()


@pytest.fixture(autouse=True)
def no_blocking_calls(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test in which anything blocked Home Assistant's event loop (the
    detection raises for some calls and only logs others)."""
    yield
    blocking = [r.getMessage() for r in caplog.records if "blocking call" in r.message]
    assert not blocking, blocking


@dataclass
class Server:
    """A project server running as a subprocess."""

    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def state_dir(self) -> Path:
        """Its own state (id, house), kept across its restarts."""
        return self.log.with_suffix(".state")

    def start(self, startup_s: float = 180) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        argv = self.argv
        if "wyoming_rtvoice" in argv and argv[argv.index("wyoming_rtvoice") + 1] != (
            "converse"
        ):
            argv = [*argv, f"--state-dir={self.state_dir}"]
        with open(self.log, "a", encoding="utf-8") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,  # testing/ (the fake LLM, spoken material) is not installed
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )
        deadline = time.monotonic() + startup_s
        while "Ready" not in self.log.read_text()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                code = self.process.wait()
                raise RuntimeError(
                    f"{self.argv[1:4]} did not start in {startup_s} s (exit code "
                    f"{code}; negative: killed by that signal):\n"
                    + self.log.read_text()[offset:]
                )
            time.sleep(0.1)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        assert self.process.wait(timeout=20) == 0
        with open(self.log, "a", encoding="utf-8") as out:
            out.write("--- stopped ---\n")

    async def async_start(self, hass: HomeAssistant) -> None:
        """start() from a test running in Home Assistant's event loop."""
        await hass.async_add_executor_job(self.start)

    async def async_stop(self, hass: HomeAssistant) -> None:
        await hass.async_add_executor_job(self.stop)


def off_loop[T](function: Callable[..., T], *args: Any) -> T:
    """Blocking set-up work, in a thread: this thread is the one Home
    Assistant's event loop runs in, and blocking calls in it are refused."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """The server, for a session fixture."""
    off_loop(server.start)
    try:
        yield server
    finally:
        off_loop(_finish, server)


def _finish(server: Server) -> None:
    """Stop it if it runs; it must not have logged a traceback."""
    if server.process is not None and server.process.poll() is None:
        server.stop()
    assert "Traceback" not in server.log.read_text(), server.log.read_text()


@asynccontextmanager
async def async_running(hass: HomeAssistant, server: Server) -> AsyncIterator[Server]:
    """running() for a test in Home Assistant's event loop."""
    await server.async_start(hass)
    try:
        yield server
    finally:
        await hass.async_add_executor_job(_finish, server)


@dataclass
class Stack:
    """The running stack: Wyoming ports, HTTP API port, its id."""

    ports: dict[str, int]
    http: int
    id: str = ""
    zeroconf_name: str = f"hatest-{os.getpid()}"

    token: str | None = TOKEN

    @property
    def data(self) -> dict[str, Any]:
        """Config entry data for it."""
        data = {CONF_HOST: "127.0.0.1", CONF_PORT: self.http}
        return {**data, CONF_TOKEN: self.token} if self.token else data

    @property
    def title(self) -> str:
        """What the config flow names its entry and device."""
        return f"rtvoice 127.0.0.1:{self.http}"

    def entry(self, unique_id: str | None = None) -> MockConfigEntry:
        """A config entry for it, as the config flow makes one."""
        return MockConfigEntry(
            domain=DOMAIN,
            title=self.title,
            data=self.data,
            unique_id=unique_id or self.id,
        )

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def put(self, path: str, body: Any) -> Any:
        return await self.request("PUT", path, body)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.request(
                method,
                f"http://127.0.0.1:{self.http}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
            ) as response:
                response.raise_for_status()
                return await response.json()


class Proxy:
    """A stack's HTTP API through a loopback forwarder that can change what
    the stack says: edit the JSON of an answer (a field left out, a boot id
    the stack does not report yet) or hold `/api/stats` until released."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.edit: dict[str, Callable[[Any], Any]] = {}
        self.hold_stats = False
        self.stats_held = asyncio.Event()
        self.release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Proxy:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release.set()
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/api/stats" and self.hold_stats:
            self.stats_held.set()
            await self.release.wait()
        assert self._session is not None
        try:
            async with self._session.request(
                request.method,
                f"http://127.0.0.1:{self.upstream}{request.path_qs}",
                data=await request.read(),
                headers={
                    k: v
                    for k, v in request.headers.items()
                    if k in ("Authorization", "Content-Type")
                },
            ) as upstream:
                body = await upstream.read()
                status, content_type = upstream.status, upstream.content_type
        except aiohttp.ClientError:
            return web.Response(status=502, text="the stack does not answer")
        edit = self.edit.get(request.path)
        if edit is None or status != 200:
            return web.Response(status=status, body=body, content_type=content_type)
        return web.json_response(edit(json.loads(body)))


@pytest.fixture(scope="session")
def fake_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The project's fake Anthropic Messages API."""
    loopback_sockets()
    port = free_port()
    log = tmp_path_factory.mktemp("fake_llm") / "fake_llm.log"
    with running(Server([PYTHON, "-c", FAKE_LLM, str(port)], log)) as server:
        yield f"http://127.0.0.1:{port}"
        assert server.process is not None
        server.process.kill()  # it sleeps; nothing to shut down cleanly
        off_loop(server.process.wait)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_llm: str) -> Iterator[Stack]:
    """`python -m wyoming_rtvoice stack` with zeroconf, a token and the fake LLM."""
    loopback_sockets()
    stack = Stack({name: free_port() for name in SERVICES}, free_port())
    argv = [PYTHON, "-m", "wyoming_rtvoice", "stack", "--host", "127.0.0.1"]
    argv += [f"--{name}-port={port}" for name, port in stack.ports.items()]
    argv += [
        f"--pipeline-port={free_port()}",
        f"--http-uri=http://127.0.0.1:{stack.http}",
        "--zeroconf",
        stack.zeroconf_name,
    ]
    argv += [f"--anthropic-base-url={fake_llm}"]
    env = {"ANTHROPIC_API_KEY": "sk-ant-test-0123456789", "RTVOICE_HTTP_TOKEN": TOKEN}
    log = tmp_path_factory.mktemp("stack") / "stack.log"
    with running(Server(argv, log, env)):
        stack.id = off_loop(_info, stack)["id"]
        yield stack


def _info(stack: Stack) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.http}/api/info",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        info: dict[str, Any] = json.load(response)
    return info


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load custom_components/rtvoice."""


async def template(hass: HomeAssistant, **entities: dict[str, Any]) -> None:
    """Template entities by domain (`light={...}, cover={...}`; entity ids
    from their names), configured the way the running Home Assistant takes
    them, all in one call: the template integration takes its configuration
    once."""
    config = template_entities({domain: [e] for domain, e in entities.items()})
    for integration, section in config.items():
        assert await async_setup_component(hass, integration, {integration: section})


@pytest.fixture
async def house(hass: HomeAssistant) -> AsyncIterator[str]:
    """A real light (template over an input_boolean), exposed to Assist;
    yields its entity id."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"kitchen_power": {}}}
    )
    power = "input_boolean.kitchen_power"
    action = {"target": {"entity_id": power}}
    await template(
        hass,
        light=dict(
            name="Kitchen Lights",
            unique_id="kitchen-lights",
            state=f"{{{{ is_state('{power}', 'on') }}}}",
            turn_on={"action": "input_boolean.turn_on", **action},
            turn_off={"action": "input_boolean.turn_off", **action},
        ),
    )
    assert await async_setup_component(hass, "conversation", {})
    await hass.async_block_till_done()
    yield "light.kitchen_lights"


@pytest.fixture
async def entry(hass: HomeAssistant, house: str, stack: Stack) -> MockConfigEntry:
    """A loaded entry for the stack."""
    entry = stack.entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def synced(get: Any, name: str, present: bool = True) -> dict[str, Any]:
    """The house on the handle service once `name` is (or is no longer) in it."""
    async with asyncio.timeout(15):
        while True:
            house: dict[str, Any] = await get("/api/entities")
            names = {entity["name"] for entity in house["entities"]}
            if (name in names) is present:
                return house
            await asyncio.sleep(0.1)


def state(hass: HomeAssistant, entity_id: str) -> str:
    """The entity's state; it must exist."""
    current = hass.states.get(entity_id)
    assert current is not None, entity_id
    return current.state


def agent(hass: HomeAssistant, stack_id: str | None = None) -> str:
    """The entity id of the rtvoice agent (of the stack with this id)."""
    agents = [
        entity.entity_id
        for entity in er.async_get(hass).entities.values()
        if entity.platform == DOMAIN
        and entity.domain == "conversation"
        and (stack_id is None or entity.unique_id == f"{stack_id}-conversation")
    ]
    assert len(agents) == 1, agents
    return agents[0]


async def process(
    hass: HomeAssistant, text: str, agent_id: str | None = None
) -> dict[str, Any]:
    """`conversation.process` with an rtvoice agent; the intent response."""
    result = await hass.services.async_call(
        "conversation",
        "process",
        {"text": text, "agent_id": agent_id or agent(hass)},
        blocking=True,
        return_response=True,
    )
    assert isinstance(result, dict) and isinstance(result["response"], dict)
    return result["response"]


def speech(response: dict[str, Any]) -> str:
    return str(response["speech"]["plain"]["speech"])
