"""`rtreplay analyze`: the failure report by tool_choice form (library: rtreplay.analyzer.report.tool_choice,
rtreplay.analyzer.report.render*), and the voice reports (latency, interruptions, cost, failures: library
rtreplay.analyzer.report.voice) with `--report`."""
from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rtreplay.cli.location import Location
from rtreplay.analyzer.state.request import PAIRINGS, Request
from rtreplay.analyzer.report.render import render_csv, render_json, render_markdown, render_table
from rtreplay.analyzer.report import terminal
from rtreplay.analyzer.report.html import render_html
from rtreplay.analyzer.report.tool_choice import SPLIT_HELP, Filters, ReportError, build_report, parse_splits, parse_time
from rtreplay.analyzer.report.timelines import load_timelines
from rtreplay.recorder.archive import ArchiveError
from rtreplay.recorder.store import Archive

FORMATS = {"json": render_json, "csv": render_csv, "markdown": render_markdown}


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A function advancing a progress bar on stderr by a number of files (a no-op when disabled)."""
    if not enabled:
        yield lambda _n: None
        return
    console = Console(stderr=True)
    # On a terminal the bar disappears when done; elsewhere (a log file) its final state is written once.
    bar = Progress(TextColumn("reading archive"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                   TimeElapsedColumn(), console=console, transient=console.is_terminal)
    with bar:
        task = bar.add_task("read", total=total)
        yield lambda n: bar.advance(task, n)


def load_requests(arc: Archive, sessions: Sequence[str], show_progress: bool | None,
                  jobs: int | None = None) -> tuple[list[Request], list[str]]:
    """Requests of an opened archive (only `sessions` if given) and the problems met reading it, read and
    matched batch by batch on `jobs` processes (rtreplay.analyzer.state.gather), with a progress bar."""
    from rtreplay.analyzer.state import gather  # imported late: the report itself reads no archive

    enabled = sys.stderr.isatty() if show_progress is None else show_progress
    with _progress(enabled, len(arc.files)) as advance:
        found, problems = gather.gather(arc, sessions, jobs or gather.default_jobs(), advance,
                                        min_pool_bytes=gather.POOL_MIN_BYTES if jobs is None else 0)
    unreadable = {p.split(": ", 1)[0] for p in problems}
    if arc.files and all(f.path in unreadable for f in arc.files):  # an empty report would read as "no requests"
        raise ArchiveError(f"{arc.location}: nothing could be read ({problems[-1]})")
    return found, problems


def _days(filters: Filters) -> tuple[str | None, str | None]:
    """The `date=` partitions that can hold requests in the time filter: a session is filed under the day it
    started, so the day before `--since` is read too (sessions are far shorter than a day)."""
    first = (filters.since - dt.timedelta(days=1)).date().isoformat() if filters.since else None
    return first, filters.until.date().isoformat() if filters.until else None



@click.command()
@click.argument("archive", type=Location())
@click.option("--by", "by", multiple=True, metavar="SPLITS",
              help=f"Split groups by these (comma-separated; replace the default `scope`, or add with a leading +): "
                   f"{SPLIT_HELP}; `none` for no split.")
@click.option("--session", "sessions", multiple=True, metavar="ID", help="Only this session (repeatable).")
@click.option("--since", metavar="TIME", help="Only requests at or after this ISO date/time (UTC).")
@click.option("--until", metavar="TIME", help="Only requests before this ISO date/time (UTC).")
@click.option("--oob-only", is_flag=True, help="Only out-of-band requests (conversation: none).")
@click.option("--pairing", "pairings", multiple=True, metavar="HOW",
              help=f"Only requests paired with their answer this way (comma-separated, repeatable): "
                   f"{', '.join(PAIRINGS)}, none (unanswered). See docs/definitions.md.")
@click.option("--format", "fmt", type=click.Choice(["table", *FORMATS]), default="table", show_default=True,
              help="What to print on stdout.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML page with charts and the failed requests' timelines.")
@click.option("--timelines", default=50, show_default=True, metavar="N",
              help="Failed requests whose event excerpt goes into the HTML page.")
@click.option("--jobs", type=click.IntRange(min=1), metavar="N",
              help="Processes reading and matching sessions [default: the cores this process may use; one for "
                   "archives under 32 MiB].")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bar on stderr [default: when stderr is a terminal].")
@click.option("--report", "report_names", multiple=True, metavar="NAMES",
              help="Which reports (comma-separated or repeated): tool_choice (default), latency, interruptions, "
                   "cost, failures, all. --by, --oob-only, --since/--until and --timelines apply to tool_choice.")
@click.option("--prices", "prices_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Price table (JSON, the shape of the shipped queries/prices.json) for the cost report.")
def analyze(archive: Path, by: tuple[str, ...], sessions: tuple[str, ...], since: str | None, until: str | None,
            oob_only: bool, pairings: tuple[str, ...], fmt: str, html_path: Path | None, timelines: int,
            jobs: int | None, show_progress: bool | None, report_names: tuple[str, ...],
            prices_path: Path | None) -> None:
    """Failure rates by tool_choice form, split by out-of-band vs default conversation.

    Counts per form every client response.create in ARCHIVE by outcome (completed, failed, cancelled,
    incomplete, rejected, unfinished), with the failure rate and its 95% Wilson interval, the top errors
    and, for forced forms, how often the forced call happened; a headline says which form fails most.
    JSON output is documented in docs/report.md. `--report` asks for the voice reports instead or as well:
    latency (time to first audio, request and tool latencies), interruptions (barge-ins, truncations), cost
    (from usage, with a price table shipped as data) and failures (one taxonomy, silent ones included).

    \b
    Examples:
      rtreplay analyze logs/
      rtreplay analyze logs/ --by +model --oob-only --format json
      rtreplay analyze logs/ --since 2026-03-01 --html report.html
      rtreplay analyze logs/ --report latency,cost --prices my-prices.json
      rtreplay analyze logs/ --report all --html report.html
    """
    from rtreplay.analyzer.report import voice, voice_html
    from rtreplay.analyzer.report.cost import PriceError, load_prices

    report = None
    voice_reports: dict = {}
    try:
        names = voice.parse_reports(report_names)
        if fmt == "csv" and len(names) > 1:
            raise voice.ChoiceError("--format csv writes one report; ask for one with --report NAME")
        prices = load_prices(prices_path) if "cost" in names else None
        problems: list[str] = []
        if "tool_choice" in names:
            splits = parse_splits(by)
            how = tuple(p.strip() for raw in pairings for p in raw.split(",") if p.strip())
            unknown = [p for p in how if p not in (*PAIRINGS, "none")]
            if unknown:
                raise ReportError(f"unknown pairing {unknown[0]!r}; choose from: {', '.join(PAIRINGS)}, none")
            filters = Filters(tuple(sessions), parse_time(since) if since else None,
                              parse_time(until) if until else None, oob_only, how)
            arc = Archive.open(archive, days=_days(filters))
            requests, problems = load_requests(arc, sessions, show_progress, jobs)
            report = build_report(requests, splits, filters, source=str(archive), problems=problems)
        if set(names) & set(voice.VOICE):
            problems = []
            facts = load_facts(Archive.open(archive), sessions, problems)  # read while the reports fold it
            voice_reports = voice.build_reports(names, facts, prices=prices, source=str(archive), problems=problems)
        if html_path is not None:
            extra = "".join(voice_html.section(n, r) for n, r in voice_reports.items())
            if report is not None:
                excerpts = load_timelines(arc, report.failed, limit=timelines) if timelines > 0 else {}
                html_path.write_text(render_html(report, excerpts, extra=extra), encoding="utf-8")
            else:
                html_path.write_text(voice_html.page(voice_reports, str(archive)), encoding="utf-8")
    except (ReportError, ArchiveError, PriceError, voice.ChoiceError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or archive}: {exc.strerror or exc}") from None
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    _print(report, voice_reports, fmt)
    if html_path is not None:
        click.echo(f"wrote {html_path}", err=True)


def load_facts(arc: Archive, sessions: Sequence[str], problems: list[str]) -> Iterator:
    """The voice facts of an opened archive, session by session (rtreplay.analyzer.report.voice_read.iter_facts:
    the problems met go to `problems`); one-line error when empty."""
    if not arc.files:
        raise ArchiveError(f"{arc.location}: no archive files here (expected events/**/*.parquet or "
                           "journal/*.arrows); record some with `rtreplay proxy --out DIR`")
    from rtreplay.analyzer.report.voice_read import iter_facts
    return iter_facts(arc, list(sessions) or None, problems)


def _print(report, voice_reports: dict, fmt: str) -> None:  # type: ignore[no-untyped-def]
    from rtreplay.analyzer.report import voice
    from rtreplay.analyzer.report.render import to_json
    from rtreplay.analyzer.report.voice_render import dumps, render_table as render_voice_table

    if fmt == "table":
        out = terminal.console()  # the terminal's width ($COLUMNS if set), else wide enough for a file or pipe
        if report is not None:
            render_table(report, out)
        for i, r in enumerate(voice_reports.values()):
            if i or report is not None:
                out.print()
            render_voice_table(r, out if out.is_terminal or os.environ.get("COLUMNS")
                               else Console(highlight=False, width=80))
    elif report is not None and voice_reports:
        if fmt == "json":
            click.echo(dumps({"report": "rtreplay.all", "version": 1, "reports": {
                "tool_choice": to_json(report), **{n: r.to_json() for n, r in voice_reports.items()}}}), nl=False)
        else:
            click.echo("## tool_choice\n\n" + FORMATS[fmt](report) + "\n" + voice.render(voice_reports, fmt), nl=False)
    elif report is not None:
        click.echo(FORMATS[fmt](report), nl=False)
    else:
        click.echo(voice.render(voice_reports, fmt), nl=False)
