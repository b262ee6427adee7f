"""What one client of a service may declare or hold: read by the hardened
reader (`reader.py`), the servers and the HTTP API, set by the flags
(`config.py`). No protocol here, so the configuration does not load one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one client may declare or hold."""

    max_data_bytes: int = 64 * 1024
    max_payload_bytes: int = 1024 * 1024
    max_connections: int = 64
    max_connections_per_client: int = 16  # per remote address
    # No request (ping and describe do not count) for this long closes the
    # connection: a ping every few minutes cannot hold a slot forever.
    idle_timeout_s: float = 300.0
    frame_timeout_s: float = 10.0  # a started event must be complete by then
