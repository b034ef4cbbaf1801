"""The reading side of rtreplay: state rebuild, request/outcome matching, reports, replay and the CLI.

`analyzer` may import `recorder` (schema, archive reading) and `queries`; nothing imports `analyzer`
except tests and the console script.
"""
