"""One place that loads the models: the service commands, the stack,
`converse`, the add-on, tests and measurements all build them here.

Models load in parallel threads (so start-up takes about as long as the
slowest one) and are warmed before anything is served.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .house.store import HouseConfig, HouseStore

if TYPE_CHECKING:
    from .asr.config import AsrConfig
    from .asr.whisper import Whisper
    from .handle.config import HandleConfig
    from .handle.responder import Responder
    from .tts.config import TtsConfig
    from .tts.speaker import Speaker


@dataclass
class Models:
    speaker: Speaker | None = None
    whisper: Whisper | None = None
    house: HouseStore | None = None
    responder: Responder | None = None

    async def close(self) -> None:
        if self.responder is not None and self.responder.llm is not None:
            await self.responder.llm.close()
        if self.whisper is not None:
            self.whisper.close()
        if self.speaker is not None:
            self.speaker.voice.close()
        if self.house is not None:
            self.house.close()


def _speaker(config: TtsConfig) -> Speaker:
    from .tts.speaker import Speaker
    from .tts.voice import Voice, resolve_voice

    try:
        path = resolve_voice(config.voice)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from err
    return Speaker(Voice(path, config.cache_bytes), config.samples_per_chunk)


def _whisper(config: AsrConfig) -> Whisper:
    from .asr import model_path
    from .asr.whisper import Whisper

    return Whisper(
        model_path(config.model),
        config.language,
        config.beam_size,
        config.compute_type,
        config.cpu_threads,
    )


# What loads models: `build`, or what a test lends in its place.
Build = Callable[..., Awaitable[Models]]


async def build(
    *,
    tts: TtsConfig | None = None,
    asr: AsrConfig | None = None,
    house: HouseConfig | None = None,
    handle: HandleConfig | None = None,
    state_dir: Path | None = None,
) -> Models:
    """Load what the given configurations need; the house (for the ASR
    service's end of turn, the handle service and the pipeline) once."""
    speaker = whisper = store = None
    if tts is not None:
        speaker = asyncio.create_task(asyncio.to_thread(_speaker, tts))
    if asr is not None:
        whisper = asyncio.create_task(asyncio.to_thread(_whisper, asr))
    if house is not None or handle is not None:
        store = asyncio.create_task(
            asyncio.to_thread(HouseStore.load, house or HouseConfig(), state_dir)
        )
    loading = [task for task in (speaker, whisper, store) if task is not None]
    await asyncio.gather(*loading)
    models = Models(
        speaker=None if speaker is None else speaker.result(),
        whisper=None if whisper is None else whisper.result(),
        house=None if store is None else store.result(),
    )
    if handle is not None and models.house is not None:
        models.responder = await _responder(handle, models.house)
    return models


async def _responder(config: HandleConfig, house: HouseStore) -> Responder:
    from .handle.config import API_KEY_ENV
    from .handle.llm import Llm, LlmSettings
    from .handle.responder import Responder
    from .peers import Rate

    llm = Llm(
        os.environ.get(API_KEY_ENV),
        config.anthropic_base_url,
        LlmSettings(model=config.llm_model),
    )
    if llm.available:
        await llm.warm()
    rate = Rate(config.llm_per_minute, config.llm_per_client_per_minute)
    return Responder(house, llm, config.policy, config.confirm_domains, rate)
