"""A hand-written voice archive whose latency, interruption, cost and failure numbers are worked out by hand
(the comments say how), for the voice report tests and the Python = SQL tests.

Session A (PCM16 output, 48 bytes/ms; model gpt-realtime; transcription gpt-4o-transcribe by duration):
  turn 1: stop at 1000 ms, r1 created 1100, three audio deltas of 100 ms each (first at 1700; transcript
          "Hello " "there " "friend" before each), barge-in at 1800 (cuts item i1, 300 ms generated), r1 done
          cancelled; the app truncates i1 at 150 ms (valid; 150 ms unheard; transcript heard "Hello there ").
          Later the app truncates i1 at 9100 ms: invalid, and the server's error names it.
  turn 2: stop at 3000 ms, r2 created 3050, audio at 3500 (item i2, 100 ms), barge-in at 3600, never truncated.
  tools:  request 4000 -> r3 created 4020, call c1 done 4100; output 4300, request 4310 -> r4 created 4320,
          first (text) delta 4500. A server response r5 calls c2 `hang_up`, never answered (hung).
  misc:   transcription failed; an ordered conversation_already_has_active_response; r6 incomplete by
          max_output_tokens; the upstream closes with 1011.
Session B (G.711 output, 8 bytes/ms; model gpt-realtime-mini-2025-10-06, priced as gpt-realtime-mini):
  r7 created and never done; a function_call_output no response follows; session_expired; the upstream goes
  away without a close frame.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from rtreplay.recorder import archive
from rtreplay.recorder.schema import CLIENT, EVENT_SCHEMA, PROXY, SERVER

START = dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.timezone.utc)
A, B = "20260901T080000000000-voiceA", "20260901T090000000000-voiceB"
PCM_MS = 48


def usage(text_in: int, audio_in: int, text_out: int, audio_out: int, cached_text: int = 0,
          cached_audio: int = 0) -> dict:
    return {"total_tokens": text_in + audio_in + text_out + audio_out, "input_tokens": text_in + audio_in,
            "output_tokens": text_out + audio_out,
            "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in, "image_tokens": 0,
                                    "cached_tokens": cached_text + cached_audio,
                                    "cached_tokens_details": {"text_tokens": cached_text, "audio_tokens": cached_audio,
                                                              "image_tokens": 0}},
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out}}


class Log:
    """Events of one session at explicit times (ms since the session's start, on both clocks)."""

    def __init__(self, session_id: str, start: dt.datetime = START) -> None:
        self.session_id, self.start, self.rows = session_id, start, []

    def emit(self, at_ms: float, direction: str, event: dict[str, Any], audio: bytes | None = None) -> int:
        seq = len(self.rows)
        payload = json.dumps(event)
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        item = event.get("item") if isinstance(event.get("item"), dict) else {}
        self.rows.append({
            "session_id": self.session_id, "seq": seq, "ts": self.start + dt.timedelta(milliseconds=at_ms),
            "mono_ns": int(at_ms * 1_000_000), "direction": direction, "type": event["type"],
            "event_id": event.get("event_id") if direction == CLIENT else None,
            "response_id": event.get("response_id") or response.get("id"),
            "item_id": event.get("item_id") or item.get("id"),
            "payload": payload, "audio": audio, "audio_at": None, "size": len(payload),
        })
        return seq

    def client(self, at: float, type_: str, **f: Any) -> int:
        return self.emit(at, CLIENT, {"type": type_, **f})

    def server(self, at: float, type_: str, **f: Any) -> int:
        return self.emit(at, SERVER, {"type": type_, "event_id": f"event_{len(self.rows)}", **f})

    def created(self, at: float, rid: str, oob: bool = False) -> int:
        resp = {"id": rid, "status": "in_progress", "output": []}
        resp["conversation_id"] = None if oob else "conv_1"
        return self.server(at, "response.created", response=resp)

    def done(self, at: float, rid: str, status: str = "completed", details: dict | None = None,
             use: dict | None = None) -> int:
        return self.server(at, "response.done", response={"id": rid, "status": status, "status_details": details,
                                                          "output": [], "usage": use})

    def audio(self, at: float, rid: str, iid: str, ms: int, word: str | None = None, per_ms: int = PCM_MS) -> None:
        if word is not None:
            self.server(at, "response.output_audio_transcript.delta", response_id=rid, item_id=iid, delta=word)
        self.emit(at, SERVER, {"type": "response.output_audio.delta", "event_id": f"event_{len(self.rows)}",
                               "response_id": rid, "item_id": iid, "delta": ""}, audio=b"\x01" * (ms * per_ms))

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, schema=EVENT_SCHEMA)


def session_a() -> Log:
    s = Log(A)
    s.emit(0, PROXY, {"type": "proxy.open", "path": "/v1/realtime?model=gpt-realtime", "query": "model=gpt-realtime"})
    s.server(5, "session.created", session={"type": "realtime", "model": "gpt-realtime", "audio": {
        "input": {"transcription": {"model": "gpt-4o-transcribe"}}, "output": {"format": {"type": "audio/pcm"}}}})
    s.server(500, "input_audio_buffer.speech_started", audio_start_ms=400, item_id="u1")
    s.server(1000, "input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="u1")
    s.server(1050, "conversation.item.input_audio_transcription.completed", item_id="u1", content_index=0,
             transcript="hi", usage={"type": "duration", "seconds": 3})
    s.created(1100, "r1")
    s.audio(1700, "r1", "i1", 100, "Hello ")
    s.audio(1710, "r1", "i1", 100, "there ")
    s.audio(1720, "r1", "i1", 100, "friend")
    s.server(1800, "input_audio_buffer.speech_started", audio_start_ms=1700, item_id="u2")
    s.done(1810, "r1", "cancelled", {"type": "cancelled", "reason": "turn_detected"}, usage(100, 50, 10, 30))
    s.client(1850, "conversation.item.truncate", event_id="evt_t1", item_id="i1", content_index=0, audio_end_ms=150)
    s.server(1860, "conversation.item.truncated", item_id="i1", content_index=0, audio_end_ms=150)
    # turn 2
    s.server(3000, "input_audio_buffer.speech_stopped", audio_end_ms=2900, item_id="u2")
    s.server(3010, "conversation.item.input_audio_transcription.failed", item_id="u2", content_index=0,
             error={"type": "transcription_error", "code": "audio_unintelligible", "message": "x"})
    s.created(3050, "r2")
    s.audio(3500, "r2", "i2", 100, "Sure")
    s.server(3600, "input_audio_buffer.speech_started", audio_start_ms=3500, item_id="u3")
    s.done(3610, "r2", "cancelled", {"type": "cancelled", "reason": "turn_detected"}, usage(200, 100, 5, 20, 150, 50))
    s.client(3700, "conversation.item.truncate", event_id="evt_t2", item_id="i1", content_index=0, audio_end_ms=9100)
    s.server(3710, "error", error={"type": "invalid_request_error", "code": "invalid_value", "param": "audio_end_ms",
                                   "message": "Audio content of 150ms is already shorter than 9100ms",
                                   "event_id": "evt_t2"})
    # a tool round trip
    s.client(4000, "response.create", event_id="evt_q1", response={})
    s.created(4020, "r3")
    s.server(4100, "response.function_call_arguments.done", response_id="r3", item_id="fc1", call_id="c1",
             name="lookup", arguments="{}")
    s.done(4110, "r3", use=usage(300, 0, 8, 0))
    s.client(4300, "conversation.item.create", event_id="evt_o1",
             item={"type": "function_call_output", "call_id": "c1", "output": "{}"})
    s.client(4310, "response.create", event_id="evt_q2", response={})
    s.created(4320, "r4")
    s.server(4500, "response.output_text.delta", response_id="r4", item_id="m4", delta="Found")
    s.done(4600, "r4", use=usage(320, 0, 4, 0))
    # a call nobody answers
    s.created(5000, "r5")
    s.server(5100, "response.function_call_arguments.done", response_id="r5", item_id="fc2", call_id="c2",
             name="hang_up", arguments="{}")
    s.done(5110, "r5", use=usage(10, 0, 2, 0))
    # an ordered rejection, a response cut by max_output_tokens
    s.client(5200, "response.create", response={})
    s.created(5210, "r6")
    s.client(5220, "response.create", response={})
    s.server(5230, "error", error={"type": "invalid_request_error", "code": "conversation_already_has_active_response",
                                   "message": "busy", "event_id": None})
    s.done(5300, "r6", "incomplete", {"type": "incomplete", "reason": "max_output_tokens"}, usage(10, 0, 5, 0))
    s.emit(6000, PROXY, {"type": "proxy.close", "client": None, "server": {"code": 1011, "reason": "internal error"},
                         "first_close": "server", "first_disconnect": None})
    return s


def session_b() -> Log:
    s = Log(B, START + dt.timedelta(hours=1))
    s.emit(0, PROXY, {"type": "proxy.open", "path": "/v1/realtime", "query": "model=gpt-realtime-mini-2025-10-06"})
    s.server(5, "session.created", session={"type": "realtime", "model": "gpt-realtime-mini-2025-10-06",
                                            "audio": {"output": {"format": {"type": "audio/pcmu"}}}})
    s.created(100, "r7")
    s.audio(150, "r7", "i7", 200, per_ms=8)
    s.client(200, "conversation.item.create", item={"type": "function_call_output", "call_id": "c9", "output": "x"})
    s.server(300, "error", error={"type": "invalid_request_error", "code": "session_expired",
                                  "message": "Your session hit the maximum duration of 60 minutes.", "event_id": None})
    s.emit(400, PROXY, {"type": "proxy.close", "client": {"code": 1000, "reason": ""}, "server": None,
                        "first_close": "client", "first_disconnect": "server"})
    return s


def write_voice(root: Path) -> Path:
    for log in (session_a(), session_b()):
        archive.write_parquet(log.table(), archive.parquet_path(root, log.session_id))
    return root
