#!/usr/bin/env python3
"""Container health check: a Wyoming `ping` to each service port.

Healthy when at least one of the ports listens and every one that listens
answers `pong`, so the same check fits the stack and any single service.
Usage: rtvoice-healthcheck [PORT ...]   (default: 10200 10300 10400 10500)
"""

from __future__ import annotations

import json
import socket
import sys

DEFAULT_PORTS = (10200, 10300, 10400, 10500)
TIMEOUT_S = 5.0


def ping(port: int, host: str = "127.0.0.1") -> bool | None:
    """True on `pong`, False when the port listens but does not answer,
    None when nothing listens."""
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
    except ConnectionRefusedError:
        return None
    except OSError:
        return False
    with sock:
        try:
            sock.sendall(json.dumps({"type": "ping", "data": {}}).encode() + b"\n")
            reply = b""
            while b"\n" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                reply += chunk
            header = json.loads(reply.split(b"\n", 1)[0])
        except (OSError, ValueError):
            return False
    return isinstance(header, dict) and header.get("type") == "pong"


def healthy(ports: list[int]) -> bool:
    answers = [ping(port) for port in ports]
    listening = [answer for answer in answers if answer is not None]
    return bool(listening) and all(listening)


def main(argv: list[str]) -> int:
    ports = [int(port) for port in argv] or list(DEFAULT_PORTS)
    return 0 if healthy(ports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
