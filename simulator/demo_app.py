"""The scripted app `rtreplay demo` runs through the proxy: a small support agent, as a real app would be.

Each conversation: a text turn, a turn where the model calls a tool and gets its output, a spoken turn
(PCM16 streamed in 20 ms chunks; the server's turn detection answers it, while the app already sends its first
out-of-band request — the race of docs/realtime-protocol.md §11.2), then one out-of-band
`response.create` per `tool_choice` form — the pattern of the two reports in shared/seeds/: "summarize the
conversation so far" through a forced `return_response` tool, with `conversation: "none"` and metadata.
Sessions that answer in audio (every other one) end with a caller who talks over the answer (a barge-in): the app
stops playback at `input_audio_buffer.speech_started` and truncates the cut item where the caller stopped
hearing it — mostly right, once beyond the audio generated (the "Audio content of …ms is already shorter than
…ms" error), once not at all (`BARGE_IN_APP`).
It speaks only the wire protocol (websockets + JSON), so it works against the simulator or the real API.
"""
from __future__ import annotations

import asyncio
import base64
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.asyncio.client import ClientConnection, connect

# The key the demo app "authenticates" with: obviously fake; the proxy must redact it before disk.
DEMO_API_KEY = "sk-fake-demo-key-0000000000000000000000000000"

TOOLS = [
    {
        "type": "function",
        "name": "lookup_customer",
        "description": "Find a customer by email address",
        "parameters": {
            "type": "object",
            "properties": {"email": {"type": "string"}},
            "required": ["email"],
            "additionalProperties": False,
        },
    }
]
RETURN_RESPONSE = {
    "type": "function",
    "name": "return_response",
    "description": "Return the response to the agent",
    "parameters": {
        "type": "object",
        "properties": {"response": {"type": "string"}},
        "required": ["response"],
        "additionalProperties": False,
    },
}
MCP_TOOL = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.invalid/sse"}

# tool_choice forms the out-of-band requests use, by the name the report gives them. None = key absent.
OOB_FORMS: dict[str, Any] = {
    "function": {"type": "function", "name": "return_response"},
    "required": "required",
    "auto": "auto",
    "none": "none",
    "absent": None,
    "mcp": {"type": "mcp", "server_label": "docs"},
    "invalid": {"type": "function", "function": {"name": "return_response"}},  # the Chat Completions shape
}

RACING_FORM = "required"  # the out-of-band request sent while server VAD answers the spoken turn
# What the app does after a barge-in, by spoken session (1st, 2nd, …, then again): truncate at the audio heard;
# truncate at a playback clock that ran on (beyond the audio generated: an error); forget to truncate.
BARGE_IN_APP = ("at_heard", "at_heard", "beyond_audio", "never", "at_heard")
HEARD_WORDS = 2  # words of the answer the app has received when the caller talks over it
PLAYOUT_MS = 300  # the app plays this far behind what it received (its jitter buffer)
BEYOND_MS = 9100  # the forum report's "Audio content of 2650ms is already shorter than 9100ms"
PCM_BYTES_PER_MS = 48  # PCM16 at 24 kHz, the session's output format
CHUNK = 960  # 20 ms of PCM16 at 24 kHz

USERS = [
    ("alice@example.com", "My order 1042 never arrived."),
    ("bob@example.com", "I was charged twice for my subscription."),
    ("carol@example.com", "How do I change my delivery address?"),
    ("dan@example.com", "The app crashes when I open my invoices."),
]


@dataclass
class DemoCounts:
    """What the app sent, counted by the app itself: the ground truth the report is checked against."""

    requests: Counter = field(default_factory=Counter)  # (scope, form) -> response.create sent
    outcomes: Counter = field(default_factory=Counter)  # (scope, form, outcome as the app saw it)
    sessions: int = 0
    raced: int = 0  # spoken turns whose VAD response.created reached the app before its own request's
    barge_ins: Counter = field(default_factory=Counter)  # what the app did after each barge-in (BARGE_IN_APP)


def tone(seconds: float, amplitude: int, rate: int = 24000) -> bytes:
    """PCM16 mono: a 440 Hz tone (amplitude 0 = silence)."""
    n = int(seconds * rate)
    return b"".join(
        int(amplitude * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True) for i in range(n)
    )


class Session:
    """One app connection: send events, wait for the server event that concludes a step."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict] = []

    async def send(self, event: dict) -> None:
        await self.ws.send(json.dumps(event))

    async def speak(self, pcm: bytes) -> None:
        """Stream PCM16 audio in 20 ms appends, as a microphone would."""
        for at in range(0, len(pcm), CHUNK):
            await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[at:at + CHUNK]).decode()})

    async def until(self, done: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                event = json.loads(await self.ws.recv())
                self.seen.append(event)
                if done(event):
                    return event

    async def respond(self, response: dict | None, event_id: str) -> dict:
        """Send response.create and wait for its response.done, or the error that rejects it. A request with
        metadata knows its response.created by the echo: server VAD may create the turn's response first
        (docs/realtime-protocol.md §11.2)."""
        create: dict = {"type": "response.create", "event_id": event_id}
        if response is not None:
            create["response"] = response
        await self.send(create)
        created: dict[str, str] = {}
        metadata = (response or {}).get("metadata")

        def concludes(e: dict) -> bool:
            if e["type"] == "error" and (e.get("error") or {}).get("event_id") == event_id:
                return True
            if e["type"] == "response.created" and not created and (
                    metadata is None or e["response"].get("metadata") == metadata):
                created["id"] = e["response"]["id"]
            return e["type"] == "response.done" and e["response"]["id"] == created.get("id")

        return await self.until(concludes)


def _outcome(event: dict) -> str:
    if event["type"] == "error":
        return "rejected"
    return event["response"]["status"]


async def run_conversation(url: str, index: int, counts: DemoCounts, *, model: str = "gpt-realtime") -> None:
    email, problem = USERS[index % len(USERS)]
    headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
    async with connect(f"{url}/v1/realtime?model={model}", additional_headers=headers, max_size=1 << 24) as ws:
        s = Session(ws)
        counts.sessions += 1
        await s.until(lambda e: e["type"] == "session.created")
        await s.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "You are a helpful support agent for an online shop.",
                    "tools": TOOLS,
                    "tool_choice": "auto",
                    "output_modalities": ["audio"] if index % 2 else ["text"],
                },
            }
        )
        await s.until(lambda e: e["type"] == "session.updated")

        async def ask(text: str, n: int) -> dict:
            await s.send(
                {
                    "type": "conversation.item.create",
                    "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
                }
            )
            await s.until(lambda e: e["type"] == "conversation.item.done")
            done = await s.respond(None, f"demo_{index}_turn_{n}")
            counts.requests[("default", "absent")] += 1
            counts.outcomes[("default", "absent", _outcome(done))] += 1
            return done

        await ask(problem, 1)
        done = await ask(f"Please use lookup_customer for {email}.", 2)
        for item in done.get("response", {}).get("output", []):
            if item.get("type") == "function_call":
                await s.send(
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "function_call_output",
                            "call_id": item["call_id"],
                            "output": json.dumps({"customer_id": f"cus_{1000 + index}", "tier": "gold"}),
                        },
                    }
                )
                await s.until(lambda e: e["type"] == "conversation.item.done")
                done = await s.respond(None, f"demo_{index}_turn_3")
                counts.requests[("default", "absent")] += 1
                counts.outcomes[("default", "absent", _outcome(done))] += 1

        # Out-of-band requests, one per tool_choice form (seeds/004): summarise through return_response.
        async def out_of_band(form: str) -> None:
            choice = OOB_FORMS[form]
            response: dict[str, Any] = {
                "conversation": "none",
                "instructions": "Summarize the conversation so far",
                "tools": [RETURN_RESPONSE] + ([MCP_TOOL] if form == "mcp" else []),
                "output_modalities": ["text"],
                "metadata": {"response_type": "out-of-band", "form": form},
            }
            if choice is not None:
                response["tool_choice"] = choice
            done = await s.respond(response, f"demo_{index}_oob_{form}")
            counts.requests[("out-of-band", form)] += 1
            counts.outcomes[("out-of-band", form, _outcome(done))] += 1

        # A spoken turn: speech then silence, streamed at 20 ms a chunk; server VAD commits and answers. The
        # app asks its first out-of-band question at once, as voice apps do: the turn's VAD response is
        # created first, and the request is answered by the next response.created (the race of §11.2).
        await s.speak(tone(0.8, 8000) + tone(0.7, 0))
        before = len(s.seen)
        await out_of_band(RACING_FORM)
        created = [e["response"].get("metadata") for e in s.seen[before:] if e["type"] == "response.created"]
        counts.raced += created[:1] == [None]  # the first response.created was VAD's, not the request's

        def vad_done(e: dict) -> bool:
            return e["type"] == "response.done" and e["response"].get("metadata") is None

        if not any(vad_done(e) for e in s.seen[before:]):  # the turn's answer (the app's own have no metadata either)
            await s.until(lambda e: any(vad_done(e) for e in s.seen[before:]), timeout=15)
        for form in OOB_FORMS:
            if form != RACING_FORM:
                await out_of_band(form)
        if index % 2:  # the spoken sessions end with a barge-in
            how = BARGE_IN_APP[(index // 2) % len(BARGE_IN_APP)]
            await barge_in(s, how, f"demo_{index}_truncate", vad_done)
            counts.barge_ins[how] += 1


async def barge_in(s: Session, how: str, event_id: str, vad_done: Callable[[dict], bool]) -> None:
    """The caller speaks, pauses (server VAD answers in audio) and talks again once the app has received
    `HEARD_WORDS` words of the answer (the simulator speaks 300 ms a word). On `speech_started` the app stops
    playback and, as the Realtime guide says, truncates the cut item at the point heard — the audio it received
    less its `PLAYOUT_MS` buffer — or, by `how`, at `BEYOND_MS` or not at all. Then the caller pauses and VAD
    answers the interruption."""
    mark = len(s.seen)
    await s.speak(tone(1.2, 8000) + tone(0.5, 0))

    def audio_deltas() -> list[dict]:
        return [e for e in s.seen[mark:] if e["type"] == "response.output_audio.delta"]

    await s.until(lambda e: len(audio_deltas()) >= HEARD_WORDS)
    first = audio_deltas()[0]
    await s.speak(tone(0.4, 8000))  # talks over it
    await s.until(lambda e: e["type"] == "input_audio_buffer.speech_started")  # its own: the first came before
    heard = sum(len(base64.b64decode(e["delta"])) for e in audio_deltas() if e["item_id"] == first["item_id"])
    if how != "never":
        end = max(0, heard // PCM_BYTES_PER_MS - PLAYOUT_MS) if how == "at_heard" else BEYOND_MS
        await s.send({"type": "conversation.item.truncate", "event_id": event_id, "item_id": first["item_id"],
                      "content_index": 0, "audio_end_ms": end})
        await s.until(lambda e: e["type"] == "conversation.item.truncated" or (
            e["type"] == "error" and (e.get("error") or {}).get("event_id") == event_id))
    await s.speak(tone(0.5, 0))

    def answered() -> bool:  # the cut response and the answer to the interruption
        return sum(1 for e in s.seen[mark:] if vad_done(e)) >= 2

    if not answered():
        await s.until(lambda e: answered(), timeout=15)


async def run_demo_app(url: str, conversations: int = 4, concurrency: int = 2) -> DemoCounts:
    """Run `conversations` scripted sessions against `url` (ws://host:port), a few at a time."""
    counts = DemoCounts()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await run_conversation(url, i, counts)

    await asyncio.gather(*(one(i) for i in range(conversations)))
    return counts
