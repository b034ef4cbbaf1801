"""SQL views and canned reports over an rtreplay archive (one `.sql` file each, beside this module).

    from rtreplay import queries
    con = queries.connect("logs/")                 # DuckDB connection, every view registered
    con.sql("SELECT form_sent, count(*) FROM requests GROUP BY 1").pl()
    queries.report("logs/", "failure_rate")        # a canned report as a polars DataFrame
    print(queries.view_script("logs/"))            # the views as SQL, for any DuckDB client
"""
from rtreplay.queries.loader import (
    VIEWS,
    SqlError,
    connect,
    frame,
    relation,
    report,
    report_sql,
    reports,
    summary,
    view_script,
)

__all__ = [
    "VIEWS", "SqlError", "connect", "frame", "relation", "report", "report_sql", "reports", "summary",
    "view_script",
]
