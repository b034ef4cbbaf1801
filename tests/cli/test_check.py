"""Replay as a regression gate: `replay --expect`, `rtreplay check SUITE`, and the pytest plugin.

Against the simulator with the seed profile, where an out-of-band request forcing a function by name always
fails: a suite expecting that form to fail at most 5% of the time exits 1, the same suite replaying it with
tool_choice=required exits 0, and pytest reports both cases by name, with its own JUnit XML.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from replay_support import PROFILE, record_demo_archive
from rtreplay.cli.check import check as check_command
from rtreplay.cli.replay import replay as replay_command

# 2 conversations x 1 forced-function request each; 37 repeats = 74 replays, the fewest with which 0 failures
# shows a failure rate <= 5% on the 95% Wilson interval (73 would do; see test_replay_expect).
SUITE = f"""\
archive = "logs"
target = "sim"
sim_faults = "{PROFILE}"
form = ["function"]

[[case]]
name = "forced function in out-of-band responses"
repeat = 2
expect = ["failure_rate<=5%"]

[[case]]
name = "forced with tool_choice required"
vary = ["tool_choice=required"]
recorded = false
repeat = 37
expect = ["failure_rate<=5%", "forced_rate>=95%", "arguments_valid"]
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gate")
    asyncio.run(record_demo_archive(root / "logs", conversations=2))
    (root / "rtreplay-gate.toml").write_text(SUITE)
    return root


def check(*args: str):
    return CliRunner().invoke(check_command, list(args))


def test_the_forced_function_case_fails_and_the_required_case_holds(workdir: Path) -> None:
    suite = str(workdir / "rtreplay-gate.toml")
    forced = check(suite, "--case", "forced function in out-of-band responses")
    assert forced.exit_code == 1, forced.output
    assert "FAIL         recorded: failure_rate<=5% — failed 4/4 (100%), 95% CI 51–100%: lower bound 51" in forced.output
    required = check(suite, "--case", "forced with tool_choice required")
    assert required.exit_code == 0, required.output
    assert "tool_choice=required: failure_rate<=5% — failed 0/74 (0%)" in required.output
    assert "upper bound 4.9% ≤ 5%" in required.output and "3/3 expectations hold" in required.output
    both = check(suite)
    assert both.exit_code == 1 and "2 cases: 1 passed, 1 failed, 0 could not run" in both.output


def test_pytest_runs_a_suite_file_as_one_test_per_case_with_junit_xml(workdir: Path) -> None:
    (workdir / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (workdir / "settings.toml").write_text("not = 'a suite'\n")  # not a suite file name: never collected
    junit = workdir / "report.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", f"--junitxml={junit}",
                           "-o", "addopts="], cwd=workdir, capture_output=True, text=True, timeout=240,
                          env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"})
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "rtreplay-gate.toml::forced function in out-of-band responses FAILED" in done.stdout
    assert "rtreplay-gate.toml::forced with tool_choice required PASSED" in done.stdout
    assert "test_plain.py::test_plain PASSED" in done.stdout and "settings.toml" not in done.stdout
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"forced function in out-of-band responses", "forced with tool_choice required", "test_plain"}
    failure = cases["forced function in out-of-band responses"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("fails: recorded: failure_rate<=5%")
    assert cases["forced with tool_choice required"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in cases["forced with tool_choice required"].iter("property")}
    assert props == {"failure_rate<=5% @ tool_choice=required": "holds",
                     "forced_rate>=95% @ tool_choice=required": "holds",
                     "arguments_valid @ tool_choice=required": "holds"}


def test_a_suite_that_cannot_run_exits_2_with_one_line(workdir: Path, tmp_path: Path) -> None:
    logs = os.path.relpath(workdir / "logs", tmp_path)
    cases = {
        "unknown key": (f'archive = "{logs}"\ncolour = 1\n[[case]]\nname = "a"\nexpect = ["outcome==completed"]\n',
                        "unknown key 'colour'"),
        "bad expectation": (f'archive = "{logs}"\n[[case]]\nname = "a"\nexpect = ["failure_rate<5"]\n',
                            "case 'a': --expect 'failure_rate<5'"),
        "no cases": (f'archive = "{logs}"\n', "no [[case]] tables"),
        "not a boolean": (f'archive = "{logs}"\nrecorded = "no"\n[[case]]\nname = "a"\nexpect = ["arguments_valid"]\n',
                          "recorded must be true or false"),
        "not toml": ("archive = \n", "not TOML"),
        "nothing selected": (f'archive = "{logs}"\ntarget = "sim"\n[[case]]\nname = "a"\nresponse_id = "resp_none"\n'
                             'expect = ["outcome==completed"]\n', "no recorded request matches"),
        "unreachable": (f'archive = "{logs}"\ntarget = "ws://127.0.0.1:1"\ntimeout = 5\n[[case]]\nname = "a"\n'
                        'form = ["function"]\nexpect = ["outcome==completed"]\n', "no replay got an answer"),
    }
    for label, (text, message) in cases.items():
        suite = tmp_path / f"{label.replace(' ', '-')}.rtreplay.toml"
        suite.write_text(text)
        result = check(str(suite))
        assert result.exit_code == 2, (label, result.output)
        assert message in result.output and "Traceback" not in result.output, (label, result.output)


def test_replay_expect_exit_status(workdir: Path) -> None:
    archive = str(workdir / "logs")
    base = [archive, "--target", "sim", "--sim-faults", PROFILE, "--form", "function", "--vary", "tool_choice=required"]
    run = CliRunner().invoke(replay_command, [*base, "--expect", "variant=tool_choice=required:outcome==completed",
                                              "--expect", "variant=tool_choice=required:function!=lookup_customer"])
    assert run.exit_code == 0, run.output
    assert "PASS         tool_choice=required: outcome==completed — outcome completed in all 2 replays" in run.output
    run = CliRunner().invoke(replay_command, [*base, "--expect", "outcome==completed", "--format", "json"])
    assert run.exit_code == 1
    assert '"verdict": "fails"' in run.output and '"verdict": "holds"' in run.output
    bad = CliRunner().invoke(replay_command, [*base, "--expect", "variant=tool_choice=auto:outcome==completed"])
    assert bad.exit_code == 2 and "no variant 'tool_choice=auto' is sent" in bad.output


@pytest.fixture(scope="module")
def simulator_url():
    """The built-in simulator (no faults) in a thread of its own, for suites that name a ws:// target."""
    import threading

    from rtreplay.simulator.server import serve

    started, stop, box = threading.Event(), None, {}

    async def run() -> None:
        nonlocal stop
        stop = asyncio.Event()
        async with serve() as sim:
            box["url"] = sim.url
            started.set()
            await stop.wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(30)
    yield box["url"]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


def test_suite_targets_take_the_forms_replay_target_takes(workdir: Path, tmp_path: Path, simulator_url: str) -> None:
    """A suite's `target` (read by `rtreplay check` and by the pytest plugin through `load_suite`) is normalised
    by replay's own `target_base`: a base URL, …/v1 and …/v1/realtime?model=… name the same server."""
    from rtreplay.analyzer.replay.suite import load_suite

    logs = os.path.relpath(workdir / "logs", tmp_path)
    for form in (simulator_url, simulator_url + "/v1", simulator_url + "/v1/", simulator_url + "/v1/realtime",
                 simulator_url + "/v1/realtime?model=gpt-realtime"):
        suite = tmp_path / "forms.rtreplay.toml"
        suite.write_text(f'archive = "{logs}"\ntarget = "{form}"\nform = ["function"]\n[[case]]\nname = "a"\n'
                         'vary = ["tool_choice=required"]\nrecorded = false\nexpect = ["outcome==completed"]\n')
        [case] = load_suite(suite)
        assert case.gate.target == simulator_url, form
        result = check(str(suite))
        assert result.exit_code == 0, (form, result.output)
    suite.write_text(f'archive = "{logs}"\ntarget = "http://x/v1"\n[[case]]\nname = "a"\nexpect = ["arguments_valid"]\n')
    result = check(str(suite))
    assert result.exit_code == 2 and "ws:// or wss://" in result.output and "Traceback" not in result.output
