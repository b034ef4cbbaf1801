"""Every read command on an archive in object storage gives what it gives on a local copy of it.

A real S3-compatible server (moto) on 127.0.0.1; the demo records into a bucket through the proxy, an import
adds a session, the bucket is copied to a local directory, and each command runs on both.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from s3_support import filesystem, make_bucket, s3_server

from rtreplay.recorder.store import Archive

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
RTREPLAY = [sys.executable, "-m", "rtreplay"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(RTREPLAY + list(args), capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("s3readers")
    with s3_server():
        url = make_bucket("demo") + "/logs"
        demo = run("demo", "--out", str(tmp / "demo"), "--archive", url, "--conversations", "2", "--repeat", "1")
        assert demo.returncode == 0, demo.stderr
        assert "sessions uploaded to s3://demo/logs" in demo.stdout
        assert not list((tmp / "demo" / "spool").rglob("*.parquet"))  # uploaded, verified, removed locally
        imported = run("import", str(REAL / "beta-text-response.jsonl"), "--out", url,
                       "--session-id", "20260901T100000000000-import")
        assert imported.returncode == 0, imported.stderr
        local = tmp / "local"
        pafs.copy_files("demo/logs", str(local), source_filesystem=filesystem(),
                        destination_filesystem=pafs.LocalFileSystem())
        yield url, str(local), tmp


def same(url: str, local: str, *args: str) -> str:
    """Run one command on the bucket and on the local copy; outputs equal once the locations are named alike."""
    remote = run(*(a.replace("ARCHIVE", url) for a in args))
    here = run(*(a.replace("ARCHIVE", local) for a in args))
    assert remote.returncode == here.returncode == 0, (args, remote.stderr, here.stderr)
    assert remote.stdout.replace(url, "ARCHIVE") == here.stdout.replace(local, "ARCHIVE"), args
    assert remote.stderr.replace(url, "ARCHIVE") == here.stderr.replace(local, "ARCHIVE"), args
    return here.stdout


def test_every_read_command_is_the_same_on_the_bucket(archives) -> None:
    url, local, tmp = archives
    listing = same(url, local, "sessions", "ARCHIVE", "--format", "json")
    sessions = [s["session"] for s in json.loads(listing)]
    assert len(sessions) == 3 and "20260901T100000000000-import" in sessions
    sid = sessions[-1]
    failed = same(url, local, "sql", "ARCHIVE", "SELECT response_id FROM outcomes WHERE outcome = 'failed' "
                                           "ORDER BY session_id, seq LIMIT 1", "--format", "csv").split()[1]
    failed_sid = same(url, local, "sql", "ARCHIVE", f"SELECT session_id FROM outcomes WHERE response_id = "
                                               f"'{failed}'", "--format", "csv").split()[1]
    for args in (
        ("sessions", "ARCHIVE"),
        ("show", "ARCHIVE", sid), ("show", "ARCHIVE", failed_sid, "--all", "--format", "json"),
        ("state", "ARCHIVE", failed_sid, "--at", "40"),
        ("state", "ARCHIVE", failed_sid, "--before", failed, "--format", "json"),
        ("analyze", "ARCHIVE"), ("analyze", "ARCHIVE", "--format", "json"),
        ("analyze", "ARCHIVE", "--since", "2026-01-01", "--by", "+session", "--format", "csv"),
        ("sql", "ARCHIVE", "SELECT date, type, count(*) AS n FROM events GROUP BY ALL ORDER BY ALL"),
        ("sql", "ARCHIVE", "SELECT * EXCLUDE (audio) FROM events ORDER BY session_id, seq", "--format", "json"),
        ("query", "ARCHIVE"), ("query", "ARCHIVE", "failure_rate", "--format", "json"),
        ("query", "ARCHIVE", "latency"),
        ("replay", "ARCHIVE", "--target", "sim", "--dry-run", "--failed"),
    ):
        same(url, local, *args)
    page_remote, page_local = tmp / "remote.html", tmp / "local.html"
    assert run("analyze", url, "--html", str(page_remote)).returncode == 0
    assert run("analyze", local, "--html", str(page_local)).returncode == 0
    assert page_remote.read_text().replace(url, "A") == page_local.read_text().replace(local, "A")
    # an object-store archive that does not exist: one line, no traceback
    missing = run("analyze", url.replace("/logs", "/nothing"))
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr and "Traceback" not in missing.stderr


def test_since_reads_only_those_days(archives) -> None:
    url, local, _ = archives
    every = Archive.open(url)
    days = sorted({f.path.split("date=")[1].split("/")[0] for f in every.files})
    assert days == ["2026-09-01", days[-1]] and days[-1] > "2026-09-01"  # the import's day, the demo's day
    later = Archive.open(url, days=(days[-1], None))
    assert {f.session_id for f in later.files} == set(every.sessions) - {"20260901T100000000000-import"}
    assert Archive.open(url, days=(None, "2026-09-01")).sessions.keys() == {"20260901T100000000000-import"}
    assert Archive.open(local, days=(days[-1], None)).sessions.keys() == later.sessions.keys()
