"""The scripted app `rtreplay demo` runs through the proxy: a small support agent, as a real app would be.

Each conversation: a text turn, a turn where the model calls a tool and gets its output, a spoken turn
(PCM16 streamed in 20 ms chunks; the server's turn detection answers it, while the app already sends its first
out-of-band request — the race of docs/realtime-protocol.md §11.2), then one out-of-band
`response.create` per `tool_choice` form — the pattern of the two reports in shared/seeds/: "summarize the
conversation so far" through a forced `return_response` tool, with `conversation: "none"` and metadata.
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
        audio = tone(0.8, 8000) + tone(0.7, 0)
        chunk = 960  # 20 ms of PCM16 at 24 kHz
        for at in range(0, len(audio), chunk):
            await s.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio[at : at + chunk]).decode()})
        before = len(s.seen)
        await out_of_band(RACING_FORM)
        created = [e["response"].get("metadata") for e in s.seen[before:] if e["type"] == "response.created"]
        counts.raced += created[:1] == [None]  # the first response.created was VAD's, not the request's

        def vad_done(e: dict) -> bool:
            return e["type"] == "response.done" and e["response"].get("metadata") is None

        if not any(vad_done(e) for e in s.seen):
            await s.until(vad_done, timeout=15)
        for form in OOB_FORMS:
            if form != RACING_FORM:
                await out_of_band(form)


async def run_demo_app(url: str, conversations: int = 4, concurrency: int = 2) -> DemoCounts:
    """Run `conversations` scripted sessions against `url` (ws://host:port), a few at a time."""
    counts = DemoCounts()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await run_conversation(url, i, counts)

    await asyncio.gather(*(one(i) for i in range(conversations)))
    return counts
