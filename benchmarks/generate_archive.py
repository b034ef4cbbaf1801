"""Generate a synthetic rtreplay archive with a realistic event mix, and the exact answers it implies.

    python benchmarks/generate_archive.py --events 1000000 --out /tmp/bench-archive

Writes `<out>/events/date=…/<session_id>.parquet` (one file per session, written with the archive schema)
and `<out>.expected.json` beside the archive: the exact number of requests per (tool_choice form sent,
scope, outcome) and per (form sent, scope, forced_call) as docs/definitions.md defines them, so reports,
SQL views and tests can check their numbers against ground truth at any size.

The mix per session (voice agent, server VAD): the microphone streams 20 ms `input_audio_buffer.append`
chunks the whole time (the bulk of the events, as in real traffic); each user turn is speech_started →
speech_stopped → committed → user item → a server-initiated audio response (output audio deltas in a burst,
transcript deltas, transcription of the user item); some turns are function calls answered with a
`function_call_output` and a client `response.create`, some are interrupted (cancel + truncate), some delete
an old item; between turns the app sends out-of-band `response.create`s (≈1% of events) with every
tool_choice form and every outcome class (completed, failed, cancelled, incomplete, rejected by event id or
in order, unfinished at session end). Every request is answered before the next ordered answer can arrive,
so the first-in-first-out matching of docs/definitions.md recovers exactly the recorded pairing.

Deterministic for a given --seed. Rows are assembled column-wise: the audio appends are described as runs
and expanded with numpy/pyarrow `take`, so 10M events take well under a minute.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from rtreplay.recorder import archive
from rtreplay.recorder.schema import CLIENT, EVENT_SCHEMA, PROXY, SERVER

CHUNK_MS = 20
IN_CHUNK = 960  # 20 ms of PCM16 at 24 kHz
OUT_CHUNK = 2400  # 50 ms of PCM16 at 24 kHz
APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"'
APPEND_PAYLOAD = APPEND_PREFIX + '"}'
APPEND_SIZE = len(APPEND_PAYLOAD) + 4 * ((IN_CHUNK + 2) // 3)
MODEL = "gpt-realtime"
TOOLS = [
    {"type": "function", "name": "lookup_customer", "description": "Find the customer id",
     "parameters": {"type": "object", "properties": {"phone": {"type": "string"}}, "required": ["phone"]}},
    {"type": "function", "name": "return_response", "description": "Return a summary",
     "parameters": {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}},
]
MCP_TOOL = {"type": "mcp", "server_label": "crm", "server_url": "https://crm.example.test/mcp", "require_approval": "never"}
# tool_choice values sent by out-of-band requests, by form (absent = key left out).
CHOICES = {
    "absent": None,
    "auto": "auto",
    "none": "none",
    "required": "required",
    "function": {"type": "function", "name": "return_response"},
    "mcp": {"type": "mcp", "server_label": "crm", "name": "find_account"},
    "invalid": {"type": "function", "function": {"name": "return_response"}},
}
FORM_WEIGHTS = {"absent": 3, "auto": 3, "none": 1, "required": 3, "function": 4, "mcp": 1, "invalid": 1}


class SessionBuilder:
    """Collects one session's events: single rows as Python lists, microphone appends as runs."""

    def __init__(self, session_id: str, start_us: int, rng: random.Random) -> None:
        self.sid = session_id
        self.start_us = start_us
        self.rng = rng
        self.n = 0  # rows so far, appends included
        self.mono = 0  # ns since session start
        self.rows: list[tuple] = []  # (pos, mono, direction, type, event_id, response_id, item_id, payload, audio, audio_at)
        self.runs: list[tuple[int, int, int]] = []  # (pos, count, mono start) of append runs
        self.counter = 0
        self.items: list[str] = []  # default conversation, in order

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.sid[-6:]}{self.counter:09d}"

    def tick(self, ms: float) -> None:
        self.mono += int(ms * 1e6)

    def appends(self, seconds: float) -> None:
        count = max(1, int(seconds * 1000 / CHUNK_MS))
        self.runs.append((self.n, count, self.mono))
        self.n += count
        self.mono += count * CHUNK_MS * 1_000_000

    def emit(self, direction: str, event: dict, *, audio: bytes | None = None) -> None:
        self.tick(self.rng.uniform(0.2, 3.0))
        etype = event["type"]
        if direction == SERVER:
            event = {"type": etype, "event_id": self.new_id("event"), **{k: v for k, v in event.items() if k != "type"}}
        payload = orjson.dumps(event).decode()
        audio_at = None
        if audio is not None:  # the delta text is the payload's last string value: cut it out there
            audio_at = len(payload) - 2
        sub = event.get("response") or event.get("item") or {}
        response_id = event.get("response_id") or (sub.get("id") if etype in ("response.created", "response.done") else None)
        item_id = event.get("item_id") or (sub.get("id") if "item" in event and isinstance(sub, dict) else None)
        self.rows.append((self.n, self.mono, direction, etype, event.get("event_id"), response_id, item_id,
                          payload, audio, audio_at))
        self.n += 1

    # -- conversation helpers -------------------------------------------------------------------------
    def add_item(self, item: dict, *, done: bool = True) -> None:
        prev = self.items[-1] if self.items else None
        self.items.append(item["id"])
        self.emit(SERVER, {"type": "conversation.item.added", "previous_item_id": prev,
                           "item": {**item, "status": "in_progress"} if not done else item})

    def table(self, in_chunks: list[bytes]) -> pa.Table:
        n = self.n
        pos = np.fromiter((r[0] for r in self.rows), dtype=np.int64, count=len(self.rows))
        is_row = np.zeros(n, dtype=bool)
        is_row[pos] = True
        take = np.full(n, len(self.rows), dtype=np.int64)  # index into rows; len(rows) = the append row
        take[pos] = np.arange(len(self.rows))
        mono = np.empty(n, dtype=np.int64)
        mono[pos] = [r[1] for r in self.rows]
        for start, count, m0 in self.runs:
            mono[start:start + count] = m0 + np.arange(count, dtype=np.int64) * CHUNK_MS * 1_000_000
        idx = pa.array(take)
        null_for_appends = pa.array(np.where(is_row, take, 0), mask=~is_row)

        def col(i: int, append_value, typ):
            return pa.array([r[i] for r in self.rows] + [append_value], typ).take(idx)

        def nullable(i: int, typ):
            return pa.array([r[i] for r in self.rows] + [None], typ).take(null_for_appends)

        # Input audio: each append carries one of a few chunks (compresses like real silence does not,
        # but keeps the files a sane size); output deltas carry their own bytes.
        audio_rows = [r[8] for r in self.rows] + in_chunks
        audio_take = take.copy()
        n_app = n - len(self.rows)
        audio_take[~is_row] = len(self.rows) + (np.arange(n_app) % len(in_chunks))
        audio = pa.array(audio_rows, pa.binary()).take(pa.array(audio_take))
        sizes = [len(r[7]) + (4 * ((len(r[8]) + 2) // 3) if r[8] is not None else 0) for r in self.rows]
        return pa.table(
            {
                "session_id": pa.array([self.sid], pa.string()).take(pa.array(np.zeros(n, dtype=np.int64))),
                "seq": pa.array(np.arange(n, dtype=np.int64)),
                "ts": pa.array(self.start_us + mono // 1000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "mono_ns": pa.array(mono),
                "direction": col(2, CLIENT, pa.string()),
                "type": col(3, "input_audio_buffer.append", pa.string()),
                "event_id": nullable(4, pa.string()),
                "response_id": nullable(5, pa.string()),
                "item_id": nullable(6, pa.string()),
                "payload": col(7, APPEND_PAYLOAD, pa.string()),
                "audio": audio,
                "audio_at": col(9, len(APPEND_PREFIX), pa.int32()),
                "size": pa.array(sizes + [APPEND_SIZE], pa.int32()).take(idx),
            },
            schema=EVENT_SCHEMA,
        )


# -- one session's script -------------------------------------------------------------------------------
class Script:
    """Writes a session event by event and tallies what each client `response.create` became."""

    def __init__(self, b: SessionBuilder, tally: collections.Counter, forced: collections.Counter) -> None:
        self.b = b
        self.rng = b.rng
        self.tally = tally
        self.forced = forced
        self.conv = b.new_id("conv")
        self.out_chunks = [bytes(self.rng.getrandbits(8) for _ in range(OUT_CHUNK)) for _ in range(2)]

    def open(self) -> None:
        b = self.b
        b.emit(PROXY, {"type": "proxy.open", "path": "/v1/realtime", "query": f"model={MODEL}",
                       "client": "127.0.0.1:50123", "upstream": "ws://127.0.0.1:9000"})
        session = {"type": "realtime", "object": "realtime.session", "id": b.new_id("sess"), "model": MODEL,
                   "output_modalities": ["audio"], "instructions": "You are a helpful agent.", "tools": [],
                   "tool_choice": "auto", "max_output_tokens": "inf", "truncation": "auto",
                   "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                       "transcription": None, "turn_detection": {"type": "server_vad"}},
                             "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}}}
        b.emit(SERVER, {"type": "session.created", "session": session})
        update = {"type": "realtime", "tools": TOOLS + [MCP_TOOL],
                  "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
        b.emit(CLIENT, {"type": "session.update", "event_id": "evt_update_1", "session": update})
        session = {**session, "tools": update["tools"]}
        session["audio"]["input"]["transcription"] = {"model": "gpt-4o-transcribe"}
        b.emit(SERVER, {"type": "session.updated", "session": session})

    def close(self) -> None:
        self.b.emit(PROXY, {"type": "proxy.close", "client_code": 1000, "client_reason": "",
                            "upstream_code": 1000, "upstream_reason": "", "closed_first": "client"})

    # -- responses ----------------------------------------------------------------------------------
    def response_object(self, rid: str, *, default: bool, status: str, details, output: list, meta, text: bool):
        usage = None if status == "in_progress" else {
            "total_tokens": 120, "input_tokens": 100, "output_tokens": 20,
            "input_token_details": {"text_tokens": 40, "audio_tokens": 60, "cached_tokens": 0},
            "output_token_details": {"text_tokens": 20 if text else 5, "audio_tokens": 0 if text else 15}}
        return {"object": "realtime.response", "id": rid, "status": status, "status_details": details,
                "output": output, "conversation_id": self.conv if default else None,
                "output_modalities": ["text"] if text else ["audio"], "max_output_tokens": "inf",
                "usage": usage, "metadata": meta}

    def stream(self, rid: str, *, default: bool, kind: str, name: str | None = None,
               label: str | None = None, cut: bool = False) -> dict:
        """The output item of a response, streamed; returns the final item (no audio bytes)."""
        b, rng = self.b, self.rng
        iid = b.new_id("item")
        if kind == "function":
            item = {"id": iid, "type": "function_call", "call_id": b.new_id("call"), "name": name, "arguments": ""}
        elif kind == "mcp":
            item = {"id": iid, "type": "mcp_call", "server_label": label, "name": name, "arguments": ""}
        else:
            item = {"id": iid, "type": "message", "role": "assistant", "content": []}
        b.emit(SERVER, {"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                        "item": {**item, "status": "in_progress"}})
        if default:
            b.add_item(item, done=False)
        ids = {"response_id": rid, "item_id": iid, "output_index": 0}
        if kind in ("function", "mcp"):
            args = '{"response":"summary of the call"}'
            prefix = "response.function_call_arguments" if kind == "function" else "response.mcp_call_arguments"
            for piece in (args[:12], args[12:24], args[24:]):
                b.emit(SERVER, {"type": f"{prefix}.delta", **ids, "delta": piece})
            b.emit(SERVER, {"type": f"{prefix}.done", **ids, "arguments": args})
            final = {**item, "arguments": args, "status": "completed"}
        else:
            part_ids = {**ids, "content_index": 0}
            audio = kind == "audio"
            b.emit(SERVER, {"type": "response.content_part.added", **part_ids,
                            "part": {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}})
            words = [f"word{i} " for i in range(rng.randint(4, 14) if not cut else 3)]
            if audio:
                for i, w in enumerate(words):
                    b.emit(SERVER, {"type": "response.output_audio_transcript.delta", **part_ids, "delta": w})
                    for k in range(rng.randint(6, 12)):
                        b.emit(SERVER, {"type": "response.output_audio.delta", **part_ids, "delta": ""},
                               audio=self.out_chunks[k % 2])
                b.emit(SERVER, {"type": "response.output_audio.done", **part_ids})
                b.emit(SERVER, {"type": "response.output_audio_transcript.done", **part_ids,
                                "transcript": "".join(words)})
                part = {"type": "output_audio", "transcript": "".join(words)}
            else:
                for w in words:
                    b.emit(SERVER, {"type": "response.output_text.delta", **part_ids, "delta": w})
                b.emit(SERVER, {"type": "response.output_text.done", **part_ids, "text": "".join(words)})
                part = {"type": "output_text", "text": "".join(words)}
            b.emit(SERVER, {"type": "response.content_part.done", **part_ids,
                            "part": {**part, "type": part["type"].removeprefix("output_")}})
            final = {**item, "content": [part], "status": "incomplete" if cut else "completed"}
        b.emit(SERVER, {"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": final})
        if default:
            b.emit(SERVER, {"type": "conversation.item.done", "previous_item_id": self.prev_of(iid), "item": final})
        return final

    def prev_of(self, iid: str) -> str | None:
        i = self.b.items.index(iid)
        return self.b.items[i - 1] if i else None

    def finish(self, rid: str, *, default: bool, status: str, details, output: list, meta, text: bool) -> None:
        self.b.emit(SERVER, {"type": "response.done", "response": self.response_object(
            rid, default=default, status=status, details=details, output=output, meta=meta, text=text)})
        self.b.emit(SERVER, {"type": "rate_limits.updated", "rate_limits": [
            {"name": "tokens", "limit": 40000, "remaining": 38000, "reset_seconds": 2.1}]})

    # -- a voice turn (server VAD) ------------------------------------------------------------------
    def turn(self) -> None:
        b, rng = self.b, self.rng
        b.appends(rng.uniform(0.5, 3.0))
        uid = b.new_id("item")
        b.emit(SERVER, {"type": "input_audio_buffer.speech_started", "audio_start_ms": b.mono // 1_000_000, "item_id": uid})
        b.appends(rng.uniform(1.0, 6.0))
        b.emit(SERVER, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": b.mono // 1_000_000, "item_id": uid})
        b.emit(SERVER, {"type": "input_audio_buffer.committed", "item_id": uid,
                        "previous_item_id": b.items[-1] if b.items else None})
        user = {"id": uid, "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        b.add_item(user)
        b.emit(SERVER, {"type": "conversation.item.done", "previous_item_id": self.prev_of(uid), "item": user})
        rid = b.new_id("resp")
        b.emit(SERVER, {"type": "response.created", "response": self.response_object(
            rid, default=True, status="in_progress", details=None, output=[], meta=None, text=False)})
        if rng.random() < 0.03:  # the app asks for a second default response while this one runs
            self.request(rng.choice(["absent", "auto"]), "default", "rejected-in-order")
        b.emit(SERVER, {"type": "conversation.item.input_audio_transcription.completed", "item_id": uid,
                        "content_index": 0, "transcript": "user words here",
                        "usage": {"type": "duration", "seconds": 2.5}})
        roll = rng.random()
        if roll < 0.10:  # a function call, answered by the app
            final = self.stream(rid, default=True, kind="function", name="lookup_customer")
            self.finish(rid, default=True, status="completed", details=None, output=[final], meta=None, text=False)
            out = {"id": b.new_id("item"), "type": "function_call_output", "call_id": final["call_id"],
                   "output": '{"customer_id":"C-1"}'}
            b.emit(CLIENT, {"type": "conversation.item.create", "item": out})
            b.add_item(out)
            b.emit(SERVER, {"type": "conversation.item.done", "previous_item_id": self.prev_of(out["id"]), "item": out})
            self.request(rng.choice(["absent", "absent", "auto"]), "default", "completed", kind="audio")
        elif roll < 0.14:  # barge-in while the answer still streams: cancelled, then truncated
            final = self.stream(rid, default=True, kind="audio", cut=True)
            b.emit(SERVER, {"type": "input_audio_buffer.speech_started", "audio_start_ms": b.mono // 1_000_000,
                            "item_id": b.new_id("item")})
            self.finish(rid, default=True, status="cancelled", details={"type": "cancelled", "reason": "turn_detected"},
                        output=[final], meta=None, text=False)
            self.truncate(final["id"])
        else:
            final = self.stream(rid, default=True, kind="audio")
            self.finish(rid, default=True, status="completed", details=None, output=[final], meta=None, text=False)
            if roll < 0.20:  # interrupted while playing: the app truncates what was not heard
                self.truncate(final["id"])
        b.appends(rng.uniform(1.0, 5.0))  # playback time: the microphone keeps streaming
        if rng.random() < 0.03 and len(b.items) > 4:
            victim = b.items[0]
            b.emit(CLIENT, {"type": "conversation.item.delete", "event_id": b.new_id("evt"), "item_id": victim})
            b.items.remove(victim)
            b.emit(SERVER, {"type": "conversation.item.deleted", "item_id": victim})

    def truncate(self, iid: str) -> None:
        ms = self.rng.randint(200, 1500)
        self.b.emit(CLIENT, {"type": "conversation.item.truncate", "item_id": iid, "content_index": 0, "audio_end_ms": ms})
        self.b.emit(SERVER, {"type": "conversation.item.truncated", "item_id": iid, "content_index": 0, "audio_end_ms": ms})

    # -- client requests ----------------------------------------------------------------------------
    def pick_outcome(self, form: str, scope: str) -> str:
        if form == "invalid":
            return "rejected-by-id" if self.rng.random() < 0.7 else "rejected-in-order"
        r = self.rng.random()
        fail = 0.5 if (form == "function" and scope == "out-of-band") else 0.04
        for outcome, p in (("failed", fail), ("cancelled", 0.03), ("incomplete", 0.03), ("rejected-by-id", 0.02)):
            if r < p:
                return outcome
            r -= p
        return "completed"

    def request(self, form: str, scope: str, outcome: str, *, kind: str = "text", unfinished: str | None = None) -> None:
        """One client response.create and its answer. `outcome` adds how a rejection arrives."""
        b, rng = self.b, self.rng
        default = scope == "default"
        params: dict = {}
        if not default:
            params["conversation"] = "none"
            params["metadata"] = {"purpose": rng.choice(["summary", "classify", "lookup"])}
            params["output_modalities"] = ["text"]
            if rng.random() < 0.3:
                params["input"] = [] if rng.random() < 0.5 else [{"type": "item_reference", "id": b.items[-1]}] if b.items else []
        if form != "absent":
            params["tool_choice"] = CHOICES[form]
        if form in ("function", "required", "mcp") or rng.random() < 0.3:
            params["tools"] = TOOLS + ([MCP_TOOL] if form == "mcp" else [])
        with_id = outcome == "rejected-by-id" or rng.random() < 0.7
        event_id = b.new_id("evt") if with_id else None
        event = {"type": "response.create", **({"event_id": event_id} if event_id else {})}
        if params or rng.random() < 0.5:
            event["response"] = params
        b.emit(CLIENT, event)
        if unfinished == "no-answer":
            self.tally[(form, scope, "unfinished")] += 1
            return
        if outcome.startswith("rejected"):
            by_id = outcome == "rejected-by-id" and event_id is not None
            code, param = ("missing_required_parameter", "response.tool_choice.name") if form == "invalid" else (
                ("conversation_already_has_active_response", None) if default and not by_id else ("invalid_value", "response.metadata"))
            b.emit(SERVER, {"type": "error", "error": {"type": "invalid_request_error", "code": code,
                            "message": "rejected", "param": param, "event_id": event_id if by_id else None}})
            self.tally[(form, scope, "rejected")] += 1
            return
        meta = params.get("metadata")
        rid = b.new_id("resp")
        text = not default
        b.emit(SERVER, {"type": "response.created", "response": self.response_object(
            rid, default=default, status="in_progress", details=None, output=[], meta=meta, text=text)})
        if unfinished == "no-done":
            self.tally[(form, scope, "unfinished")] += 1
            return
        output: list = []
        forced = None
        if outcome in ("completed", "incomplete", "cancelled"):
            if form in ("function", "required", "mcp") and (outcome != "completed" or rng.random() < 0.92):
                if form == "mcp":
                    output = [self.stream(rid, default=default, kind="mcp", name="find_account", label="crm")]
                else:
                    output = [self.stream(rid, default=default, kind="function", name="return_response")]
            else:
                output = [self.stream(rid, default=default, kind=kind)]
        if form in ("function", "required", "mcp"):
            forced = any(o["type"] in ("function_call", "mcp_call") for o in output)
        details = {
            "completed": None,
            "failed": {"type": "failed", "error": {"type": "server_error"}},
            "cancelled": {"type": "cancelled", "reason": "client_cancelled"},
            "incomplete": {"type": "incomplete", "reason": "max_output_tokens"},
        }[outcome]
        if outcome == "cancelled":
            b.emit(CLIENT, {"type": "response.cancel", "response_id": rid})
        self.finish(rid, default=default, status=outcome, details=details, output=output, meta=meta, text=text)
        self.tally[(form, scope, outcome)] += 1
        self.forced[(form, scope, forced)] += 1

    def out_of_band(self) -> None:
        form = self.rng.choices(list(FORM_WEIGHTS), weights=list(FORM_WEIGHTS.values()))[0]
        self.request(form, "out-of-band", self.pick_outcome(form, "out-of-band"))


def generate_session(sid: str, start_us: int, minutes: float, budget: int, seed: int,
                     tally: collections.Counter, forced: collections.Counter,
                     in_chunks: list[bytes], oob_per_turn: float) -> pa.Table:
    rng = random.Random(f"{seed}:{sid}")
    b = SessionBuilder(sid, start_us, rng)
    s = Script(b, tally, forced)
    s.open()
    while b.mono < minutes * 60e9 and b.n < budget:
        s.turn()
        for _ in range(int(oob_per_turn) + (rng.random() < oob_per_turn % 1)):
            s.out_of_band()
    if rng.random() < 0.3:  # the app hung up with a request still open
        form = rng.choice(["required", "function", "auto"])
        s.request(form, "out-of-band", "completed", unfinished=rng.choice(["no-answer", "no-done"]))
    s.close()
    return b.table(in_chunks)


def generate(out: Path, events: int, *, seed: int = 0, minutes: float = 60.0,
             request_rate: float = 0.01) -> dict:
    """Write sessions until at least `events` rows exist; return (and write) the expected counts."""
    rng = random.Random(seed)
    in_chunks = [bytes(rng.getrandbits(8) for _ in range(IN_CHUNK)) for _ in range(4)]
    tally: collections.Counter = collections.Counter()
    forced: collections.Counter = collections.Counter()
    start = dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.timezone.utc)
    written = sessions = 0
    # ≈650 events per voice turn; an out-of-band request costs ≈12 events.
    oob_per_turn = request_rate * 650 / (1 - 12 * request_rate)
    while written < events:
        start_us = int(start.timestamp() * 1e6) + sessions * 3_700_000_000
        stamp = dt.datetime.fromtimestamp(start_us / 1e6, dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        sid = f"{stamp}-gen{seed % 1000:03d}{sessions:03d}"[:28]
        length = minutes if sessions == 0 else rng.uniform(2, minutes)
        table = generate_session(sid, start_us, length, events - written, seed, tally, forced, in_chunks, oob_per_turn)
        archive.write_parquet(table, archive.parquet_path(out, sid))
        written += table.num_rows
        sessions += 1
    expected = {
        "events": written,
        "sessions": sessions,
        "requests": sum(tally.values()),
        "seed": seed,
        "counts": [{"form_sent": f, "scope": s, "outcome": o, "n": n} for (f, s, o), n in sorted(tally.items())],
        "forced_call": [{"form_sent": f, "scope": s, "forced_call": c, "n": n}
                        for (f, s, c), n in sorted(forced.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2])))
                        if f in ("required", "function", "mcp")],
    }
    sidecar_path(out).write_text(json.dumps(expected, indent=1) + "\n")
    return expected


def sidecar_path(out: Path) -> Path:
    """Where the expected counts of the archive at `out` are written (beside it, not inside it)."""
    out = Path(out)
    return out.with_name(out.name + ".expected.json")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="at least this many events (default 1M)")
    ap.add_argument("--out", type=Path, required=True, help="archive root to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=60.0, help="longest session; the first one has this length")
    ap.add_argument("--request-rate", type=float, default=0.01, help="share of events that are out-of-band response.create")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    expected = generate(args.out, args.events, seed=args.seed, minutes=args.minutes, request_rate=args.request_rate)
    print(f"{expected['events']} events, {expected['sessions']} sessions, {expected['requests']} requests "
          f"in {time.perf_counter() - t0:.1f}s -> {args.out} (+ {sidecar_path(args.out).name})", file=sys.stderr)


if __name__ == "__main__":
    main()
