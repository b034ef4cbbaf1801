"""`rtreplay import`: JSONL logs become archive sessions that rebuild like proxied ones."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from rtreplay.analyzer.state import load
from rtreplay.cli import cli
from rtreplay.analyzer.state.match import requests
from rtreplay.analyzer.state.timeline import rebuild

BETA = Path(__file__).resolve().parents[1] / "data" / "real" / "beta-text-response.jsonl"


def test_beta_log_imports_and_rebuilds(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["import", str(BETA), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    ((sid, table),) = list(load.iter_sessions(tmp_path))
    state = rebuild(load.session_events(table), sid)
    assert state.order == ["item_C1PSbur7hgTONg4H8lKhl"]
    assert table.num_rows == len(BETA.read_text().splitlines()) + 1  # + the proxy.open record


def test_direction_timestamp_wrappers_audio_and_bad_lines(tmp_path) -> None:
    lines = [
        {"type": "response.create", "event_id": "c1", "response": {"conversation": "none"}, "timestamp": "2026-09-01T10:00:00Z"},
        {"direction": "server", "timestamp": 1788256800.5, "event": {"type": "response.created", "response": {"id": "r1", "status": "in_progress"}}},
        {"type": "input_audio_buffer.append", "audio": "AAECAw=="},
        {"type": "response.done", "response": {"id": "r1", "status": "completed", "output": []}, "direction": "server"},
    ]
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    res = CliRunner().invoke(cli, ["import", str(src), "--out", str(tmp_path / "a"), "--session-id", "20260901T100000000000-test01"])
    assert res.exit_code == 0 and "5 events from" in res.output and "1 line not a JSON event" in res.output
    table = load.read_session(tmp_path / "a", "20260901T100000000000-test01")
    assert table.column("direction").to_pylist() == ["proxy", "client", "server", "client", "server", "server"]
    assert table.column("type").to_pylist()[-1] == "invalid.json"
    assert "timestamp" not in table.column("payload")[1].as_py()
    assert table.column("audio")[3].as_py() == b"\x00\x01\x02\x03"  # audio split like the proxy does
    (r,) = requests(tmp_path / "a")
    assert (r.outcome, r.scope, r.response_id) == ("completed", "out-of-band", "r1")


def test_missing_file_is_a_one_line_error(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["import", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "Traceback" not in res.output
