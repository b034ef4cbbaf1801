"""Fault profiles: the seed report's shape, rates that turn into reproducible decisions, profile files."""
from __future__ import annotations

import asyncio
import json
import math

import pytest
import websockets

from rtreplay import simulator
from rtreplay.simulator.faults import Features, ProfileError, load_profile
from rtreplay.simulator.testing import connect

RETURN_RESPONSE = {"type": "function", "name": "return_response", "description": "Return the response to the agent",
                   "parameters": {"type": "object", "properties": {"response": {"type": "string"}},
                                  "required": ["response"], "additionalProperties": False}}
SEED_REQUEST = {"instructions": "Summarize the conversation so far", "tools": [RETURN_RESPONSE],
                "tool_choice": {"type": "function", "name": "return_response"}, "conversation": "none",
                "output_modalities": ["text"], "metadata": {"response_type": "out-of-band"}}


def run(scenario, **serve_options):
    async def main():
        async with simulator.serve(**serve_options) as sim, connect(sim) as client:
            return await scenario(client)
    return asyncio.run(asyncio.wait_for(main(), 25))


def test_seed_profile_reproduces_the_reported_failure_exactly():
    async def scenario(client):
        await client.send("conversation.item.create", item={"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "My order is late"}]})
        outcomes = {}
        for label, change in [("seed", {}), ("required", {"tool_choice": "required"}), ("auto", {"tool_choice": "auto"}),
                              ("default conversation", {"conversation": "auto"})]:
            await client.send("response.create", response={**SEED_REQUEST, **change})
            events = await client.until("response.done")
            outcomes[label] = events[-1]["response"]
            if label == "seed":
                assert [e["type"] for e in events[-2:]] == ["response.created", "response.done"]
        assert outcomes["seed"] == {
            "id": outcomes["seed"]["id"], "object": "realtime.response", "status": "failed",
            "status_details": {"error": {"type": "server_error"}, "type": "failed"}, "output": [],
            "usage": {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
                      "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0, "cached_tokens": 0,
                                              "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
                      "output_token_details": {"text_tokens": 0, "audio_tokens": 0}},
            "max_output_tokens": "inf", "metadata": {"response_type": "out-of-band"}}
        for label in ("required", "auto", "default conversation"):
            assert outcomes[label]["status"] == "completed", label
        forced = outcomes["required"]["output"][0]
        assert forced["name"] == "return_response" and "My order is late" in json.loads(forced["arguments"])["response"]
    run(scenario, faults="seed-oob-forced-function")


def _features(request: dict) -> Features:
    return Features(tool_choice="absent", conversation=request.get("conversation", "auto"), input="absent",
                    modalities="text", model="gpt-realtime", tools=0)


def test_flaky_profile_decisions_are_reproducible_and_within_binomial_bounds():
    seed, total = 11, 240
    profile = load_profile("flaky")
    request = {"conversation": "none", "output_modalities": ["text"]}

    async def main():
        observed, expected = [], []
        async with simulator.serve(seed=seed, faults="flaky") as sim:
            session_index = 0
            while len(observed) < total:
                async with connect(sim) as client:
                    index = 0
                    try:
                        while len(observed) < total:
                            decision = profile.outcome_for(seed, session_index, index, _features(request))
                            expected.append(decision["kind"] if decision else "ok")
                            await client.send("response.create", event_id=f"evt_{index}", response=request)
                            index += 1
                            event = await client.next()
                            while event["type"] not in ("response.done", "error"):
                                event = await client.next()
                            kind = "error" if event["type"] == "error" else \
                                "fail" if event["response"]["status"] == "failed" else "ok"
                            observed.append(kind)
                    except websockets.ConnectionClosed as closed:
                        assert closed.rcvd.code == 1011
                        observed.append("drop")
                session_index += 1
        return observed, expected

    observed, expected = asyncio.run(asyncio.wait_for(main(), 60))
    assert observed == [("ok" if kind == "delay" else kind) for kind in expected]
    injected = sum(kind != "ok" for kind in expected)
    mean, sd = total * 0.05, math.sqrt(total * 0.05 * 0.95)
    assert abs(injected - mean) <= 4 * sd, (injected, mean)
    assert set(observed) >= {"ok", "fail"}


def test_error_outcome_and_profile_files(tmp_path):
    path = tmp_path / "errors.json"
    path.write_text(json.dumps({"rules": [
        {"name": "tools", "rate": 1.0, "match": {"tools_min": 1, "modalities": "text", "model": "gpt-realtime"},
         "outcome": {"kind": "error", "error_type": "server_error", "code": "overloaded", "message": "Busy."}}]}))

    async def scenario(client):
        await client.send("response.create", event_id="evt_1", response={"output_modalities": ["text"], "tools": [RETURN_RESPONSE]})
        events = await client.until("error")
        assert not any(e["type"] == "response.created" for e in events)
        assert events[-1]["error"] == {"type": "server_error", "code": "overloaded", "message": "Busy.", "param": None,
                                       "event_id": "evt_1"}
        await client.send("response.create", response={"output_modalities": ["text"]})  # no tools: no match
        assert (await client.until("response.done"))[-1]["response"]["status"] == "completed"
    run(scenario, faults=str(path))


@pytest.mark.parametrize("content, problem", [
    ('[[rules]]\nrate = 2\noutcome = {kind = "fail"}', "rate"),
    ('[[rules]]\nrate = 0.1\nmatch = {colour = "red"}\noutcome = {kind = "fail"}', "match keys"),
    ('[[rules]]\nrate = 0.1\noutcome = {kind = "explode"}', "outcome.kind"),
    ('rules = [', "not valid TOML"),
])
def test_bad_profiles_are_refused_with_a_clear_message(tmp_path, content, problem):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ProfileError, match=problem):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="no fault profile"):
        load_profile(str(tmp_path / "missing.toml"))
