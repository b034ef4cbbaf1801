"""Write a query's rows as an aligned text table, CSV, JSON or Parquet, streaming Arrow record batches.

Conventions: NULL is an empty CSV cell, `null` in JSON and `NULL` in the table; floats are exact in CSV and
JSON and have 6 significant digits in the table; timestamps are ISO 8601
(UTC); binary values are base64; columns of DuckDB type JSON are embedded as JSON values in `json` output
and printed as their text elsewhere; lists and structs become JSON text in CSV and the table.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import orjson
import pyarrow as pa

from rtreplay.queries.escape import csv_cell, terminal
import pyarrow.parquet as pq

FORMATS = ("table", "csv", "json", "parquet")
TABLE_ROWS = 200  # rows a table shows; the other formats write every row
CELL_WIDTH = 60  # longer table cells are cut with an ellipsis


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _table_text(value: Any) -> str:
    """A table cell: floats to 6 significant digits (the binary noise of 0.5673817000000004 is no information)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return _text(value, "NULL")


def _text(value: Any, null: str) -> str:
    """One value as text for CSV cells (exact) and table cells."""
    if value is None:
        return null
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return orjson.dumps(value, default=_default).decode()
    return str(value)


def _rows(batches: Iterable[pa.RecordBatch]) -> Iterable[dict[str, Any]]:
    for batch in batches:
        yield from batch.to_pylist()


def write_csv(schema: pa.Schema, batches: Iterable[pa.RecordBatch], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(schema.names)
    for row in _rows(batches):
        writer.writerow([csv_cell(_text(v, "")) if isinstance(v, str) else _text(v, "") for v in row.values()])


def write_json(schema: pa.Schema, batches: Iterable[pa.RecordBatch], out: TextIO,
               json_columns: Iterable[str] = ()) -> None:
    """A JSON array of one object per row; `json_columns` hold JSON text that is embedded as JSON."""
    embed = [c for c in json_columns if c in schema.names]
    out.write("[")
    first = True
    for row in _rows(batches):
        for c in embed:
            if row[c] is not None:
                row[c] = orjson.Fragment(row[c])
        out.write(("\n" if first else ",\n") + orjson.dumps(row, default=_default).decode())
        first = False
    out.write("\n]\n" if not first else "]\n")


def write_table(schema: pa.Schema, batches: Iterable[pa.RecordBatch], out: TextIO,
                note: Callable[[str], None]) -> None:
    """Columns aligned, at most TABLE_ROWS rows; `note` hears how many rows were left out."""
    rows: list[list[str]] = []
    extra = 0
    for row in _rows(batches):
        if len(rows) < TABLE_ROWS:
            cells = [terminal(_table_text(v).replace("\n", " "), one_line=True) for v in row.values()]
            rows.append([c if len(c) <= CELL_WIDTH else c[: CELL_WIDTH - 1] + "…" for c in cells])
        else:
            extra += 1
    header = list(schema.names)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out.write(line(header) + "\n" + line(["-" * w for w in widths]) + "\n")
    for r in rows:
        out.write(line(r) + "\n")
    shown = f"{len(rows)} row" + ("" if len(rows) == 1 else "s")
    note(f"({shown}; {extra} more not shown: use --format csv, json or parquet)" if extra else f"({shown})")


def write_parquet(schema: pa.Schema, batches: Iterable[pa.RecordBatch], path: Path) -> None:
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
