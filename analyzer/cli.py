"""The `rtreplay` command: one click group; each subcommand lives beside the library it drives.

Commands only parse options, call library functions and format output. Library errors become one-line
`click.ClickException`s here (no tracebacks for user mistakes); exit code 0 only on success.
"""
from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rtreplay")
def cli() -> None:
    """rtreplay: record OpenAI Realtime API sessions, rebuild their state, report and replay failures.

    \b
    Example:
      rtreplay demo
    """


def _register() -> None:
    """Attach the subcommands. Each module that defines one is imported here, and only here."""
    import importlib

    for module_name, names in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a package still under construction must not break the rest
            if exc.name != module_name:
                raise
            continue
        for name in names:
            cli.add_command(getattr(module, name))


# (module, command objects) — the single list of what `rtreplay` offers.
COMMANDS: list[tuple[str, list[str]]] = [
    ("recorder.cli", ["proxy", "recover"]),
    ("simulator.cli", ["simulate"]),
    ("analyzer.cli_inspect", ["sessions", "show", "state", "import_"]),
    ("analyzer.cli_report", ["analyze"]),
    ("analyzer.cli_sql", ["sql", "query"]),
    ("analyzer.cli_replay", ["replay"]),
    ("analyzer.cli_demo", ["demo"]),
]
_register()


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="rtreplay")
