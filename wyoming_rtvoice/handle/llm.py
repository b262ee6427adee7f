"""The LLM fallback: Anthropic Claude through the `anthropic` SDK, streaming.

One client for the life of the process (one pooled HTTP connection). Each
conversation keeps a short history, trimmed to a character budget, and the
number of conversations kept is bounded.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from anthropic import AsyncAnthropic
from anthropic.types import MessageParam

_LOGGER = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a voice assistant in a home. Your answer is spoken aloud: answer in "
    "one to three short sentences of plain text, no markdown, no lists, no emoji. "
    "You cannot control devices; if asked to, say that you did not understand "
    "which device was meant."
)


@dataclass(frozen=True)
class LlmSettings:
    model: str = "claude-haiku-4-5"
    max_tokens: int = 300
    timeout_s: float = 10.0
    history_chars: int = 4000
    max_conversations: int = 200


class Conversations:
    """Per-conversation history, least recently used dropped first."""

    def __init__(self, max_conversations: int, history_chars: int) -> None:
        self._max = max_conversations
        self._chars = history_chars
        self._histories: OrderedDict[str, list[MessageParam]] = OrderedDict()

    def messages(self, conversation_id: str, text: str) -> list[MessageParam]:
        """History plus the new user turn, trimmed to the budget."""
        history = self._histories.get(conversation_id, [])
        messages: list[MessageParam] = [*history, {"role": "user", "content": text}]
        while (
            len(messages) > 1
            and sum(len(str(m["content"])) for m in messages) > self._chars
        ):
            messages = messages[2:] if len(messages) > 2 else messages[1:]
        return messages

    def remember(self, conversation_id: str, question: str, answer: str) -> None:
        history = self._histories.pop(conversation_id, [])
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        self._histories[conversation_id] = history[-20:]
        while len(self._histories) > self._max:
            self._histories.popitem(last=False)

    def __len__(self) -> int:
        return len(self._histories)


class Llm:
    def __init__(
        self, api_key: str | None, base_url: str | None, settings: LlmSettings
    ) -> None:
        self.settings = settings
        self.available = bool(api_key)
        self._client = AsyncAnthropic(
            api_key=api_key or "missing",
            base_url=base_url,
            max_retries=0,  # a retry would only arrive after the budget
            timeout=settings.timeout_s,
        )
        self.conversations = Conversations(
            settings.max_conversations, settings.history_chars
        )

    async def stream(
        self, conversation_id: str, text: str
    ) -> AsyncGenerator[str, None]:
        """Text deltas of the answer; the stream is closed if the caller stops."""
        messages = self.conversations.messages(conversation_id, text)
        answer: list[str] = []
        async with self._client.messages.stream(
            model=self.settings.model,
            max_tokens=self.settings.max_tokens,
            system=SYSTEM_PROMPT,
            messages=messages,
        ) as stream:
            async for delta in stream.text_stream:
                answer.append(delta)
                yield delta
        self.conversations.remember(conversation_id, text, "".join(answer))

    async def warm(self) -> None:
        """Open the connection to the Messages API now, while nothing waits
        for it: the first question then finds it ready."""
        try:
            await self._client.models.list(limit=1)
        except Exception as err:  # noqa: BLE001  a warm-up never fails start-up
            _LOGGER.info("LLM warm-up failed: %s", type(err).__name__)

    async def close(self) -> None:
        await self._client.close()
