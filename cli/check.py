"""`rtreplay check SUITE`: run a suite file's regression cases (rtreplay.analyzer.replay.suite)."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click

from rtreplay.analyzer.replay.expect import as_json, render
from rtreplay.analyzer.replay.summary import ReplayReport
from rtreplay.analyzer.replay.suite import RUN_ERRORS, Case, GateResult, SuiteError, load_suite, prepare, remote_targets, run_gate
from rtreplay.analyzer.report.tool_choice import interval_text, pct


@click.command()
@click.argument("suite", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--case", "only", multiple=True, metavar="NAME", help="Run only this case (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask before replaying against a non-loopback target (needed in CI).")
def check(suite: Path, only: tuple[str, ...], fmt: str, yes: bool) -> None:
    """Run the regression cases of a suite file: replay each case's requests and decide its expectations.

    Exit status 0 when every expectation of every case holds, 1 when some does not (or is inconclusive),
    2 when a case could not be run (bad suite, nothing selected, target unreachable). The suite format and
    the expectation language: docs/replay.md.

    \b
    Example:
      rtreplay check regressions.rtreplay.toml
    """
    try:
        cases = load_suite(suite)
    except SuiteError as exc:
        raise Unrunnable(str(exc)) from None
    unknown = set(only) - {c.name for c in cases}
    if unknown:
        raise Unrunnable(f"{suite}: no case {sorted(unknown)[0]!r} (cases: {', '.join(c.name for c in cases)})")
    chosen = [c for c in cases if not only or c.name in only]
    docs, codes = [], []
    for case in chosen:
        code, outcome, error = _run_case(case, yes)
        codes.append(code)
        if fmt == "json":
            docs.append({"case": case.name, "exit_code": code, "error": error,
                         "expectations": as_json(outcome.decisions) if outcome else []})
        else:
            click.echo(f"== {case.name}: {('PASS', 'FAIL', 'ERROR')[code]}")
            click.echo(error + "\n" if error else _variants(outcome.report) + render(outcome.decisions), nl=False)
    if fmt == "json":
        click.echo(json.dumps(docs, indent=2))
    else:
        click.echo(f"{len(chosen)} cases: {codes.count(0)} passed, {codes.count(1)} failed, {codes.count(2)} could not run")
    sys.exit(max(codes))


def _run_case(case: Case, yes: bool) -> tuple[int, GateResult | None, str | None]:
    """(exit status, the result when it ran, why it could not run)."""
    try:
        gate = case.gate.opened()
        requests, urls = prepare(gate)
        remote = remote_targets(urls)
        if remote and not os.environ.get(gate.api_key_env):
            return 2, None, f"replaying against {', '.join(remote)} needs an API key: set {gate.api_key_env}"
        if remote and not yes and not (sys.stdin.isatty() and click.confirm(
                f"Case {case.name!r}: replay against {', '.join(remote)}? This spends tokens", err=True)):
            return 2, None, f"not confirmed: {', '.join(remote)} is not on this machine (pass --yes)"
        outcome = asyncio.run(run_gate(gate, requests, simulator=_serve))
    except RUN_ERRORS as exc:
        return 2, None, str(exc)
    if outcome.exit_code == 2:
        return 2, outcome, "no replay got an answer: " + "; ".join(outcome.report.details[:3])
    return outcome.exit_code, outcome, None


def _variants(report: ReplayReport) -> str:
    """One line per variant: replays, outcomes that happened, failure rate and interval, forced calls."""
    lines = []
    for row in report.rows:
        t = row.replayed
        outcomes = ", ".join(f"{o} {n}" for o, n in t.outcomes.items() if n)
        forced = f", forced call {row.forced[0]}/{row.forced[1]}" if row.forced else ""
        lines.append(f"  {row.variant}: {t.total} replays ({outcomes}), failure rate {pct(t.failure_rate)} "
                     f"(95% CI {interval_text(t.interval)}){forced}")
    return "\n".join(lines) + "\n"


class Unrunnable(click.ClickException):
    exit_code = 2


def _serve(**options: object) -> object:
    """The built-in simulator for target "sim", imported only when it is used."""
    from rtreplay.simulator.server import serve

    return serve(**options)  # type: ignore[arg-type]
