"""Conversation agent: the transcript goes to the stack's handle service; an
intent is executed here (only on entities exposed to Assist), an LLM answer is
streamed into the chat log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

from homeassistant.components import conversation
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.intent import Intent

from .const import DOMAIN, LOGGER
from .coordinator import RtvoiceConfigEntry
from .entity import RtvoiceEntity

PARALLEL_UPDATES = 0  # turns run concurrently; each has its own connection
EVENT_TIMEOUT_S = 10.0  # the handle service gives up on a silent LLM after 5 s
UNREACHABLE = "Sorry, the voice assistant can't be reached right now."
REFUSED = "Sorry, I couldn't handle that."
NO_TARGET = "Sorry, I couldn't find that device."
ErrorCode = intent.IntentResponseErrorCode


async def async_setup_entry(
    hass: HomeAssistant,
    entry: RtvoiceConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The stack's agent."""
    async_add_entities([RtvoiceConversationEntity(entry)])


class HandleError(Exception):
    """The handle service broke off."""


class HandleRefused(Exception):
    """The handle service answered with an `error` event."""


class RtvoiceConversationEntity(RtvoiceEntity, conversation.ConversationEntity):
    """Device commands matched by the stack in milliseconds, else its LLM."""

    _attr_name = None
    _attr_supported_features = conversation.ConversationEntityFeature.CONTROL
    _attr_supports_streaming = True  # read by Home Assistant 2025.6 and later

    def __init__(self, entry: RtvoiceConfigEntry) -> None:
        super().__init__(entry, "conversation")
        self._entry = entry

    @property
    def supported_languages(self) -> Literal["*"]:
        """Device commands in the stack's language, answers in any."""
        return MATCH_ALL

    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        transcript = Event(
            "transcript",
            {
                "text": user_input.text,
                "context": {"conversation_id": chat_log.conversation_id},
            },
        )
        host = self._entry.runtime_data.client.host
        port = self.coordinator.data.info["ports"].get("handle")
        try:
            if not isinstance(port, int):
                raise HandleError("the stack reports no handle service")
            async with AsyncTcpClient(host, port) as client:
                await client.write_event(transcript)
                response = await self._answer(client, user_input, chat_log)
        except (OSError, TimeoutError, HandleError) as err:
            LOGGER.debug("Handle service failed: %s", err or type(err).__name__)
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_error(ErrorCode.UNKNOWN, UNREACHABLE)
        except HandleRefused as err:
            LOGGER.warning("The handle service refused a request: %s", err)
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_error(ErrorCode.FAILED_TO_HANDLE, REFUSED)
        # The sensors show this turn soon; the turn does not wait for them.
        self._entry.async_create_background_task(
            self.hass, self.coordinator.async_request_refresh(), "rtvoice stats"
        )
        return conversation.ConversationResult(
            response=response,
            conversation_id=chat_log.conversation_id,
            continue_conversation=chat_log.continue_conversation,
        )

    async def _answer(
        self,
        client: AsyncTcpClient,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> intent.IntentResponse:
        """The handle service's protocol, top to bottom."""
        response = intent.IntentResponse(language=user_input.language)
        streamed = ""
        while True:
            event = await _read(client)
            if Intent.is_type(event.type):
                return await self._run_intent(
                    Intent.from_event(event), user_input, chat_log
                )
            if event.type == "handled-start":
                streamed = await self._stream(client, chat_log)
                continue
            text = str(event.data.get("text") or "")
            if not streamed and event.type in ("handled", "not-handled"):
                self._add_answer(chat_log, text)
            if event.type == "handled":
                response.async_set_speech(text)
                return response
            if event.type == "not-handled":
                response.async_set_error(ErrorCode.FAILED_TO_HANDLE, text)
                return response
            if event.type == "error":
                raise HandleRefused(text)

    async def _stream(
        self, client: AsyncTcpClient, chat_log: conversation.ChatLog
    ) -> str:
        """handled-chunk... into the chat log's delta stream, until handled-stop."""

        async def deltas() -> AsyncIterator[conversation.AssistantContentDeltaDict]:
            yield {"role": "assistant"}
            while (event := await _read(client)).type != "handled-stop":
                if event.type == "handled-chunk":
                    yield {"content": str(event.data.get("text") or "")}

        text = ""
        async for content in chat_log.async_add_delta_content_stream(
            self.entity_id, deltas()
        ):
            if isinstance(content, conversation.AssistantContent):
                text += content.content or ""
        return text

    async def _run_intent(
        self,
        recognized: Intent,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> intent.IntentResponse:
        slots = {
            entity.name: {"value": _slot_value(entity.name, entity.value)}
            for entity in recognized.entities
        }
        if not _targets_exposed(self.hass, slots):
            # Never rely on every intent handler applying Assist's exposure.
            LOGGER.debug("Refused %s: its targets are not exposed", recognized.name)
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_error(ErrorCode.NO_VALID_TARGETS, NO_TARGET)
            self._add_answer(chat_log, NO_TARGET)
            return response
        try:
            response = await intent.async_handle(
                self.hass,
                DOMAIN,
                recognized.name,
                slots,
                text_input=user_input.text,
                context=user_input.context,
                language=user_input.language,
                assistant=conversation.DOMAIN,
                device_id=user_input.device_id,
                conversation_agent_id=user_input.agent_id,
            )
        except intent.MatchFailedError:
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_error(ErrorCode.NO_VALID_TARGETS, NO_TARGET)
        except intent.IntentError as err:
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_error(
                ErrorCode.FAILED_TO_HANDLE, f"Sorry, that failed: {err}"
            )
        if not response.speech and recognized.text:
            response.async_set_speech(recognized.text)
        self._add_answer(chat_log, response.speech.get("plain", {}).get("speech", ""))
        return response

    def _add_answer(self, chat_log: conversation.ChatLog, text: str) -> None:
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=self.entity_id, content=text)
        )


async def _read(client: AsyncTcpClient) -> Event:
    event = await asyncio.wait_for(client.read_event(), EVENT_TIMEOUT_S)
    if event is None:
        raise HandleError("connection closed")
    return event


def _targets_exposed(hass: HomeAssistant, slots: dict[str, Any]) -> bool:
    """Whether the entities the intent names (by name, area, floor, domain or
    device class) include some exposed to Assist; True when it names none."""

    def text(name: str) -> str | None:
        value = slots.get(name, {}).get("value")
        return value if isinstance(value, str) else None

    def texts(name: str) -> list[str] | None:
        value = slots.get(name, {}).get("value")
        return [str(v) for v in value] if isinstance(value, list) else None

    constraints = intent.MatchTargetsConstraints(
        name=text("name"),
        area_name=text("area"),
        floor_name=text("floor"),
        domains=texts("domain"),
        device_classes=texts("device_class"),
        assistant=conversation.DOMAIN,
        allow_duplicate_names=True,
    )
    if not constraints.has_constraints:
        return True
    return intent.async_match_targets(hass, constraints).is_match


def _slot_value(name: str, value: Any) -> Any:
    # Home Assistant's intent handlers take these as lists.
    if name in ("domain", "device_class") and isinstance(value, str):
        return [value]
    return value
