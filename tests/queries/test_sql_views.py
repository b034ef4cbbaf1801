"""The SQL views and canned reports over hand-written archives covering docs/definitions.md case by case."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest

from rtreplay import queries
from rtreplay.recorder import archive
from sql_fixtures import write_golden
from voice_fixtures import write_voice

ROOT = Path(__file__).resolve().parents[2]
VOICE_ONLY = {"truncations", "barge_ins", "heard_transcripts", "voice_latency_by_context", "voice_latency_by_minute"}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    return root, write_golden(root)


@pytest.fixture(scope="module")
def con(golden):
    connection = queries.connect(golden[0])
    yield connection
    connection.close()


def with_refusal(root: Path) -> Path:
    """`root` plus a proxy run's session holding one `proxy.refused` record (recorder/refusals.py)."""
    from rtreplay.recorder.schema import PROXY
    from voice_fixtures import START, Log

    log = Log("20260901T070000000000-proxyrun", START)
    log.emit(0, PROXY, {"type": "proxy.refused", "reason": "bad upgrade request (400)", "status": 400,
                        "peer": "127.0.0.1:1", "path": "/v1/realtime", "count": 1})
    archive.write_parquet(log.table(), archive.parquet_path(root, log.session_id))
    return root


def rows(con, sql):
    return con.sql(sql).pl().to_dicts()


def test_every_sql_file_is_a_view_a_report_or_the_macros():
    stems = {p.stem for p in (ROOT / "queries").glob("*.sql")}
    assert stems == {"macros", *queries.VIEWS, *(f"report_{r}" for r in queries.reports())}
    for path in (ROOT / "queries").glob("*.sql"):
        head = path.read_text().splitlines()
        assert head[0].startswith("-- ") and any("Relies on:" in line for line in head), path.name


@pytest.mark.parametrize("view", queries.VIEWS)
def test_every_view_runs(con, view, tmp_path):
    if view in VOICE_ONLY:  # the tool_choice golden archive has no barge-ins or truncations: the voice one has
        con = queries.connect(write_voice(tmp_path))
    if view == "refused":  # no archive fixture has a proxy run's session: the voice one plus one
        con = queries.connect(with_refusal(write_voice(tmp_path)))
        assert rows(con, "SELECT count(*) AS n FROM sessions") == [{"n": 2}]  # the run's is no session
    assert con.sql(f"SELECT count(*) FROM {view}").pl().item() >= 1


@pytest.mark.parametrize("name", queries.reports())
def test_every_report_runs(golden, name, tmp_path):
    root = write_voice(tmp_path) if name in VOICE_ONLY else golden[0]
    assert queries.report(root, name).height >= 1


def test_requests_has_one_row_per_recorded_response_create(golden, con):
    table = archive.read_archive(golden[0]).table
    recorded = table.filter(pc.equal(table["type"], "response.create"))
    got = rows(con, "SELECT session_id, seq FROM requests ORDER BY session_id, seq")
    want = sorted(zip(recorded["session_id"].to_pylist(), recorded["seq"].to_pylist()))
    assert [(r["session_id"], r["seq"]) for r in got] == want


def test_outcomes_follow_the_definitions_case_by_case(golden, con):
    expected = golden[1]
    got = {(r["session_id"], r["seq"]): r for r in rows(con, "SELECT * FROM outcomes")}
    assert set(got) == set(expected)
    for key, fields in expected.items():
        assert {k: got[key][k] for k in fields} == fields, key


def test_server_initiated_responses_and_errors_that_answer_nothing(con):
    vad = rows(con, "SELECT initiated_by, request_id FROM responses WHERE response_id = 'resp_vad'")
    assert vad == [{"initiated_by": "server", "request_id": None}]
    unmatched = rows(con, "SELECT answer_type FROM answers WHERE request_id IS NULL ORDER BY answer_seq")
    assert [r["answer_type"] for r in unmatched] == ["error", "response.created", "response.created"]
    caused = rows(con, "SELECT caused_by FROM errors WHERE client_event_id = 'evt_item'")
    assert caused == [{"caused_by": "conversation.item.create"}]


def test_turns_and_tool_calls_measure_on_the_monotonic_clock(con):
    (turn,) = rows(con, "SELECT * FROM turns")
    assert (turn["response_id"], turn["speech_ms"], turn["stop_to_created_ms"], turn["stop_to_first_delta_ms"]) == (
        "resp_vad", 1500, 10.0, 20.0)
    calls = rows(con, "SELECT kind, name, call_id, output, latency_to_output_ms FROM tool_calls ORDER BY done_seq")
    assert calls == [
        {"kind": "function_call", "name": "lookup", "call_id": "call_2", "output": "42", "latency_to_output_ms": 20.0},
        {"kind": "mcp_call", "name": "t", "call_id": None, "output": "ok", "latency_to_output_ms": None},
    ]


def test_sessions_model_falls_back_to_the_proxy_open_query(con):
    got = {r["session_id"].split("-")[1]: r for r in rows(con, "SELECT * FROM sessions")}
    assert got["basics"]["model"] == "gpt-realtime"
    assert got["nosess"]["model"] == "gpt-realtime-mini" and got["nosess"]["closed"]
    assert not got["open"]["closed"]


def test_failure_rate_report_counts(golden):
    report = queries.report(golden[0], "failure_rate").to_dicts()
    total = next(r for r in report if r["scope"] == "all" and r["form"] == "all")
    assert (total["requests"], total["failed"], total["rejected"], total["unfinished"]) == (18, 5, 3, 3)
    assert total["failure_rate"] == pytest.approx(5 / 15)
    assert [r["form"] for r in report if r["scope"] == "all"] == [
        "absent", "auto", "none", "required", "function", "mcp", "invalid", "all"]


def test_token_usage_by_model_and_day(golden):
    usage = queries.report(golden[0], "token_usage").to_dicts()
    assert sum(r["responses"] for r in usage) == 14  # every response.done
    assert {str(r["day"]) for r in usage} == {"2026-09-01", "2026-09-02"}
    assert all(r["total_tokens"] == 30 * r["responses"] for r in usage)


def test_journals_are_read_only_when_asked(golden):
    with_journal = queries.connect(golden[0])
    without = queries.connect(golden[0], journals=False)
    count = "SELECT count(*) FROM requests WHERE session_id LIKE '%-open'"
    assert (with_journal.sql(count).pl().item(), without.sql(count).pl().item()) == (1, 0)


def test_view_script_gives_the_plain_duckdb_client_the_same_views(golden):
    plain = duckdb.connect()
    plain.execute(queries.view_script(golden[0]))
    ours = queries.connect(golden[0], journals=False)
    sql = "SELECT request_id, outcome, pairing, confidence, forced_call FROM outcomes ORDER BY request_id"
    assert plain.sql(sql).pl().to_dicts() == ours.sql(sql).pl().to_dicts()


def test_archive_without_files_is_one_clear_error(tmp_path):
    with pytest.raises(queries.SqlError, match="no archive files"):
        queries.connect(tmp_path)
    with pytest.raises(queries.SqlError, match="no such file"):
        queries.connect(tmp_path / "missing")


def test_sql_errors_are_one_line_naming_the_column_or_view(con):
    with pytest.raises(queries.SqlError) as exc:
        queries.relation(con, "SELECT no_such_column FROM requests")
    assert "no_such_column" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(queries.SqlError, match='Did you mean "requests"'):
        queries.relation(con, "SELECT * FROM requestz")


def test_failure_rate_report_matches_the_generators_exact_counts(tmp_path):
    out = tmp_path / "gen"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_archive.py"), "--events", "30000",
                    "--out", str(out)], check=True, capture_output=True)
    import json

    expected = json.loads((tmp_path / "gen.expected.json").read_text())
    report = queries.report(out, "failure_rate").to_dicts()
    got = {(r["form"], r["scope"], o): r[o] for r in report if r["scope"] != "all" and r["form"] != "all"
           for o in ("completed", "failed", "cancelled", "incomplete", "rejected", "unfinished") if r[o]}
    assert got == {(c["form_sent"], c["scope"], c["outcome"]): c["n"] for c in expected["counts"]}
    forced = {(r["form"], r["scope"]): (r["forced_expected"], r["forced_happened"]) for r in report
              if r["scope"] != "all" and r["forced_expected"]}
    want: dict = {}
    for c in expected["forced_call"]:
        if c["forced_call"] is not None:
            e, h = want.get((c["form_sent"], c["scope"]), (0, 0))
            want[(c["form_sent"], c["scope"])] = (e + c["n"], h + (c["n"] if c["forced_call"] else 0))
    assert {k: v for k, v in forced.items() if k[0] != "all"} == want
