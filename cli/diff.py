"""`rtreplay diff A B`: two sessions side by side at the event level (rtreplay.analyzer.replay.diff)."""
from __future__ import annotations

import json
import sys

import click

from rtreplay.analyzer.replay.diff import DiffError, as_json, diff as diff_sessions, render, resolve
from rtreplay.recorder.archive import ArchiveError


@click.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--whole", is_flag=True, help="Compare whole sessions, also when one replays the other.")
@click.option("--all", "all_rows", is_flag=True, help="Show every row, identical ones too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def diff(a: str, b: str, whole: bool, all_rows: bool, fmt: str) -> None:
    """Show two sessions side by side, event by event, with a summary of what differs.

    A and B are ARCHIVE:SESSION, or an ARCHIVE when it holds one session or holds the session the other
    side replays. A replay diffed against its recording is cut to the replayed request and its answer.
    Runs of deltas are collapsed; ids and timestamps are normalised away. Exit status 0 when nothing
    differs, 1 when something does, 2 when a side cannot be read.

    \b
    Example:
      rtreplay diff logs/ replays/:20261123T002050000000-ab12cd
    """
    try:
        left, right = resolve(a, b)
        result = diff_sessions(left, right, whole=whole)
    except (DiffError, ArchiveError) as exc:
        raise Unreadable(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(as_json(result), indent=2, default=str))
    else:
        click.echo(render(result, all_rows=all_rows), nl=False)
    sys.exit(0 if result.same else 1)


class Unreadable(click.ClickException):
    exit_code = 2
