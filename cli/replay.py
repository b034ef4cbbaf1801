"""`rtreplay replay`: replay recorded requests against their recorded contexts (rtreplay.analyzer.replay.run)."""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click
from rich.console import Console

from rtreplay.cli.location import Location
from rtreplay.analyzer.state.request import FORMS, OUTCOMES
from rtreplay.analyzer.replay.expect import as_json as expectations_json
from rtreplay.analyzer.replay.expect import parse as parse_expectation
from rtreplay.analyzer.replay.expect import render as render_expectations
from rtreplay.analyzer.replay.run import SCOPES, Job, Selection, plan_jobs, target_base, targets
from rtreplay.analyzer.replay.summary import ReplayReport, Tally
from rtreplay.analyzer.replay.suite import RUN_ERRORS, Gate, prepare, remote_targets, run_gate
from rtreplay.analyzer.replay.plan import variants
from rtreplay.analyzer.report import terminal
from rtreplay.analyzer.report.terminal import Column, print_table
from rtreplay.analyzer.report.tool_choice import interval_text, pct
from rtreplay.recorder.store import Archive

MAX_REPEAT = 10_000


@click.command()
@click.argument("archive", type=Location(exists=True))
@click.option("--target", metavar="URL|sim",
              help="Where to replay: `sim` (the built-in simulator) or a ws(s):// URL — a base URL, …/v1 (an SDK's "
                   "websocket_base_url) or …/v1/realtime[?model=…]; each request keeps its recorded model "
                   "[default: each session's recorded upstream].")
@click.option("--sim-faults", default="none", show_default=True, metavar="PROFILE",
              help="With --target sim: fault profile name or file (e.g. seed-oob-forced-function).")
@click.option("--session", "sessions", multiple=True, metavar="ID", help="Only requests of this session (repeatable).")
@click.option("--response-id", "response_ids", multiple=True, metavar="ID", help="Only the request that got this response (repeatable).")
@click.option("--failed", is_flag=True, help="Only requests whose recorded outcome is `failed`.")
@click.option("--form", "forms", multiple=True, type=click.Choice(FORMS), help="Only this tool_choice form as sent (repeatable).")
@click.option("--where", metavar="SQL", help="Only requests matching this SQL condition over the `requests` view.")
@click.option("--scope", type=click.Choice(SCOPES), default="out-of-band", show_default=True,
              help="Out-of-band requests (conversation: none), default-conversation ones, or all.")
@click.option("--vary", multiple=True, metavar="FIELD=V1,V2",
              help="Also send with this field changed, once per value: tool_choice=recorded,required,auto,none,"
                   "function:NAME or conversation=auto,none (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="response.FIELD=JSON", help="One more variant with FIELD set to JSON (repeatable).")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1, MAX_REPEAT),
              help=f"Replays per request and variant (at most {MAX_REPEAT}).")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1), help="Replay sessions at once.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), metavar="PER_S", help="At most this many replay sessions started per second.")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Seconds per replay session.")
@click.option("--record", type=click.Path(file_okay=False, path_type=Path), help="Record the replay sessions into this archive.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, metavar="NAME",
              help="Environment variable holding the API key (sent as a Bearer header, never recorded).")
@click.option("--expect", multiple=True, metavar="EXPR",
              help="Exit 1 unless this holds, e.g. failure_rate<=5%, forced_rate>=95%, outcome==completed, "
                   "function==NAME, arguments_valid, same=outcome,function; prefix variant=NAME: for one variant "
                   "(repeatable; rates are decided on the 95% interval, docs/replay.md).")
@click.option("--dry-run", is_flag=True, help="Print the exact client events each replay would send, and stop.")
@click.option("--format", "fmt", type=click.Choice(("table", "markdown", "json", "csv")), default="table", show_default=True,
              help="What to print on stdout: a terminal table, Markdown, JSON or CSV (--dry-run: JSON lines or JSON).")
@click.option("--yes", is_flag=True, help="Do not ask before replaying against a non-loopback target.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bar on stderr [default: when stderr is a terminal].")
def replay(archive: Path, target: str | None, sim_faults: str, sessions: tuple[str, ...], response_ids: tuple[str, ...],
           failed: bool, forms: tuple[str, ...], where: str | None, scope: str, vary: tuple[str, ...],
           sets: tuple[str, ...], repeat: int, concurrency: int, rate: float | None, timeout: float,
           record: Path | None, api_key_env: str, expect: tuple[str, ...], dry_run: bool, fmt: str, yes: bool, show_progress: bool | None) -> None:
    """Replay recorded requests in their recorded contexts, as recorded and with one thing changed.

    Each selected response.create (out-of-band ones by default) is sent again on a fresh session: the
    recorded session config, then the conversation as it stood just before it (item ids kept), then the
    request itself — once per variant, --repeat times. The report gives, per variant, outcome counts and
    the failure rate with its 95% interval beside the original outcomes, and what could not be reproduced
    exactly (docs/replay.md).

    \b
    Example:
      rtreplay replay logs/ --target sim --sim-faults seed-oob-forced-function \\
          --failed --vary tool_choice=required,auto --repeat 5 --record replays/
    """
    try:
        if target not in (None, "sim"):
            target = target_base(target)
        chosen = variants(vary, sets)
        arc = Archive.open(archive)
        gate = Gate(arc, Selection(sessions, response_ids, failed, forms, where, scope), tuple(chosen),
                    tuple(parse_expectation(e) for e in expect), repeat, target, sim_faults, concurrency, rate,
                    timeout, record, api_key_env)
        problems: list = []
        try:
            requests, urls = prepare(gate, problems)
        finally:
            for problem in dict.fromkeys(map(str, problems)):  # files skipped or only partly read: say which
                click.echo(f"warning: {problem}", err=True)
        if dry_run:
            jobs = plan_jobs(arc, requests, chosen, repeat)
            click.echo(render_plans(jobs, None if target == "sim" else targets(jobs, target), fmt), nl=False)
            return
    except RUN_ERRORS as exc:
        raise CannotRun(str(exc)) from None
    remote = remote_targets(urls)
    if remote and not os.environ.get(api_key_env):
        raise CannotRun(f"replaying against {', '.join(remote)} needs an API key: set {api_key_env}")
    total = len(requests) * len(chosen) * repeat
    if remote and not yes:
        if not click.confirm(f"Replay {len(requests)} requests in {total} new sessions against "
                             f"{', '.join(remote)}? This spends tokens", err=True):
            raise CannotRun("not confirmed; nothing was sent")
    enabled = sys.stderr.isatty() if show_progress is None else show_progress
    with _progress(enabled, total) as advance:
        try:
            outcome = asyncio.run(run_gate(gate, requests, on_done=lambda _r: advance(), simulator=_serve))
        except RUN_ERRORS as exc:
            raise CannotRun(str(exc)) from None
    report = outcome.report
    if fmt == "json" and expect:
        doc = json.loads(RENDERERS[fmt](report))
        doc["expectations"] = expectations_json(outcome.decisions)
        click.echo(json.dumps(doc, indent=2))
    else:
        if fmt == "table":
            render_table(report, terminal.console())
        else:
            click.echo(RENDERERS[fmt](report), nl=False)
        if expect:  # with csv on stderr, so stdout stays one table
            click.echo(("\n" if fmt == "markdown" else "") + render_expectations(outcome.decisions), nl=False,
                       err=fmt == "csv")
    if outcome.exit_code == 2:
        raise CannotRun("no replay got an answer: " + "; ".join(report.details[:3]))
    if outcome.exit_code:
        sys.exit(outcome.exit_code)


class CannotRun(click.ClickException):
    """The replay could not be done (usage, selection, target, declined): exit status 2, apart from 1 =
    an expectation did not hold."""

    exit_code = 2


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    with bar:
        task = bar.add_task("replay", total=total)
        yield lambda: bar.advance(task)


# --- output ---------------------------------------------------------------------------------------------

def render_plans(jobs: Sequence[Job], urls: Sequence[str] | None, fmt: str) -> str:
    """The plans once per (request, variant): JSON lines under `#` headers, or one JSON document."""
    firsts: dict[tuple[str, str], tuple[Job, str]] = {}
    repeats: Counter[tuple[str, str]] = Counter()
    for i, job in enumerate(jobs):
        key = (job.request.request_id, job.variant.name)
        firsts.setdefault(key, (job, urls[i] if urls else "sim"))
        repeats[key] += 1
    if fmt == "json":
        return json.dumps([{"request_id": rid, "variant": name, "model": job.plan.model, "target": url,
                            "repeat": repeats[rid, name], "events": list(job.plan.events),
                            "notes": [vars(n) for n in job.plan.notes]}
                           for (rid, name), (job, url) in firsts.items()], indent=2) + "\n"
    out = []
    for (rid, name), (job, url) in firsts.items():
        out.append(f"# request {rid} variant {name} model {job.plan.model} target {url} x{repeats[rid, name]}")
        out.extend(job.plan.lines())
        out.extend(f"# note {n.kind}{' ' + n.item_id if n.item_id else ''}: {n.message}" for n in job.plan.notes)
    return "\n".join(out) + "\n"


def _rate(t: Tally) -> str:
    return f"{pct(t.failure_rate)} ({interval_text(t.interval)})" if t.interval else "n/a"


def render_markdown(report: ReplayReport) -> str:
    lines = ["| variant | replays | " + " | ".join(OUTCOMES) + " | failure rate (95% CI) | original: requests, "
             "failed, rate (95% CI) | forced call | errors |",
             "|" + "---|" * (len(OUTCOMES) + 6)]
    for row in report.rows:
        o = row.original
        forced = f"{row.forced[0]}/{row.forced[1]}" if row.forced else ""
        errors = "; ".join(f"{k} ×{n}" for k, n in row.errors.items())
        lines.append(f"| {row.variant} | {row.replayed.total} | "
                     + " | ".join(str(row.replayed.outcomes[x]) for x in OUTCOMES)
                     + f" | {_rate(row.replayed)} | {o.total}, {o.outcomes['failed']}, {_rate(o)} | {forced} | {errors} |")
    if report.notes:
        lines += ["", "Fidelity notes (what the replay could not reproduce exactly):", ""]
        lines += [f"- `{n.kind}` ({_count(n.requests, 'request')}): {n.example}" for n in report.notes]
    if report.setup_errors:
        lines += ["", f"{_count(report.setup_errors, 'replay')} got an error while their context was recreated."]
    if report.details:
        lines += ["", "Unfinished replays: " + "; ".join(report.details)]
    return "\n".join(lines) + "\n"


REPLAY_COLUMNS = (Column("variant"), Column("replays", short="n"), Column("ok"), Column("failed", style="red", short="fail"),
                  Column("cancel", optional=True, short="canc"), Column("incompl", optional=True, short="inc"),
                  Column("reject", optional=True, short="rej"), Column("unfin", optional=True, short="unf"),
                  Column("rate"), Column("95% CI", short="CI"), Column("recorded", short="rec"),
                  Column("rec. rate", short="rrate"), Column("forced", optional=True, short="forc"))


def render_table(report: ReplayReport, out: Console) -> None:
    """The terminal table (one row per variant), errors and fidelity notes under it."""
    rows = []
    for row in report.rows:
        t, o = row.replayed, row.original
        rows.append([row.variant, str(t.total), *(str(t.outcomes[x]) for x in OUTCOMES), pct(t.failure_rate),
                     interval_text(t.interval), f"{o.outcomes['failed']}/{o.total}", pct(o.failure_rate),
                     f"{row.forced[0]}/{row.forced[1]}" if row.forced else ""])
    print_table(out, "Replays by variant", REPLAY_COLUMNS, rows,
                caption="ok = completed, rate = failed / (replays - unfin), recorded = failed / requests as "
                        "recorded, forced = forced call happened / known")
    with_errors = [r for r in report.rows if r.errors]
    if with_errors:
        out.print("Errors:", style="bold")
        for r in with_errors:
            out.print(f"  {r.variant}: " + "; ".join(f"{k} ×{n}" for k, n in r.errors.items()))
    if report.notes:
        out.print("Fidelity notes (what the replay could not reproduce exactly):", style="bold")
        for n in report.notes:
            out.print(f"  {n.kind} ({_count(n.requests, 'request')}): {n.example}")
    if report.setup_errors:
        out.print(f"{_count(report.setup_errors, 'replay')} got an error while their context was recreated.")
    if report.details:
        out.print("Unfinished replays: " + "; ".join(report.details))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_json(report: ReplayReport) -> str:
    doc = {
        "variants": [{"variant": r.variant, "replayed": r.replayed.as_json(), "original": r.original.as_json(),
                      "errors": r.errors, "forced_call": {"happened": r.forced[0], "of": r.forced[1]} if r.forced else None}
                     for r in report.rows],
        "requests": list(report.per_request),
        "fidelity_notes": [{"kind": n.kind, "requests": n.requests, "example": n.example} for n in report.notes],
        "setup_errors": report.setup_errors,
        "unfinished_details": list(report.details),
    }
    return json.dumps(doc, indent=2) + "\n"


def render_csv(report: ReplayReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["variant", "replays", *OUTCOMES, "failure_rate", "ci_low", "ci_high", "original_requests",
                     "original_failed", "original_failure_rate", "forced_happened", "forced_of", "errors"])
    for r in report.rows:
        ci = r.replayed.interval or ("", "")
        writer.writerow([r.variant, r.replayed.total, *(r.replayed.outcomes[o] for o in OUTCOMES),
                         "" if r.replayed.failure_rate is None else r.replayed.failure_rate, *ci,
                         r.original.total, r.original.outcomes["failed"],
                         "" if r.original.failure_rate is None else r.original.failure_rate,
                         *(r.forced or ("", "")), "; ".join(f"{k} x{n}" for k, n in r.errors.items())])
    return out.getvalue()


RENDERERS: dict[str, Callable[[ReplayReport], str]] = {"markdown": render_markdown, "json": render_json, "csv": render_csv}


def _serve(**options: object) -> object:
    """The built-in simulator for target "sim", imported only when it is used."""
    from rtreplay.simulator.server import serve

    return serve(**options)  # type: ignore[arg-type]
