"""`rtreplay sessions`, `show`, `state` and `import`: look inside an archive, and add JSONL logs to one."""
from __future__ import annotations

import csv
import dataclasses
import tempfile
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import click
import polars as pl

from rtreplay.cli.location import Location
from rtreplay.analyzer.report.terminal import Column, console, print_table
from rtreplay.queries.escape import csv_cell, terminal
from rtreplay.analyzer.state import load
from rtreplay.recorder.importer import ImportFailed, import_jsonl
from rtreplay.analyzer.state.match import match
from rtreplay.analyzer.state.reduce import AnomalyError
from rtreplay.analyzer.state.session import SessionState
from rtreplay.analyzer.state.timeline import format_ts, seq_of_response, state_at, timeline
from rtreplay.recorder.archive import ArchiveError
from rtreplay.recorder.store import Archive, is_url
from rtreplay.recorder.upload import Uploader, UploadError
from rtreplay.recorder.schema import PROXY_OPEN, PROXY_REFUSED

def _format(default: str) -> Any:
    """--format: `table` (sessions, like analyze/replay/sql) or `text` (show's timeline), json, csv."""
    return click.option("--format", "fmt", type=click.Choice([default, "json", "csv"]), default=default,
                        show_default=True, help="Output format.")


def _emit(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1, default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
        click.echo(buf.getvalue(), nl=False)
    else:  # table / text
        if not rows:
            click.echo("(none)")
            return
        cols = list(rows[0])
        cells = [{c: terminal(str(r[c]), one_line=True) for c in cols} for r in rows]
        width = {c: max(len(c), *(len(r[c]) for r in cells)) for c in cols}
        click.echo("  ".join(c.ljust(width[c]) for c in cols))
        for r in cells:
            click.echo("  ".join(r[c].ljust(width[c]) for c in cols))


def _problems(problems: list) -> None:
    for p in problems:
        click.echo(f"warning: {p}", err=True)


@click.command("sessions")
@click.argument("archive_path", metavar="ARCHIVE", type=Location())
@_format("table")
def sessions(archive_path: Path, fmt: str) -> None:
    """One row per session: start, duration, model, events, requests, failures.

    \b
    Example:
      rtreplay sessions logs/
    """
    problems: list = []
    try:
        arc = Archive.open(archive_path)
        if not arc.files:
            raise ArchiveError(f"{archive_path}: no archive files here (expected events/**/*.parquet or journal/*.arrows)")
        stats = load.collect(arc, lambda f: f.group_by("session_id").agg(
            pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end"), pl.len().alias("events"),
            pl.col("payload").filter(pl.col("type").is_in(["session.created", "session.updated"])).last()
            .alias("config"),
            # A proxy run's refusals (recorder/refusals.py): not an app session; counted in a note instead.
            pl.col("payload").filter(pl.col("type") == PROXY_REFUSED).str.json_path_match("$.count")
            .cast(pl.Int64, strict=False).fill_null(1).sum().alias("refused"),
            (pl.col("type") == PROXY_REFUSED).any().alias("run")).sort("session_id"), problems)
        result = match(arc)
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    _problems(list(dict.fromkeys(map(str, problems + result.problems))))
    if stats.is_empty() and problems:
        raise click.ClickException(f"{archive_path}: nothing could be read ({len(problems)} files with problems)")
    by_session: dict[str, list] = {}
    for r in result.requests:
        by_session.setdefault(r.session_id, []).append(r)
    opens = dict(load.collect(arc, lambda f: f.filter(pl.col("type") == PROXY_OPEN).group_by("session_id")
                              .agg(pl.col("payload").first()), []).iter_rows())
    rows = []
    runs: dict[str, int] = {}
    for sid, start, end, n, config, refused, run in stats.iter_rows():
        if run:
            runs[sid] = refused
            continue
        reqs = by_session.get(sid, [])
        model = next((r.model for r in reqs if r.model), None)
        if model is None and config:
            model = _config_model(config)
        if model is None and sid in opens:  # no session event (e.g. the upstream was unreachable): as asked
            model = _asked_model(opens[sid])
        outcomes = Counter(r.outcome for r in reqs)
        rows.append({"session": sid, "start": start.isoformat(timespec="seconds"),
                     "duration_s": round((end - start).total_seconds(), 1), "model": model, "events": n,
                     "requests": len(reqs), "failures": outcomes["failed"], "rejected": outcomes["rejected"]})
    if fmt == "table" and rows:  # the report tables' rules: short headers, then all-zero columns out, then stacked
        cells = [[terminal(str(r["session"]), one_line=True), r["start"][:19].replace("T", " "),
                  str(r["duration_s"]), terminal(str(r["model"] or "-"), one_line=True),
                  *(str(r[k]) for k in ("events", "requests", "failures", "rejected"))] for r in rows]
        print_table(console(), "Sessions (start in UTC)", SESSION_COLUMNS, cells)
    else:
        _emit(rows, fmt)
    if runs:
        click.echo(f"note: {sum(runs.values())} connections refused before they became sessions (timeouts, bad or "
                   f"excess upgrade requests): `rtreplay show {archive_path} SESSION` for {', '.join(runs)}", err=True)


SESSION_COLUMNS = (Column("session"), Column("start", justify="left"), Column("duration s", short="dur s"),
                   Column("model", justify="left"), Column("events"), Column("requests", short="req"),
                   Column("failures", short="fail"), Column("rejected", optional=True, short="rej"))


def _asked_model(open_payload: str) -> str | None:
    """The `model=` the app put in its URL, from the `proxy.open` record."""
    try:
        query = json.loads(open_payload).get("query") or ""
    except (ValueError, AttributeError):
        return None
    return next(iter(parse_qs(query).get("model", [])), None)


def _config_model(payload: str) -> str | None:
    """`session.model` of a recorded session.created/updated payload, whatever shape it has."""
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    session = event.get("session") if isinstance(event, dict) else None
    model = session.get("model") if isinstance(session, dict) else None
    return model if isinstance(model, str) else None


def _session(archive_path: Path, session_id: str, with_table: bool = False):  # type: ignore[no-untyped-def]
    problems: list = []
    try:
        table = load.read_session(Archive.open(archive_path), session_id, problems)
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    _problems(problems)
    return (load.session_events(table), table) if with_table else load.session_events(table)


def _marks(table) -> dict[int, list[str]]:  # type: ignore[no-untyped-def]
    """Barge-ins, invalid truncations, hung turns and other failures by seq (rtreplay.analyzer.report.failures)."""
    import polars as pl

    from rtreplay.analyzer.report.failures import timeline_marks
    from rtreplay.analyzer.report.voice_read import read_frame

    facts = read_frame(pl.from_arrow(table).lazy())  # type: ignore[union-attr]
    return timeline_marks(facts[0]) if facts else {}


@click.command("show")
@click.argument("archive_path", metavar="ARCHIVE", type=Location())
@click.argument("session_id", metavar="SESSION")
@click.option("--all", "show_all", is_flag=True, help="One line per event (deltas and appends not collapsed).")
@_format("text")
def show(archive_path: Path, session_id: str, show_all: bool, fmt: str) -> None:
    """A readable timeline of one session (runs of deltas and audio appends collapsed), with barge-ins,
    invalid truncations, hung tool calls and other failures marked (▲) under the event that shows them.

    \b
    Example:
      rtreplay show logs/ 20260901T080000000000-ab12cd
    """
    events, table = _session(archive_path, session_id, with_table=True)
    marks = _marks(table)
    rows = [{"seq": seq, "time": format_ts(e.ts_us), "dir": e.direction, "events": n, "what": text,
             "marks": marks.get(seq, [])}
            for seq, e, text, n in timeline(events, collapse=not show_all)]
    if fmt != "text":
        _emit(rows, fmt)
        return
    arrows = {"client": "→", "server": "←", "proxy": "·"}
    for r in rows:
        click.echo(f"{r['seq']:>7}  {r['time']}  {arrows.get(r['dir'], '?')} {terminal(r['what'], one_line=True)}")
        for mark in r["marks"]:
            click.secho(f"{'':>7}  {'':12}  ▲ {terminal(str(mark), one_line=True)}", fg="red", bold=True)


def _transcript(state: SessionState) -> str:
    lines = []
    for item in state.conversation():
        who = item.fields.get("role") or item.fields.get("type")
        status = item.fields.get("status")
        lines.append(f"[{item.id}] {who}{'' if status in (None, 'completed') else f' ({status})'}: {item.text()}")
    if state.input_audio:
        lines.append(f"(input audio buffer: {len(state.input_audio_bytes())} bytes not committed)")
    for a in state.anomalies:
        lines.append(f"anomaly at {a.seq} ({a.type}): {a.kind}: {a.message}")
    return "\n".join(lines) or "(empty conversation)"


@click.command("state")
@click.argument("archive_path", metavar="ARCHIVE", type=Location())
@click.argument("session_id", metavar="SESSION")
@click.option("--at", "at_seq", type=click.IntRange(min=0), help="State just after the event with this seq "
              "[default, with no --before: the final state].")
@click.option("--before", "before_response", metavar="RESPONSE_ID",
              help="State just before the request that started this response.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--audio", is_flag=True, help="Include audio as base64 in JSON output.")
@click.option("--strict", is_flag=True, help="Fail on the first anomaly in the stream.")
def state(archive_path: Path, session_id: str, at_seq: int | None, before_response: str | None, fmt: str,
          audio: bool, strict: bool) -> None:
    """The conversation as it stood at one moment: a transcript, or `--format json` items.

    \b
    Examples:
      rtreplay state logs/ SESSION --at 1200
      rtreplay state logs/ SESSION --before resp_abc123 --format json
    """
    if at_seq is not None and before_response is not None:
        raise click.UsageError("give at most one of --at SEQ or --before RESPONSE_ID")
    events = _session(archive_path, session_id)
    last = events[-1].seq if events else -1
    if before_response is not None:
        seq = seq_of_response(events, before_response)
        if seq is None:
            raise click.ClickException(f"no response {before_response!r} in session {session_id}")
        at_seq = seq - 1
    elif at_seq is None:
        at_seq = last  # neither option: the final state
    elif at_seq > last:
        click.echo(f"note: --at {at_seq} is past the session's last event ({last}): showing the final state", err=True)
        at_seq = last
    try:
        st = state_at(events, at_seq, session_id, strict=strict)  # type: ignore[arg-type]
    except AnomalyError as exc:
        raise click.ClickException(f"anomaly (strict mode): {exc}") from None
    if fmt == "json":
        click.echo(json.dumps(st.to_json(with_audio=audio), indent=1, default=str))
    else:
        click.echo(terminal(_transcript(st)))


@click.command("import")
@click.argument("src", metavar="FILE.jsonl", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=Location(file_okay=False), required=True,
              help="Archive root to write to: a directory, or an object-store URL (s3://bucket/prefix).")
@click.option("--session-id", help="Session id to use (default: one derived from the first timestamp); an id "
              "already in the archive is refused.")
def import_(src: Path, out: Path, session_id: str | None) -> None:
    """Add a JSONL event log (one event per line; optional `direction`, `timestamp`) to an archive.

    \b
    Example:
      rtreplay import webrtc-events.jsonl --out logs/
    """
    try:
        if is_url(out):
            with tempfile.TemporaryDirectory(prefix="rtreplay-import-") as spool:
                done = import_jsonl(src, Path(spool), session_id)
                done = dataclasses.replace(done, path=Uploader(Path(spool), str(out)).upload(done.path).target)
        else:
            done = import_jsonl(src, out, session_id)
    except (ImportFailed, UploadError) as exc:
        raise click.ClickException(str(exc)) from None
    invalid = (f", {_plural(done.invalid_lines, 'line')} not a JSON event (kept as invalid.json)"
               if done.invalid_lines else "")
    click.echo(f"added session {done.session_id}: {_plural(done.events, 'event')} from {src}{invalid}, "
               f"after its proxy.open record -> {done.path}")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"

