"""Home Assistant helpers the integration's tests and the Home Assistant
benchmark share (imported in Home Assistant's environment)."""

from __future__ import annotations

from typing import Any

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


async def reply_audio(hass: Any, tts_output: dict[str, Any]) -> tuple[str, bytes]:
    """A pipeline's spoken reply (extension, audio) from its TTS stream, as
    Home Assistant's satellites read it (2026.x: its media id names the
    stream, which `tts.async_get_media_source_audio` does not resolve)."""
    from homeassistant.components import tts

    stream = tts.async_get_stream(hass, tts_output["token"])
    assert stream is not None, tts_output
    audio = b"".join([chunk async for chunk in stream.async_stream_result()])
    return stream.extension, audio
