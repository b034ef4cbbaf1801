"""One Realtime session as a sans-I/O state machine: client events in, server events out.

The I/O shell (`rtreplay.simulator.server`) calls `start()` once, `receive(text, now)` for every client message,
`advance(now)` whenever `next_due()` has passed (responses stream one step per call, `interval` seconds
apart), and `expire()` at the session's deadline. Each returns a list of server events (dicts, to be sent
in order) and possibly a `Close` (send it last, then close the connection). `now` is the shell's
monotonic clock in seconds. Everything that changes session state lives here and in the objects it owns.

Behaviour follows docs/realtime-protocol.md; where it lists open questions (§10) the choice is named
where it is made. A profile's `[transport] kind = "webrtc"` makes the output WebRTC/SIP-like (no audio deltas,
output_audio_buffer events: `rtreplay.simulator.playback`). Not simulated: MCP servers, images, idle timeouts,
DTMF.
"""
from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

import orjson

from rtreplay.simulator import model, params
from rtreplay.simulator.audio import PCM_BYTES_PER_MS, bytes_per_ms, transcribe
from rtreplay.simulator.conversation import Conversation, public, with_audio
from rtreplay.simulator.errors import ClientError, invalid, invalid_type, missing
from rtreplay.simulator.faults import Features, Profile, draw
from rtreplay.simulator.ids import IdFactory
from rtreplay.simulator.playback import Playback
from rtreplay.simulator.response import Close, Response, input_usage
from rtreplay.simulator.vad import SpeechStarted, Vad

Output = dict[str, Any] | Close


class Session:
    def __init__(self, *, seed: int = 0, session_index: int = 0, profile: Profile | None = None,
                 kind: str = "realtime", model_name: str = "gpt-realtime", started_at: int = 0,
                 max_session_s: float = 3600.0, interval: float = 0.0) -> None:
        self._ids = IdFactory(seed, session_index)
        self._seed, self._index = seed, session_index
        self._profile = profile or Profile("none")
        self._max_session_s, self._interval = max_session_s, interval
        self.config = params.default_session(kind, self._ids.new("sess"), model_name,
                                             started_at + int(max_session_s))
        self.conversation = Conversation(self._ids.new("conv"))
        self._buffer = bytearray()
        self._buffer_start = 0  # session audio offset (bytes) of the buffer's first byte
        self._written = 0  # bytes of input audio appended this session
        self._vad = self._new_vad()
        self._speech_item: str | None = None  # id promised by speech_started for the next user item
        self._speech_start = 0
        self._active: dict[str, Response] = {}
        self._due: dict[str, float] = {}
        self._requests = 0  # client response.create events so far (the fault request index)
        self._transcriptions = 0  # committed turns transcribed so far (the transcription draw index)
        self._first_output: dict[str, float] = {}  # response id -> seconds from created to its first output
        self._playback = Playback(self._event) if self._profile.transport == "webrtc" else None

    # ---- shell interface -------------------------------------------------------------------------------------

    def start(self) -> list[Output]:
        """The first server event. (`conversation.created` is not sent: no GA trace shows it, §10.1.)"""
        return [self._event("session.created", session=copy.deepcopy(self.config))]

    def receive(self, text: str | bytes, now: float) -> list[Output]:
        event_id = None
        try:
            if isinstance(text, bytes):
                raise ClientError("Binary frames are not supported; send JSON text.", code="invalid_event")
            try:
                event = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ClientError("The event is not valid JSON.", code="invalid_event") from None
            if not isinstance(event, dict):
                raise ClientError("The event must be a JSON object.", code="invalid_event")
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            if "type" not in event:
                raise ClientError("The 'type' field is missing.", code="invalid_event")
            handler = self._HANDLERS.get(event["type"]) if isinstance(event["type"], str) else None
            if handler is None:
                raise ClientError(f"Invalid value: '{event['type']}'. Supported values are: "
                                  f"{', '.join(sorted(self._HANDLERS))}.", code="invalid_value", param="type")
            return handler(self, event, event_id, now)
        except ClientError as error:
            return [self._event("error", error=error.payload(event_id))]

    def next_due(self) -> float | None:
        """When `advance` next has work (a response step), or None when nothing streams."""
        playback = self._playback.next_due() if self._playback is not None else None
        return min([*self._due.values(), *([] if playback is None else [playback])], default=None)

    def advance(self, now: float) -> list[Output]:
        out: list[Output] = []
        for response_id, due in list(self._due.items()):
            if due <= now:
                out += self._step(self._active[response_id], now)
        if self._playback is not None:
            out += self._playback.advance(now)
        return out

    def expire(self) -> list[Output]:
        minutes = self._max_session_s / 60
        span = f"{minutes:g} minutes" if minutes >= 1 else f"{self._max_session_s:g} seconds"
        error = ClientError(f"Your session hit the maximum duration of {span}.", code="session_expired")
        # Close code after session_expired is not documented (§10.9); 1000 with the code as reason.
        return [self._event("error", error=error.payload(None)), Close(1000, "session_expired")]

    # ---- helpers ---------------------------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": self._ids.new("event"), **fields}

    def _new_vad(self) -> Vad | None:
        detection = self.config["audio"]["input"].get("turn_detection")
        return Vad(detection) if detection else None

    def _step(self, response: Response, now: float) -> list[Output]:
        events = next(response.steps)
        if response.finished:
            del self._active[response.id], self._due[response.id]
            self._first_output.pop(response.id, None)
        else:  # the profile's latency holds the first output back after response.created, and paces words
            pace = self._interval
            if self._profile.spoken_word_s() and any(isinstance(e, dict) and e["type"] == "response.output_audio.delta"
                                                     for e in events):
                pace = max(pace, self._profile.spoken_word_s())
            self._due[response.id] = now + self._first_output.pop(response.id, pace)
        return events if self._playback is None else self._playback.media_track(events, now)

    def _server_truncate(self, cut: tuple[str, int] | None) -> list[Output]:
        """WebRTC/SIP: after clearing the output buffer the server truncates the item at the point played."""
        item = self.conversation.get(cut[0]) if cut is not None else None
        if cut is None or item is None or not item.get("content") or "_audio" not in item["content"][0]:
            return []
        part = item["content"][0]
        part["_audio"], part["transcript"] = bytes(part["_audio"][: cut[1] * part["_per_ms"]]), ""
        return [self._event("conversation.item.truncated", item_id=item["id"], content_index=0,
                            audio_end_ms=cut[1])]

    def _finish_now(self, response: Response, status: str, reason: str) -> list[Output]:
        """Stop a response and emit all its remaining events at once (cancel, turn detection)."""
        response.stop(status, reason)
        out: list[Output] = []
        while response.id in self._active:
            out += self._step(response, 0.0)
        return out

    def _default_response(self) -> Response | None:
        return next((r for r in self._active.values() if r.writes_default), None)

    def _item(self, event: dict, key: str = "item_id") -> dict:
        item_id = event.get(key)
        if item_id is None:
            raise missing(key)
        item = self.conversation.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise ClientError(f"Item with item_id not found: {item_id}", code="invalid_value", param=key)
        return item

    # ---- session ---------------------------------------------------------------------------------------------

    def _session_update(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        self.config = params.updated_session(self.config, event.get("session"))
        self._vad = self._new_vad()
        return [self._event("session.updated", session=copy.deepcopy(self.config))]

    # ---- input audio -----------------------------------------------------------------------------------------

    def _append(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        if "audio" not in event:
            raise missing("audio")
        try:
            chunk = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise invalid("audio", "<audio>", "Expected base64-encoded audio.") from None
        self._buffer += chunk
        self._written += len(chunk)
        if self._vad is None or self.config["audio"]["input"]["format"]["type"] != "audio/pcm":
            return []  # VAD judges PCM16 only; G.711 input is buffered and committed by hand
        out: list[Output] = []
        for boundary in self._vad.feed(chunk):
            if isinstance(boundary, SpeechStarted):
                out += self._speech_started(boundary.audio_start_ms, now)
            else:
                out += self._speech_stopped(boundary.audio_end_ms, now)
        return out

    def _speech_started(self, start_ms: int, now: float) -> list[Output]:
        self._speech_item, self._speech_start = self._ids.new("item"), start_ms
        out: list[Output] = [self._event("input_audio_buffer.speech_started", audio_start_ms=start_ms,
                                         item_id=self._speech_item)]
        active = self._default_response()
        interrupt = self.config["audio"]["input"]["turn_detection"].get("interrupt_response", True)
        cut = None
        if self._playback is not None and interrupt:  # the order recorded over WebRTC: cleared, done, truncated
            cleared, cut = self._playback.clear(now)
            out += cleared
        if active is not None and interrupt:
            out += self._finish_now(active, "cancelled", "turn_detected")  # only default-conversation ones (§5.4)
        return out + self._server_truncate(cut)

    def _speech_stopped(self, end_ms: int, now: float) -> list[Output]:
        item_id = self._speech_item or self._ids.new("item")
        out: list[Output] = [self._event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item_id)]
        start = max(0, self._speech_start * PCM_BYTES_PER_MS - self._buffer_start)
        end = max(start, end_ms * PCM_BYTES_PER_MS - self._buffer_start)
        committed = self._commit(bytes(self._buffer[start:end]), item_id, keep=bytes(self._buffer[end:]))
        transcription = [e for e in committed if "input_audio_transcription" in e["type"]]
        out += [e for e in committed if e not in transcription]
        detection = self.config["audio"]["input"]["turn_detection"]
        if self.config["type"] == "realtime" and detection.get("create_response", True) and not self._default_response():
            # The turn's response is created at the commit, before any client request still in flight is read
            # (§11.2); its transcription arrives mid-response, after that response.created (§11.3).
            out += self._start_response({}, fault=None, now=now)
        return out + transcription

    def _commit_event(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        ms = len(self._buffer) / bytes_per_ms(self.config["audio"]["input"]["format"])
        if ms < 100:
            raise ClientError(f"Error committing input audio buffer: Expected at least 100ms of audio, but buffer "
                              f"only has {ms:.2f}ms of audio.", code="input_audio_buffer_commit_empty")
        item_id = self._speech_item or self._ids.new("item")
        if self._vad:
            self._vad.reset()
        return self._commit(bytes(self._buffer), item_id, keep=b"")

    def _commit(self, audio: bytes, item_id: str, keep: bytes) -> list[Output]:
        """Turn buffered audio into a user item (§4.2); `keep` stays buffered."""
        self._buffer_start = self._written - len(keep)
        self._buffer = bytearray(keep)
        self._speech_item = None
        ms = len(audio) // bytes_per_ms(self.config["audio"]["input"]["format"])
        item = {"id": item_id, "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None, "_audio": audio, "_ms": ms}]}
        previous = self.conversation.insert(item)
        out: list[Output] = [
            self._event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id),
            self._event("conversation.item.added", previous_item_id=previous, item=public(item)),
            self._event("conversation.item.done", previous_item_id=previous, item=public(item))]
        if self.config["audio"]["input"].get("transcription"):
            # Transcription is asynchronous in reality (§9.3); here it follows the item at once.
            turn, self._transcriptions = self._transcriptions, self._transcriptions + 1
            if self._profile.transcription_fails(self._seed, self._index, turn):
                t = self._profile.transcription
                error = {"type": "transcription_error", "code": str(t.get("code", "audio_unintelligible")),
                         "message": str(t.get("message", "Audio could not be transcribed.")), "param": None}
                return out + [self._event("conversation.item.input_audio_transcription.failed", item_id=item_id,
                                          content_index=0, error=error)]
            text = transcribe(audio, ms)
            item["content"][0]["transcript"] = text
            ids = {"item_id": item_id, "content_index": 0}
            out.append(self._event("conversation.item.input_audio_transcription.delta", **ids, delta=text))
            out.append(self._event("conversation.item.input_audio_transcription.completed", **ids, transcript=text,
                                   usage={"type": "duration", "seconds": round(ms / 1000, 3)}))
        return out

    def _clear(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        self._buffer_start, self._buffer, self._speech_item = self._written, bytearray(), None
        if self._vad:
            self._vad.reset()
        return [self._event("input_audio_buffer.cleared")]

    # ---- conversation items ----------------------------------------------------------------------------------

    def _item_create(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        item = params.checked_item(event.get("item"), "item")
        previous = event.get("previous_item_id")  # explicit null = append (§10.3)
        known = isinstance(previous, str) and (previous == "root" or previous in self.conversation)
        if previous is not None and not known:
            raise ClientError(f"Previous item with item_id not found: {previous}", code="invalid_value",
                              param="previous_item_id")
        if "id" in item and item["id"] in self.conversation:
            raise ClientError(f"Item with id '{item['id']}' already exists.", code="invalid_value", param="item.id")
        item.setdefault("id", self._ids.new("item"))
        if item["type"] == "function_call":
            item.setdefault("call_id", self._ids.new("call"))
        before = self.conversation.insert(item, previous)
        return [self._event("conversation.item.added", previous_item_id=before, item=public(item)),
                self._event("conversation.item.done", previous_item_id=before, item=public(item))]

    def _item_retrieve(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        return [self._event("conversation.item.retrieved", item=with_audio(self._item(event)))]

    def _item_truncate(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        item = self._item(event)
        for key in ("content_index", "audio_end_ms"):
            if key not in event:
                raise missing(key)
            if not isinstance(event[key], int) or isinstance(event[key], bool):
                raise invalid_type(key, "an integer")
        index, end_ms = event["content_index"], event["audio_end_ms"]
        content = item.get("content", [])
        if item.get("role") != "assistant" or not 0 <= index < len(content) or "_audio" not in content[index]:
            raise ClientError("Only model output audio messages can be truncated", code="unsupported_content_type",
                              param="item_id")
        if end_ms < 0:
            raise ClientError("Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0, but got "
                              f"{end_ms} instead.", code="integer_below_min_value", param="audio_end_ms")
        part = content[index]
        rate = part["_per_ms"]
        duration = len(part["_audio"]) // rate
        if end_ms > duration:
            raise ClientError(f"Audio content of {duration}ms is already shorter than {end_ms}ms",
                              param="audio_end_ms")
        part["_audio"] = part["_audio"][: end_ms * rate]
        part["transcript"] = ""  # the server deletes the transcript rather than cutting it (§4.5)
        return [self._event("conversation.item.truncated", item_id=item["id"], content_index=index,
                            audio_end_ms=end_ms)]

    def _item_delete(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        item = self._item(event)
        self.conversation.delete(item["id"])
        return [self._event("conversation.item.deleted", item_id=item["id"])]

    # ---- responses -------------------------------------------------------------------------------------------

    def _response_create(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        request_index, self._requests = self._requests, self._requests + 1
        if self.config["type"] != "realtime":
            raise ClientError("Responses are not supported in transcription sessions.", code="invalid_value",
                              param="response")
        request = params.check_response(event.get("response"), self.config["tools"])
        context = self._input_items(request["input"]) if "input" in request else None
        if request.get("conversation", "auto") == "auto" and (busy := self._default_response()):
            raise ClientError(f"Conversation already has an active response in progress: {busy.id}. Wait until "
                              "the response is finished before creating a new one.",
                              code="conversation_already_has_active_response")
        fault = self._profile.decide(self._features(request), draw(self._seed, self._index, request_index))
        if fault and fault["kind"] == "error":
            error = ClientError(str(fault.get("message", "The server had an error while processing your request.")),
                                code=fault.get("code"), type=str(fault.get("error_type", "server_error")))
            return [self._event("error", error=error.payload(event_id))]
        delay = float(fault.get("delay_ms", 0)) / 1000 if fault and fault["kind"] == "delay" else 0.0
        return self._start_response(request, fault=fault, now=now, context=context, delay=delay)

    def _input_items(self, items: list) -> list[dict]:
        """`response.input`: new items (context only, never added, §4.4) and references to existing ones."""
        context = []
        for i, item in enumerate(items):
            param = f"response.input[{i}]"
            if isinstance(item, dict) and item.get("type") == "item_reference":
                if not isinstance(item.get("id"), str):
                    raise missing(f"{param}.id")
                if item["id"] not in self.conversation:
                    raise ClientError(f"Item with id '{item['id']}' not found.", code="invalid_value",
                                      param=f"{param}.id")
                context.append(self.conversation.get(item["id"]))
            else:
                context.append(params.checked_item(item, param))
        return context

    def _features(self, request: dict) -> Features:
        choice = request.get("tool_choice")
        form = "absent" if "tool_choice" not in request else choice if isinstance(choice, str) else choice["type"]
        given = request.get("input")
        return Features(tool_choice=form, conversation=request.get("conversation", "auto"),
                        input="absent" if given is None else "items" if given else "empty",
                        modalities=(request.get("output_modalities") or self.config["output_modalities"])[0],
                        model=self.config["model"], tools=len(request.get("tools", self.config["tools"])))

    def _start_response(self, request: dict, *, fault: dict | None, now: float,
                        context: list[dict] | None = None, delay: float = 0.0) -> list[Output]:
        """Start a response with the session config overridden by `request`; runs its first step now
        unless `delay` > 0."""
        cfg = self.config
        writes_default = request.get("conversation", "auto") == "auto"
        visible = self.conversation.items() if context is None else context  # §5.3
        instructions = request.get("instructions", cfg["instructions"])
        output = {**cfg["audio"]["output"], **(request.get("audio") or {}).get("output", {})}
        plan = model.respond(visible, instructions, request.get("tools", cfg["tools"]),
                             request.get("tool_choice", cfg["tool_choice"]))
        response = Response(
            new_id=self._ids.new, response_id=self._ids.new("resp"),
            conversation=self.conversation if writes_default else None, plan=plan,
            modality=(request.get("output_modalities") or cfg["output_modalities"])[0],
            audio_output={"format": params.check_format(output["format"], "response.audio.output.format"),
                          "voice": output["voice"]},
            max_output_tokens=request.get("max_output_tokens", cfg["max_output_tokens"]),
            metadata=request.get("metadata"), input_tokens=input_usage(instructions, visible), fault=fault,
            phases=str(cfg["model"]).startswith("gpt-realtime-2"))  # §11.4: `phase`, several messages
        self._active[response.id] = response
        if self._profile.latency:
            self._first_output[response.id] = self._profile.first_output_s(sum(response.input_tokens))
        self._due[response.id] = now + delay
        return [] if delay > 0 else self._step(response, now)

    def _response_cancel(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        wanted = event.get("response_id")
        target = self._active.get(wanted) if isinstance(wanted, str) else \
            self._default_response() if wanted is None else None
        if target is None:
            raise ClientError("Cancellation failed: no active response found", code="response_cancel_not_active")
        return self._finish_now(target, "cancelled", "client_cancelled")

    def _output_audio_clear(self, event: dict, event_id: str | None, now: float) -> list[Output]:
        if self._playback is not None:  # nothing playing: no reply, as recorded (§11)
            cleared, cut = self._playback.clear(now)
            return cleared + self._server_truncate(cut)
        raise ClientError("output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                          code="invalid_value", param="type")

    _HANDLERS = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": _commit_event,
        "input_audio_buffer.clear": _clear,
        "conversation.item.create": _item_create,
        "conversation.item.retrieve": _item_retrieve,
        "conversation.item.truncate": _item_truncate,
        "conversation.item.delete": _item_delete,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "output_audio_buffer.clear": _output_audio_clear,
    }
