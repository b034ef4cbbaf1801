"""The official SDKs work through the proxy unchanged apart from their base URL, and land in the archive."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from rtreplay import simulator
from rtreplay.recorder import archive
from rtreplay.recorder.proxy import running
from conftest import SDK_PIN_SKIP

FAKE_KEY = "sk-fake-sdk-test-key-1234567890abcdefghijklmnop"


def _archived_types(out: Path) -> list[list[str]]:
    table = archive.read_archive(out).table
    sessions = []
    for sid in sorted(set(table.column("session_id").to_pylist())):
        rows = table.filter(pc.equal(table["session_id"], sid))
        sessions.append(rows.column("type").to_pylist())
    return sessions


def _assert_no_key_on_disk(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


async def test_openai_sdk_realtime_client_through_proxy(tmp_path: Path) -> None:
    from openai import AsyncOpenAI

    async with simulator.serve(seed=3) as sim, running(upstream=sim.url, out=tmp_path) as proxy:
        client = AsyncOpenAI(api_key=FAKE_KEY, websocket_base_url=f"{proxy.url}/v1")
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(
                session={
                    "type": "realtime",
                    "output_modalities": ["text"],
                    "tools": [
                        {
                            "type": "function",
                            "name": "get_weather",
                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                        }
                    ],
                }
            )
            await conn.conversation.item.create(
                item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Use get_weather for Paris"}]}
            )
            await conn.response.create()
            call = None
            async for event in conn:
                if event.type == "response.done":
                    call = next(o for o in event.response.output if o.type == "function_call")
                    break
            await conn.conversation.item.create(
                item={"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temp_c": 18})}
            )
            await conn.response.create()
            async for event in conn:
                if event.type == "response.done":
                    assert event.response.status == "completed"
                    break
            await conn.response.create(
                response={"conversation": "none", "instructions": "Summarize the conversation so far",
                          "metadata": {"response_type": "out-of-band"}}
            )
            async for event in conn:
                if event.type == "response.done":
                    assert event.response.conversation_id is None
                    assert event.response.metadata == {"response_type": "out-of-band"}
                    break
    (types,) = _archived_types(tmp_path)
    assert types[0] == "proxy.open" and types[-1] == "proxy.close"
    assert types.count("response.create") == 3 and types.count("response.done") == 3
    assert "response.function_call_arguments.done" in types
    _assert_no_key_on_disk(tmp_path)


async def test_openai_agents_realtime_runner_through_proxy(tmp_path: Path) -> None:
    pytest.importorskip("agents", reason=SDK_PIN_SKIP)
    from agents import function_tool
    from agents.realtime import RealtimeAgent, RealtimeRunner

    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return f"Sunny in {city}"

    agent = RealtimeAgent(name="helper", instructions="Answer briefly.", tools=[get_weather])
    async with simulator.serve(seed=4) as sim, running(upstream=sim.url, out=tmp_path) as proxy:
        runner = RealtimeRunner(agent, config={"model_settings": {"model_name": "gpt-realtime", "modalities": ["text"]}})
        session = await runner.run(
            model_config={"url": f"{proxy.url}/v1/realtime?model=gpt-realtime", "api_key": FAKE_KEY}
        )
        async with session:
            await session.send_message("Please use get_weather for Paris")
            tool_done = False
            async with asyncio.timeout(20):
                async for event in session:
                    tool_done = tool_done or event.type == "tool_end"
                    if tool_done and event.type == "agent_end":  # the answer after the tool's output
                        break
    assert calls, "the Agents SDK never ran the tool the simulator called"
    (types,) = _archived_types(tmp_path)
    assert types[0] == "proxy.open"
    assert "session.update" in types and types.count("response.done") >= 2
    assert "conversation.item.create" in types  # the tool output the SDK sent back
    _assert_no_key_on_disk(tmp_path)
