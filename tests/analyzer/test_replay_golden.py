"""Golden `rtreplay replay --dry-run` plans for recorded sessions.

tests/data/replay_plans/archive holds two demo sessions (analyzer/demo_app.py) recorded through the proxy
from the simulator (seed 0, profile seed-oob-forced-function) with `--audio drop`, so the plans stay small and
exercise the "audio not kept" path; the audio-kept path is covered against the simulator in
test_replay_sim.py. Session A asked for text output, session B for audio output.

To re-record the archive: `python -c "import asyncio, pathlib, tests.test_replay_golden as g;
asyncio.run(g.record(pathlib.Path('tests/data/replay_plans/archive')))"` (then update SESSION_A/B).
To rewrite the golden plans after an intended change: `RTREPLAY_REGEN_GOLDEN=1 pytest tests/test_replay_golden.py`,
and read the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtreplay.cli.replay import replay as replay_command

DATA = Path(__file__).parents[1] / "data" / "replay_plans"
ARCHIVE = DATA / "archive"
SESSION_A = "20261123T000928814046-4cpr5c"  # text output
SESSION_B = "20261123T000928953811-0xrmys"  # audio output: assistant audio becomes text (noted)

CASES = {
    "a_function_recorded.txt": ["--session", SESSION_A, "--form", "function"],
    "b_required_varied.txt": ["--session", SESSION_B, "--form", "required", "--vary", "conversation=auto",
                              "--vary", "tool_choice=recorded,function:return_response"],
    "a_invalid_set.json": ["--session", SESSION_A, "--form", "invalid", "--set", 'response.tool_choice="auto"',
                           "--repeat", "3", "--format", "json"],
}


async def record(out: Path) -> None:
    from rtreplay.simulator.demo_app import run_demo_app
    from rtreplay.recorder.proxy import running
    from rtreplay.simulator.server import serve

    async with serve(seed=0, faults="seed-oob-forced-function", epoch=1_700_000_000) as sim:
        async with running(sim.url, out, flush_interval=0.1, audio="drop") as proxy:
            await run_demo_app(proxy.url, conversations=2, concurrency=1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dry_run_plan_matches_golden(name: str) -> None:
    result = CliRunner().invoke(replay_command, [str(ARCHIVE), "--dry-run", *CASES[name]])
    assert result.exit_code == 0, result.output
    golden = DATA / name
    if os.environ.get("RTREPLAY_REGEN_GOLDEN"):
        golden.write_text(result.output, encoding="utf-8")
    assert result.output == golden.read_text(encoding="utf-8")


def test_dry_run_sends_nothing_and_needs_no_target() -> None:
    """The recorded upstream (a closed simulator port) is only printed: a dry run never connects."""
    result = CliRunner().invoke(replay_command, [str(ARCHIVE), "--dry-run", "--form", "auto"])
    assert result.exit_code == 0, result.output
    headers = [line for line in result.output.splitlines() if line.startswith("# request")]
    assert len(headers) == 2 and all("target ws://127.0.0.1:" in h for h in headers)
