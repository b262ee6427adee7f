"""A local fake of Anthropic's Messages streaming API, for tests and benchmarks.

An aiohttp server on loopback that answers `POST /v1/messages` with the real
server-sent-event sequence (message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta, message_stop),
with a configurable first-token delay, per-token delay and failure mode.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAILURES = ("none", "429", "500", "timeout", "cut")


@dataclass
class FakeLlm:
    answer: str = "The capital of France is Paris. It has been for a long time."
    first_token_s: float = 0.05
    token_s: float = 0.01
    failure: str = "none"
    # A tool call the fake "model" makes after its text, as if it had tools.
    tool_use: dict[str, Any] | None = None
    aborted: int = 0  # streams whose client went away before the end
    in_flight: int = 0  # answers being streamed now
    most_in_flight: int = 0  # the most at once since it was last reset
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

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
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

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
        await self._send(
            response,
            "content_block_start",
            {"index": 0, "content_block": {"type": "text", "text": ""}},
        )
        await self._send(response, "ping", {})
        await asyncio.sleep(self.first_token_s)
        words = self.answer.split(" ")
        try:
            await self._stream_words(request, response, words)
        except ConnectionError:
            self.aborted += 1
        return response

    async def _stream_words(
        self, request: web.Request, response: web.StreamResponse, words: list[str]
    ) -> None:
        for index, word in enumerate(words):
            if self.failure == "cut" and index == len(words) // 2:
                assert request.transport is not None
                request.transport.close()
                return
            text = word if index == 0 else f" {word}"
            delta = {"index": 0, "delta": {"type": "text_delta", "text": text}}
            await self._send(response, "content_block_delta", delta)
            await asyncio.sleep(self.token_s)
        await self._send(response, "content_block_stop", {"index": 0})
        if self.tool_use is not None:
            await self._send_tool_use(response, self.tool_use)
        await self._send(
            response,
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
        )
        await self._send(response, "message_stop", {})

    async def _send_tool_use(
        self, response: web.StreamResponse, tool: dict[str, Any]
    ) -> None:
        block = {"type": "tool_use", "id": "toolu_fake", "name": tool["name"]}
        await self._send(
            response,
            "content_block_start",
            {"index": 1, "content_block": {**block, "input": {}}},
        )
        delta = {"type": "input_json_delta", "partial_json": json.dumps(tool["input"])}
        await self._send(response, "content_block_delta", {"index": 1, "delta": delta})
        await self._send(response, "content_block_stop", {"index": 1})

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
