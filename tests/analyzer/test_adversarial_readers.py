"""Every read command against hostile recorded values and damaged archives: no traceback, no injection.

Recorded strings are attacker-controlled (any client or upstream writes them): Rich markup, terminal escapes,
spreadsheet formulas, odd event shapes. Archive files may be damaged or hand-made. Each read command must
name a bad file in one line and go on, and exit non-zero only if nothing could be read.
"""
from __future__ import annotations

import os
import traceback
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtreplay.cli import cli
from rtreplay.recorder import archive, schema
from rtreplay.recorder.core import SessionRecorder

SID = "20260301T120000000000-good01"
EVIL = "20260301T130000000000-evil01"

MARKUP = "[/x] [bold]b[/bold] [link=https://evil.example]click[/link]"
OSC = "\x1b]0;pwned-title\x07 \x1b]8;;https://evil.example\x07link\x1b]8;;\x07 \x1b]52;c;ZXZpbA==\x07 \x1b[2J"
FORMULA = '=HYPERLINK("https://evil.example","x")'


def events_of(oob_error_code: str = "server_error", text: str = "hello", metadata=None) -> list[tuple[str, object]]:
    """A small session: created, one out-of-band request that fails, one in-conversation text response."""
    failed = {"object": "realtime.response", "id": "resp_1", "status": "failed", "conversation_id": None,
              "metadata": metadata, "output": [],
              "status_details": {"type": "failed", "error": {"type": "server_error", "code": oob_error_code,
                                                             "message": text}}}
    item = {"id": "item_1", "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": text}]}
    return [
        ("server", {"type": "session.created", "event_id": "e0", "session": {"type": "realtime", "model": "gpt-realtime",
                                                                             "tool_choice": "auto"}}),
        ("client", {"type": "conversation.item.create", "event_id": "c1", "item": item}),
        ("server", {"type": "conversation.item.added", "previous_item_id": None, "item": item}),
        ("server", {"type": "conversation.item.done", "previous_item_id": None, "item": item}),
        ("client", {"type": "response.create", "event_id": "c2",
                    "response": {"conversation": "none", "tool_choice": "required", "metadata": metadata}}),
        ("server", {"type": "response.created", "response": {**failed, "status": "in_progress"}}),
        ("server", {"type": "response.done", "response": failed}),
        ("server", {"type": "error", "error": {"type": "invalid_request_error", "code": oob_error_code,
                                               "message": text}}),
    ]


def write_session(out: Path, sid: str, events: list[tuple[str, object]], t0_us: int = 1_772_366_400_000_000) -> Path:
    rec = SessionRecorder(sid)
    rows = [rec.open({"path": "/v1/realtime", "query": "model=gpt-realtime", "headers": [], "upstream": "ws://127.0.0.1:9"},
                     0, t0_us * 1000)]
    for i, (direction, event) in enumerate(events):
        data = event if isinstance(event, bytes) else (event if isinstance(event, str) else orjson.dumps(event).decode()).encode()
        rows.append(rec.message(direction, data, True, i * 1000, (t0_us + i * 1000) * 1000))
    rows.append(rec.lifecycle(schema.PROXY_CLOSE, {}, 99_000, (t0_us + 99_000) * 1000))
    table = pa.Table.from_pylist([dict(zip(schema.COLUMNS, r)) for r in rows], schema=schema.EVENT_SCHEMA)
    return archive.write_parquet(table, archive.parquet_path(out, sid))


READS = [
    ["sessions", "{a}"], ["sessions", "{a}", "--format", "csv"], ["sessions", "{a}", "--format", "json"],
    ["show", "{a}", "{s}"], ["show", "{a}", "{s}", "--all"], ["show", "{a}", "{s}", "--format", "csv"],
    ["state", "{a}", "{s}", "--at", "100"], ["state", "{a}", "{s}", "--at", "100", "--format", "json"],
    ["analyze", "{a}"], ["analyze", "{a}", "--format", "json"], ["analyze", "{a}", "--format", "csv"],
    ["analyze", "{a}", "--format", "markdown"], ["analyze", "{a}", "--html", "{h}"],
    ["sql", "{a}", "SELECT * FROM events"], ["query", "{a}", "top_errors"], ["replay", "{a}", "--dry-run"],
]


def run_all(out: Path, sid: str, tmp: Path, reads=READS) -> dict[str, object]:
    results = {}
    for argv in reads:
        args = [a.format(a=str(out), s=sid, h=str(tmp / "report.html")) for a in argv]
        result = CliRunner().invoke(cli, args)
        name = " ".join(argv)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{name}: {''.join(traceback.format_exception(result.exception))[-1500:]}")
        assert "Traceback" not in result.output, f"{name}: {result.output[-800:]}"
        results[name] = result
    return results


def test_rich_markup_in_recorded_strings_neither_crashes_nor_injects(tmp_path: Path) -> None:
    out = tmp_path / "a"
    write_session(out, SID, events_of(oob_error_code=MARKUP, text=MARKUP, metadata={"note": MARKUP}))
    results = run_all(out, SID, tmp_path)
    assert results["analyze {a}"].exit_code == 0
    assert "[/x]" in results["analyze {a}"].output  # shown literally
    html = (tmp_path / "report.html").read_text()
    assert 'href="https://evil.example' not in html


def test_terminal_escapes_in_recorded_text_never_reach_the_terminal(tmp_path: Path) -> None:
    out = tmp_path / "a"
    write_session(out, SID, events_of(oob_error_code="code" + OSC, text=OSC, metadata={"k": OSC}))
    for name, result in run_all(out, SID, tmp_path).items():
        if name.startswith(("sql", "query")) or "json" in name:
            continue  # JSON escapes control characters itself; sql/query print with their own escaping below
        assert "\x1b" not in result.output and "\x07" not in result.output, name
    for argv in (["sql", str(out), "SELECT payload FROM events"], ["query", str(out), "top_errors"]):
        assert "\x1b" not in CliRunner().invoke(cli, argv).output, argv


def test_csv_cells_starting_with_a_formula_are_escaped(tmp_path: Path) -> None:
    out = tmp_path / "a"
    write_session(out, SID, events_of(oob_error_code=FORMULA, text=FORMULA))
    import csv
    import io
    for argv in (["analyze", str(out), "--format", "csv"], ["show", str(out), SID, "--format", "csv"],
                 ["sql", str(out), "SELECT payload, type FROM events", "--format", "csv"],
                 ["query", str(out), "top_errors", "--format", "csv"]):
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code == 0, (argv, result.output[-500:])
        cells = [c for row in csv.reader(io.StringIO(result.stdout)) for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], argv


def test_a_session_updated_with_a_string_session_does_not_crash_sessions(tmp_path: Path) -> None:
    out = tmp_path / "a"
    write_session(out, SID, events_of())
    write_session(out, EVIL, [("client", {"type": "session.updated", "session": "gotcha"}),
                              ("server", {"type": "session.created", "session": ["x"]})])
    results = run_all(out, EVIL, tmp_path)
    assert results["sessions {a}"].exit_code == 0
    assert SID in results["sessions {a}"].output and EVIL in results["sessions {a}"].output


# -- damaged and hand-made archive files --------------------------------------------------------------------

def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid - 32, mid + 32):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite(path: Path, change) -> None:
    table = change(pq.read_table(path))
    pq.write_table(table, path)


def _seq_as_string(table: pa.Table) -> pa.Table:
    i = table.schema.get_field_index("seq")
    return table.set_column(i, pa.field("seq", pa.string()), pa.array([str(v) for v in table["seq"].to_pylist()]))


def _no_payload(table: pa.Table) -> pa.Table:
    return table.drop_columns(["payload"])


def _year_10000(table: pa.Table) -> pa.Table:
    i = table.schema.get_field_index("ts")
    far = 253_402_300_800_000_000 + 86_400_000_000  # 10000-01-02 in µs
    return table.set_column(i, table.schema.field("ts"), pa.array([far] * table.num_rows, type=pa.timestamp("us", tz="UTC")))


DAMAGE = {"flipped": _flip_middle, "seq_string": lambda p: _rewrite(p, _seq_as_string),
          "no_payload": lambda p: _rewrite(p, _no_payload), "year_10000": lambda p: _rewrite(p, _year_10000)}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_file_is_named_and_the_rest_is_read(tmp_path: Path, damage: str) -> None:
    out = tmp_path / "a"
    write_session(out, SID, events_of())
    bad = write_session(out, EVIL, events_of(text="x" * 5000) * 20)  # large enough to have data pages mid-file
    DAMAGE[damage](bad)
    results = run_all(out, SID, tmp_path)
    for name in ("sessions {a}", "analyze {a}", "replay {a} --dry-run"):
        result = results[name]
        assert result.exit_code == 0, (name, result.output[-600:])
        assert bad.name in result.output, (name, result.output[-600:])  # the problem names the file
    assert SID in results["sessions {a}"].output


def test_nothing_readable_is_a_non_zero_exit(tmp_path: Path) -> None:
    out = tmp_path / "a"
    bad = write_session(out, EVIL, events_of())
    bad.write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    for argv in (["sessions", str(out)], ["analyze", str(out)], ["replay", str(out), "--dry-run"]):
        result = CliRunner().invoke(cli, argv)
        assert result.exit_code in (1, 2), (argv, result.output[-500:])  # replay: 2 = could not run
        assert "Traceback" not in result.output and bad.name in result.output, (argv, result.output[-500:])


# -- fuzz: any event shape, any column values, through every read command ----------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=8),
                     lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
                     max_leaves=8)
_TYPES = ["session.created", "session.updated", "response.create", "response.created", "response.done", "error",
          "conversation.item.create", "conversation.item.added", "conversation.item.done", "response.output_item.done",
          "input_audio_buffer.append", "response.output_text.delta", "proxy.open", "x"]
_FIELDS = ["response", "session", "item", "error", "event_id", "response_id", "item_id", "previous_item_id", "delta",
           "status", "tool_choice", "conversation", "output", "metadata", "status_details", "audio", "query"]


@st.composite
def _event(draw):
    event = {"type": draw(st.sampled_from(_TYPES) | st.text(max_size=5))}
    for key in draw(st.lists(st.sampled_from(_FIELDS), max_size=4, unique=True)):
        event[key] = draw(_json)
    return draw(st.sampled_from(["client", "server"])), event


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=st.lists(_event(), min_size=1, max_size=8), ts=st.integers(-2**62, 2**62),
       raw=st.binary(max_size=30))
def test_fuzz_every_read_command_survives_any_events(tmp_path_factory, events, ts: int, raw: bytes) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    out = tmp / "a"
    write_session(out, SID, events + [("server", raw)], t0_us=ts)
    run_all(out, SID, tmp)
