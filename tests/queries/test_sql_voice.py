"""The voice SQL views and canned reports give the numbers of the Python voice reports, on the hand-written voice
archive, a generated archive (barge-ins, truncations, failures, usage at volume), the real recordings of
tests/data/real/ and the tool_choice golden archive."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtreplay import queries
from rtreplay.analyzer.report import cost, failures, interruptions, latency
from rtreplay.analyzer.report.voice_read import read_archive
from rtreplay.recorder.importer import import_jsonl
from sql_fixtures import write_golden
from voice_fixtures import write_voice

REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def voice(tmp_path: Path) -> Path:
    return write_voice(tmp_path)


def generated(tmp_path: Path) -> Path:
    out = tmp_path / "gen"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "generate_archive.py"
    subprocess.run([sys.executable, str(script), "--events", "40000", "--out", str(out), "--seed", "11"],
                   check=True, capture_output=True)
    return out


def real(tmp_path: Path) -> Path:
    for src in sorted(REAL.glob("*.jsonl")):
        import_jsonl(src, tmp_path, None)
    return tmp_path


def golden(tmp_path: Path) -> Path:
    write_golden(tmp_path)
    return tmp_path


def approx(rows: list[dict]) -> list:
    return [{k: (pytest.approx(v, rel=1e-9, abs=1e-12) if isinstance(v, float) else v) for k, v in r.items()}
            for r in rows]


@pytest.fixture(params=[voice, generated, real, golden])
def archive(request, tmp_path):
    root = request.param(tmp_path)
    facts, _ = read_archive(root)
    return root, facts, queries.connect(root)


def rows(con, sql: str) -> list[dict]:
    return con.sql(sql).pl().to_dicts()


def test_latency_equal(archive):
    root, facts, con = archive
    r = latency.build(facts).to_json()
    sql = rows(con, queries.report_sql("voice_latency"))
    assert sql == approx([{k: m[k] for k in ("measure", "n", "p50", "p90", "p99", "max")} for m in r["measures"]])
    by_minute = rows(con, queries.report_sql("voice_latency_by_minute"))
    assert by_minute == approx(r["by_minute"])
    by_context = rows(con, queries.report_sql("voice_latency_by_context"))
    assert by_context == approx(r["by_context"])


def test_interruptions_equal(archive):
    root, facts, con = archive
    r = interruptions.build(facts).to_json()
    sql = rows(con, queries.report_sql("interruptions"))
    assert sql == [{k: s[k] for k in ("session_id", "turns", "barge_ins", "truncated", "truncations",
                                      "invalid_truncations")} for s in r["sessions"]]
    keys = ("session_id", "seq", "response_id", "item_id", "generated_ms", "source", "cleared_seq", "truncate_seq",
            "truncated_by", "audio_end_ms", "valid")
    assert rows(con, f"SELECT {', '.join(keys)} FROM barge_ins ORDER BY session_id, seq") == \
        approx([{k: b[k] for k in keys} for b in r["barge_ins"]])
    assert rows(con, "SELECT session_id, seq, transcript_generated, transcript_heard FROM heard_transcripts "
                     "ORDER BY session_id, seq") == [
        {"session_id": b["session_id"], "seq": b["seq"], "transcript_generated": b["transcript_generated"],
         "transcript_heard": b["transcript_heard"]} for b in r["barge_ins"] if b["item_id"] is not None]
    keys = ("session_id", "seq", "item_id", "response_id", "audio_end_ms", "generated_ms", "valid", "answer",
            "error_code", "unheard_ms")
    assert rows(con, f"SELECT {', '.join(keys)} FROM truncations ORDER BY session_id, seq") == \
        approx([{k: t[k] for k in keys} for t in r["truncations"]])


def test_cost_equal(archive):
    root, facts, con = archive
    r = cost.build(facts).to_json()
    sql = {s["session_id"]: s for s in rows(con, queries.report_sql("cost"))}
    for s in r["sessions"]:
        if s["responses"] == 0 and s["transcription_usd"] == 0 and s["session_id"] not in sql:
            continue  # nothing priced in it: the SQL report has no row
        got = sql.pop(s["session_id"])
        assert got["responses"] == s["responses"] and got["unpriced"] == s["unpriced"]
        assert {k: got[k] or 0 for k in cost.KINDS} == s["tokens"]
        assert (got["usd"], got["transcription_usd"], got["unheard_audio_usd"]) == pytest.approx(
            (s["usd"], s["transcription_usd"], s["unheard_audio_usd"]), rel=1e-9, abs=1e-12)
    assert sql == {}
    per = {(x["session_id"], x["response_id"]): x for x in rows(con, "FROM voice_cost WHERE what = 'response'")}
    assert len(per) == len(r["responses"])
    for x in r["responses"]:
        got = per[(x["session_id"], x["response_id"])]
        assert got["turn"] == x["turn"] and got["model"] == x["model"]
        assert got["usd"] == (None if x["usd"] is None else pytest.approx(x["usd"], rel=1e-9, abs=1e-12))


def test_failures_equal(archive):
    root, facts, con = archive
    r = failures.build(facts).to_json()
    assert rows(con, queries.report_sql("failures")) == [
        {k: x[k] for k in ("kind", "detail", "cause", "count", "sessions")} for x in r["kinds"]]
    keys = ("session_id", "seq", "kind", "detail", "cause")
    assert rows(con, f"SELECT {', '.join(keys)} FROM voice_failures ORDER BY session_id, seq, kind") == \
        [{k: e[k] for k in keys} for e in r["events"]]
