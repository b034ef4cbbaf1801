"""`rtreplay sql` and `rtreplay query`: DuckDB SQL over an archive with the views of `queries/` in place.

Library: `queries` (views, reports, connection), `queries.output` (writers). SQL and archive errors come back
as one line (click.ClickException) naming the view, column or file; exit code 0 only on success.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import duckdb

from rtreplay.cli.location import Location
from rtreplay import queries
from rtreplay.queries import output
from rtreplay.queries.loader import VIEWS, SqlError, one_line

BATCH_ROWS = 10_000


def _format_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--output", "-o", "out_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write here instead of stdout (required for parquet).")(f)
    return click.option("--format", "fmt", type=click.Choice(output.FORMATS), default="table", show_default=True,
                        help="How to write the rows.")(f)


def _warn(problem: object) -> None:
    click.echo(f"warning: {problem}", err=True)


def _emit(archive: Path, sql: str, fmt: str, out_path: Path | None) -> None:
    """Run `sql` over `archive` and write its rows; every failure becomes one ClickException line."""
    if fmt == "parquet" and out_path is None:
        raise click.ClickException("--format parquet writes a file: add --output FILE.parquet")
    try:
        con = queries.connect(archive, on_problem=_warn)
    except SqlError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        rel = queries.relation(con, sql)
        if rel is None:  # statements without rows (CREATE, SET, ...)
            return
        json_columns = [name for name, kind in zip(rel.columns, rel.types) if str(kind) == "JSON"]
        reader = rel.to_arrow_reader(BATCH_ROWS)
        if fmt == "parquet":
            output.write_parquet(reader.schema, reader, out_path)  # type: ignore[arg-type]
            click.echo(f"wrote {out_path}", err=True)
            return
        stream = out_path.open("w", encoding="utf-8", newline="") if out_path else sys.stdout
        try:
            if fmt == "csv":
                output.write_csv(reader.schema, reader, stream)
            elif fmt == "json":
                output.write_json(reader.schema, reader, stream, json_columns)
            else:
                output.write_table(reader.schema, reader, stream, lambda text: click.echo(text, err=True))
        finally:
            if out_path:
                stream.close()
    except SqlError as exc:
        raise click.ClickException(str(exc)) from None
    except duckdb.Error as exc:  # raised while rows stream
        raise click.ClickException(one_line(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or out_path}: {exc.strerror or exc}") from None
    finally:
        con.close()


@click.command()
@click.argument("archive", type=Location(exists=True))
@click.argument("query", required=False)
@click.option("--file", "-f", "sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run the SQL in this file (one or more statements; the last one's rows are written).")
@click.option("--views", "show_views", is_flag=True,
              help="Print the SQL of every view over ARCHIVE, for the duckdb CLI or any DuckDB client.")
@_format_options
def sql(archive: Path, query: str | None, sql_file: Path | None, show_views: bool, fmt: str,
        out_path: Path | None) -> None:
    """Run SQL over ARCHIVE with every view registered (docs/sql.md lists them).

    Views: {views}. Open sessions (journals) are included.

    \b
    Examples:
      rtreplay sql logs/ "SELECT form_sent, outcome, count(*) FROM outcomes GROUP BY ALL"
      rtreplay sql logs/ --file my.sql --format csv -o out.csv
      rtreplay sql --views logs/ > views.sql && duckdb -c ".read views.sql" -c "FROM sessions"
    """
    if show_views:
        if query or sql_file:
            raise click.ClickException("--views prints the view SQL; give no query or --file with it")
        try:
            click.echo(queries.view_script(archive), nl=False)
        except SqlError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if (query is None) == (sql_file is None):
        raise click.ClickException('give one query ("SELECT …") or --file FILE.sql, or --views')
    text = query if query is not None else sql_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    _emit(archive, text, fmt, out_path)


@click.command()
@click.argument("archive", type=Location(exists=True))
@click.argument("name", required=False)
@_format_options
def query(archive: Path, name: str | None, fmt: str, out_path: Path | None) -> None:
    """Run the canned report NAME over ARCHIVE; without NAME, list the reports.

    Reports: failure_rate (the numbers of `rtreplay analyze`), latency, token_usage, top_errors,
    out_of_band. Their SQL is queries/report_NAME.sql.

    \b
    Examples:
      rtreplay query logs/
      rtreplay query logs/ failure_rate --format json
    """
    if name is None:
        for report in queries.reports():
            click.echo(f"{report:14} {queries.summary(report)}")
        return
    try:
        text = queries.report_sql(name)
    except SqlError as exc:
        raise click.ClickException(str(exc)) from None
    _emit(archive, text, fmt, out_path)


sql.help = (sql.help or "").replace("{views}", ", ".join(VIEWS))  # the list is `queries.loader.VIEWS`, never a copy
