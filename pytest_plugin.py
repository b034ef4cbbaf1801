"""pytest plugin (entry point `pytest11`): suite files become test items, one per case.

Opt-in by file name: only `rtreplay*.toml` and `*.rtreplay.toml` are collected (no other file is touched,
so installing rtreplay never changes a project's normal test run). Each `[[case]]` is one item named after
the case, run with `rtreplay.analyzer.replay.suite.run_gate`; pytest's own reporting (`-v`, `--junitxml`,
`-k NAME`) applies. A case fails when an expectation fails or is inconclusive, and errors when it cannot run.
A case whose target is not on this machine is skipped, saying why, unless `--rtreplay-remote` is given.
"""
from __future__ import annotations

import asyncio
import fnmatch
import os
from pathlib import Path
from typing import Any

import pytest

PATTERNS = ("rtreplay*.toml", "*.rtreplay.toml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rtreplay")
    group.addoption("--rtreplay-remote", action="store_true",
                    help="run suite cases whose target is not on this machine (spends tokens)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if any(fnmatch.fnmatch(file_path.name, p) for p in PATTERNS):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteFile(pytest.File):
    def collect(self) -> Any:
        from rtreplay.analyzer.replay.suite import SuiteError, load_suite

        try:
            cases = load_suite(self.path)
        except SuiteError as exc:
            raise self.CollectError(str(exc)) from None
        for case in cases:
            yield CaseItem.from_parent(self, name=case.name, case=case)


class CaseFailed(Exception):
    """Expectations that did not hold; the message is the report."""


class CaseItem(pytest.Item):
    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from rtreplay.analyzer.replay.expect import render
        from rtreplay.analyzer.replay.suite import prepare, remote_targets, run_gate
        from rtreplay.simulator.server import serve

        gate = self.case.gate.opened()
        requests, urls = prepare(gate)
        remote = remote_targets(urls)
        if remote and not self.config.getoption("rtreplay_remote"):
            pytest.skip(f"target {', '.join(remote)} is not on this machine: pass --rtreplay-remote to run it")
        if remote and not os.environ.get(gate.api_key_env):
            raise CaseFailed(f"replaying against {', '.join(remote)} needs an API key: set {gate.api_key_env}")
        outcome = asyncio.run(run_gate(gate, requests, simulator=serve))
        self.user_properties.extend((d.expectation.text + " @ " + d.variant, d.verdict) for d in outcome.decisions)
        if outcome.exit_code == 2:
            raise CaseFailed("no replay got an answer: " + "; ".join(outcome.report.details[:3]))
        if outcome.exit_code:
            first = [f"{d.verdict}: {d.variant}: {d.expectation.body} — {d.how}" for d in outcome.decisions if not d.holds]
            raise CaseFailed("\n".join(first) + "\n\n" + render(outcome.decisions))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from rtreplay.analyzer.replay.suite import RUN_ERRORS

        if isinstance(excinfo.value, (CaseFailed, *RUN_ERRORS)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"rtreplay case: {self.name}"
