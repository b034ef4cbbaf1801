"""`rtreplay replay` at its edges: selection, safety prompt, API key handling, output formats, exit codes."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
from click.testing import CliRunner

from rtreplay.cli.replay import replay as replay_command

FAKE_KEY = "sk-fake-replay-test-key-123456"

# The golden replay archive of tests/analyzer/test_replay_golden.py.
ARCHIVE = Path(__file__).resolve().parents[1] / "data" / "replay_plans" / "archive"
SESSION_A = "20261123T000928814046-4cpr5c"  # text output


def run(*args: str, env: dict | None = None, input: str | None = None):
    return CliRunner().invoke(replay_command, [str(ARCHIVE), *args], env=env, input=input)


def planned(result) -> list[str]:
    return [line.split()[2] for line in result.output.splitlines() if line.startswith("# request")]


def test_selection_filters_combine() -> None:
    assert len(planned(run("--dry-run"))) == 14  # out-of-band by default: 7 forms x 2 sessions
    assert len(planned(run("--dry-run", "--scope", "all"))) == 20
    assert planned(run("--dry-run", "--session", SESSION_A, "--failed")) == [f"{SESSION_A}:169"]
    assert planned(run("--dry-run", "--where", "form_sent IN ('auto', 'none') AND session_id = '" + SESSION_A + "'")) \
        == [f"{SESSION_A}:212", f"{SESSION_A}:280"]
    by_id = run("--dry-run", "--format", "json", "--response-id", "resp_D2uUhKXQeHrCgFsJgeANl")
    assert [p["request_id"] for p in orjson.loads(by_id.output)] == [f"{SESSION_A}:173"]


def test_nothing_selected_or_bad_where_is_a_one_line_error() -> None:
    result = run("--dry-run", "--response-id", "resp_nope")
    assert result.exit_code == 2 and "no recorded request matches" in result.output
    result = run("--dry-run", "--where", "no_such_column = 1")
    assert result.exit_code == 2 and result.output.startswith("Error: --where:") and "Traceback" not in result.output


def test_non_loopback_target_needs_a_key_and_a_yes() -> None:
    no_key = run("--target", "wss://api.example.invalid", env={"OPENAI_API_KEY": ""})
    assert no_key.exit_code == 2 and "set OPENAI_API_KEY" in no_key.output
    declined = run("--target", "wss://api.example.invalid", "--failed", env={"OPENAI_API_KEY": FAKE_KEY}, input="n\n")
    assert declined.exit_code == 2
    assert "Replay 2 requests in 2 new sessions against wss://api.example.invalid?" in declined.output
    assert "variant" not in declined.output  # aborted before anything was sent


def test_unreachable_target_fails_after_reporting(tmp_path: Path) -> None:
    result = run("--target", "ws://127.0.0.1:1", "--failed", "--timeout", "5", "--record", str(tmp_path / "r"),
                 "--format", "markdown")
    assert result.exit_code == 2
    assert "| recorded | 2 | 0 | 0 | 0 | 0 | 0 | 2 |" in result.output
    assert "no replay got an answer: connection ended" in result.output


def test_csv_report_against_the_simulator_and_the_key_is_never_recorded(tmp_path: Path) -> None:
    record = tmp_path / "replays"
    result = run("--target", "sim", "--sim-faults", "seed-oob-forced-function", "--form", "function",
                 "--vary", "conversation=auto", "--format", "csv", "--record", str(record),
                 env={"OPENAI_API_KEY": FAKE_KEY})
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["variant"], r["replays"], r["failed"], r["completed"]) for r in rows] == [
        ("recorded", "2", "2", "0"), ("conversation=auto", "2", "0", "2")]  # the profile matches conversation none
    assert rows[0]["original_failed"] == "2" and rows[0]["failure_rate"] == "1.0"
    files = [f for f in record.rglob("*") if f.is_file()]
    assert len(files) == 4 and not any(FAKE_KEY.encode() in f.read_bytes() for f in files)


def test_markdown_report_lists_the_fidelity_notes() -> None:
    result = run("--target", "sim", "--form", "required", "--session", SESSION_A, "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "| recorded | 1 | 1 | 0 |" in result.output
    assert "- `user_audio_missing` (1 request): user audio was not kept" in result.output
