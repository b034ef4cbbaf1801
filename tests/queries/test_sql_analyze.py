"""The failure_rate report equals `rtreplay analyze --format json` on the same archive, field for field."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtreplay import queries
from sql_fixtures import write_golden

from rtreplay.cli import cli

FIELDS = ("requests", "completed", "failed", "cancelled", "incomplete", "rejected", "unfinished", "decided",
          "failure_rate", "ci_low", "ci_high")


def golden(tmp_path: Path) -> Path:
    write_golden(tmp_path)
    return tmp_path


def generated(tmp_path: Path) -> Path:
    out = tmp_path / "gen"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "generate_archive.py"
    subprocess.run([sys.executable, str(script), "--events", "30000", "--out", str(out), "--seed", "7"],
                   check=True, capture_output=True)
    return out


def real(tmp_path: Path) -> Path:
    """Every real recording of tests/data/real/ imported into one archive, a session each."""
    out = tmp_path / "real"
    for n, jsonl in enumerate(sorted((Path(__file__).resolve().parents[1] / "data" / "real").glob("*.jsonl"))):
        result = CliRunner().invoke(cli, ["import", str(jsonl), "--out", str(out),
                                          "--session-id", f"20261201T12000000000{n % 10}-real{n:02d}"])
        assert result.exit_code == 0, result.output
    return out


def analyze(root: Path, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["analyze", str(root), "--format", "json", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def same_group(sql_row: dict, group: dict) -> None:
    assert {k: sql_row[k] for k in FIELDS} == pytest.approx({k: group[k] for k in FIELDS}, abs=1e-12)
    forced = group["forced_call"] or {"expected": 0, "happened": 0}
    assert (sql_row["forced_expected"], sql_row["forced_happened"]) == (forced["expected"], forced["happened"])
    assert json.loads(sql_row["form_effective"]) == group["form_effective"]
    assert json.loads(sql_row["top_errors"]) == group["top_errors"]


@pytest.mark.parametrize("make", [golden, generated, real])
def test_failure_rate_report_equals_analyze(tmp_path, make):
    root = make(tmp_path)
    rows = {(r["scope"], r["form"]): r for r in queries.report(root, "failure_rate").to_dicts()}
    by_scope = analyze(root)
    assert len(by_scope["groups"]) == len([k for k in rows if k[0] != "all" and k[1] != "all"])
    for group in by_scope["groups"]:
        same_group(rows[(group["split"]["scope"], group["form"])], group)
    same_group(rows[("all", "all")], by_scope["totals"])
    by_form = analyze(root, "--by", "none")
    for group in by_form["groups"]:
        same_group(rows[("all", group["form"])], group)
