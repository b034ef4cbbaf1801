"""`rtreplay sql` and `rtreplay query` through click, over the golden archive."""
from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from rtreplay.cli import cli
from sql_fixtures import write_golden


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden")
    write_golden(path)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


COUNT = "SELECT form_sent, count(*) AS n FROM requests GROUP BY form_sent ORDER BY form_sent"


def test_sql_writes_json_csv_and_a_table(root):
    as_json = run("sql", str(root), COUNT, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert sum(r["n"] for r in rows) == 18 and rows[0] == {"form_sent": "absent", "n": 9}
    as_csv = run("sql", str(root), COUNT, "--format", "csv")
    assert list(csv.DictReader(io.StringIO(as_csv.stdout))) == [{k: str(v) for k, v in r.items()} for r in rows]
    table = run("sql", str(root), COUNT)
    assert table.exit_code == 0 and table.stdout.splitlines()[0].split() == ["form_sent", "n"]


def test_json_columns_are_embedded_as_json(root):
    result = run("sql", str(root), "SELECT tool_choice FROM requests WHERE form_sent = 'mcp'", "--format", "json")
    assert json.loads(result.output) == [{"tool_choice": {"type": "mcp", "server_label": "srv"}}]


def test_sql_file_and_parquet_output(root, tmp_path):
    script = tmp_path / "q.sql"
    script.write_text("CREATE TEMP VIEW oob AS SELECT * FROM outcomes WHERE scope = 'out-of-band';\n"
                      "SELECT outcome, count(*) AS n FROM oob GROUP BY outcome ORDER BY outcome;\n")
    out = tmp_path / "oob.parquet"
    result = run("sql", str(root), "--file", str(script), "--format", "parquet", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).to_pylist() == [{"outcome": "completed", "n": 1}, {"outcome": "failed", "n": 3},
                                              {"outcome": "unfinished", "n": 2}]
    assert run("sql", str(root), COUNT, "--format", "parquet").exit_code != 0  # parquet needs --output


def test_views_prints_sql_for_any_duckdb_client(root):
    result = run("sql", "--views", str(root))
    assert result.exit_code == 0
    assert "CREATE OR REPLACE VIEW outcomes AS" in result.output and str(root.resolve()) in result.output


def test_query_runs_and_lists_canned_reports(root):
    listing = run("query", str(root))
    assert [line.split()[0] for line in listing.output.splitlines()] == [
        "cost", "failure_rate", "failures", "interruptions", "latency", "out_of_band", "token_usage", "top_errors",
        "voice_latency", "voice_latency_by_context", "voice_latency_by_minute"]
    result = run("query", str(root), "top_errors", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.output)[0]["errors"] >= 1


@pytest.mark.parametrize(("args", "message"), [
    (("sql", "{root}", "SELECT nope FROM requests"), 'column "nope" not found'),
    (("sql", "{root}", "SELECT * FROM request"), 'Did you mean "requests"'),
    (("query", "{root}", "nope"), "no report named 'nope'"),
    (("sql", "{root}"), "give one query"),
    (("sql", "{empty}", "SELECT 1"), "no archive files"),
])
def test_mistakes_are_one_line_errors(root, tmp_path, args, message):
    result = run(*(a.format(root=root, empty=tmp_path) for a in args))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
