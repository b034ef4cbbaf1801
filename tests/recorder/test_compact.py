"""`rtreplay compact`: every command gives the same results before and after, and the rewrite is atomic."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from rtreplay.cli import cli

from rtreplay.recorder import compact as compact_mod
from rtreplay.recorder.store import Archive

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate_archive  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
DAY = "2026-11-23"  # the golden sessions' day; the generated ones are on 2026-09-01


def run(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args))
    assert done.exit_code == 0, (args, done.output)
    return done.output


@pytest.fixture
def archive(tmp_path) -> Path:
    root = tmp_path / "logs"
    generate_archive.generate(root, 12_000, seed=5, minutes=2)
    for name in ("text", "audio"):
        shutil.copytree(GOLDEN / name / "events", root / "events", dirs_exist_ok=True)
    return root


def outputs(root: Path) -> dict[tuple[str, ...], str]:
    a = str(root)
    sessions = [s["session"] for s in json.loads(run("sessions", a, "--format", "json"))]
    commands = [("sessions", a), ("analyze", a, "--format", "json", "--by", "+session"), ("analyze", a),
                ("sql", a, "SELECT session_id, seq, type, payload FROM events ORDER BY session_id, seq", "--format", "csv"),
                ("sql", a, "SELECT * FROM requests ORDER BY session_id, seq", "--format", "json"),
                ("query", a, "failure_rate"), ("query", a, "latency"),
                ("replay", a, "--target", "sim", "--dry-run", "--scope", "all")]
    for sid in sessions[:2] + sessions[-2:]:  # generated and recorded ones
        commands += [("show", a, sid, "--all"), ("state", a, sid, "--at", "30", "--format", "json")]
    return {c[:1] + c[2:]: run(*c) for c in commands}


def test_every_command_gives_the_same_results_after_compaction(archive) -> None:
    before = outputs(archive)
    days = sorted(p.name for p in (archive / "events").iterdir())
    for day in days:
        assert "files ->" in run("compact", str(archive), "--day", day.removeprefix("date="))
    files = sorted(p.name for p in (archive / "events").rglob("*.parquet"))
    assert len(files) == len(days) and all("--" in f for f in files)  # one large file per day here
    for f in (archive / "events").rglob("*.parquet"):  # sorted by session and time, in skippable row groups
        t = pq.read_table(f, columns=["session_id", "seq"]).to_pylist()
        assert t == sorted(t, key=lambda r: (r["session_id"], r["seq"]))
    assert outputs(archive) == before
    assert "nothing to compact" in run("compact", str(archive), "--day", "2026-01-01")


def test_compaction_is_atomic_for_readers(archive, monkeypatch) -> None:
    before = outputs(archive)
    plain = sorted(p for p in (archive / "events").rglob("*.parquet"))
    # A compaction that dies before its commit: its files are written, the manifest is not.
    monkeypatch.setattr(compact_mod.Archive, "local", property(lambda self: (_ for _ in ()).throw(OSError("crash"))))
    with pytest.raises(OSError, match="crash"):
        compact_mod.compact(str(archive), DAY)
    monkeypatch.undo()
    assert len(list((archive / "events").rglob("*.c-*.parquet"))) == 1 and all(p.exists() for p in plain)
    assert outputs(archive) == before  # the uncommitted file is ignored
    # A compaction that dies after its commit, before deleting: the replaced files are hidden.
    monkeypatch.setattr(compact_mod, "_delete", lambda fs, path: None)
    done = compact_mod.compact(str(archive), DAY)
    assert done.written and set(done.replaced) >= {p.name for p in plain if DAY in str(p)}
    assert outputs(archive) == before
    arc = Archive.open(archive)
    assert len([f for f in arc.files if DAY in f.path]) == 1
