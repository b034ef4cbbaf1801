"""The official `openai` SDK's own realtime client runs a full conversation against the simulator."""
from __future__ import annotations

import array
import asyncio
import base64
import json
import math

from openai import AsyncOpenAI

from rtreplay import simulator
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


async def until(connection, kind: str) -> list:
    events = []
    async for event in connection:
        events.append(event)
        if event.type == kind:
            return events
    raise AssertionError(f"connection ended before {kind}")


def test_openai_sdk_text_tools_out_of_band_and_audio_turn():
    async def main():
        async with simulator.serve(seed=3) as sim:
            client = AsyncOpenAI(api_key="sk-test-fake-key", websocket_base_url=f"{sim.url}/v1")
            async with client.realtime.connect(model="gpt-realtime") as connection:
                assert (await connection.recv()).type == "session.created"
                await connection.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                                         "tools": [WEATHER]})
                await until(connection, "session.updated")

                await connection.conversation.item.create(item={"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "Use get_weather for Paris"}]})
                await connection.response.create()
                call = (await until(connection, "response.done"))[-1].response.output[0]
                assert call.type == "function_call" and call.name == "get_weather"

                await connection.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                                "output": json.dumps({"temp_c": 18})})
                await connection.response.create()
                reply = (await until(connection, "response.done"))[-1].response.output[0]
                assert "get_weather tool returned" in reply.content[0].text

                await connection.response.create(response={"conversation": "none", "instructions": "Summarize",
                                                           "metadata": {"kind": "summary"}})
                summary = (await until(connection, "response.done"))[-1].response
                assert summary.conversation_id is None and summary.metadata == {"kind": "summary"}
                assert "Summary of 4 items" in summary.output[0].content[0].text

                await connection.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
                await until(connection, "session.updated")
                speech = array.array("h", (int(8000 * math.sin(i * 0.1)) for i in range(24 * 600))).tobytes()
                for chunk in (bytes(48 * 300), speech, bytes(48 * 400)):
                    await connection.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
                events = await until(connection, "response.done")
                kinds = [e.type for e in events]
                assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
                assert "response.output_audio.delta" in kinds
                assert events[-1].response.output[0].content[0].type == "output_audio"
    asyncio.run(asyncio.wait_for(main(), 30))


def test_real_traffic_fields_the_sdk_lacks_are_a_named_allowance_not_a_hole(monkeypatch):
    """§11.4: phase, obfuscation and reasoning_tokens pass; anything else wrong still fails."""
    from rtreplay.simulator import validate

    monkeypatch.delenv("RTREPLAY_SIM_VIOLATIONS")  # this test's deliberate violation stays in memory

    before = len(validate.VIOLATIONS)
    item = {"id": "item_1", "object": "realtime.item", "type": "message", "role": "assistant",
            "status": "completed", "phase": "commentary", "content": [{"type": "output_text", "text": "x"}]}
    validate.check_server_event({"type": "conversation.item.done", "event_id": "e1", "previous_item_id": None,
                                 "item": item})
    validate.check_server_event({"type": "response.output_text.delta", "event_id": "e2", "response_id": "r",
                                 "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": "x",
                                 "obfuscation": "q9Zk"})
    assert len(validate.VIOLATIONS) == before
    validate.check_server_event({"type": "conversation.item.done", "event_id": "e3", "previous_item_id": None,
                                 "item": {**item, "role": 7}})
    assert len(validate.VIOLATIONS) == before + 1
    del validate.VIOLATIONS[before:]
