"""`rtreplay proxy` and `rtreplay recover`: thin click commands over rtreplay.recorder.proxy and rtreplay.recorder.archive."""
from __future__ import annotations

import asyncio
import csv
import json
import signal
import ssl
import sys
from pathlib import Path

import click

from rtreplay.recorder import archive
from rtreplay.recorder.link import RecorderError
from rtreplay.recorder.proxy import parse_listen, running


@click.command()
@click.option("--listen", default="127.0.0.1:8765", show_default=True,
              help="HOST:PORT to accept apps on. Loopback by default; any other address is your explicit choice.")
@click.option("--upstream", default="wss://api.openai.com", show_default=True,
              help="The Realtime server: wss:// (TLS, certificate verified) or ws:// (e.g. the simulator).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("logs"), show_default=True,
              help="Archive directory.")
@click.option("--audio", type=click.Choice(["keep", "drop"]), default="keep", show_default=True,
              help="Keep recorded audio bytes, or drop them (their place in the payload is still marked).")
@click.option("--flush-interval", type=click.FloatRange(min=0.01), default=0.5, show_default=True,
              help="Seconds between journal writes; a crash loses at most this much.")
@click.option("--auth-env", metavar="ENVVAR",
              help="Send 'Authorization: Bearer $ENVVAR' upstream when a client sends no Authorization.")
@click.option("--upstream-ca", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Extra CA certificate (PEM) to trust for the upstream. Verification is never turned off.")
@click.option("--upstream-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Close a session (1011, or HTTP 504 before the upgrade) when the upstream sends nothing, not "
                   "even a pong, for this long after the app last sent; the archive says why. Off by default: "
                   "set it above the longest silence your app streams.")
def proxy(listen: str, upstream: str, out: Path, audio: str, flush_interval: float, auth_env: str | None,
          upstream_ca: Path | None, upstream_timeout: float | None) -> None:
    """Record Realtime sessions: point your app's base URL at the proxy and change nothing else.

    Leftover journals in OUT are recovered first. Recording runs in a child process; stop with Ctrl-C or
    SIGTERM: open sessions are closed and written to Parquet. Even after `kill -9` of the proxy, the child
    finishes writing what it was handed.

    \b
    Example:
      rtreplay proxy --listen 127.0.0.1:8765 --upstream wss://api.openai.com --out logs/
      # then connect your app to ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime
    """
    try:
        parse_listen(listen)
        context = ssl.create_default_context(cafile=str(upstream_ca) if upstream_ca else None)
    except (ValueError, ssl.SSLError) as exc:
        raise click.ClickException(str(exc)) from None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with running(upstream, out, listen=listen, audio=audio, flush_interval=flush_interval,
                           auth_env=auth_env, ssl_context=context, upstream_timeout=upstream_timeout) as proxy_:
            click.echo(f"rtreplay proxy: {proxy_.url} -> {upstream}, recording into {out}", err=True)
            await stop.wait()
            click.echo("rtreplay proxy: stopping; finalizing open sessions", err=True)

    try:
        asyncio.run(serve())
    except (ValueError, OSError, RecorderError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.argument("out", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
def recover(out: Path, fmt: str) -> None:
    """Turn journals left by a stopped or killed proxy into Parquet.

    Exits non-zero if a journal was incomplete (cut short by a crash) or unreadable, naming the file.
    Journals of sessions still being recorded are left alone.

    \b
    Example:
      rtreplay recover logs/
    """
    results = archive.recover(out)
    rows = [{"journal": str(r.journal), "parquet": str(r.parquet) if r.parquet else None, "events": r.events,
             "problem": r.problem} for r in results]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=["journal", "parquet", "events", "problem"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            click.echo(f"{row['journal']} -> {row['parquet'] or '(kept)'}: {row['events']} events")
        if not rows:
            click.echo("no journals to recover")
    bad = [r for r in results if r.problem]
    if bad:
        raise click.ClickException(
            "; ".join(f"{r.journal}: {r.problem}" for r in bad) + " (archive incomplete)")
