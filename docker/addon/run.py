#!/usr/bin/env python3
"""Home Assistant add-on start script.

Turns the add-on's options (/data/options.json) into `wyoming_rtvoice stack`
flags (secrets into environment variables, never onto the command line),
runs the stack, and once it is up tells Home Assistant through the
Supervisor where each Wyoming service listens, so each is offered under
Settings -> Devices & services -> Discovered.
"""

from __future__ import annotations

import json
import logging
import os
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
SUPERVISOR_URL = "http://supervisor"
HEALTH_URL = "http://127.0.0.1:10580/health"
PUBLIC_HTTP_URI = "http://0.0.0.0:10580"

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


def discovery_messages(hostname: str, ports: Iterable[int]) -> list[dict[str, Any]]:
    return [
        {"service": "wyoming", "config": {"uri": f"tcp://{hostname}:{port}"}}
        for port in ports
    ]


def announce(
    token: str,
    hostname: str,
    ports: Iterable[int] = PORTS.values(),
    supervisor_url: str = SUPERVISOR_URL,
    health_url: str = HEALTH_URL,
    timeout_s: float = 600.0,
) -> int:
    """POST one discovery message per service once the stack is up; returns
    how many the Supervisor accepted."""
    if not wait_until_up(health_url, timeout_s):
        _LOGGER.error("The stack did not come up; Home Assistant was not told")
        return 0
    sent = 0
    for message in discovery_messages(hostname, ports):
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
            _LOGGER.info("Home Assistant offered %s", message["config"]["uri"])
        except OSError as err:
            _LOGGER.error("Discovery of %s failed: %s", message["config"]["uri"], err)
    return sent


def main() -> None:
    # No logging set-up here: the stack configures it (--debug included), and
    # the discovery thread only logs once the stack is up.
    options = json.loads(OPTIONS_FILE.read_text(encoding="utf-8"))
    os.environ.update(environment(options))
    token = os.environ.get("SUPERVISOR_TOKEN")
    if token:
        threading.Thread(
            target=announce, args=(token, socket.gethostname()), daemon=True
        ).start()
    else:
        _LOGGER.warning("No SUPERVISOR_TOKEN: not running as an add-on, no discovery")
    rtvoice_main(stack_argv(options))


if __name__ == "__main__":
    main()
