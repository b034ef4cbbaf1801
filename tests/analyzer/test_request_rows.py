"""The per-session function's rows carry every `Request` field exactly (Arrow round trip, Hypothesis)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rtreplay.analyzer.state import load
from rtreplay.analyzer.state.match import match
from rtreplay.analyzer.state.request import Request
from rtreplay.analyzer.state.request_rows import REQUEST_SCHEMA, session_requests, to_requests, to_table

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


def test_rows_of_the_golden_sessions_give_back_the_matched_requests() -> None:
    seen = 0
    for name in ("text", "audio"):
        for _, table in load.iter_sessions(GOLDEN / name):
            rows = session_requests(table)
            assert rows.schema == REQUEST_SCHEMA
            assert to_requests(rows) == match(table).requests
            seen += rows.num_rows
    assert seen > 0


@settings(max_examples=200, deadline=None)
@given(tool_choice=json_values, metadata=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
       ts=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
       forced=st.none() | st.booleans(), latency=st.none() | st.floats(allow_nan=False, allow_infinity=False))
def test_any_request_survives_the_round_trip(tool_choice, metadata, ts, forced, latency) -> None:
    r = Request(session_id="s", seq=3, ts=ts.replace(tzinfo=dt.timezone.utc), payload='{"type":"response.create"}',
                event_id=None, scope="out-of-band", conversation="none", input_kind="absent", output_modalities=None,
                tools_count=2, metadata=metadata, model="m", tool_choice=tool_choice, form_sent="invalid",
                form_effective="invalid", forced_name=None, outcome="failed", forced_call=forced, latency_ms=latency)
    (back,) = to_requests(to_table([r]))
    assert back == r
    assert [f.name for f in dataclasses.fields(Request)] == REQUEST_SCHEMA.names
