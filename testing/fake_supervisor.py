"""A stand-in for the Home Assistant Supervisor's discovery API.

Records every `POST /discovery` (path, Authorization header, JSON body) and
answers as the Supervisor does. Standard library only: `script/docker-test`
runs it inside the add-on's network namespace as
`python fake_supervisor.py PORT`, which prints each request as a JSON line.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Received = tuple[str, str, Any]


class Recorder(BaseHTTPRequestHandler):
    received: list[Received] = []
    echo = False  # print each request as a JSON line

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = (self.path, self.headers.get("Authorization", ""), body)
        self.received.append(request)
        if self.echo:
            print(json.dumps(request), flush=True)
        reply = json.dumps({"result": "ok", "data": {"uuid": "x"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def server(
    host: str, port: int, received: list[Received], echo: bool = False
) -> ThreadingHTTPServer:
    handler = type("Recording", (Recorder,), {"received": received, "echo": echo})
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str]) -> None:
    server("0.0.0.0", int(argv[0]), [], echo=True).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
