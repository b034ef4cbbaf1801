"""Bad input never crashes the session state machine: every client message gets events or nothing, never an exception."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rtreplay.simulator.session import Session

TYPES = ["session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
         "conversation.item.create", "conversation.item.retrieve", "conversation.item.truncate",
         "conversation.item.delete", "response.create", "response.cancel", "output_audio_buffer.clear", "bogus"]
KEYS = ["session", "item", "item_id", "previous_item_id", "response", "response_id", "audio", "content_index",
        "audio_end_ms", "type", "input", "tool_choice", "tools", "conversation", "role", "content", "name",
        "output_modalities", "max_output_tokens", "metadata", "instructions", "call_id", "output", "text", "id"]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.sampled_from(
        ["", "auto", "none", "required", "root", "realtime", "function", "message", "user", "assistant", "text",
         "input_text", "item_reference", "AAAA", "server_vad", "function_call_output"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12)
events = st.builds(lambda kind, fields: {"type": kind, **fields}, st.sampled_from(TYPES),
                   st.dictionaries(st.sampled_from(KEYS), values, max_size=4))


@settings(max_examples=150, deadline=None)
@given(st.lists(events, max_size=8))
def test_any_sequence_of_client_events_yields_only_events(batch):
    session = Session()
    session.start()
    for event in batch:
        for output in session.receive(json.dumps(event), 0.0):
            assert isinstance(output, dict) or output.code in (1000, 1011)
        while session.next_due() is not None:
            session.advance(1e9)
