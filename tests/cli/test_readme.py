"""The README stays true: set-up commands, every command and option, and a tour that really runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from rtreplay.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = "pip install -e '.[test]' && python -m pytest -q"
DEMO_COMMAND = "pip install . && rtreplay demo"


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_setup_is_a_venv_and_two_commands_and_ci_runs_both_literally() -> None:
    setup = _section("Set-up")
    commands = re.findall(r"```sh\n(.*?)\n```", setup, re.S)
    assert commands == ["python3 -m venv .venv && . .venv/bin/activate", DEMO_COMMAND, TEST_COMMAND]
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"    {DEMO_COMMAND}\n" in ci and f"    {TEST_COMMAND} || rc=$?\n" in ci


def test_every_command_and_option_is_in_the_readme() -> None:
    missing = []
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if f"`rtreplay {name}" not in README:
            missing.append(f"rtreplay {name}")
        for param in command.params:
            if isinstance(param, click.Option):
                longs = [o for o in param.opts + param.secondary_opts if o.startswith("--") and o != "--help"]
                if longs and not any(re.search(rf"{re.escape(o)}\b", README) for o in longs):
                    missing.append(f"rtreplay {name} {longs[0]}")
    assert not missing, f"not in README.md: {missing}"


@pytest.mark.timeout(600)  # the tour is long (demo, reports, replays, a gate, pytest): room on a busy 2-core box
def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    lines = [line[2:] for line in _section("Tour").splitlines() if line.startswith("$ ")]
    assert len(lines) >= 15
    script = "set -eu\n" + "\n".join(lines) + "\n"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"tour failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    # What the tour promises: a failed out-of-band request found, replayed, and its variants recorded.
    assert "failed 100%" in (tmp_path / "oob.md").read_text()
    assert re.search(r"^ *tool_choice=required +5 +5 +0 ", done.stdout, re.M), done.stdout[-3000:]
    assert (tmp_path / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert list((tmp_path / "replays").rglob("*.parquet")) and list((tmp_path / "imported").rglob("*.parquet"))
    # The gate: the forced-function form fails its expectation, tool_choice=required holds (exit 1 overall),
    # pytest reports both cases, and diff names the events where the replay differs from the recording.
    assert "FAIL         recorded: failure_rate<=5%" in done.stdout and "2 cases: 1 passed, 1 failed" in done.stdout
    assert "1 failed, 1 passed" in done.stdout and (tmp_path / "gate.xml").exists()
    assert "response.done (A 208 / B " in done.stdout and "response.status: failed → completed" in done.stdout
