#!/usr/bin/env python3
"""Home Assistant add-on start script.

Turns the add-on's options (/data/options.json) into `wyoming_rtvoice stack`
flags (secrets into environment variables, never onto the command line),
runs the stack, and once it is up tells Home Assistant through the
Supervisor where each Wyoming service listens and where the HTTP API is,
with its bearer token, so each is offered under Settings -> Devices &
services -> Discovered (the `wyoming` integration for the services, the
`rtvoice` integration for the stack).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wyoming_rtvoice.__main__ import main as rtvoice_main
from wyoming_rtvoice.stack import PORTS

OPTIONS_FILE = Path("/data/options.json")
# Made once when the user sets no http_token; kept across restarts and updates.
TOKEN_FILE = Path("/data/http_token")
SUPERVISOR_URL = "http://supervisor"
HEALTH_URL = "http://127.0.0.1:10580/health"
HTTP_PORT = 10580
PUBLIC_HTTP_URI = f"http://0.0.0.0:{HTTP_PORT}"

# Option -> stack flag. A list repeats the flag; a boolean is a switch.
FLAGS = {
    "wake_engine": "--wake-engine",
    "wake_models": "--wake-model",
    "asr_model": "--asr-model",
    "voice": "--voice",
    "llm_model": "--llm-model",
    "anthropic_base_url": "--anthropic-base-url",
    "asr_budget_ms": "--asr-budget-ms",
    "intent_budget_ms": "--intent-budget-ms",
    "tts_budget_ms": "--tts-budget-ms",
    "network_budget_ms": "--network-budget-ms",
    "debug_logging": "--debug",
}
# Option -> environment variable.
SECRETS = {
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "http_token": "RTVOICE_HTTP_TOKEN",
}

_LOGGER = logging.getLogger("rtvoice-addon")


def stack_argv(options: dict[str, Any]) -> list[str]:
    argv = ["stack", "--host", "0.0.0.0"]
    for option, flag in FLAGS.items():
        value = options.get(option)
        if value is None or value == "" or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [item for each in value for item in (flag, str(each))]
        else:
            argv += [flag, str(value)]
    if options.get("http_token"):
        # With a token the HTTP API may leave loopback: the `rtvoice`
        # integration pushes the house's names to it.
        argv += ["--http-uri", PUBLIC_HTTP_URI]
    return argv


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
    # No logging set-up here: the stack configures it (--debug included), and
    # the discovery thread only logs once the stack is up.
    options = with_http_token(json.loads(OPTIONS_FILE.read_text(encoding="utf-8")))
    os.environ.update(environment(options))
    token = os.environ.get("SUPERVISOR_TOKEN")
    if token:
        threading.Thread(
            target=announce,
            args=(token, socket.gethostname(), options["http_token"]),
            daemon=True,
        ).start()
    else:
        _LOGGER.warning("No SUPERVISOR_TOKEN: not running as an add-on, no discovery")
    rtvoice_main(stack_argv(options))


if __name__ == "__main__":
    main()
