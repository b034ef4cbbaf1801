"""Record the golden sessions of tests/data/golden/ from the simulator, through the recording proxy.

    python tests/data/make_golden.py          # rewrites tests/data/golden/

Each scenario is one session: a client drives the simulator (seed 0, no faults) through
`proxy.running`, and at named checkpoints retrieves every item it expects in the conversation, in
the order it expects from the documented semantics (appends at the end, `root` at the head, inserts after
an id, deletes). `<name>.expected.json` holds, per checkpoint, the seq of the checkpoint's last
`conversation.item.retrieved` event and the retrieved items (content and base64 audio included): the state
a rebuild must produce there. The archive of each scenario is `golden/<name>/` (a normal archive root).
Deterministic apart from ids that embed wall-clock time (session ids, timestamps).
"""
from __future__ import annotations

import array
import asyncio
import base64
import json
import math
import shutil
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from rtreplay import simulator
from rtreplay.recorder import proxy

HERE = Path(__file__).resolve().parent / "golden"
TOOLS = [{"type": "function", "name": "lookup_customer", "description": "Find a customer id",
          "parameters": {"type": "object", "properties": {"phone": {"type": "string"}}, "required": ["phone"]}}]


def pcm(ms: int, loud: bool) -> bytes:
    return array.array("h", (int(8000 * math.sin(i * 0.115)) if loud else 0 for i in range(ms * 24))).tobytes()


class Driver:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.order: list[str] = []  # the conversation as the client expects it
        self.retrieved = 0  # conversation.item.retrieved events received so far
        self.checkpoints: list[dict] = []

    async def send(self, kind: str, **fields) -> None:
        await self.ws.send(orjson.dumps({"type": kind, **fields}).decode())

    async def until(self, kind: str, **match) -> list[dict]:
        events = []
        while True:
            e = orjson.loads(await self.ws.recv())
            events.append(e)
            if e["type"] == "conversation.item.retrieved":
                self.retrieved += 1
            if e["type"] == kind and all(e.get(k) == v for k, v in match.items()):
                return events

    async def create(self, item: dict, previous: str | None = None, **extra) -> str:
        fields = {"item": item, **({"previous_item_id": previous} if previous else {}), **extra}
        await self.send("conversation.item.create", **fields)
        added = (await self.until("conversation.item.done"))[-1]["item"]
        iid = added["id"]
        if previous == "root":
            self.order.insert(0, iid)
        elif previous:
            self.order.insert(self.order.index(previous) + 1, iid)
        else:
            self.order.append(iid)
        return iid

    async def respond(self, **response) -> dict:
        await self.send("response.create", **({"response": response} if response else {}))
        done = (await self.until("response.done"))[-1]["response"]
        if response.get("conversation") != "none":
            self.order += [o["id"] for o in done["output"]]
        return done

    async def checkpoint(self, name: str) -> None:
        items = []
        for iid in self.order:
            await self.send("conversation.item.retrieve", item_id=iid)
            items.append((await self.until("conversation.item.retrieved"))[-1]["item"])
        self.checkpoints.append({"name": name, "retrieved_count": self.retrieved, "items": items})


async def text_scenario(d: Driver) -> None:
    await d.send("session.update", session={"type": "realtime", "output_modalities": ["text"], "tools": TOOLS,
                                            "instructions": "Be brief."})
    await d.until("session.updated")
    u1 = await d.create({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]})
    await d.respond()
    await d.checkpoint("first answer")
    await d.create({"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Summary: greeting"}]},
                   "root")
    await d.create({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "inserted"}]}, u1)
    call = await d.respond(tool_choice="required")
    fc = next(o for o in call["output"] if o["type"] == "function_call")
    await d.create({"type": "function_call_output", "call_id": fc["call_id"], "output": '{"customer_id":"C-42"}'})
    await d.respond()
    await d.checkpoint("after tool call")
    await d.respond(conversation="none", metadata={"purpose": "summary"}, output_modalities=["text"])
    await d.respond(conversation="none", tool_choice={"type": "function", "name": "lookup_customer"}, input=[])
    await d.send("conversation.item.delete", item_id=u1)
    await d.until("conversation.item.deleted")
    d.order.remove(u1)
    await d.checkpoint("after out-of-band and delete")


async def audio_scenario(d: Driver) -> None:
    await d.send("session.update", session={"type": "realtime", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}}}})
    await d.until("session.updated")
    for chunk in _chunks(pcm(400, False) + pcm(800, True) + pcm(600, False)):
        await d.send("input_audio_buffer.append", audio=chunk)
    events = await d.until("response.done")
    d.order += [e["item_id"] for e in events if e["type"] == "input_audio_buffer.committed"]
    d.order += [o["id"] for o in events[-1]["response"]["output"]]
    assistant = events[-1]["response"]["output"][0]["id"]
    await d.checkpoint("first turn")
    await d.send("conversation.item.truncate", item_id=assistant, content_index=0, audio_end_ms=300)
    await d.until("conversation.item.truncated")
    await d.checkpoint("after truncation")
    # A second turn, interrupted by speech while the answer streams (the simulator paces responses).
    for chunk in _chunks(pcm(300, False) + pcm(600, True) + pcm(300, False)):
        await d.send("input_audio_buffer.append", audio=chunk)
    first = await d.until("response.created")
    d.order += [e["item_id"] for e in first if e["type"] == "input_audio_buffer.committed"]
    for chunk in _chunks(pcm(500, True)):
        await d.send("input_audio_buffer.append", audio=chunk)
    cancelled = await d.until("response.done")
    d.order += [o["id"] for o in cancelled[-1]["response"]["output"]]
    for chunk in _chunks(pcm(400, False)):
        await d.send("input_audio_buffer.append", audio=chunk)
    rest = await d.until("response.done")
    d.order += [e["item_id"] for e in rest if e["type"] == "input_audio_buffer.committed"]
    d.order += [o["id"] for o in rest[-1]["response"]["output"]]
    await d.checkpoint("after interruption")


def _chunks(audio: bytes, ms: int = 20) -> list[str]:
    step = ms * 48
    return [base64.b64encode(audio[i:i + step]).decode() for i in range(0, len(audio), step)]


SCENARIOS = {"text": (text_scenario, 0.0), "audio": (audio_scenario, 0.03)}


async def record(name: str) -> None:
    scenario, interval = SCENARIOS[name]
    out = HERE / name
    shutil.rmtree(out, ignore_errors=True)
    async with simulator.serve(seed=0, faults="none", interval=interval, epoch=1_788_000_000) as sim:
        async with proxy.running(upstream=sim.url, out=out) as running:
            async with connect(f"{running.url}/v1/realtime?model=gpt-realtime", max_size=1 << 24) as ws:
                d = Driver(ws)
                await d.until("session.created")
                await scenario(d)
    (HERE / f"{name}.expected.json").write_text(json.dumps({"checkpoints": d.checkpoints}, indent=1) + "\n")


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name in SCENARIOS:
        asyncio.run(asyncio.wait_for(record(name), 60))
        print(f"recorded {name} -> {HERE / name}")


if __name__ == "__main__":
    main()
