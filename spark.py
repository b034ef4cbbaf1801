"""`rtreplay analyze` on Apache Spark (optional extra: `pip install 'rtreplay[spark]'`).

The per-session work is the same pure function the local process pool runs
(`rtreplay.analyzer.state.request_rows.session_requests`: a session's events as Arrow in, its request rows
as Arrow out), applied per session with `groupBy("session_id").applyInArrow`. The failure-rate aggregation
runs in Spark SQL (`KINDS_SQL`, `RATES_SQL`, `BUCKETS_SQL` over the `rtreplay_requests` view); only those
small aggregates reach the driver, which writes the report with the same code as `rtreplay analyze`, so
`report_json` equals `rtreplay analyze ARCHIVE --format json` field for field.

    from pyspark.sql import SparkSession
    from rtreplay import spark as rtspark
    session = SparkSession.builder.getOrCreate()
    print(rtspark.report_json(session, "s3a://bucket/rtreplay"))

Spark reads finished sessions (Parquet) at the current schema version; open journals are not read (run
`rtreplay recover` first).
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from rtreplay.analyzer.report.render import to_json
from rtreplay.analyzer.report.tool_choice import (DEFAULT_SPLITS, STEPS, Filters, Report, ReportError, report_of,
                                                  time_buckets, time_unit)
from rtreplay.analyzer.state.match import MATCH_COLUMNS
from rtreplay.analyzer.state.request_rows import MATCH_FILTER_SQL, REQUEST_SCHEMA, session_requests

VIEW = "rtreplay_requests"
# Splits that are a column of the request rows (the rest need Python: metadata:KEY, day).
SPLIT_COLUMNS = {"scope": "scope", "input": "input_kind", "modalities": "output_modalities", "model": "model",
                 "tools": "tools_count", "session": "session_id", "pairing": "pairing"}
_SPARK_TYPES = {pa.string(): "string", pa.int64(): "bigint", pa.bool_(): "boolean", pa.float64(): "double",
                pa.timestamp("us", tz="UTC"): "timestamp"}
REQUEST_DDL = ", ".join(f"{f.name} {_SPARK_TYPES[f.type]}" for f in REQUEST_SCHEMA)

KINDS_SQL = """
SELECT form_sent, scope, {splits} outcome, form_effective, forced_call, error_type, error_code, count(*) AS n
FROM {view} GROUP BY ALL
"""
RATES_SQL = """
SELECT form_sent, scope, count(*) AS requests,
       count_if(outcome = 'failed') AS failed,
       count(*) - count_if(outcome = 'unfinished') AS decided,
       try_divide(count_if(outcome = 'failed'), count(*) - count_if(outcome = 'unfinished')) AS failure_rate
FROM {view} GROUP BY form_sent, scope
"""
SPAN_SQL = "SELECT min(unix_micros(ts)) AS first, max(unix_micros(ts)) AS last FROM {view}"
BUCKETS_SQL = """
SELECT floor(unix_micros(ts) / {step_us}) AS slot, outcome, count(*) AS n FROM {view} GROUP BY ALL
"""


def _apply(table: pa.Table) -> pa.Table:
    return session_requests(table)


def requests(spark, location: str):  # -> pyspark.sql.DataFrame
    """The request rows of the archive at `location` (any path Spark reads: a directory, s3a://…), one
    group per session; registered as the temporary view `rtreplay_requests`."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    events = spark.read.option("basePath", f"{location.rstrip('/')}/events").parquet(f"{location.rstrip('/')}/events")
    rows = (events.where(MATCH_FILTER_SQL).select(*MATCH_COLUMNS)
            .groupBy("session_id").applyInArrow(_apply, schema=REQUEST_DDL))
    rows.createOrReplaceTempView(VIEW)
    return rows


def report(spark, location: str, splits: Sequence[str] = DEFAULT_SPLITS) -> Report:
    """The failure report of `rtreplay analyze` (no filters), aggregated in Spark SQL."""
    unknown = [s for s in splits if s not in SPLIT_COLUMNS]
    if unknown:
        raise ReportError(f"split {unknown[0]!r} is not available on Spark; choose from: {', '.join(SPLIT_COLUMNS)}")
    requests(spark, location).cache()
    cols = "".join(f"{SPLIT_COLUMNS[s]} AS split_{i}, " for i, s in enumerate(splits))
    kinds: Counter = Counter()
    for row in spark.sql(KINDS_SQL.format(splits=cols, view=VIEW)).collect():
        d = row.asDict()
        kinds[(d["form_sent"], d["scope"], tuple(d[f"split_{i}"] for i in range(len(splits))), d["outcome"],
               d["form_effective"], d["forced_call"], d["error_type"], d["error_code"])] += d["n"]
    span = spark.sql(SPAN_SQL.format(view=VIEW)).collect()[0]
    unit, buckets = "hour", ()
    if span["first"] is not None:
        unit = time_unit(span["first"] / 1e6, span["last"] / 1e6)
        counts = Counter({(int(r["slot"]), r["outcome"]): r["n"] for r in spark.sql(
            BUCKETS_SQL.format(step_us=STEPS[unit] * 1_000_000, view=VIEW)).collect()})
        buckets = time_buckets(unit, counts)
    return report_of(kinds, splits, Filters(), unit, buckets, source=location)


def failure_rates(spark) -> list[dict[str, Any]]:
    """Failure rate per (form sent, scope), computed in Spark SQL over the last `requests` view."""
    return [r.asDict() for r in spark.sql(RATES_SQL.format(view=VIEW)).collect()]


def report_json(spark, location: str, splits: Sequence[str] = DEFAULT_SPLITS) -> str:
    """`rtreplay analyze LOCATION --format json`, computed on Spark."""
    return json.dumps(to_json(report(spark, location, splits)), indent=2, ensure_ascii=False) + "\n"
