"""`rtreplay proxy` and `rtreplay recover`: thin click commands over rtreplay.recorder.proxy and rtreplay.recorder.archive."""
from __future__ import annotations

import asyncio
import datetime as dt
import csv
import json
import signal
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from rtreplay.cli.location import Location
from rtreplay.recorder import archive, marks
from rtreplay.recorder.link import RecorderError
from rtreplay.recorder.proxy import HEAD_TIMEOUT, MAX_HANDSHAKES, parse_listen, running
from rtreplay.recorder.store import display, is_url
from rtreplay.recorder.upload import FIRST_BACKOFF_S, Uploader

SPOOL = click.option("--spool", type=click.Path(file_okay=False, path_type=Path), default=Path("rtreplay-spool"),
                     show_default=True, help="With an object-store --out: the local directory for journals and "
                                             "finished sessions waiting to be uploaded.")


@click.command()
@click.option("--listen", default="127.0.0.1:8765", show_default=True,
              help="HOST:PORT to accept apps on. Loopback by default; any other address is your explicit choice.")
@click.option("--upstream", default="wss://api.openai.com", show_default=True,
              help="The Realtime server: wss:// (TLS, certificate verified) or ws:// (e.g. the simulator).")
@click.option("--out", type=Location(file_okay=False), default=Path("logs"), show_default=True,
              help="Archive directory, or an object-store URL (s3://bucket/prefix, gs://…) to upload finished "
                   "sessions to (credentials and endpoint from the standard settings, e.g. AWS_ENDPOINT_URL).")
@SPOOL
@click.option("--audio", type=click.Choice(["keep", "drop"]), default="keep", show_default=True,
              help="Keep recorded audio bytes, or drop them (their place in the payload is still marked).")
@click.option("--flush-interval", type=click.FloatRange(min=0.01), default=0.5, show_default=True,
              help="Seconds between journal writes; a crash loses at most this much.")
@click.option("--auth-env", metavar="ENVVAR",
              help="Send 'Authorization: Bearer $ENVVAR' upstream when a client sends none: only on WebSocket "
                   "upgrades to a Realtime path (/v1/realtime), never on plain HTTP requests, and not for web "
                   "pages unless their Origin is allowed (--allow-origin). See docs/security.md.")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="ORIGIN",
              help="A web page origin (https://app.example) that may use the --auth-env key (repeatable; none "
                   "by default).")
@click.option("--upstream-ca", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Extra CA certificate (PEM) to trust for the upstream, besides the system's. Verification is "
                   "never turned off.")
@click.option("--head-timeout", type=click.FloatRange(min=0, min_open=True), default=HEAD_TIMEOUT,
              show_default=True, metavar="SECONDS", help="Time an app has to send its whole upgrade request.")
@click.option("--max-handshakes", type=click.IntRange(min=1), default=MAX_HANDSHAKES, show_default=True,
              help="Connections still sending their upgrade request at once; more get 503 (counted).")
@click.option("--upstream-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Close a session (1011, or HTTP 504 before the upgrade) when the upstream sends nothing, not "
                   "even a pong, for this long after the app last sent; the archive says why. Off by default: "
                   "set it above the longest silence your app streams.")
def proxy(listen: str, upstream: str, out: Path | str, spool: Path, audio: str, flush_interval: float,
          auth_env: str | None, allow_origins: tuple[str, ...], upstream_ca: Path | None, head_timeout: float,
          max_handshakes: int, upstream_timeout: float | None) -> None:
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
        context = upstream_context(upstream_ca)
    except (ValueError, ssl.SSLError) as exc:
        raise click.ClickException(str(exc)) from None

    local = spool if is_url(out) else Path(out)
    uploader = Uploader(spool, str(out)) if is_url(out) else None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with running(upstream, local, listen=listen, audio=audio, flush_interval=flush_interval,
                           auth_env=auth_env, ssl_context=context, upstream_timeout=upstream_timeout,
                           allow_origins=allow_origins, head_timeout=head_timeout, max_handshakes=max_handshakes,
                           log=lambda line: click.echo(f"rtreplay proxy: {line}", err=True)) as proxy_:
            where = f"{display(str(out))} (spool {spool})" if uploader else str(out)
            click.echo(f"rtreplay proxy: {proxy_.url} -> {upstream}, recording into {where}", err=True)
            with _uploading(uploader):
                stopped = asyncio.ensure_future(stop.wait())
                failed = asyncio.ensure_future(proxy_.writer.wait_failed())
                await asyncio.wait([stopped, failed], return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                failed.cancel()
                if proxy_.writer.failed:  # exit non-zero so that a supervisor restarts us; nothing passed unrecorded
                    raise RecorderError(f"recording failed, relaying stopped: {proxy_.writer.failed}")
                click.echo("rtreplay proxy: stopping; finalizing open sessions", err=True)

    try:
        asyncio.run(serve())
    except (ValueError, OSError, RecorderError) as exc:
        message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)  # no "[Errno 98]"
        raise click.ClickException(message) from None
    if uploader is not None:
        _upload_all(uploader)


@contextmanager
def _uploading(uploader: Uploader | None, interval: float = 1.0) -> Iterator[None]:
    """Upload finished sessions in a thread while the proxy serves (failures retried with backoff)."""
    if uploader is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for done in uploader.run_once():
                if done.problem:
                    click.echo(f"rtreplay proxy: {done.problem} (will retry)", err=True)
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="rtreplay-upload", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _upload_all(uploader: Uploader, attempts: int = 4) -> list:
    """Upload what is left in the spool, retrying with backoff; ClickException naming what stays local."""
    results: list = []
    for attempt in range(attempts):
        results += [r for r in uploader.run_once(wait=True) if not r.problem]
        if not uploader.pending():
            return results
        time.sleep(FIRST_BACKOFF_S * 2 ** attempt)
    left = uploader.pending()
    raise click.ClickException(f"{len(left)} finished sessions not uploaded to {uploader.name}, kept in "
                               f"{uploader.spool} (run `rtreplay recover {uploader.name} --spool {uploader.spool}`)")


def upstream_context(extra_ca: Path | None) -> ssl.SSLContext:
    """The system's trust store, plus `extra_ca` when given (added, never instead)."""
    context = ssl.create_default_context()
    if extra_ca is not None:
        context.load_verify_locations(cafile=str(extra_ca))
    return context


@click.command()
@click.argument("out", type=Location(exists=True, file_okay=False))
@SPOOL
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
def recover(out: Path | str, spool: Path, fmt: str) -> None:
    """Turn journals left by a stopped or killed proxy into Parquet, and report what a killed proxy lost.

    Exits 1 if a journal was incomplete (cut short by a crash, or its session has no `proxy.close`: its
    recorder stopped while it was open) or unreadable, naming the file, or if a proxy
    died holding frames it had forwarded but not yet handed to its recorder (one line per session, with the
    count, which the session also records as a `proxy.error`; reported once). Exits 3 while the recorder of a
    dead proxy is still writing (a stalled disk): run it again once that recorder has exited. Journals of
    sessions still being recorded are left alone.

    \b
    Example:
      rtreplay recover logs/
    """
    root = spool if is_url(out) else Path(out)
    results = archive.recover(root)
    left = marks.leftovers(root)
    uploaded = _upload_all(Uploader(spool, str(out))) if is_url(out) and spool.is_dir() else []
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
        if not rows and not left.unfinished:
            click.echo("no journals to recover")
    for up in uploaded if fmt == "text" else []:
        click.echo(f"uploaded {up.local} -> {up.target}: {up.events} events")
    for line in left.losses + left.dead:
        click.echo(f"lost: {line}", err=True)
    for line in left.unfinished:
        click.echo(f"still writing: {line}", err=True)
    bad = [r for r in results if r.problem]
    if bad:
        raise click.ClickException(
            "; ".join(f"{r.journal}: {r.problem}" for r in bad) + " (archive incomplete)")
    if left.losses or left.dead:
        raise click.ClickException("frames were forwarded that the archive does not hold (archive incomplete)")
    if left.unfinished:
        sys.exit(3)


@click.command()
@click.argument("archive", type=Location(exists=True, file_okay=False))
@click.option("--day", required=True, metavar="YYYY-MM-DD", help="The day (date= partition) to compact.")
def compact(archive: Path | str, day: str) -> None:
    """Rewrite one day's small per-session files into a few large ones, sorted by session and time.

    Atomic for every rtreplay reader (a manifest commits the new files); results of every command are the
    same before and after. Compact days whose sessions have ended.

    \b
    Example:
      rtreplay compact logs/ --day 2026-03-01
    """
    from rtreplay.recorder.compact import compact as run

    try:
        dt.date.fromisoformat(day)
        done = run(str(archive), day)
    except ValueError:
        raise click.ClickException(f"--day {day!r}: give a date as YYYY-MM-DD") from None
    except (archive.ArchiveError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for problem in done.problems:
        click.echo(f"warning: {problem}", err=True)
    if not done.written:
        click.echo(f"{day}: nothing to compact")
        return
    click.echo(f"{day}: {len(done.replaced)} files -> {len(done.written)} ({done.events} events)")
