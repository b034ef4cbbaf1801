"""Every real recording in tests/data/real/ rebuilds and pairs as its expected answer says.

The `<name>.expected.json` beside each `<name>.jsonl` was written by reading the events (see its
`read_by_hand` and tests/data/real/README.md), not by running rtreplay: the default conversation's item ids in
order, the out-of-band output ids, which response each `response.create` (by its line in the file) produced,
the responses nobody asked for, and which client event each error naming an event_id answers. The recording
is imported (`rtreplay import`, one proxy.open record before line 0, so seq = line + 1), then checked through
the reducer, `match`, `analyze`, the SQL views and `replay --dry-run`.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtreplay import queries
from rtreplay.analyzer.state import load
from rtreplay.analyzer.state.match import match
from rtreplay.analyzer.state.timeline import rebuild
from rtreplay.cli import cli

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
RECORDINGS = sorted(p.name.removesuffix(".expected.json") for p in REAL.glob("*.expected.json"))
SID = "20261201T120000000000-real01"


@pytest.fixture(scope="module", params=RECORDINGS)
def recording(request, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(name)
    res = CliRunner().invoke(cli, ["import", str(REAL / f"{name}.jsonl"), "--out", str(root), "--session-id", SID])
    assert res.exit_code == 0, res.output
    return root, json.loads((REAL / f"{name}.expected.json").read_text())


def line_seq(line: int) -> int:
    return line + 1  # the import's proxy.open record is seq 0


def test_every_recording_has_its_expected_answer():
    assert {p.name.removesuffix(".jsonl") for p in REAL.glob("*.jsonl")} == set(RECORDINGS)


def test_rebuild_keeps_the_conversation_the_server_keeps(recording):
    root, want = recording
    ((sid, table),) = list(load.iter_sessions(root))
    state = rebuild(load.session_events(table), sid)
    assert state.order == want["conversation"]
    assert [a for a in state.anomalies if a.kind == "unknown_type"] == []  # every real event type has a handler
    oob = [i for r in state.responses.values() if r.out_of_band for i in r.output]
    assert sorted(oob) == sorted(want["out_of_band_outputs"])
    assert not set(oob) & set(state.items)
    # the reducer gives each response the request the expected answer names (and none to the others)
    asked = {r["response_id"]: line_seq(r["line"]) for r in want["requests"] if r["response_id"]}
    assert {rid: r.request_seq for rid, r in state.responses.items() if r.request_seq is not None} == asked


def test_requests_pair_with_the_responses_they_produced(recording):
    root, want = recording
    result = match(root)
    got = [{"line": r.seq - 1, "response_id": r.response_id, "outcome": r.outcome} for r in result.requests]
    assert got == want["requests"]
    assert result.server_initiated.get(SID, []) == want["server_initiated"]


def test_sql_pairs_the_same(recording):
    root, want = recording
    con = queries.connect(root)
    try:
        rows = con.sql("SELECT seq, response_id, outcome FROM outcomes ORDER BY seq").fetchall()
        server = [r[0] for r in con.sql("SELECT response_id FROM responses WHERE initiated_by = 'server' "
                                        "ORDER BY created_seq").fetchall()]
        errors = con.sql("SELECT e.seq, c.seq FROM errors e JOIN events c ON c.session_id = e.session_id "
                         "AND c.direction = 'client' AND c.event_id = e.client_event_id AND c.seq < e.seq "
                         "WHERE e.source = 'error' AND e.request_id IS NULL ORDER BY e.seq").fetchall()
    finally:
        con.close()
    assert [{"line": s - 1, "response_id": r, "outcome": o} for s, r, o in rows] == want["requests"]
    assert server == want["server_initiated"]
    assert [{"line": e - 1, "answers_line": c - 1} for e, c in errors] == want["errors_answer"]


def test_barge_ins_as_read_by_hand(recording):
    """Over WebRTC (no audio deltas) a barge-in is speech started while the output audio buffer plays; the
    server cuts it (output_audio_buffer.cleared) and truncates the item itself (the January 2025 beta server, under
    the buffer events' old names, did not: truncated_line null). Python and SQL both."""
    from rtreplay.analyzer.report import interruptions
    from rtreplay.analyzer.report.voice_read import read_archive

    root, want = recording
    expected = [{"line": b["line"], "response_id": b["response_id"], "cleared_line": b["cleared_line"],
                 "truncated_line": b["truncated_line"], "item_id": b["item_id"], "audio_end_ms": b["audio_end_ms"],
                 "source": "output_audio_buffer",
                 "truncated_by": None if b["truncated_line"] is None else "server"} for b in want["barge_ins"]]
    facts, _ = read_archive(root)
    got = [{"line": b["seq"] - 1, "response_id": b["response_id"], "cleared_line": b["cleared_seq"] - 1,
            "truncated_line": None if b["truncate_seq"] is None else b["truncate_seq"] - 1,
            "item_id": b["item_id"], "audio_end_ms": b["audio_end_ms"],
            "source": b["source"], "truncated_by": b["truncated_by"]}
           for b in interruptions.build(facts).to_json()["barge_ins"]]
    assert got == expected
    con = queries.connect(root)
    try:
        rows = con.sql("SELECT seq - 1, response_id, cleared_seq - 1, truncate_seq - 1, item_id, audio_end_ms, "
                       "source, truncated_by FROM barge_ins ORDER BY seq").fetchall()
    finally:
        con.close()
    assert [dict(zip(expected[0] if expected else (), r)) for r in rows] == expected


def test_analyze_counts_the_expected_outcomes(recording):
    root, want = recording
    res = CliRunner().invoke(cli, ["analyze", str(root), "--format", "json", "--no-progress", "--by", "none"])
    assert res.exit_code == 0, res.output
    totals = json.loads(res.stdout)["totals"]
    expected = Counter(r["outcome"] for r in want["requests"])
    assert {o: totals[o] for o in expected} == dict(expected) and totals["requests"] == len(want["requests"])


def test_replay_recreates_only_conversation_items(recording):
    root, want = recording
    res = CliRunner().invoke(cli, ["replay", str(root), "--scope", "all", "--dry-run", "--format", "json",
                                   "--target", "ws://127.0.0.1:9/v1/realtime"])  # dry run: never connects
    if not want["requests"]:
        assert res.exit_code == 2 and "no recorded request matches" in res.output  # replay: 2 = could not run
        return
    assert res.exit_code == 0, res.output
    plans = json.loads(res.stdout)
    assert len(plans) == len(want["requests"])
    for plan in plans:
        created = [e["item"]["id"] for e in plan["events"] if e["type"] == "conversation.item.create"]
        assert created == want["conversation"][:len(created)], plan["request_id"]
