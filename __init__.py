"""rtreplay: record OpenAI Realtime API sessions through a transparent proxy, rebuild their state, report and
replay failures.

The repository root is this package (pyproject.toml maps it), so each part keeps a folder named for what it is:

    rtreplay.recorder   recorder/    the proxy (thin I/O shell), its recorder process, the no-I/O core, the archive
    rtreplay.analyzer   analyzer/    state/ (load, reducer, matching), report/ (reports, renderers), replay/
    rtreplay.queries    queries/     DuckDB views and canned reports, one .sql file each
    rtreplay.simulator  simulator/   a local Realtime server with fault profiles
    rtreplay.cli        cli/         the click commands of every part, thin over the libraries
"""
