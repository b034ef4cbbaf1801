"""One response, streamed step by step in the GA event order real traffic shows (docs/realtime-protocol.md
§9.3, §11.3).

`Response.steps()` is a generator; each `next()` returns the events of one step: `response.created`; then
per output item `response.output_item.added`, `conversation.item.added` (default conversation only),
`response.content_part.added`; one delta group per word (text, or transcript + PCM audio interleaved) or
per argument chunk; the `.done` events; `conversation.item.done` then `response.output_item.done` (§11.3: 51
of 51 in real traffic); finally `response.done` and `rate_limits.updated` (§9.2). An out-of-band output gets
`conversation.item.done` with `previous_item_id: null` and no `.added` (§11.1). For the gpt-realtime-2 family
(§11.4) assistant messages carry `phase`, and a function call comes after a `commentary` preamble message in
the same response (§11.3: a message and a function_call in one response).

Content parts have two spellings (§3.6): `text`/`audio` in `response.content_part.*`, `output_text`/
`output_audio` in items. `stop(status, reason)` ends a response early (cancel, turn detection, token limit):
the next step closes the open part and item (status `incomplete`) and emits `response.done`.
A `fail` fault gives `response.created` then the seed report's `response.done` (status failed, no
conversation_id/output_modalities/audio keys, empty output, zero usage); a `drop` fault gives
`response.created` then `Close`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from rtreplay.simulator import audio
from rtreplay.simulator.conversation import Conversation, public
from rtreplay.simulator.model import Call, Reply, text_of

Event = dict[str, Any]
_ARGUMENT_CHUNK = 16  # characters of function-call arguments per delta (one "token")
_AUDIO_TOKENS_PER_WORD = audio.WORD_MS // 50  # assistant audio: 1 token per 50 ms (§8)


@dataclass(frozen=True)
class Close:
    """Tells the server to close the connection with this code and reason."""
    code: int
    reason: str


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def input_usage(instructions: str, context: list[dict]) -> tuple[int, int]:
    """(text tokens, audio tokens) of what the model reads: instructions + context items."""
    text, sound = text_tokens(instructions), 0
    for item in context:
        for part in item.get("content", []):
            if "_audio" in part:
                per_ms = 50 if item.get("role") == "assistant" else 100
                sound += len(part["_audio"]) // audio.PCM_BYTES_PER_MS // per_ms
        text += text_tokens(text_of(item))
    return text, sound


class Response:
    def __init__(self, *, new_id: Callable[[str], str], response_id: str, conversation: Conversation | None,
                 plan: Call | Reply, modality: str, audio_output: dict, max_output_tokens: int | str,
                 metadata: dict | None, input_tokens: tuple[int, int], fault: dict | None = None,
                 phases: bool = False) -> None:
        self.id = response_id
        self.conversation = conversation
        self._new_id = new_id
        self._plan, self._modality, self._audio_output = plan, modality, audio_output
        self._max_tokens = math.inf if max_output_tokens == "inf" else max_output_tokens
        self._max_output_tokens = max_output_tokens
        self._metadata = metadata
        self._input_tokens = input_tokens
        self.input_tokens = input_tokens  # (text, audio) the model reads: the context size
        self._fault = fault
        self._phases = phases  # gpt-realtime-2 family: `phase` on assistant messages, preamble before a call
        self.status, self.status_details = "in_progress", None
        self.finished = False  # True once the last step (response.done or Close) has been handed out
        self._output: list[dict] = []
        self._text_out = self._audio_out = 0
        self.steps: Iterator[list[Event | Close]] = self._run()

    @property
    def writes_default(self) -> bool:
        return self.conversation is not None

    def stop(self, status: str, reason: str) -> None:
        if self.status == "in_progress":
            self.status, self.status_details = status, {"type": status, "reason": reason}

    def _event(self, kind: str, **fields: Any) -> Event:
        return {"type": kind, "event_id": self._new_id("event"), **fields}

    def _resource(self, **overrides: Any) -> dict[str, Any]:
        return {"object": "realtime.response", "id": self.id, "status": self.status,
                "status_details": self.status_details, "output": [public(i) for i in self._output],
                # `is not None`: an empty conversation is falsy, yet its id is sent (protocol §11.1)
                "conversation_id": self.conversation.id if self.conversation is not None else None,
                "output_modalities": [self._modality], "max_output_tokens": self._max_output_tokens,
                "audio": {"output": self._audio_output}, "usage": None,
                "metadata": dict(self._metadata) if self._metadata is not None else None, **overrides}

    def _run(self) -> Iterator[list[Event | Close]]:
        yield [self._event("response.created", response=self._resource())]
        if self._fault and self._fault["kind"] == "drop":
            self.finished = True
            yield [Close(int(self._fault.get("close_code", 1011)), str(self._fault.get("close_reason", "")))]
            return
        if self._fault and self._fault["kind"] == "fail":
            self.finished = True
            yield self._failed()
            return
        if self.status != "in_progress":
            pass  # stopped right after response.created (e.g. turn_detected): no item at all, output [] (§11.3)
        elif isinstance(self._plan, Call):
            if self._phases:  # a spoken preamble, then the call, in one response (§11.3, §11.4)
                yield from self._stream_message(f"Let me call {self._plan.name}.", phase="commentary")
            if self.status == "in_progress":
                yield from self._stream_call(self._plan)
        else:
            yield from self._stream_message(self._plan.text, phase="final_answer" if self._phases else None)
        if self.status == "in_progress":
            self.status = "completed"
        self.finished = True
        yield [self._event("response.done", response=self._resource(usage=self._usage())), self._rate_limits()]

    def _failed(self) -> list[Event | Close]:
        error = {"type": self._fault.get("error_type", "server_error")}
        error.update({k: self._fault[k] for k in ("code", "message") if k in self._fault})
        self.status = "failed"
        zero = _usage(0, 0, 0, 0)
        resource = {"id": self.id, "object": "realtime.response", "status": "failed",
                    "status_details": {"error": error, "type": "failed"}, "output": [], "usage": zero,
                    "max_output_tokens": self._max_output_tokens,
                    "metadata": dict(self._metadata) if self._metadata is not None else None}
        return [self._event("response.done", response=resource), self._rate_limits()]

    def _open_item(self, item: dict) -> list[Event]:
        index = len(self._output)
        self._output.append(item)
        events = [self._event("response.output_item.added", response_id=self.id, output_index=index,
                              item=public(item))]
        if self.conversation is not None:
            previous = self.conversation.insert(item)
            events.append(self._event("conversation.item.added", previous_item_id=previous, item=public(item)))
        return events

    def _close_item(self, item: dict) -> list[Event]:
        item["status"] = "completed" if self.status == "in_progress" else "incomplete"
        index = self._output.index(item)
        # conversation.item.done first (§11.3), also for an out-of-band output, with previous_item_id null
        # (§11.1); an item deleted from the conversation meanwhile gets none.
        events = []
        if self.conversation is None:
            events.append(self._event("conversation.item.done", previous_item_id=None, item=public(item)))
        elif item["id"] in self.conversation:
            previous = self.conversation.previous_id(item["id"])
            events.append(self._event("conversation.item.done", previous_item_id=previous, item=public(item)))
        events.append(self._event("response.output_item.done", response_id=self.id, output_index=index,
                                  item=public(item)))
        return events

    def _room_for(self, tokens: int) -> bool:
        """Whether `tokens` more output fit under max_output_tokens; stops the response when not."""
        if self.status != "in_progress":
            return False
        if self._text_out + self._audio_out + tokens > self._max_tokens:
            self.stop("incomplete", "max_output_tokens")
            return False
        return True

    def _stream_call(self, call: Call) -> Iterator[list[Event]]:
        item = {"id": self._new_id("item"), "type": "function_call", "status": "in_progress",
                "name": call.name, "call_id": self._new_id("call"), "arguments": ""}
        ids = {"response_id": self.id, "item_id": item["id"], "output_index": len(self._output),
               "call_id": item["call_id"]}
        events: list[Event] = self._open_item(item)
        for start in range(0, len(call.arguments), _ARGUMENT_CHUNK):
            if not self._room_for(1):
                break
            chunk = call.arguments[start:start + _ARGUMENT_CHUNK]
            item["arguments"] += chunk
            self._text_out += 1
            events.append(self._event("response.function_call_arguments.delta", **ids, delta=chunk))
            yield events
            events = []
        events.append(self._event("response.function_call_arguments.done", **ids, name=call.name,
                                  arguments=item["arguments"]))
        yield events + self._close_item(item)

    def _stream_message(self, text: str, phase: str | None = None) -> Iterator[list[Event]]:
        spoken = self._modality == "audio"
        part = {"type": "output_audio", "transcript": "", "_audio": bytearray(),
                "_per_ms": audio.bytes_per_ms(self._audio_output["format"])} if spoken \
            else {"type": "output_text", "text": ""}
        item = {"id": self._new_id("item"), "type": "message", "role": "assistant", "status": "in_progress",
                "content": []}
        if phase is not None:
            item["phase"] = phase
        ids = {"response_id": self.id, "item_id": item["id"], "output_index": len(self._output), "content_index": 0}
        events: list[Event] = self._open_item(item)
        item["content"].append(part)
        key = "transcript" if spoken else "text"
        events.append(self._event("response.content_part.added", **ids, part={"type": "audio" if spoken else "text", key: ""}))
        words = text.split(" ")
        for n, word in enumerate(words):
            delta = word if n == len(words) - 1 else word + " "
            if not self._room_for(1 + (_AUDIO_TOKENS_PER_WORD if spoken else 0)):
                break
            part[key] += delta
            self._text_out += 1
            if spoken:
                raw, encoded = audio.speak(word, self._audio_output["format"])
                part["_audio"] += raw
                self._audio_out += _AUDIO_TOKENS_PER_WORD
                events.append(self._event("response.output_audio_transcript.delta", **ids, delta=delta))
                events.append(self._event("response.output_audio.delta", **ids, delta=encoded))
            else:
                events.append(self._event("response.output_text.delta", **ids, delta=delta))
            yield events
            events = []
        if spoken:
            part["_audio"] = bytes(part["_audio"])
            events.append(self._event("response.output_audio.done", **ids))
            events.append(self._event("response.output_audio_transcript.done", **ids, transcript=part[key]))
        else:
            events.append(self._event("response.output_text.done", **ids, text=part[key]))
        events.append(self._event("response.content_part.done", **ids, part={"type": "audio" if spoken else "text", key: part[key]}))
        yield events + self._close_item(item)

    def _usage(self) -> dict[str, Any]:
        return _usage(*self._input_tokens, self._text_out, self._audio_out)

    def _rate_limits(self) -> Event:
        used = self._text_out + self._audio_out + sum(self._input_tokens)
        return self._event("rate_limits.updated", rate_limits=[
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {"name": "tokens", "limit": 40000, "remaining": 40000 - min(used, 40000), "reset_seconds": round(used * 0.0015, 3)}])


def _usage(text_in: int, audio_in: int, text_out: int, audio_out: int) -> dict[str, Any]:
    return {"total_tokens": text_in + audio_in + text_out + audio_out, "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in, "image_tokens": 0,
                                    "cached_tokens": 0,
                                    "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out}}
