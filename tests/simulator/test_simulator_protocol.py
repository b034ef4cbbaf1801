"""Session, items, audio buffer, handshake and the error catalogue (docs/realtime-protocol.md §1, §2.2, §4, §6.4)."""
from __future__ import annotations

import asyncio
import base64
import json

import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from rtreplay import simulator
from rtreplay.simulator.testing import Client, connect


def run(scenario, query="model=gpt-realtime", **serve_options):
    async def main():
        async with simulator.serve(**serve_options) as sim, connect(sim, query) as client:
            return await scenario(client)
    return asyncio.run(asyncio.wait_for(main(), 20))


def user(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def error_for(client: Client, kind: str, **fields) -> dict:
    await client.send(kind, event_id="evt_err", **fields)
    event = (await client.until("error"))[-1]["error"]
    assert event["event_id"] == "evt_err" and event["type"] == "invalid_request_error"
    return event


def test_session_created_shows_the_documented_defaults():
    async def scenario(client):
        session = client.received[0]["session"]
        assert session["type"] == "realtime" and session["model"] == "gpt-realtime"
        assert session["id"].startswith("sess_") and len(session["id"]) == 26
        assert (session["output_modalities"], session["tool_choice"], session["max_output_tokens"]) == (["audio"], "auto", "inf")
        assert session["audio"]["input"]["turn_detection"] == {
            "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 200,
            "idle_timeout_ms": None, "create_response": True, "interrupt_response": True}
        assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert client.received[0]["event_id"].startswith("event_") and len(client.received[0]["event_id"]) == 27
    run(scenario)


def test_session_update_merges_only_present_fields():
    async def scenario(client):
        await client.send("session.update", session={"type": "realtime", "instructions": "Be brief.",
                                                     "audio": {"output": {"voice": "marin"}}})
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["instructions"] == "Be brief." and session["audio"]["output"]["voice"] == "marin"
        assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        await client.send("session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        session = (await client.until("session.updated"))[-1]["session"]
        assert session["audio"]["input"]["turn_detection"] is None and session["instructions"] == "Be brief."
    run(scenario)


@pytest.mark.parametrize("session, code, param", [
    ({"instructions": "x"}, "missing_required_parameter", "session.type"),
    ({"type": "realtime", "modalities": ["text"]}, "unknown_parameter", "session.modalities"),
    ({"type": "realtime", "output_modalities": ["text", "audio"]}, "invalid_value", "session.output_modalities"),
    ({"type": "realtime", "max_output_tokens": 0}, "integer_below_min_value", "session.max_output_tokens"),
])
def test_session_update_errors(session, code, param):
    async def scenario(client):
        error = await error_for(client, "session.update", session=session)
        assert (error["code"], error["param"]) == (code, param)
    run(scenario)


def test_items_insert_after_previous_item_at_root_and_append():
    async def scenario(client):
        added = []
        for text, previous in [("a", None), ("b", None), ("first", "root")]:
            fields = {"previous_item_id": previous} if previous else {}
            await client.send("conversation.item.create", item=user(text), **fields)
            added.append((await client.until("conversation.item.done"))[-2])
        a, b, first = (e["item"]["id"] for e in added)
        assert [e["previous_item_id"] for e in added] == [None, a, None]
        await client.send("conversation.item.create", item={**user("between"), "id": "item_mine"}, previous_item_id=a)
        [between_added, between_done] = (await client.until("conversation.item.done"))[-2:]
        assert between_added["item"]["id"] == "item_mine" and between_added["previous_item_id"] == a
        await client.send("conversation.item.delete", item_id=b)
        assert (await client.until("conversation.item.deleted"))[-1]["item_id"] == b
        await client.send("response.create", response={"conversation": "none", "instructions": "Summarize",
                                                        "output_modalities": ["text"]})
        text = next(e for e in await client.until("response.done") if e["type"] == "response.output_text.done")["text"]
        assert "user: first; user: a; user: between." in text
    run(scenario)


@pytest.mark.parametrize("fields, code, param", [
    ({"item": user("x"), "previous_item_id": "item_missing"}, "invalid_value", "previous_item_id"),
    ({"item": {"type": "function_call_output", "output": "{}"}}, "missing_required_parameter", "item.call_id"),
    ({"item": {"type": "message", "role": "robot", "content": []}}, "invalid_value", "item.role"),
    ({"item": {"type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": "hi"}]}},
     "invalid_value", "item.content[0].type"),
    ({}, "missing_required_parameter", "item"),
])
def test_item_create_errors(fields, code, param):
    async def scenario(client):
        error = await error_for(client, "conversation.item.create", **fields)
        assert (error["code"], error["param"]) == (code, param)
    run(scenario)


@pytest.mark.parametrize("kind", ["conversation.item.retrieve", "conversation.item.delete"])
def test_unknown_item_ids_are_errors(kind):
    async def scenario(client):
        error = await error_for(client, kind, item_id="item_nope")
        assert "item_nope" in error["message"]
    run(scenario)


def test_retrieve_returns_user_audio_and_truncate_cuts_assistant_audio():
    async def scenario(client):
        pcm = bytes(48 * 200)
        await client.send("conversation.item.create", item={"type": "message", "role": "user", "content": [
            {"type": "input_audio", "audio": base64.b64encode(pcm).decode()}]})
        item_id = (await client.until("conversation.item.done"))[-1]["item"]["id"]
        await client.send("conversation.item.retrieve", item_id=item_id)
        retrieved = (await client.until("conversation.item.retrieved"))[-1]["item"]
        assert base64.b64decode(retrieved["content"][0]["audio"]) == pcm
        error = await error_for(client, "conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=10)
        assert (error["code"], error["message"]) == ("unsupported_content_type", "Only model output audio messages can be truncated")

        await client.send("response.create", response={"output_modalities": ["audio"]})
        answer = next(e for e in await client.until("response.done") if e["type"] == "response.done")["response"]["output"][0]
        error = await error_for(client, "conversation.item.truncate", item_id=answer["id"], content_index=0, audio_end_ms=-1)
        assert error["code"] == "integer_below_min_value"
        error = await error_for(client, "conversation.item.truncate", item_id=answer["id"], content_index=0, audio_end_ms=99_000)
        assert error["code"] is None and "is already shorter than 99000ms" in error["message"]
        await client.send("conversation.item.truncate", item_id=answer["id"], content_index=0, audio_end_ms=450)
        truncated = (await client.until("conversation.item.truncated"))[-1]
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (answer["id"], 450)
        await client.send("conversation.item.retrieve", item_id=answer["id"])
        part = (await client.until("conversation.item.retrieved"))[-1]["item"]["content"][0]
        assert len(base64.b64decode(part["audio"])) == 450 * 48 and part["transcript"] == ""
    run(scenario)


def test_commit_needs_100_ms_and_clear_empties_the_buffer():
    async def scenario(client):
        await client.send("session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await client.until("session.updated")
        error = await error_for(client, "input_audio_buffer.commit")
        assert error["code"] == "input_audio_buffer_commit_empty" and "0.00ms" in error["message"]
        await client.send("input_audio_buffer.append", audio=base64.b64encode(bytes(48 * 150)).decode())
        await client.send("input_audio_buffer.clear")
        await client.until("input_audio_buffer.cleared")
        assert (await error_for(client, "input_audio_buffer.commit"))["code"] == "input_audio_buffer_commit_empty"
        await client.send("input_audio_buffer.append", audio=base64.b64encode(bytes(48 * 150)).decode())
        await client.send("input_audio_buffer.commit")
        events = await client.until("conversation.item.done")
        assert [e["type"] for e in events] == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
        assert events[-1]["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    run(scenario)


@pytest.mark.parametrize("frame, code, param", [
    ('{"event_id": "evt_err"}', "invalid_event", None),
    ('{"type": "scooby.dooby.doo", "event_id": "evt_err"}', "invalid_value", "type"),
    ('not json', "invalid_event", None),
])
def test_malformed_events_get_error_events_and_the_session_continues(frame, code, param):
    async def scenario(client):
        await client.connection.send(frame)
        error = (await client.until("error"))[-1]["error"]
        assert (error["code"], error["param"]) == (code, param)
        assert error["event_id"] == ("evt_err" if "evt_err" in frame else None)
        await client.send("conversation.item.create", item=user("still here"))
        await client.until("conversation.item.done")
    run(scenario)


def test_beta_clients_get_beta_api_shape_disabled_and_close_4000():
    async def main():
        async with simulator.serve() as sim:
            for options in ({"additional_headers": {"OpenAI-Beta": "realtime=v1"}},
                            {"subprotocols": ["realtime", "openai-beta.realtime-v1"]}):
                async with ws_connect(f"{sim.url}/v1/realtime?model=gpt-4o-realtime-preview", **options) as ws:
                    error = json.loads(await ws.recv())["error"]
                    assert error["code"] == "beta_api_shape_disabled"
                    with pytest.raises(websockets.ConnectionClosed):
                        await ws.recv()
                    assert ws.close_code == 4000
                    assert ws.close_reason == "invalid_request_error.beta_api_shape_disabled"
    asyncio.run(asyncio.wait_for(main(), 20))


def test_sessions_expire_with_session_expired():
    async def scenario(client):
        error = (await client.until("error"))[-1]["error"]
        assert error["code"] == "session_expired" and "maximum duration" in error["message"]
        with pytest.raises(websockets.ConnectionClosed):
            await client.next()
    run(scenario, max_session_s=0.2)


def test_handshake_checks_path_and_query_and_selects_the_realtime_subprotocol():
    async def main():
        async with simulator.serve() as sim:
            for path, status in (("/v1/other?model=x", 404), ("/v1/realtime", 400)):
                with pytest.raises(websockets.InvalidStatus) as caught:
                    async with ws_connect(f"{sim.url}{path}"):
                        pass
                assert caught.value.response.status_code == status
            for query in ("intent=transcription", "call_id=rtc_test_123"):
                async with connect(sim, query) as client:
                    kind = client.received[0]["session"]["type"]
                    assert kind == ("transcription" if "intent" in query else "realtime")
            async with ws_connect(f"{sim.url}/v1/realtime?model=gpt-realtime",
                                  subprotocols=["realtime", "openai-insecure-api-key.ek_fake_test"]) as ws:
                assert ws.subprotocol == "realtime"
    asyncio.run(asyncio.wait_for(main(), 20))


def test_big_messages_pass_both_ways():
    async def scenario(client):
        pcm = bytes(48 * 1000 * 100)  # 100 s of audio: a 6.4 MB append, retrieved back in one message
        await client.send("conversation.item.create", item={"type": "message", "role": "user", "content": [
            {"type": "input_audio", "audio": base64.b64encode(pcm).decode()}]})
        item_id = (await client.until("conversation.item.done"))[-1]["item"]["id"]
        await client.send("conversation.item.retrieve", item_id=item_id)
        retrieved = (await client.until("conversation.item.retrieved"))[-1]
        assert len(retrieved["item"]["content"][0]["audio"]) > 6_000_000
    run(scenario)


def test_same_seed_same_events():
    async def session(seed):
        async with simulator.serve(seed=seed, epoch=1_700_000_000) as sim, connect(sim) as client:
            await client.send("conversation.item.create", item=user("hello"))
            await client.send("response.create", response={"output_modalities": ["text"]})
            await client.until("rate_limits.updated")
            return client.received
    first, again, other = (asyncio.run(session(seed)) for seed in (7, 7, 8))
    assert first == again and first != other


def test_the_sdk_validator_flags_events_outside_the_ga_types(monkeypatch):
    from rtreplay.simulator import validate

    monkeypatch.delenv("RTREPLAY_SIM_VIOLATIONS")  # keep these deliberate violations out of the suite-wide log
    before = len(validate.VIOLATIONS)
    validate.check_server_event({"type": "response.created", "event_id": "event_x"})  # no `response`
    validate.check_server_event({"type": "response.text.delta", "event_id": "event_y"})  # beta name
    validate.check_client_event({"type": "response.create", "response": {
        "tool_choice": {"type": "function", "function": {"name": "f"}}}})
    validate.check_client_event({"type": "response.create", "response": {"input": [{"type": "item_reference", "id": "i"}]}})
    assert len(validate.VIOLATIONS) == before + 3
