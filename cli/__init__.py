"""The `rtreplay` command: one click group; each subcommand lives beside the library it drives.

Commands only parse options, call library functions and format output. Library errors become one-line
`click.ClickException`s there (no tracebacks for user mistakes); exit code 0 only on success.
A subcommand's module is imported only when that subcommand runs (or help lists it), so `rtreplay proxy`
does not pay for DuckDB and polars, nor `rtreplay sql` for the simulator.
"""
from __future__ import annotations

import importlib

import click

# name -> (module, attribute): the single list of what `rtreplay` offers.
COMMANDS: dict[str, tuple[str, str]] = {
    "proxy": ("rtreplay.cli.record", "proxy"),
    "recover": ("rtreplay.cli.record", "recover"),
    "compact": ("rtreplay.cli.record", "compact"),
    "simulate": ("rtreplay.cli.simulate", "simulate"),
    "demo": ("rtreplay.cli.demo", "demo"),
    "sessions": ("rtreplay.cli.inspect", "sessions"),
    "show": ("rtreplay.cli.inspect", "show"),
    "state": ("rtreplay.cli.inspect", "state"),
    "import": ("rtreplay.cli.inspect", "import_"),
    "analyze": ("rtreplay.cli.report", "analyze"),
    "replay": ("rtreplay.cli.replay", "replay"),
    "check": ("rtreplay.cli.check", "check"),
    "diff": ("rtreplay.cli.diff", "diff"),
    "sql": ("rtreplay.cli.sql", "sql"),
    "query": ("rtreplay.cli.sql", "query"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, from `COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name, f"{module}.{attribute} is named {command.name!r}, not {name!r}"
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rtreplay")
def cli() -> None:
    """rtreplay: record OpenAI Realtime API sessions, rebuild their state, report and replay failures.

    \b
    Example:
      rtreplay demo
    """


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="rtreplay")
