"""The voice reports on the hand-written archive of tests/voice_fixtures.py: every number worked out by hand there."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtreplay.analyzer.report import cost, failures, interruptions, latency
from rtreplay.analyzer.report.voice_read import read_archive
from rtreplay.cli import cli
from voice_fixtures import A, B, write_voice


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    root = write_voice(tmp_path_factory.mktemp("voice"))
    found, problems = read_archive(root)
    assert problems == []
    return root, found


def test_latency_numbers(facts):
    _, f = facts
    r = latency.build(f).to_json()
    m = {x["measure"]: x for x in r["measures"]}
    assert (m["turn_to_first_audio"]["n"], m["turn_to_first_audio"]["p50"], m["turn_to_first_audio"]["max"]) == (2, 600, 700)
    assert m["turn_to_first_audio"]["p90"] == pytest.approx(680)  # 500 + 0.9 * 200
    assert (m["request_to_created"]["n"], m["request_to_created"]["p50"], m["request_to_created"]["max"]) == (3, 10, 20)
    assert (m["request_to_first_delta"]["n"], m["request_to_first_delta"]["max"]) == (1, 190)
    assert m["tool_call_to_output"]["max"] == 200 and m["tool_output_to_first_delta"]["max"] == 200
    assert m["tool_round_trip"]["max"] == 400 and m["tool_round_trip"]["n"] == 1
    assert [(x["minute"], x["n"]) for x in r["by_minute"]] == [(0, 2)]
    assert [(x["context_tokens"], x["n"]) for x in r["by_context"]] == [(0, 2)]
    assert r["turns"] == 2 and r["sessions"] == 2


def test_interruption_numbers(facts):
    _, f = facts
    r = interruptions.build(f).to_json()
    assert r["totals"] == {"turns": 2, "barge_ins": 2, "barge_ins_truncated": 1, "barge_ins_not_truncated": 1,
                           "truncations": 2, "invalid_truncations": 1, "truncate_errors": 1}
    first, second = r["barge_ins"]
    assert (first["response_id"], first["item_id"], first["generated_ms"], first["audio_end_ms"], first["valid"]) == \
        ("r1", "i1", 300, 150, True)
    assert (first["transcript_generated"], first["transcript_heard"]) == ("Hello there friend", "Hello there ")
    assert (second["response_id"], second["item_id"], second["generated_ms"], second["truncate_seq"]) == \
        ("r2", "i2", 100, None)
    t1, t2 = r["truncations"]
    assert (t1["valid"], t1["answer"], t1["unheard_ms"], t1["response_id"]) == (True, "truncated", 150, "r1")
    assert (t2["valid"], t2["answer"], t2["error_code"], t2["audio_end_ms"]) == (False, "error", "invalid_value", 9100)


def test_cost_numbers(facts):
    _, f = facts
    r = cost.build(f).to_json()
    by = {s["session_id"]: s for s in r["sessions"]}
    assert by[A]["responses"] == 6
    assert by[A]["usd"] == pytest.approx(0.010184 + 0.0003)  # responses + 3 s of gpt-4o-transcribe
    assert by[A]["unheard_audio_usd"] == pytest.approx(30 * 64e-6 * 0.5)  # r1: half its audio never heard
    assert by[A]["transcription_usd"] == pytest.approx(0.0003)
    assert by[A]["tokens"]["text_cached_input"] == 150 and by[A]["tokens"]["audio_cached_input"] == 50
    assert by[B]["responses"] == 0 and by[B]["usd"] == 0
    turns = {(t["session_id"], t["turn"]): t for t in r["turns"]}
    assert turns[(A, 1)]["usd"] == pytest.approx(0.00408 + 0.0003) and turns[(A, 2)]["responses"] == 5
    assert r["unpriced_models"] == []


def test_cost_model_snapshot_and_override(tmp_path, facts):
    prices = cost.load_prices()
    assert prices.of("gpt-realtime-2025-08-28") is prices.of("gpt-realtime")
    assert prices.of("gpt-realtime-mini-2025-10-06") is prices.of("gpt-realtime-mini")
    assert prices.of("gpt-realtime-2.1") is None  # not a dated snapshot: no guessing
    own = tmp_path / "p.json"
    own.write_text(json.dumps({"taken": "2026-01-01", "models": {"gpt-realtime": {
        "text_input": 1, "text_cached_input": 1, "text_output": 1, "audio_input": 1, "audio_cached_input": 1,
        "audio_output": 1, "image_input": 1, "image_cached_input": 1}}}))
    r = cost.build(facts[1], cost.load_prices(own)).to_json()
    a = next(s for s in r["sessions"] if s["session_id"] == A)
    assert a["usd"] == pytest.approx(sum(a["tokens"].values()) / 1e6)  # the transcription has no price now
    assert a["unpriced"] == 1 and r["unpriced_models"] == ["gpt-4o-transcribe"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"x": {"text_input": -1}}}')
    with pytest.raises(cost.PriceError, match="non-negative"):
        cost.load_prices(bad)


def test_failure_taxonomy(facts):
    _, f = facts
    r = failures.build(f).to_json()
    got = sorted((e["session_id"], e["kind"], e["detail"], e["cause"]) for e in r["events"])
    assert got == sorted([
        (A, "transcription_failed", "audio_unintelligible", None),
        (A, "barge_in_not_truncated", "r2", None),
        (A, "invalid_truncate", "i1", None),
        (A, "error", "invalid_value", "conversation.item.truncate"),
        (A, "hung_tool_call", "hang_up", None),
        (A, "error", "conversation_already_has_active_response", "response.create"),
        (A, "response_incomplete", "max_output_tokens", None),
        (A, "upstream_close", "1011", None),
        (B, "response_without_done", None, None),
        (B, "output_without_response", "c9", None),
        (B, "session_expired", "session_expired", None),
        (B, "upstream_drop", None, None),
    ])
    assert r["total"] == 12 and r["over_time"]["unit"] == "hour"
    assert [sum(b["kinds"].values()) for b in r["over_time"]["buckets"]] == [8, 4]


@pytest.mark.parametrize("name", ["latency", "interruptions", "cost", "failures"])
@pytest.mark.parametrize("fmt", ["table", "json", "csv", "markdown"])
def test_cli_formats(facts, name, fmt):
    root, _ = facts
    result = CliRunner().invoke(cli, ["analyze", str(root), "--report", name, "--format", fmt, "--no-progress"])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        assert json.loads(result.stdout)["report"] == f"rtreplay.{name}"
    if fmt == "table":
        assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_cli_all_and_errors(facts, tmp_path):
    root, _ = facts
    result = CliRunner().invoke(cli, ["analyze", str(root), "--report", "all", "--format", "json", "--no-progress",
                                      "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["reports"]) == ["tool_choice", "latency", "interruptions", "cost", "failures"]
    page = (tmp_path / "r.html").read_text()
    for section in ('id="latency"', 'id="interruptions"', 'id="cost"', 'id="failures"', "<svg"):
        assert section in page
    assert "<script" not in page
    bad = CliRunner().invoke(cli, ["analyze", str(root), "--report", "speed"])
    assert bad.exit_code == 1 and "unknown report 'speed'" in bad.output
    csv_all = CliRunner().invoke(cli, ["analyze", str(root), "--report", "all", "--format", "csv"])
    assert csv_all.exit_code == 1 and "one report" in csv_all.output
    missing = CliRunner().invoke(cli, ["analyze", str(root), "--report", "cost", "--prices", str(tmp_path / "no.json")])
    assert missing.exit_code == 1 and "no.json" in missing.output and "Traceback" not in missing.output


def test_show_marks_barge_ins_invalid_truncations_and_hung_turns(facts):
    root, _ = facts
    result = CliRunner().invoke(cli, ["show", str(root), A])
    assert result.exit_code == 0, result.output
    marks = [line.split("▲ ", 1)[1] for line in result.output.splitlines() if "▲ " in line]
    assert [m for m in marks if m.startswith("BARGE-IN")] == [
        "BARGE-IN: cut r1 after 300 ms of audio; truncated at 150 ms (seq 14)",
        "BARGE-IN: cut r2 after 100 ms of audio; NEVER TRUNCATED"]
    assert "INVALID TRUNCATE: audio_end_ms beyond the 300 ms generated" in marks
    assert "HUNG TURN: hang_up never got its function_call_output" in marks
    rows = json.loads(CliRunner().invoke(cli, ["show", str(root), A, "--format", "json"]).stdout)
    assert sum(len(r["marks"]) for r in rows) == len(marks)


def test_real_webrtc_recordings(tmp_path):
    """The two GA WebRTC sessions of tests/data/real/ (README there): audio travels on the media track, so
    first audio is output_audio_buffer.started; the app's cancels and commits race the server."""
    from rtreplay.recorder.importer import import_jsonl

    real = Path(__file__).resolve().parents[1] / "data" / "real"
    for name in ("ga-webrtc-function-call.jsonl", "ga-webrtc-oob-transcription.jsonl"):
        import_jsonl(real / name, tmp_path, None)
    found, _ = read_archive(tmp_path)
    lat = latency.build(found).to_json()
    assert lat["turns"] == 4 and lat["measures"][0]["n"] == 4  # every spoken turn was answered with playback
    r = failures.build(found).to_json()
    assert {(k["kind"], k["detail"], k["cause"]): k["count"] for k in r["kinds"]} == {
        ("error", "input_audio_buffer_commit_empty", "input_audio_buffer.commit"): 2,
        ("error", "response_cancel_not_active", "response.cancel"): 2,
        ("hung_tool_call", "hang_up", None): 1,  # the persona hangs up: nobody answers the call
    }
    assert interruptions.build(found).to_json()["totals"]["barge_ins"] == 0  # every speech began after .stopped


def test_a_stopped_proxy_is_not_an_upstream_failure(tmp_path):
    """When the proxy is stopped (SIGTERM, Ctrl-C) it says 1001 going away to both sides, and `proxy.close`
    carries `stopped`: the peers' 1001s are its doing. Python and SQL call it proxy_stopped, not
    upstream_close, and `show` says the proxy stopped. A `stopped` that is JSON null is no stop."""
    from rtreplay import queries
    from rtreplay.recorder import archive
    from rtreplay.recorder.schema import PROXY
    from voice_fixtures import START, Log

    going_away = {"code": 1001, "reason": "proxy stopped"}
    stopped, unstopped = "20260901T100000000000-stopped", "20260901T100000000001-nullstop"
    for sid, stop in ((stopped, "the proxy was stopped: it sent 1001 going away to both sides"), (unstopped, None)):
        log = Log(sid, START)
        log.emit(0, PROXY, {"type": "proxy.open", "path": "/v1/realtime", "query": "model=gpt-realtime"})
        log.emit(100, PROXY, {"type": "proxy.close", "client": going_away, "server": going_away, "first_close": "client",
                              "first_disconnect": None, "stopped": stop})
        archive.write_parquet(log.table(), archive.parquet_path(tmp_path, sid))
    found, _ = read_archive(tmp_path)
    got = sorted((e["session_id"], e["kind"], e["detail"]) for e in failures.build(found).to_json()["events"])
    assert got == [(stopped, "proxy_stopped", None), (unstopped, "upstream_close", "1001")]
    sql = queries.connect(tmp_path).sql("SELECT session_id, kind, detail FROM voice_failures ORDER BY session_id")
    assert sorted(sql.fetchall()) == got
    shown = CliRunner().invoke(cli, ["show", str(tmp_path), stopped])
    assert shown.exit_code == 0, shown.output
    assert "PROXY STOPPED" in shown.output and "upstream_close" not in shown.output
