"""The per-session work of `analyze` as one pure function: a session's events (Arrow) in, its request rows
(Arrow) out — what a process pool runs locally and Spark runs per group (`rtreplay.spark`).

`session_requests` reads only the columns matching needs (`MATCH_COLUMNS`), in any row order, and returns
one row per client `response.create` in `REQUEST_SCHEMA`; `to_requests` turns rows back into the
`Request` records the report folds. JSON values (tool_choice, metadata) travel as their JSON text, so a row
holds nothing Arrow or Spark cannot carry and the round trip gives back equal records.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from operator import attrgetter
from typing import Any

import orjson
import pyarrow as pa

from rtreplay.analyzer.state.match import MATCH_COLUMNS, MATCH_TYPES, match
from rtreplay.analyzer.state.request import Request
from rtreplay.recorder.schema import CLIENT

_TS = pa.timestamp("us", tz="UTC")
_JSON = ("metadata", "tool_choice")  # JSON values, carried as text
REQUEST_SCHEMA = pa.schema([
    ("session_id", pa.string()), ("seq", pa.int64()), ("ts", _TS), ("payload", pa.string()),
    ("event_id", pa.string()), ("scope", pa.string()), ("conversation", pa.string()),
    ("input_kind", pa.string()), ("output_modalities", pa.string()), ("tools_count", pa.int64()),
    ("metadata", pa.string()), ("model", pa.string()), ("tool_choice", pa.string()),
    ("form_sent", pa.string()), ("form_effective", pa.string()), ("forced_name", pa.string()),
    ("outcome", pa.string()), ("response_id", pa.string()), ("error_type", pa.string()),
    ("error_code", pa.string()), ("reason", pa.string()), ("forced_call", pa.bool_()), ("pairing", pa.string()),
    ("confidence", pa.string()), ("answer_seq", pa.int64()), ("done_seq", pa.int64()), ("latency_ms", pa.float64()),
])
assert REQUEST_SCHEMA.names == [f.name for f in dataclasses.fields(Request)], "one row field per Request field"

# The rows matching reads (a superset filter: match() applies its own). Spark and the pool prune with it.
MATCH_FILTER_SQL = (f"type IN ({', '.join(repr(t) for t in MATCH_TYPES)}) "
                    f"OR (direction = '{CLIENT}' AND event_id IS NOT NULL)")


def session_requests(events: pa.Table) -> pa.Table:
    """Pure: the request rows of the events of one session (or of several: each is matched on its own)."""
    return to_table(match(events.select(list(MATCH_COLUMNS))).requests)


def to_table(requests: list[Request]) -> pa.Table:
    rows = list(map(attrgetter(*REQUEST_SCHEMA.names), requests))
    columns: list[Any] = [list(c) for c in zip(*rows)] if rows else [[] for _ in REQUEST_SCHEMA.names]
    for name in _JSON:
        i = REQUEST_SCHEMA.names.index(name)
        columns[i] = [None if v is None else _dumps(v) for v in columns[i]]
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, REQUEST_SCHEMA)],
                                schema=REQUEST_SCHEMA)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson cannot write (an integer beyond 64 bits): the standard library can
        return json.dumps(value)


def _loads(text: str) -> Any:
    return json.loads(text)  # not orjson: it reads an integer beyond 64 bits as a float


def to_requests(table: pa.Table) -> list[Request]:
    """`Request` records from request rows (any column order; `ts` as a UTC timestamp)."""
    table = table.select(REQUEST_SCHEMA.names)
    cols = [table.column(n).to_pylist() for n in REQUEST_SCHEMA.names]
    json_at = [REQUEST_SCHEMA.names.index(n) for n in _JSON]
    ts_at = REQUEST_SCHEMA.names.index("ts")
    out = []
    for row in zip(*cols):
        row = list(row)
        for i in json_at:
            row[i] = _loads(row[i]) if row[i] is not None else None
        if row[ts_at].tzinfo is None:  # Spark hands back naive UTC timestamps
            row[ts_at] = row[ts_at].replace(tzinfo=dt.timezone.utc)
        out.append(Request(*row))
    return out
