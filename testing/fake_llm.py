"""A local fake of Anthropic's Messages streaming API, for tests and benchmarks.

An aiohttp server on loopback that answers `POST /v1/messages` with the real
server-sent-event sequence (message_start, ping, content_block_start,
content_block_delta..., content_block_stop, message_delta, message_stop),
text as `text_delta`s and tool calls as `tool_use` blocks whose input comes
in `input_json_delta` pieces; with a configurable first-token delay,
per-token delay and failure mode. `GET /v1/models` answers too (the
client's keep-warm request).

What it says: the `Reply` of the first rule whose words the last user turn
contains, else `answer` (and `tool_use`). Rules can be set from another
process with `PUT /fake/rules` ({"words": {"text": ..., "tools": [...]}}).
A turn that carries only tool results is answered with `follow_up`.

With `tls=True` it serves HTTPS for `localhost` with a certificate of a
certificate authority made on the spot (`client_ssl()` trusts it) and
counts TLS handshakes; `idle_close_s` closes idle connections as the real
API's edge does.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAILURES = ("none", "429", "500", "timeout", "cut")


@dataclass
class Reply:
    text: str = ""
    # {"name": ..., "input": {...}}, or {"name": ..., "json": "..."} to send
    # the input's JSON exactly as given (malformed, say).
    tools: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Reply:
        return Reply(str(data.get("text", "")), list(data.get("tools", [])))


@dataclass
class FakeLlm:
    answer: str = "The capital of France is Paris. It has been for a long time."
    first_token_s: float = 0.05
    token_s: float = 0.01
    failure: str = "none"
    # A tool call the fake "model" makes after its text, as if it had tools.
    tool_use: dict[str, Any] | None = None
    rules: dict[str, Reply] = field(default_factory=dict)
    follow_up: str = "Done."
    tls: bool = False
    idle_close_s: float = 75.0
    aborted: int = 0  # streams whose client went away before the end
    handshakes: int = 0  # TLS handshakes (with tls)
    model_lists: int = 0
    in_flight: int = 0  # answers being streamed now
    most_in_flight: int = 0  # the most at once since it was last reset
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _ca: Any = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_put("/fake/rules", self._set_rules)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=0.5,
            keepalive_timeout=self.idle_close_s,
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, ssl_context=self._server_ssl()
        )
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    def _server_ssl(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        import trustme  # a test dependency, only for TLS

        self._ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("localhost").configure_cert(context)

        def counted(*args: Any) -> None:
            self.handshakes += 1

        context.sni_callback = counted
        return context

    def client_ssl(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def start_in_thread(self) -> str:
        """Serve from a thread of its own (for synchronous fixtures)."""
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-llm", daemon=True)
        self._thread.start()
        started.wait(10)
        return self.url

    def stop_thread(self) -> None:
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        if self.tls:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        self.model_lists += 1
        model = {
            "type": "model",
            "id": "claude-fake",
            "display_name": "Fake",
            "created_at": "2025-01-01T00:00:00Z",
        }
        return web.json_response(
            {"data": [model], "has_more": False, "first_id": "claude-fake"}
            | {"last_id": "claude-fake"}
        )

    async def _set_rules(self, request: web.Request) -> web.Response:
        rules = await request.json()
        self.rules = {words: Reply.from_json(reply) for words, reply in rules.items()}
        return web.json_response(sorted(self.rules))

    def reply_to(self, body: dict[str, Any]) -> Reply:
        content = body["messages"][-1]["content"]
        if isinstance(content, list):
            texts = [b["text"] for b in content if b.get("type") == "text"]
            if not texts:
                return Reply(self.follow_up)
            content = " ".join(texts)
        heard = str(content).lower()
        for words, reply in self.rules.items():
            if words.lower() in heard:
                return reply
        return Reply(self.answer, [self.tool_use] if self.tool_use else [])

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.failure in ("429", "500"):
            kind = "rate_limit_error" if self.failure == "429" else "api_error"
            error = {
                "type": "error",
                "error": {"type": kind, "message": "fake failure"},
            }
            return web.json_response(error, status=int(self.failure))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.failure == "timeout":
            await asyncio.sleep(3600)
        await self._send(response, "message_start", {"message": self._message(body)})
        await self._send(response, "ping", {})
        await asyncio.sleep(self.first_token_s)
        try:
            await self._stream(request, response, self.reply_to(body))
        except ConnectionError:
            self.aborted += 1
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, reply: Reply
    ) -> None:
        """The reply's blocks as events, cut halfway with failure "cut"."""
        events: list[tuple[str, dict[str, Any]]] = []
        blocks = 0
        if reply.text or not reply.tools:
            start = {"index": 0, "content_block": {"type": "text", "text": ""}}
            events.append(("content_block_start", start))
            for n, word in enumerate(reply.text.split(" ")):
                delta = {"type": "text_delta", "text": word if n == 0 else f" {word}"}
                events.append(("content_block_delta", {"index": 0, "delta": delta}))
            events.append(("content_block_stop", {"index": 0}))
            blocks = 1
        for n, tool in enumerate(reply.tools):
            events += self._tool_events(blocks + n, tool)
        cut = len(events) // 2 if self.failure == "cut" else len(events)
        for event, data in events[:cut]:
            await self._send(response, event, data)
            if event == "content_block_delta":
                await asyncio.sleep(self.token_s)
        if cut < len(events):
            assert request.transport is not None
            request.transport.close()
            return
        stop = "tool_use" if reply.tools else "end_turn"
        await self._send(
            response,
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": len(events)},
            },
        )
        await self._send(response, "message_stop", {})

    @staticmethod
    def _tool_events(
        index: int, tool: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """A tool_use block; its input in three input_json_delta pieces."""
        block = {"type": "tool_use", "id": f"toolu_fake{index}", "name": tool["name"]}
        text = tool.get("json", json.dumps(tool.get("input", {})))
        third = max(1, len(text) // 3)
        pieces = [text[i : i + third] for i in range(0, len(text), third)]
        events = [
            (
                "content_block_start",
                {"index": index, "content_block": {**block, "input": {}}},
            )
        ]
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(("content_block_delta", {"index": index, "delta": delta}))
        events.append(("content_block_stop", {"index": index}))
        return events

    @staticmethod
    def _message(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body.get("model", "fake"),
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        }

    @staticmethod
    async def _send(
        response: web.StreamResponse, event: str, data: dict[str, Any]
    ) -> None:
        payload = json.dumps({"type": event, **data})
        await response.write(f"event: {event}\ndata: {payload}\n\n".encode())
