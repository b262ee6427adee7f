#!/usr/bin/env python3
"""Home Assistant add-on start script.

Turns the add-on's options (/data/options.json) into the stack's
configuration (secrets into environment variables), runs the stack, and
once it is up tells Home Assistant through the Supervisor where each
Wyoming service listens and where the HTTP API is, with its bearer token,
so each is offered under Settings -> Devices & services -> Discovered (the
`wyoming` integration for the services, the `rtvoice` integration for the
stack).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from wyoming_rtvoice import stack
from wyoming_rtvoice.config import setup_logging
from wyoming_rtvoice.stack import PORTS, StackConfig

OPTIONS_FILE = Path("/data/options.json")
STATE_DIR = Path("/data")
# Made once when the user sets no http_token; kept across restarts and updates.
TOKEN_FILE = STATE_DIR / "http_token"
SUPERVISOR_URL = "http://supervisor"
HEALTH_URL = "http://127.0.0.1:10580/health"
HTTP_PORT = 10580
PUBLIC_HTTP_URI = f"http://0.0.0.0:{HTTP_PORT}"

# Option -> (part of the stack's configuration, its field).
OPTIONS = {
    "wake_engine": ("wake", "engine"),
    "wake_models": ("wake", "models"),
    "asr_model": ("asr", "model"),
    "voice": ("tts", "voice"),
    "llm_model": ("handle", "llm_model"),
    "anthropic_base_url": ("handle", "anthropic_base_url"),
    "asr_budget_ms": ("budgets", "asr"),
    "intent_budget_ms": ("budgets", "intent"),
    "tts_budget_ms": ("budgets", "tts"),
    "network_budget_ms": ("budgets", "network"),
    "debug_logging": ("server", "debug"),
}
# Option -> environment variable.
SECRETS = {
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "http_token": "RTVOICE_HTTP_TOKEN",
    "pipeline_token": "RTVOICE_PIPELINE_TOKEN",
}

_LOGGER = logging.getLogger("rtvoice-addon")


def stack_config(options: dict[str, Any]) -> StackConfig:
    """The stack's configuration for these options (defaults for the rest)."""
    config = StackConfig()
    changes: dict[str, dict[str, Any]] = {}
    for option, (part, name) in OPTIONS.items():
        value = options.get(option)
        if value is not None and value != "":
            changes.setdefault(part, {})[name] = (
                tuple(value) if isinstance(value, list) else value
            )
    config = replace(
        config,
        **{part: replace(getattr(config, part), **c) for part, c in changes.items()},
    )
    server = replace(config.server, state_dir=STATE_DIR)
    if options.get("http_token"):
        # With a token the HTTP API may leave loopback: the `rtvoice`
        # integration pushes the house's names to it.
        server = replace(server, http_uri=PUBLIC_HTTP_URI)
    # Satellites reach the pipeline endpoint from other machines only with a token.
    pipeline_host = "0.0.0.0" if options.get("pipeline_token") else "127.0.0.1"
    return replace(config, server=server, pipeline_host=pipeline_host)


def environment(options: dict[str, Any]) -> dict[str, str]:
    return {env: str(options[key]) for key, env in SECRETS.items() if options.get(key)}


def with_http_token(
    options: dict[str, Any], token_file: Path = TOKEN_FILE
) -> dict[str, Any]:
    """The options with an HTTP API token: the user's, else one generated
    once and kept in `token_file`. Home Assistant's container reaches the API
    only beyond loopback, where it needs a token."""
    if options.get("http_token"):
        return options
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        token_file.touch(mode=0o600)
        token_file.write_text(token, encoding="utf-8")
    return {**options, "http_token": token}


def wait_until_up(health_url: str, timeout_s: float) -> bool:
    """The stack serves /health once every service has loaded and listens."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def discovery_messages(
    hostname: str, ports: Iterable[int], http_token: str | None = None
) -> list[dict[str, Any]]:
    """One `wyoming` message per service (the built-in integration), one
    `rtvoice` message for the stack's HTTP API (the rtvoice integration)."""
    stack: dict[str, Any] = {"host": hostname, "port": HTTP_PORT}
    if http_token:
        stack["token"] = http_token
    return [
        {"service": "wyoming", "config": {"uri": f"tcp://{hostname}:{port}"}}
        for port in ports
    ] + [{"service": "rtvoice", "config": stack}]


def where(message: dict[str, Any]) -> str:
    config = message["config"]
    return str(config.get("uri") or f"http://{config['host']}:{config['port']}")


def announce(
    token: str,
    hostname: str,
    http_token: str | None = None,
    ports: Iterable[int] = PORTS.values(),
    supervisor_url: str = SUPERVISOR_URL,
    health_url: str = HEALTH_URL,
    timeout_s: float = 600.0,
) -> int:
    """POST the discovery messages once the stack is up; returns how many
    the Supervisor accepted."""
    if not wait_until_up(health_url, timeout_s):
        _LOGGER.error("The stack did not come up; Home Assistant was not told")
        return 0
    sent = 0
    for message in discovery_messages(hostname, ports, http_token):
        request = urllib.request.Request(
            f"{supervisor_url}/discovery",
            data=json.dumps(message).encode(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                sent += 1
            _LOGGER.info("Home Assistant offered %s", where(message))
        except OSError as err:
            _LOGGER.error("Discovery of %s failed: %s", where(message), err)
    return sent


def main() -> None:
    options = with_http_token(json.loads(OPTIONS_FILE.read_text(encoding="utf-8")))
    os.environ.update(environment(options))
    config = stack_config(options)
    setup_logging(config.server)
    token = os.environ.get("SUPERVISOR_TOKEN")
    if token:
        threading.Thread(
            target=announce,
            args=(token, socket.gethostname(), options["http_token"]),
            daemon=True,
        ).start()
    else:
        _LOGGER.warning("No SUPERVISOR_TOKEN: not running as an add-on, no discovery")
    asyncio.run(stack.run(config))


if __name__ == "__main__":
    main()
