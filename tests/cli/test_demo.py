"""`rtreplay demo` runs the whole loop offline and its report shows the injected failure pattern."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from rtreplay.cli import cli
from rtreplay import queries
from rtreplay.simulator.demo_app import BARGE_IN_APP, OOB_FORMS, RACING_FORM, run_demo_app


def test_demo_reports_and_replays_the_seed_failure(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--conversations", "10", "--repeat", "2"])
    assert result.exit_code == 0, result.output
    # The headline names the forced-function form as the failing one, with its exact count.
    assert "form `function` failed 100% (10/10" in result.output
    # The replay reproduces the failure as recorded and clears it with tool_choice=required (terminal table:
    # variant, replays, completed, failed, ...).
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line.strip()}
    assert rows["recorded"][1:4] == ["20", "0", "20"]
    assert rows["tool_choice=required"][1:4] == ["20", "20", "0"]
    # The "Next" block names a real failed request: its state command runs as printed.
    state = next(line.split()[1:] for line in result.output.splitlines() if line.strip().startswith("rtreplay state"))
    assert "SESSION" not in state and "RESPONSE_ID" not in state
    shown = CliRunner().invoke(cli, state[: state.index("--before") + 2])
    assert shown.exit_code == 0 and "function_call" in shown.output or "user:" in shown.output, shown.output

    # The archive it wrote answers the same question through `analyze --format json`.
    report = json.loads(CliRunner().invoke(cli, ["analyze", str(out / "logs"), "--format", "json"]).output)
    oob = {g["form"]: g for g in report["groups"] if g["split"].get("scope") == "out-of-band"}
    assert set(oob) == set(OOB_FORMS)
    assert oob["function"]["failed"] == 10 and oob["function"]["requests"] == 10
    assert oob["invalid"]["rejected"] == 10
    assert all(oob[f]["failed"] == 0 for f in OOB_FORMS if f != "function")
    # The out-of-band request sent while server VAD answered the spoken turn (§11.2) is paired by its
    # metadata echo, and completed, in every session; each VAD answer is nobody's request.
    con = queries.connect(out / "logs")
    try:
        raced = con.sql(f"SELECT outcome, pairing, count(*) FROM outcomes WHERE scope = 'out-of-band' "
                        f"AND form_sent = '{RACING_FORM}' GROUP BY ALL").fetchall()
        vad = con.sql("SELECT count(*) FROM responses WHERE initiated_by = 'server'").fetchall()
    finally:
        con.close()
    # Server VAD answered each session's spoken turn, and in the five spoken sessions also the barge-in turn:
    # the answer cut (cancelled by turn_detected) and the answer to the interruption.
    assert raced == [("completed", "metadata", 10)] and vad == [(10 + 2 * 5,)]
    # The barge-ins, as the app's script did them (BARGE_IN_APP, by spoken session: 1, 3, 5, 7, 9).
    did = [BARGE_IN_APP[(i // 2) % len(BARGE_IN_APP)] for i in range(10) if i % 2]
    voice = json.loads(CliRunner().invoke(cli, ["analyze", str(out / "logs"), "--report", "interruptions",
                                                "--format", "json"]).output)
    truncated = sum(h != "never" for h in did)
    assert voice["totals"] == {"turns": 10 + 2 * 5, "barge_ins": 5, "barge_ins_truncated": truncated,
                               "barge_ins_not_truncated": 5 - truncated, "truncations": truncated,
                               "invalid_truncations": did.count("beyond_audio"),
                               "truncate_errors": did.count("beyond_audio")}
    assert did.count("never") == 1 and did.count("beyond_audio") == 1
    # Re-running into the same directory replaces the previous demo.
    again = CliRunner().invoke(cli, ["demo", "--out", str(out), "--conversations", "1", "--repeat", "1"])
    assert again.exit_code == 0, again.output


def test_the_demo_app_races_server_vad() -> None:
    """On the wire: the VAD response.created of each spoken turn reaches the app before the response.created of
    the out-of-band request it sent right after its audio (docs/realtime-protocol.md §11.2)."""
    import asyncio

    from rtreplay.simulator.server import serve

    async def go():
        async with serve(faults="seed-oob-forced-function") as sim:
            return await run_demo_app(sim.url, conversations=2, concurrency=1)

    counts = asyncio.run(go())
    assert counts.raced == counts.sessions == 2
    assert counts.barge_ins == {BARGE_IN_APP[0]: 1}  # the spoken session (index 1) ends with a barge-in
    assert counts.outcomes[("out-of-band", RACING_FORM, "completed")] == 2


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "not made by `rtreplay demo`" in result.output
    assert (tmp_path / "precious.txt").exists()
