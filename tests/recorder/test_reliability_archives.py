"""Bad archives: a truncated Parquet file, a journal cut mid-batch, a file from a newer schema version, a
file that is not Parquet, an empty directory. Every command that reads an archive names what is wrong
with which file (one line each, no traceback) and answers from the rest where that makes sense."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from websockets.asyncio.client import connect

from rtreplay import simulator
from rtreplay.cli import cli
from rtreplay.recorder import archive, schema
from rtreplay.recorder.proxy import running
from reliability_support import FAKE_KEY, assert_no_secret, credentials, no_secret_in_logs  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_secret_in_logs")

TRUNCATED = "20260101T000000000001-trunc1"
CUT_JOURNAL = "20260101T000000000002-cutjnl"
NEWER = "20260101T000000000003-newver"
OTHER = "notes.txt"
BAD_FILES = [f"{TRUNCATED}.parquet", f"{CUT_JOURNAL}.arrows", f"{NEWER}.parquet", OTHER]


async def record_two_sessions(out: Path) -> None:
    """Two real sessions (simulator through the proxy), one out-of-band request each."""
    async with simulator.serve() as sim, running(sim.url, out) as proxy:
        for _ in range(2):
            async with connect(proxy.url + "/v1/realtime?model=gpt-realtime", **credentials()) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": f"key {FAKE_KEY}"}]}}))
                await ws.send(json.dumps({"type": "response.create", "response": {
                    "conversation": "none", "output_modalities": ["text"], "tool_choice": "auto"}}))
                while '"response.done"' not in await ws.recv():
                    pass


def renamed(table: pa.Table, session_id: str) -> pa.Table:
    return table.set_column(0, "session_id", pa.array([session_id] * table.num_rows, pa.string()))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> tuple[Path, list[str]]:
    """An archive of two good sessions plus one file of each kind of damage; and the good session ids."""
    out = tmp_path_factory.mktemp("damaged")
    asyncio.run(record_two_sessions(out))
    good = sorted(out.rglob("*.parquet"))
    day = good[0].parent
    table, _ = archive.read_file(good[1])
    data = good[0].read_bytes()
    (day / f"{TRUNCATED}.parquet").write_bytes(data[: len(data) // 2])
    journal = archive.journal_path(out, CUT_JOURNAL)
    journal.parent.mkdir(exist_ok=True)
    cut = renamed(table, CUT_JOURNAL).cast(schema.EVENT_SCHEMA)
    with pa.OSFile(str(journal), "wb") as f, pa.ipc.new_stream(f, schema.EVENT_SCHEMA) as stream:
        stream.write_table(cut.slice(0, 8))  # complete: the first batch holds the request
        stream.write_table(cut.slice(8))
    os.truncate(journal, journal.stat().st_size - 100)  # the second batch is cut short
    newer = renamed(table, NEWER).replace_schema_metadata({schema.VERSION_KEY: b"99"})
    pq.write_table(newer, day / f"{NEWER}.parquet")
    (day / OTHER).write_text("not an archive file")
    return out, [p.stem for p in good]


def rtreplay(*args: str | Path):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def warned_about(result, names: list[str]) -> None:
    for name in names:
        lines = [line for line in result.stderr.splitlines() if name in line]
        assert lines, f"no message names {name}:\n{result.stderr}"


SESSIONS = "the good sessions and the readable part of the cut journal"


@pytest.mark.parametrize("args,answer,expected", [
    (["sessions", "--format", "json"], lambda out: {r["session"] for r in json.loads(out)}, SESSIONS),
    (["analyze", "--format", "json"], lambda out: json.loads(out)["totals"]["requests"], 3),
    (["sql", "SELECT DISTINCT session_id FROM events", "--format", "json"],
     lambda out: {r["session_id"] for r in json.loads(out)}, SESSIONS),
    (["sql", "SELECT count(*) AS n FROM requests", "--format", "json"], lambda out: json.loads(out)[0]["n"], 3),
    (["query", "failure_rate", "--format", "json"], lambda out: sum(r["requests"] for r in json.loads(out) if r["scope"] == r["form"] == "all"), 3),
    (["replay", "--dry-run", "--scope", "all", "--target", "sim", "--format", "json"], lambda out: len(json.loads(out)), 3),
], ids=["sessions", "analyze", "sql-sessions", "sql-requests", "query", "replay"])
def test_whole_archive_commands_name_each_bad_file_and_answer_from_the_rest(damaged, args, answer, expected) -> None:
    out, good = damaged
    result = rtreplay(args[0], out, *args[1:])
    assert result.exit_code == 0, result.output
    warned_about(result, BAD_FILES)
    assert answer(result.stdout) == ({*good, CUT_JOURNAL} if expected == SESSIONS else expected)
    assert_no_secret(result.output)


def test_one_session_commands_name_the_bad_file(damaged) -> None:
    out, good = damaged
    shown = rtreplay("show", out, good[0])
    assert shown.exit_code == 0 and "response.done" in shown.stdout
    at = rtreplay("state", out, good[0], "--at", "5", "--format", "json")
    assert at.exit_code == 0, at.output
    for command in (["show", out, TRUNCATED], ["state", out, TRUNCATED, "--at", "1"]):
        bad = rtreplay(*command)
        assert bad.exit_code == 1 and f"{TRUNCATED}.parquet" in bad.stderr and len(bad.stderr.splitlines()) == 1
    newer = rtreplay("state", out, NEWER, "--at", "1")
    assert newer.exit_code == 1 and f"{NEWER}.parquet" in newer.stderr and "newer" in newer.stderr
    cut = rtreplay("show", out, CUT_JOURNAL)
    assert cut.exit_code == 0 and "response.create" in cut.stdout
    warned_about(cut, [f"{CUT_JOURNAL}.arrows"])  # what is shown is not the whole session: say so


def test_recover_finalizes_a_cut_journal_and_exits_non_zero(damaged, tmp_path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(damaged[0], out)
    first = rtreplay("recover", out)
    assert first.exit_code == 1 and f"{CUT_JOURNAL}.arrows" in first.stderr and "incomplete" in first.stderr
    assert archive.parquet_path(out, CUT_JOURNAL).exists() and not archive.journal_path(out, CUT_JOURNAL).exists()
    again = rtreplay("recover", out)
    assert again.exit_code == 0 and "no journals" in again.stdout
    assert_no_secret(out, first.output, again.output)


@pytest.mark.parametrize("args", [["sessions"], ["analyze"], ["sql", "SELECT 1"], ["query", "failure_rate"],
                                  ["replay", "--dry-run", "--target", "sim"], ["show", "S"], ["state", "S", "--at", "0"]])
def test_empty_directory_gets_one_line_saying_so(tmp_path, args) -> None:
    result = rtreplay(args[0], tmp_path, *args[1:])
    # replay's 1 means "an expectation did not hold"; a replay that cannot be done is 2 (docs/replay.md)
    assert result.exit_code == (2 if args[0] == "replay" else 1), result.output
    assert str(tmp_path) in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_recover_on_an_empty_directory_has_nothing_to_do(tmp_path) -> None:
    result = rtreplay("recover", tmp_path)
    assert result.exit_code == 0 and "no journals" in result.stdout


def test_the_damaged_archive_holds_no_secret(damaged) -> None:
    assert_no_secret(damaged[0])
