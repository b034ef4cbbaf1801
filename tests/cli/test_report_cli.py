"""`rtreplay analyze` through its click command: errors, formats and the HTML page, on real archives."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtreplay.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate_archive  # noqa: E402  (a script beside the benchmarks, not a package)


def analyze(*args: str):
    return CliRunner().invoke(cli, ["analyze", *args])


def test_missing_directory_is_a_one_line_error(tmp_path):
    result = analyze(str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'nope'}: no such file or directory"


def test_empty_directory_is_a_one_line_error(tmp_path):
    result = analyze(str(tmp_path))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {tmp_path}: no archive files here")
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_split_and_bad_time_are_one_line_errors(tmp_path):
    result = analyze(str(tmp_path), "--by", "colour")
    assert result.exit_code == 1 and "unknown split 'colour'" in result.output
    result = analyze(str(tmp_path), "--since", "yesterday")
    assert result.exit_code == 1 and "not an ISO date" in result.output


def test_help_shows_an_example():
    result = analyze("--help")
    assert result.exit_code == 0 and "rtreplay analyze logs/ --by +model" in result.output


# --- on a generated archive whose true counts are known (benchmarks/generate_archive.py) -----------------

OUTCOMES = ("completed", "failed", "cancelled", "incomplete", "rejected", "unfinished")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "logs"
    expected = generate_archive.generate(root, 30_000, seed=7, minutes=5)
    truth = Counter({(c["form_sent"], c["scope"], c["outcome"]): c["n"] for c in expected["counts"]})
    return root, expected, truth


def _counts(report: dict, split: str = "scope") -> Counter:
    return Counter({(g["form"], g["split"][split], o): g[o] for g in report["groups"] for o in OUTCOMES if g[o]})


def test_json_counts_equal_the_generators_ground_truth(generated):
    root, expected, truth = generated
    result = analyze(str(root), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert _counts(report) == truth
    assert report["totals"]["requests"] == expected["requests"]
    forced = Counter({(f["form_sent"], f["scope"]): f["n"] for f in expected["forced_call"] if f["forced_call"]})
    got = Counter({(g["form"], g["split"]["scope"]): g["forced_call"]["happened"]
                   for g in report["groups"] if g["forced_call"] and g["forced_call"]["happened"]})
    assert got == forced


def test_oob_only_and_no_split_keep_the_same_numbers(generated):
    root, _, truth = generated
    report = json.loads(analyze(str(root), "--format", "json", "--oob-only", "--by", "none").output)
    oob = Counter()
    for (form, scope, outcome), n in truth.items():
        if scope == "out-of-band":
            oob[(form, outcome)] += n
    assert Counter({(g["form"], o): g[o] for g in report["groups"] for o in OUTCOMES if g[o]}) == oob
    assert report["split_by"] == [] and report["filters"]["oob_only"] is True


def test_session_filter_and_session_split_agree(generated):
    root, _, _ = generated
    by_session = json.loads(analyze(str(root), "--format", "json", "--by", "session").output)
    sessions = sorted({g["split"]["session"] for g in by_session["groups"]})
    assert len(sessions) >= 2
    one = json.loads(analyze(str(root), "--format", "json", "--session", sessions[0], "--by", "none").output)
    assert one["totals"]["requests"] == sum(g["requests"] for g in by_session["groups"]
                                            if g["split"]["session"] == sessions[0])


def test_table_csv_and_markdown_print_the_same_totals(generated):
    root, expected, _ = generated
    table = analyze(str(root))
    assert table.exit_code == 0 and "Requests by tool_choice form" in table.output
    csv_out = analyze(str(root), "--format", "csv").output.splitlines()
    assert csv_out[0].startswith("form,scope,requests,completed,failed")
    assert sum(int(line.split(",")[2]) for line in csv_out[1:]) == expected["requests"]
    assert f"All requests: {expected['requests']}," in analyze(str(root), "--format", "markdown").output


def test_html_lists_every_failed_request_and_links_timelines(generated, tmp_path):
    root, _, truth = generated
    page = tmp_path / "report.html"
    result = analyze(str(root), "--html", str(page), "--timelines", "5", "--format", "json")
    assert result.exit_code == 0, result.output
    html = page.read_text()
    failed = sum(n for (_, _, outcome), n in truth.items() if outcome == "failed")
    assert failed > 5 and html.count('<tr class="failed">') == failed
    assert html.count('<section id="t-') == 5
    assert "response.done" in html and "<script" not in html


def test_progress_goes_to_stderr_and_leaves_json_on_stdout_clean(generated):
    root, expected, _ = generated
    result = analyze(str(root), "--format", "json", "--progress")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["totals"]["requests"] == expected["requests"]
    assert "reading archive" in result.stderr


def test_pairing_filter_and_split_partition_the_requests(generated):
    root, _, _ = generated
    whole = json.loads(analyze(str(root), "--format", "json", "--by", "none").output)["totals"]["requests"]
    by_pairing = json.loads(analyze(str(root), "--format", "json", "--by", "pairing").output)
    per = Counter()
    for g in by_pairing["groups"]:
        per[g["split"]["pairing"]] += g["requests"]
    assert sum(per.values()) == whole and len(per) > 1
    for how, n in per.items():
        kept = json.loads(analyze(str(root), "--format", "json", "--by", "none",
                                  "--pairing", how or "none").output)
        assert kept["totals"]["requests"] == n and kept["filters"]["pairings"] == [how or "none"]
    result = analyze(str(root), "--pairing", "telepathy")
    assert result.exit_code == 1 and "unknown pairing 'telepathy'" in result.output


def test_jobs_give_the_same_report_as_one_process(generated):
    root, _, _ = generated
    one = analyze(str(root), "--format", "json", "--jobs", "1", "--by", "+session")
    two = analyze(str(root), "--format", "json", "--jobs", "2", "--by", "+session")
    assert one.exit_code == two.exit_code == 0, (one.output, two.output)
    assert one.output == two.output
    assert len(json.loads(one.output)["groups"]) > 10
