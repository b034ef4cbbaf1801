"""Hand-written Realtime events for analyzer tests: `Session` numbers events and builds GA (or beta) shapes."""
from __future__ import annotations

from rtreplay.analyzer.state.session import Event


class Session:
    """Collects events in order; each method appends the wire events one protocol step produces."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._n = 0

    def ev(self, data: dict, direction: str = "server", audio: bytes | None = None) -> Event:
        e = Event.of(len(self.events), data, direction=direction, audio=audio, mono_ns=len(self.events) * 1_000_000)
        self.events.append(e)
        return e

    def client(self, data: dict, audio: bytes | None = None) -> Event:
        return self.ev(data, "client", audio)

    def session_created(self, **session) -> None:
        self.ev({"type": "session.created", "session": {"type": "realtime", "model": "gpt-realtime",
                                                        "tool_choice": "auto", **session}})

    def add(self, item_id: str, prev: str | None, *, role: str = "user", text: str = "hi", beta: bool = False) -> None:
        kind = "input_text" if role in ("user", "system") else "output_text"
        item = {"id": item_id, "type": "message", "role": role, "status": "completed",
                "content": [{"type": kind, "text": text}]}
        names = ["conversation.item.created"] if beta else ["conversation.item.added", "conversation.item.done"]
        for name in names:
            self.ev({"type": name, "previous_item_id": prev, "item": item})

    def response(self, rid: str, item_id: str, prev: str | None, *, text: str = "hello", oob: bool = False,
                 status: str = "completed", details=None, metadata=None, beta: bool = False,
                 function: str | None = None) -> None:
        """A whole text response (or a function call) streamed by deltas, GA or beta names."""
        conv = None if oob else "conv_1"
        base = {"object": "realtime.response", "id": rid, "conversation_id": conv, "metadata": metadata}
        self.ev({"type": "response.created", "response": {**base, "status": "in_progress", "output": []}})
        if function:
            item = {"id": item_id, "type": "function_call", "call_id": "call_1", "name": function, "arguments": ""}
        else:
            item = {"id": item_id, "type": "message", "role": "assistant", "content": []}
        self.ev({"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                 "item": {**item, "status": "in_progress"}})
        if not oob:
            self.ev({"type": "conversation.item.created" if beta else "conversation.item.added",
                     "previous_item_id": prev, "item": {**item, "status": "in_progress"}})
        ids = {"response_id": rid, "item_id": item_id, "output_index": 0}
        if function:
            self.ev({"type": "response.function_call_arguments.delta", **ids, "delta": '{"a":'})
            self.ev({"type": "response.function_call_arguments.delta", **ids, "delta": '1}'})
            self.ev({"type": "response.function_call_arguments.done", **ids, "name": function, "arguments": '{"a":1}'})
            final = {**item, "arguments": '{"a":1}', "status": "completed"}
        else:
            p = {**ids, "content_index": 0}
            self.ev({"type": "response.content_part.added", **p, "part": {"type": "text", "text": ""}})
            for i in range(0, len(text), 3):
                self.ev({"type": "response.text.delta" if beta else "response.output_text.delta", **p, "delta": text[i:i + 3]})
            self.ev({"type": "response.text.done" if beta else "response.output_text.done", **p, "text": text})
            self.ev({"type": "response.content_part.done", **p, "part": {"type": "text", "text": text}})
            final = {**item, "status": "completed", "content": [{"type": "text" if beta else "output_text", "text": text}]}
        self.ev({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": final})
        if not oob and not beta:
            self.ev({"type": "conversation.item.done", "previous_item_id": prev, "item": final})
        self.ev({"type": "response.done", "response": {**base, "status": status, "status_details": details,
                                                       "output": [final], "usage": {"total_tokens": 3}}})

    def audio_turn(self, user_id: str, asst_id: str, rid: str, prev: str | None, chunks: list[bytes],
                   out_chunks: list[bytes], transcript: str = "sure thing") -> None:
        """Appends, VAD commit, the user item, then an audio response (server-initiated)."""
        for c in chunks:
            self.client({"type": "input_audio_buffer.append"}, audio=c)
        self.ev({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": user_id})
        self.ev({"type": "input_audio_buffer.committed", "item_id": user_id, "previous_item_id": prev})
        user = {"id": user_id, "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        self.ev({"type": "conversation.item.added", "previous_item_id": prev, "item": user})
        self.ev({"type": "conversation.item.done", "previous_item_id": prev, "item": user})
        self.ev({"type": "response.created", "response": {"id": rid, "status": "in_progress", "conversation_id": "conv_1", "output": []}})
        item = {"id": asst_id, "type": "message", "role": "assistant", "content": []}
        self.ev({"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item})
        self.ev({"type": "conversation.item.added", "previous_item_id": user_id, "item": item})
        p = {"response_id": rid, "item_id": asst_id, "output_index": 0, "content_index": 0}
        self.ev({"type": "response.content_part.added", **p, "part": {"type": "audio", "transcript": ""}})
        for i, c in enumerate(out_chunks):
            self.ev({"type": "response.output_audio_transcript.delta", **p, "delta": transcript[i::len(out_chunks)][:0] or "x"})
            self.ev({"type": "response.output_audio.delta", **p}, audio=c)
        self.ev({"type": "response.output_audio_transcript.done", **p, "transcript": transcript})
        final = {**item, "status": "completed", "content": [{"type": "output_audio", "transcript": transcript}]}
        self.ev({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": final})
        self.ev({"type": "conversation.item.done", "previous_item_id": user_id, "item": final})
        self.ev({"type": "response.done", "response": {"id": rid, "status": "completed", "conversation_id": "conv_1", "output": [final]}})
