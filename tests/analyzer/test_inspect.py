"""The `sessions`, `show` and `state` commands over a generated archive, through the click CLI."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtreplay.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate_archive  # noqa: E402


@pytest.fixture(scope="module")
def arch(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inspect") / "logs"
    generate_archive.generate(out, 8_000, seed=5, minutes=1)
    return out


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_sessions_lists_each_session_with_its_requests(arch) -> None:
    res = run("sessions", arch, "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    expected = json.loads(generate_archive.sidecar_path(arch).read_text())
    assert len(rows) == expected["sessions"]
    assert sum(r["events"] for r in rows) == expected["events"]
    assert sum(r["requests"] for r in rows) == expected["requests"]
    assert sum(r["failures"] for r in rows) == sum(c["n"] for c in expected["counts"] if c["outcome"] == "failed")
    assert {r["model"] for r in rows} == {"gpt-realtime"}


def test_show_and_state(arch) -> None:
    sid = json.loads(run("sessions", arch, "--format", "json").output)[0]["session"]
    shown = run("show", arch, sid)
    assert shown.exit_code == 0 and "input_audio_buffer.append ×" in shown.output and "response.done" in shown.output
    at = run("state", arch, sid, "--at", "400", "--format", "json")
    items = json.loads(at.output)["items"]
    assert at.exit_code == 0 and items and all("id" in i for i in items)
    assert "user" in run("state", arch, sid, "--at", "400").output


def test_user_mistakes_are_one_line_errors(arch) -> None:
    for args in (("state", arch, "nope", "--at", "1"), ("state", arch, "x"), ("show", arch / "missing", "x")):
        res = run(*args)
        assert res.exit_code != 0 and "Traceback" not in res.output and res.output.strip()


def test_damaged_and_old_files_do_not_stop_the_rest(arch, tmp_path) -> None:
    import shutil

    import pyarrow.parquet as pq

    from rtreplay import analyzer
    from rtreplay.analyzer.state import load
    from rtreplay.recorder import schema

    root = tmp_path / "mixed"
    shutil.copytree(arch, root)
    good = next(root.rglob("*.parquet"))
    v1 = pq.read_table(good).slice(0, 50).drop_columns(["audio", "audio_at"])
    v1 = v1.set_column(0, "session_id", [["20260101T000000000000-oldv1"] * 50])
    pq.write_table(v1.replace_schema_metadata({schema.VERSION_KEY: b"1"}), good.parent / "20260101T000000000000-oldv1.parquet")
    (good.parent / "20260102T000000000000-broken.parquet").write_bytes(b"PAR1 not really")
    sc = load.scan(root)
    assert [p.path.endswith("broken.parquet") for p in sc.problems] == [True]
    frame = analyzer.events(root).collect()
    assert frame.filter(frame["session_id"] == "20260101T000000000000-oldv1").height == 50
    res = CliRunner().invoke(cli, ["sessions", str(root), "--format", "json"])
    assert res.exit_code == 0
    assert "broken.parquet" in res.output  # the warning names the file (stderr; click 8.2 mixes it in)
    assert "20260101T000000000000-oldv1" in res.stdout
