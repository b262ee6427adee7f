"""`converse`: one spoken turn through the in-process pipeline, as a user runs it
(in this process, with the session's voice and Whisper: tests/real_models.py;
the README's quick start runs it as a command in a fresh clone,
tests/test_install.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.fake_llm import FakeLlm
from testing.speech import speak
from wyoming_rtvoice.audio import read_wav, write_wav

from .real_models import RunCommand

NO_KEY: dict[str, str | None] = {"ANTHROPIC_API_KEY": None}


def spoken_wav(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "input.wav"
    write_wav(path, speak(text).audio, 16000)
    return path


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm(answer="Paris is the capital of France.", first_token_s=0.1)
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


def test_spoken_command_gives_intent_and_reply_audio(
    tmp_path: Path, run_converse: RunCommand
) -> None:
    reply = tmp_path / "reply.wav"
    done = run_converse(
        str(spoken_wav(tmp_path, "Turn on the kitchen lights.")),
        "--json",
        "--out",
        str(reply),
        env=NO_KEY,
    )
    assert done.code == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["intent"] == {
        "name": "HassTurnOn",
        "slots": {"name": "Kitchen Lights"},
    }
    assert result["answer"] == "Turned on the light"
    assert result["executed"].startswith("not executed")
    marks = result["waterfall_ms"]
    assert marks["speech_end"] <= marks["audio_stop"] <= marks["first_audio"]
    pcm, rate, _, _ = read_wav(reply)
    assert rate == 22050 and 0.4 < len(pcm) / 2 / rate < 3.0


def test_plain_output_has_the_waterfall(
    tmp_path: Path, run_converse: RunCommand
) -> None:
    done = run_converse(
        str(spoken_wav(tmp_path, "Turn off the bedroom fan.")), env=NO_KEY
    )
    assert done.code == 0, done.stderr
    assert "waterfall" in done.stdout and "first reply audio" in done.stdout
    assert "not executed: no --hass-url given" in done.stdout


def test_a_lock_is_asked_about(tmp_path: Path, run_converse: RunCommand) -> None:
    done = run_converse(str(spoken_wav(tmp_path, "Lock the front door.")), env=NO_KEY)
    assert done.code == 0, done.stderr
    assert "Lock Front Door?" in done.stdout
    assert "not executed: waiting for a yes" in done.stdout


def test_question_goes_to_the_llm(
    tmp_path: Path, fake_llm: FakeLlm, run_converse: RunCommand
) -> None:
    done = run_converse(
        str(spoken_wav(tmp_path, "What is the capital of France?")),
        "--json",
        "--anthropic-base-url",
        fake_llm.url,
        env={"ANTHROPIC_API_KEY": "sk-converse"},
    )
    assert done.code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["intent"] is None
    assert result["answer"] == "Paris is the capital of France."
    assert "first_token" in result["waterfall_ms"]


def test_question_without_a_key_is_answered_plainly(
    tmp_path: Path, run_converse: RunCommand
) -> None:
    done = run_converse(
        str(spoken_wav(tmp_path, "What is the capital of France?")),
        "--json",
        env=NO_KEY,
    )
    assert done.code == 0, done.stderr
    assert "no assistant" in json.loads(done.stdout)["answer"]


def test_not_a_wav_is_a_clear_error(tmp_path: Path, run_converse: RunCommand) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    done = run_converse(str(bad))
    assert done.code != 0
    assert "not a WAV file" in done.stderr
    assert "Traceback" not in done.stderr
