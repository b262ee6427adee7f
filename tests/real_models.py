"""The real Piper voice and Whisper model, loaded once for the session.

In-process servers and in-process `converse` runs borrow them (through the
project's own `models.build`), so a test pays for a turn, not for a start-up.
Start-up itself is tested on the few real subprocesses each service keeps.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wyoming_rtvoice import converse
from wyoming_rtvoice import models as models_module
from wyoming_rtvoice.__main__ import main
from wyoming_rtvoice.asr import AsrConfig
from wyoming_rtvoice.handle import HandleConfig
from wyoming_rtvoice.models import Models
from wyoming_rtvoice.state import HouseConfig
from wyoming_rtvoice.tts import TtsConfig


@pytest.fixture(scope="session")
def real_models() -> Iterator[Models]:
    """Piper (the default voice) and Whisper (the default model), loaded and
    warmed once; their executors are not tied to an event loop."""
    models = asyncio.run(models_module.build(tts=TtsConfig(), asr=AsrConfig()))
    yield models
    asyncio.run(models.close())


class Borrowed(Models):
    """Models whose voice and Whisper belong to the session: closing closes
    only what was built for the borrower (its house and responder)."""

    async def close(self) -> None:
        await Models(house=self.house, responder=self.responder).close()


@dataclass
class Ran:
    """What a command run in process ended with, printed and logged."""

    code: int
    stdout: str
    stderr: str


RunCommand = Callable[..., Ran]


@pytest.fixture
def run_converse(
    real_models: Models,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> RunCommand:
    """`python -m wyoming_rtvoice converse ARGS...` in this process (its real
    parser, loader, pipeline and printing) with the session's voice and
    Whisper when it asks for the defaults; the environment as given."""

    async def build(
        *,
        tts: TtsConfig | None = None,
        asr: AsrConfig | None = None,
        house: HouseConfig | None = None,
        handle: HandleConfig | None = None,
        state_dir: Path | None = None,
    ) -> Models:
        if tts != TtsConfig() or asr != AsrConfig():
            return await models_module.build(
                tts=tts, asr=asr, house=house, handle=handle, state_dir=state_dir
            )
        own = await models_module.build(house=house, handle=handle, state_dir=state_dir)
        return Borrowed(
            speaker=real_models.speaker,
            whisper=real_models.whisper,
            house=own.house,
            responder=own.responder,
        )

    def run(*args: str, env: dict[str, str | None] | None = None) -> Ran:
        """`env`: variables to set, or to unset (None)."""
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
                patched.setattr(converse, "build", build)
                for name, value in (env or {}).items():
                    if value is None:
                        patched.delenv(name, raising=False)
                    else:
                        patched.setenv(name, value)
                capsys.readouterr()
                try:
                    main(["converse", *args])
                except SystemExit as err:  # what the interpreter would print
                    code = err.code if isinstance(err.code, int) else 1
                    message = "" if isinstance(err.code, int) else f"{err.code}\n"
                out = capsys.readouterr()
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        return Ran(code, out.out, out.err + logged.getvalue() + message)

    return run
