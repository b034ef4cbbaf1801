"""The reading side of rtreplay: state rebuild, request/outcome matching, reports, replay and the CLI.

`analyzer` may import `recorder` (schema, archive reading) and `queries`; nothing imports `analyzer`
except tests and the console script.
"""


def events(path):  # type: ignore[no-untyped-def]
    """All events of the archive at `path` as a polars LazyFrame (for notebooks). See `rtreplay.analyzer.state.load.scan`
    for the list of files that could not be read."""
    from rtreplay.analyzer.state.load import events as _events

    return _events(path)
