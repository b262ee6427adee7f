"""The real Piper voice and Whisper model, loaded once for the session.

Commands run in this process (`serve_command`, `run_converse`) go through
their real parser, loader and wiring, and borrow these two through the
project's own `models.build` when they ask for the defaults: a test pays for
its turn, not for a start-up. Start-up itself is tested on the few real
subprocesses each service keeps.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from wyoming_rtvoice import __main__ as cli
from wyoming_rtvoice import converse
from wyoming_rtvoice import models as models_module
from wyoming_rtvoice.asr import AsrConfig
from wyoming_rtvoice.asr.whisper import Whisper
from wyoming_rtvoice.handle import HandleConfig
from wyoming_rtvoice.house.store import HouseConfig
from wyoming_rtvoice.models import Models
from wyoming_rtvoice.reader import Limits
from wyoming_rtvoice.server import Server
from wyoming_rtvoice.trace import Metrics
from wyoming_rtvoice.tts import TtsConfig
from wyoming_rtvoice.tts.speaker import Speaker


class SessionModels:
    """Piper (the default voice) and Whisper (the default model), each
    loaded by the project's `build` when first lent; their executors are not
    tied to an event loop, so every test's loop may use them."""

    def __init__(self) -> None:
        self.loaded = Models()

    async def speaker(self) -> Speaker:
        if self.loaded.speaker is None:
            self.loaded.speaker = (await models_module.build(tts=TtsConfig())).speaker
        assert self.loaded.speaker is not None
        return self.loaded.speaker

    async def whisper(self) -> Whisper:
        if self.loaded.whisper is None:
            self.loaded.whisper = (await models_module.build(asr=AsrConfig())).whisper
        assert self.loaded.whisper is not None
        return self.loaded.whisper


@pytest.fixture(scope="session")
def real_models() -> Iterator[SessionModels]:
    models = SessionModels()
    yield models
    asyncio.run(models.loaded.close())


class Borrowed(Models):
    """Models whose voice and Whisper belong to the session: closing closes
    only what was built for the borrower (its house and responder)."""

    async def close(self) -> None:
        await Models(house=self.house, responder=self.responder).close()


@pytest.fixture
def borrowing(real_models: SessionModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' `build` lends the session's voice and Whisper to a
    command that asks for the default ones (and builds anything else)."""

    async def build(
        *,
        tts: TtsConfig | None = None,
        asr: AsrConfig | None = None,
        house: HouseConfig | None = None,
        handle: HandleConfig | None = None,
        state_dir: Path | None = None,
    ) -> Models:
        lend_tts = tts is not None and _model_of(tts) == _model_of(TtsConfig())
        lend_asr = asr is not None and _model_of(asr) == _model_of(AsrConfig())
        own = await models_module.build(
            tts=None if lend_tts else tts,
            asr=None if lend_asr else asr,
            house=house,
            handle=handle,
            state_dir=state_dir,
        )
        if not (lend_tts or lend_asr):
            return own
        return Borrowed(
            speaker=await real_models.speaker() if lend_tts else own.speaker,
            whisper=await real_models.whisper() if lend_asr else own.whisper,
            house=own.house,
            responder=own.responder,
        )

    monkeypatch.setattr(cli, "build", build)
    monkeypatch.setattr(converse, "build", build)


def _model_of(config: TtsConfig | AsrConfig) -> tuple[object, ...]:
    """What the loaded model depends on (not the per-request settings)."""
    if isinstance(config, TtsConfig):
        return (config.voice, config.cache_bytes, config.samples_per_chunk)
    return (
        config.model,
        config.language,
        config.beam_size,
        config.compute_type,
        config.cpu_threads,
    )


ServeCommand = Callable[..., AbstractAsyncContextManager[int]]


@pytest.fixture
def serve_command(
    borrowing: None, tmp_path_factory: pytest.TempPathFactory
) -> ServeCommand:
    """`python -m wyoming_rtvoice SERVICE ARGS...` served in this process's
    event loop on a free loopback port (its real parser and loader, a state
    directory of its own, the session's models lent); yields the port."""

    @asynccontextmanager
    async def serve(*argv: str) -> AsyncIterator[int]:
        state = tmp_path_factory.mktemp("state")
        args = cli.build_parser().parse_args(
            [*argv, "--uri", "tcp://127.0.0.1:0", "--state-dir", str(state)]
        )
        service, models = await cli.load_service(args, Metrics())
        limits = Limits()
        server = Server(
            "tcp://127.0.0.1:0",
            lambda reader, writer: service.handler_factory(reader, writer, limits),
            limits,
        )
        try:
            await server.start()
            yield server.port
        finally:
            await server.stop()
            await models.close()

    return serve


@dataclass
class Ran:
    """What a command run in process ended with, printed and logged."""

    code: int
    stdout: str
    stderr: str


RunCommand = Callable[..., Ran]


@pytest.fixture
def run_converse(
    borrowing: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> RunCommand:
    """`python -m wyoming_rtvoice converse ARGS...` in this process (its
    real parser, loader, pipeline and printing), the session's models lent;
    `env`: variables to set, or to unset (None)."""

    def run(*args: str, env: dict[str, str | None] | None = None) -> Ran:
        logged = io.StringIO()
        handler = logging.StreamHandler(logged)  # what setup_logging would print
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.DEBUG if "--debug" in args else logging.WARNING)
        root.addHandler(handler)
        code, message = 0, ""
        try:
            with monkeypatch.context() as patched:
                for name, value in (env or {}).items():
                    if value is None:
                        patched.delenv(name, raising=False)
                    else:
                        patched.setenv(name, value)
                capsys.readouterr()
                try:
                    cli.main(["converse", *args])
                except SystemExit as err:  # what the interpreter would print
                    code = err.code if isinstance(err.code, int) else 1
                    message = "" if isinstance(err.code, int) else f"{err.code}\n"
                out = capsys.readouterr()
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        return Ran(code, out.out, out.err + logged.getvalue() + message)

    return run


def start_up(*argv: str) -> None:
    """Load a service as `python -m wyoming_rtvoice ARGV...` does before it
    serves (in this process: a refusal is a SystemExit with its message)."""

    async def load() -> None:
        _, models = await cli.load_service(
            cli.build_parser().parse_args(argv), Metrics()
        )
        await models.close()

    asyncio.run(load())
