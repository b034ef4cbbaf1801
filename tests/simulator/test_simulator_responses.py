"""Responses: the context/destination matrix (§5.3), every tool_choice form (§5.2), the one-active-response
rule, out-of-band concurrency, cancel, max_output_tokens, metadata and the GA event order (§9.3)."""
from __future__ import annotations

import asyncio
import base64
import json

import jsonschema
import pytest

from rtreplay import simulator
from rtreplay.simulator.testing import Client, connect

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False}}
ORDER = {"type": "function", "name": "lookup_order",
         "parameters": {"type": "object", "properties": {"order_id": {"type": "integer", "minimum": 1},
                                                         "express": {"type": "boolean"},
                                                         "channel": {"enum": ["web", "phone"]}},
                        "required": ["order_id"], "additionalProperties": False}}


def run(scenario, **serve_options):
    async def main():
        async with simulator.serve(**serve_options) as sim, connect(sim) as client:
            await client.send("session.update", session={"type": "realtime", "output_modalities": ["text"]})
            await client.until("session.updated")
            return await scenario(client)
    return asyncio.run(asyncio.wait_for(main(), 20))


async def say(client: Client, text: str) -> str:
    await client.send("conversation.item.create",
                      item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    return (await client.until("conversation.item.done"))[-1]["item"]["id"]


async def respond(client: Client, **response) -> list[dict]:
    await client.send("response.create", response=response)
    return await client.until("rate_limits.updated")


def done(events: list[dict]) -> dict:
    return next(e for e in events if e["type"] == "response.done")["response"]


def reply_text(events: list[dict]) -> str:
    return next(e for e in events if e["type"] == "response.output_text.done")["text"]


@pytest.mark.parametrize("conversation, given, seen, written", [
    ("auto", None, "user: alpha; user: bravo", True),
    ("auto", [], "nothing yet", True),
    ("auto", "new", "user: charlie", True),
    ("auto", "reference", "user: alpha", True),
    ("none", None, "user: alpha; user: bravo", False),
    ("none", [], "nothing yet", False),
    ("none", "new", "user: charlie", False),
    ("none", "reference", "user: alpha", False),
])
def test_context_and_destination_follow_the_matrix(conversation, given, seen, written):
    async def scenario(client):
        first = await say(client, "alpha")
        await say(client, "bravo")
        request = {"conversation": conversation, "instructions": "Summarize the conversation so far"}
        if given == "new":
            request["input"] = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "charlie"}]}]
        elif given == "reference":
            request["input"] = [{"type": "item_reference", "id": first}]
        elif given is not None:
            request["input"] = given
        events = await respond(client, **request)
        response = done(events)
        assert seen in reply_text(events)
        assert (response["conversation_id"] is not None) == written
        assert any(e["type"] == "conversation.item.added" for e in events) == written
        output_id = response["output"][0]["id"]
        await client.send("conversation.item.retrieve", item_id=output_id)
        answer = (await client.until("conversation.item.retrieved") if written else await client.until("error"))[-1]
        assert answer["type"] == ("conversation.item.retrieved" if written else "error")
        await client.send("conversation.item.retrieve", item_id=first)  # input items never join the conversation
        await client.until("conversation.item.retrieved")
    run(scenario)


@pytest.mark.parametrize("tool_choice, said, expected", [
    (None, "hello there", None),
    ("auto", "hello there", None),
    ("auto", "please lookup_order 42", "lookup_order"),
    ("auto", "please lookup order 42", "lookup_order"),
    ("none", "please lookup_order 42", None),
    ("required", "hello there", "get_weather"),
    ("required", "please lookup_order 42", "lookup_order"),
    ({"type": "function", "name": "lookup_order"}, "hello there", "lookup_order"),
    ({"type": "function", "name": "get_weather"}, "Paris", "get_weather"),
])
def test_tool_choice_forms(tool_choice, said, expected):
    async def scenario(client):
        await say(client, said)
        request = {"tools": [WEATHER, ORDER]}
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
        events = await respond(client, **request)
        [item] = done(events)["output"]
        if expected is None:
            assert item["type"] == "message" and item["content"][0]["type"] == "output_text"
            return
        assert item["type"] == "function_call" and item["name"] == expected
        assert item["call_id"].startswith("call_") and len(item["call_id"]) == 21
        arguments = json.loads(item["arguments"])
        jsonschema.validate(arguments, {WEATHER["name"]: WEATHER, ORDER["name"]: ORDER}[expected]["parameters"])
        if "42" in said:
            assert arguments["order_id"] == 42  # numbers come from what the user said
        streamed = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
        assert streamed == item["arguments"]
    run(scenario)


def test_mcp_tool_choice_is_accepted_and_answered_with_text():
    async def scenario(client):
        await say(client, "hi")
        events = await respond(client, tools=[{"type": "mcp", "server_label": "docs", "server_url": "https://example.test/mcp"}],
                               tool_choice={"type": "mcp", "server_label": "docs"})
        assert done(events)["output"][0]["type"] == "message"
    run(scenario)


@pytest.mark.parametrize("tool_choice, code, param", [
    ({"type": "function", "function": {"name": "get_weather"}}, "missing_required_parameter", "response.tool_choice.name"),
    ({"type": "function", "name": "no_such_tool"}, "invalid_value", "response.tool_choice.name"),
    ("sometimes", "invalid_value", "response.tool_choice"),
    ({"type": "allowed_tools", "tools": []}, "invalid_value", "response.tool_choice.type"),
])
def test_invalid_tool_choice_is_rejected_before_any_response(tool_choice, code, param):
    async def scenario(client):
        for event_id in ("evt_tc_1", None):
            extra = {"event_id": event_id} if event_id else {}
            await client.send("response.create", **extra, response={"tools": [WEATHER], "tool_choice": tool_choice})
            [error] = await client.until("error")
            assert error["error"] | {"message": None} == {"type": "invalid_request_error", "code": code, "param": param,
                                                         "event_id": event_id, "message": None}
    run(scenario)


def test_session_tool_choice_nested_form_is_rejected_with_session_param():
    async def scenario(client):
        await client.send("session.update", event_id="evt_s", session={
            "type": "realtime", "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
        [error] = await client.until("error")
        assert (error["error"]["code"], error["error"]["param"], error["error"]["event_id"]) == \
            ("missing_required_parameter", "session.tool_choice.name", "evt_s")
    run(scenario)


def test_second_default_response_is_rejected_while_out_of_band_ones_run_alongside():
    async def scenario(client):
        await say(client, "hello")
        await client.send("response.create")
        first = (await client.until("response.created"))[-1]["response"]["id"]
        await client.send("response.create", event_id="evt_second")
        await client.send("response.create")
        await client.send("response.create", response={"conversation": "none", "metadata": {"tag": "oob"}})
        events = await client.until("response.created")
        errors = [e["error"] for e in events if e["type"] == "error"]
        assert [(e["code"], e["event_id"]) for e in errors] == [
            ("conversation_already_has_active_response", "evt_second"),
            ("conversation_already_has_active_response", None)]
        assert first in errors[0]["message"]
        oob = events[-1]["response"]
        assert oob["conversation_id"] is None and oob["metadata"] == {"tag": "oob"}
        rest = await _until_both_done(client, {first, oob["id"]})
        assert {e["response_id"] for e in rest if e["type"] == "response.output_text.delta"} == {first, oob["id"]}
    run(scenario, interval=0.02)


async def _until_both_done(client: Client, ids: set[str]) -> list[dict]:
    events, finished = [], set()
    while finished != ids:
        event = await client.next()
        events.append(event)
        if event["type"] == "response.done":
            finished.add(event["response"]["id"])
    return events


def test_cancel_ends_the_default_response_and_cancel_without_one_is_harmless():
    async def scenario(client):
        await say(client, "tell me a long story please")
        await client.send("response.create")
        await client.until("response.output_text.delta")
        await client.send("response.cancel")
        events = await client.until("response.done")
        response = done(events)
        assert response["status"] == "cancelled"
        assert response["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert response["output"][0]["status"] == "incomplete"
        assert [e["type"] for e in events[-4:]] == ["response.content_part.done", "conversation.item.done",
                                                   "response.output_item.done", "response.done"]  # §11.3
        await client.send("response.cancel", event_id="evt_c")
        [error] = (await client.until("error"))[-1:]
        assert error["error"]["code"] == "response_cancel_not_active" and error["error"]["event_id"] == "evt_c"
        await client.send("response.create", response={"conversation": "none"})
        oob = (await client.until("response.created"))[-1]["response"]["id"]
        await client.send("response.cancel")  # no response_id: only the default conversation's response
        assert (await client.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"
        await client.send("response.cancel", response_id=oob)
        cancelled = (await client.until("response.done"))[-1]["response"]
        assert (cancelled["id"], cancelled["status"]) == (oob, "cancelled")
    run(scenario, interval=0.05)


def test_max_output_tokens_makes_the_response_incomplete():
    async def scenario(client):
        await say(client, "one two three four five six seven eight")
        events = await respond(client, max_output_tokens=3)
        response = done(events)
        assert response["status"] == "incomplete"
        assert response["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
        assert response["usage"]["output_tokens"] == 3
        assert len([e for e in events if e["type"] == "response.output_text.delta"]) == 3
    run(scenario)


def test_text_response_follows_the_ga_event_order_and_echoes_metadata():
    async def scenario(client):
        await say(client, "hi")
        events = await respond(client, metadata={"purpose": "order-check"})
        kinds = [e["type"] for e in events]
        assert kinds[:4] == ["response.created", "response.output_item.added", "conversation.item.added",
                             "response.content_part.added"]
        assert set(kinds[4:-6]) == {"response.output_text.delta"}
        assert kinds[-6:] == ["response.output_text.done", "response.content_part.done", "conversation.item.done",
                              "response.output_item.done", "response.done", "rate_limits.updated"]  # §11.3
        assert events[0]["response"]["metadata"] == done(events)["metadata"] == {"purpose": "order-check"}
        part_added = events[3]["part"]
        assert part_added == {"type": "text", "text": ""}
        assert done(events)["output"][0]["content"][0]["type"] == "output_text"
        usage = done(events)["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    run(scenario)


def test_audio_response_streams_pcm_with_its_transcript_and_retrieve_returns_the_audio():
    async def scenario(client):
        await say(client, "hi")
        events = await respond(client, output_modalities=["audio"])
        response = done(events)
        part = response["output"][0]["content"][0]
        assert part["type"] == "output_audio" and "audio" not in part
        added = next(e for e in events if e["type"] == "response.content_part.added")
        assert added["part"] == {"type": "audio", "transcript": ""}
        audio = [e for e in events if e["type"] == "response.output_audio.delta"]
        transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
        assert audio and transcript == part["transcript"]
        assert response["usage"]["output_token_details"]["audio_tokens"] > 0
        await client.send("conversation.item.retrieve", item_id=response["output"][0]["id"])
        retrieved = (await client.until("conversation.item.retrieved"))[-1]["item"]["content"][0]
        assert base64.b64decode(retrieved["audio"]) == b"".join(base64.b64decode(e["delta"]) for e in audio)
    run(scenario)


def test_g711_output_is_8_khz_one_byte_per_sample():
    async def scenario(client):
        await say(client, "hi")
        events = await respond(client, output_modalities=["audio"], audio={"output": {"format": {"type": "audio/pcmu"}}})
        response = done(events)
        assert response["audio"]["output"]["format"] == {"type": "audio/pcmu"}
        chunks = [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"]
        assert chunks and all(len(chunk) == 8 * 300 for chunk in chunks)  # 300 ms per spoken word
        item_id = response["output"][0]["id"]
        await client.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=100)
        await client.until("conversation.item.truncated")
        await client.send("conversation.item.retrieve", item_id=item_id)
        part = (await client.until("conversation.item.retrieved"))[-1]["item"]["content"][0]
        assert len(base64.b64decode(part["audio"])) == 800
    run(scenario)


def test_out_of_band_outputs_get_item_done_without_added_and_a_conversation_id_when_empty():
    """§11.1: an out-of-band output gets conversation.item.done (previous_item_id null), never .added; a
    default-conversation response carries the conversation's id even while the conversation is empty."""
    async def scenario(client):
        events = await respond(client)  # nothing said yet: an empty conversation
        assert events[0]["response"]["conversation_id"].startswith("conv_")
        events = await respond(client, conversation="none", metadata={"k": "1"})
        assert events[0]["response"]["conversation_id"] is None
        kinds = [e["type"] for e in events]
        assert "conversation.item.added" not in kinds
        (item_done,) = [e for e in events if e["type"] == "conversation.item.done"]
        assert item_done["previous_item_id"] is None and item_done["item"]["id"] == done(events)["output"][0]["id"]
        assert kinds.index("conversation.item.done") < kinds.index("response.output_item.done")  # §11.3
    run(scenario)


def test_a_response_cancelled_right_after_created_ends_with_no_output():
    """§11.3: cancelled before its first item, a response sends no item events and ends with output: []."""
    async def scenario(client):
        await say(client, "tell me a long story please")
        await client.send("response.create")
        await client.send("response.cancel")
        events = await client.until("response.done")
        assert [e["type"] for e in events] == ["response.created", "response.done"]
        assert (done(events)["status"], done(events)["output"]) == ("cancelled", [])
    run(scenario, interval=0.5)


def test_gpt_realtime_2_speaks_a_commentary_preamble_before_its_function_call():
    """§11.3/§11.4: a message (phase commentary) and a function_call in one response; replies carry
    phase final_answer."""
    async def main():
        async with simulator.serve() as sim, connect(sim, query="model=gpt-realtime-2.1") as client:
            await client.send("session.update", session={"type": "realtime", "output_modalities": ["text"],
                                                         "tools": [WEATHER]})
            await client.until("session.updated")
            await say(client, "what is the weather in Paris")
            events = await respond(client, tool_choice="required")
            output = done(events)["output"]
            assert [(o["type"], o.get("phase")) for o in output] == [("message", "commentary"), ("function_call", None)]
            conversation_done = [e["item"]["id"] for e in events if e["type"] == "conversation.item.done"]
            assert conversation_done == [o["id"] for o in output]
            events = await respond(client, tool_choice="none")
            assert [(o["type"], o.get("phase")) for o in done(events)["output"]] == [("message", "final_answer")]
    asyncio.run(asyncio.wait_for(main(), 20))
