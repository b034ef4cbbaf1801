"""Turn detection on input audio energy: speech events, commits, automatic responses, interruption (§4.2, §5.4, §8)."""
from __future__ import annotations

import array
import asyncio
import base64
import math

from rtreplay import simulator
from rtreplay.simulator.testing import Client, connect


def pcm(ms: int, loud: bool) -> bytes:
    samples = ms * 24
    return array.array("h", (int(8000 * math.sin(i * 0.115)) if loud else 0 for i in range(samples))).tobytes()


async def stream(client: Client, audio: bytes, chunk_ms: int = 20) -> None:
    step = chunk_ms * 48
    for offset in range(0, len(audio), step):
        await client.send("input_audio_buffer.append", audio=base64.b64encode(audio[offset:offset + step]).decode())


def run(scenario, **serve_options):
    async def main():
        async with simulator.serve(**serve_options) as sim, connect(sim) as client:
            return await scenario(client)
    return asyncio.run(asyncio.wait_for(main(), 20))


def test_a_spoken_turn_is_detected_committed_transcribed_and_answered():
    async def scenario(client):
        await client.send("session.update", session={"type": "realtime", "audio": {"input": {
            "transcription": {"model": "gpt-4o-transcribe"}}}})
        await client.until("session.updated")
        await stream(client, pcm(400, False) + pcm(800, True) + pcm(600, False))
        events = await client.until("response.done")
        kinds = [e["type"] for e in events]
        assert kinds[:6] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                             "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                             "response.created"]
        # the transcription arrives mid-response, after the turn's response.created (§11.3)
        assert kinds[6:8] == ["conversation.item.input_audio_transcription.delta",
                              "conversation.item.input_audio_transcription.completed"]
        started, stopped, committed = events[:3]
        assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (100, 1400)
        assert started["item_id"] == stopped["item_id"] == committed["item_id"]
        transcript = next(e for e in events if e["type"].endswith("transcription.completed"))["transcript"]
        response = events[-1]["response"]
        assert response["status"] == "completed" and response["conversation_id"] is not None
        assert transcript in response["output"][0]["content"][0]["transcript"]  # the reply heard the user
        await client.send("conversation.item.retrieve", item_id=committed["item_id"])
        item = (await client.until("conversation.item.retrieved"))[-1]["item"]
        assert len(base64.b64decode(item["content"][0]["audio"])) == (1400 - 100) * 48
    run(scenario)


def test_speaking_over_a_default_response_interrupts_it_but_not_out_of_band_ones():
    async def scenario(client):
        await stream(client, pcm(300, False) + pcm(600, True) + pcm(300, False))
        first = (await client.until("response.created"))[-1]["response"]["id"]
        await client.send("response.create", response={"conversation": "none", "output_modalities": ["text"]})
        oob = (await client.until("response.created"))[-1]["response"]["id"]
        await stream(client, pcm(500, True))
        events = await client.until("response.done", )
        assert events[-1]["response"]["id"] == first
        assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
        assert events[-1]["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        await stream(client, pcm(300, False))
        rest = await client.until("response.created")
        oob_done = [e for e in client.received if e["type"] == "response.done" and e["response"]["id"] == oob]
        assert "input_audio_buffer.committed" in [e["type"] for e in rest]
        assert not oob_done or oob_done[0]["response"]["status"] == "completed"
    run(scenario, interval=0.03)


def test_manual_mode_only_commits_on_request_and_starts_no_response():
    async def scenario(client):
        await client.send("session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await client.until("session.updated")
        await stream(client, pcm(200, False) + pcm(500, True) + pcm(500, False))
        await client.send("input_audio_buffer.commit")
        events = await client.until("conversation.item.done")
        assert [e["type"] for e in events] == ["input_audio_buffer.committed", "conversation.item.added",
                                               "conversation.item.done"]
        await client.send("response.create", response={"output_modalities": ["text"]})
        events = await client.until("response.done")
        assert not any(e["type"].startswith("input_audio_buffer.speech") for e in events)
    run(scenario)


def test_transcription_sessions_transcribe_turns_without_responding():
    async def main():
        async with simulator.serve() as sim, connect(sim, "intent=transcription") as client:
            await stream(client, pcm(300, False) + pcm(600, True) + pcm(400, False))
            events = await client.until("conversation.item.input_audio_transcription.completed")
            assert events[0]["type"] == "input_audio_buffer.speech_started"
            assert events[-1]["transcript"] and events[-1]["usage"]["type"] == "duration"
            await client.send("response.create", event_id="evt_r")
            assert (await client.until("error"))[-1]["error"]["event_id"] == "evt_r"
    asyncio.run(asyncio.wait_for(main(), 20))
