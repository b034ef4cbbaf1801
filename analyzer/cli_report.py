"""`rtreplay analyze`: the failure report by tool_choice form (library: analyzer.report, analyzer.render*)."""
from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analyzer.model import Request
from analyzer.render import render_csv, render_json, render_markdown, render_table
from analyzer.render_html import render_html
from analyzer.report import SPLIT_HELP, Filters, ReportError, build_report, parse_splits, parse_time
from analyzer.report_timelines import load_timelines
from recorder.archive import ArchiveError, archive_files

FORMATS = {"json": render_json, "csv": render_csv, "markdown": render_markdown}


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    bar = Progress(TextColumn("reading archive"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    with bar:
        bar.add_task("read", total=total)
        yield bar


def load_requests(root: Path, sessions: Sequence[str], show_progress: bool | None) -> tuple[list[Request], list[str]]:
    """Requests of the archive at `root` (only `sessions` if given) and the problems met reading it."""
    from analyzer import match  # imported here: the report needs it only when reading an archive

    files, problems = archive_files(root)
    if not files:
        raise ArchiveError(f"{root}: no archive files here (expected events/**/*.parquet or journal/*.arrows); "
                           "record some with `rtreplay proxy --out DIR`")
    enabled = sys.stderr.isatty() if show_progress is None else show_progress
    with _progress(enabled, len(files)) as bar:
        found = match.requests(root, sessions=list(sessions) or None, on_file=(lambda _path: bar.advance(0))
                               if bar else None)
    return found, [str(p) for p in problems]


@click.command()
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("--by", "by", multiple=True, metavar="SPLITS",
              help=f"Split groups by these (comma-separated; replace the default `scope`, or add with a leading +): "
                   f"{SPLIT_HELP}; `none` for no split.")
@click.option("--session", "sessions", multiple=True, metavar="ID", help="Only this session (repeatable).")
@click.option("--since", metavar="TIME", help="Only requests at or after this ISO date/time (UTC).")
@click.option("--until", metavar="TIME", help="Only requests before this ISO date/time (UTC).")
@click.option("--oob-only", is_flag=True, help="Only out-of-band requests (conversation: none).")
@click.option("--format", "fmt", type=click.Choice(["table", *FORMATS]), default="table", show_default=True,
              help="What to print on stdout.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML page with charts and the failed requests' timelines.")
@click.option("--timelines", default=50, show_default=True, metavar="N",
              help="Failed requests whose event excerpt goes into the HTML page.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bar on stderr [default: when stderr is a terminal].")
def analyze(archive: Path, by: tuple[str, ...], sessions: tuple[str, ...], since: str | None, until: str | None,
            oob_only: bool, fmt: str, html_path: Path | None, timelines: int, show_progress: bool | None) -> None:
    """Failure rates by tool_choice form, split by out-of-band vs default conversation.

    Counts per form every client response.create in ARCHIVE by outcome (completed, failed, cancelled,
    incomplete, rejected, unfinished), with the failure rate and its 95% Wilson interval, the top errors
    and, for forced forms, how often the forced call happened; a headline says which form fails most.
    JSON output is documented in docs/report.md.

    \b
    Examples:
      rtreplay analyze logs/
      rtreplay analyze logs/ --by +model --oob-only --format json
      rtreplay analyze logs/ --since 2026-03-01 --html report.html
    """
    try:
        splits = parse_splits(by)
        filters = Filters(tuple(sessions), parse_time(since) if since else None,
                          parse_time(until) if until else None, oob_only)
        requests, problems = load_requests(archive, sessions, show_progress)
        report = build_report(requests, splits, filters, source=str(archive), problems=problems)
        if html_path is not None:
            excerpts = load_timelines(archive, report.failed, limit=timelines) if timelines > 0 else {}
            html_path.write_text(render_html(report, excerpts), encoding="utf-8")
    except (ReportError, ArchiveError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or archive}: {exc.strerror or exc}") from None
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if fmt == "table":
        render_table(report, Console(highlight=False))
    else:
        click.echo(FORMATS[fmt](report), nl=False)
    if html_path is not None:
        click.echo(f"wrote {html_path}", err=True)
