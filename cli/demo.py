"""`rtreplay demo`: the whole loop on this machine, no API key — simulate, record, report, replay.

Starts the built-in simulator with the `seed-oob-forced-function` fault profile and the recording proxy
in front of it (both in this process, both closed on exit), runs the scripted app of `simulator.demo_app`
through the proxy, then runs `rtreplay analyze` and `rtreplay replay` on the archive it wrote, exactly as
a user would.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import click

from rtreplay.cli.location import Location
from rtreplay.cli.record import _upload_all
from rtreplay.recorder.store import display, is_url
from rtreplay.recorder.upload import Uploader
from rtreplay import simulator
from rtreplay.cli.replay import replay
from rtreplay.cli.report import analyze
from rtreplay.simulator.demo_app import DemoCounts, run_demo_app
from rtreplay.recorder.proxy import running

MARKER = ".rtreplay-demo"  # marks a directory the demo made, so a re-run may clear it and nothing else
PROFILE = "demo"  # the seed report's rule, spoken words paced for the barge-ins


async def record(logs: Path, conversations: int, seed: int) -> DemoCounts:
    async with simulator.serve(seed=seed, faults=PROFILE) as sim, running(upstream=sim.url, out=logs) as proxy:
        click.secho(f"simulator  {sim.url}  (fault profile: {PROFILE})", dim=True)
        click.secho(f"proxy      {proxy.url}  -> {logs}/", dim=True)
        return await run_demo_app(proxy.url, conversations=conversations)


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise click.ClickException(f"{out} exists and was not made by `rtreplay demo`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by rtreplay demo; safe to delete\n")


def _step(title: str) -> None:
    click.echo()
    click.secho(f"== {title}", bold=True)


def _a_failed_request(logs: Path) -> tuple[str, str]:
    """The session and response id of the first failed request recorded (the profile fails some in every run)."""
    from rtreplay.analyzer.state.match import requests

    found = requests(logs)
    chosen = next((r for r in found if r.outcome == "failed" and r.response_id), found[0])
    return chosen.session_id, chosen.response_id or "RESPONSE_ID"


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("rtreplay-demo"),
              show_default=True, help="Where the demo writes its archive (logs/) and replays (replays/).")
@click.option("--archive", "url", type=Location(), metavar="URL",
              help="Record into this object-store archive (s3://bucket/prefix) instead of OUT/logs; sessions wait "
                   "in OUT/spool until uploaded.")
@click.option("--conversations", type=click.IntRange(1, 200), default=12, show_default=True,
              help="Scripted app sessions to record.")
@click.option("--seed", type=int, default=1, show_default=True, help="Simulator seed (same seed, same run).")
@click.option("--repeat", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Replays per failed request and variant.")
@click.pass_context
def demo(ctx: click.Context, out: Path, url: str | None, conversations: int, seed: int, repeat: int) -> None:
    """Record a scripted app through the proxy to the built-in simulator, then report and replay.

    The app holds support conversations (text, a function call, a spoken turn; a caller who talks over the
    spoken answer) and sends out-of-band `response.create` requests with every tool_choice form; the
    simulator's fault profile fails the ones that force a named function, as in the report that started
    rtreplay. Needs no API key or network.

    \b
    Example:
      rtreplay demo --out /tmp/rtreplay-demo
    """
    _prepare(out)
    if url is not None and not is_url(url):
        raise click.UsageError("--archive takes an object-store URL (s3://bucket/prefix); for a directory use --out")
    logs, replays = out / ("spool" if url else "logs"), out / "replays"
    _step("Recording a scripted app through the proxy")
    started = time.monotonic()
    counts = asyncio.run(record(logs, conversations, seed))
    sent = sum(counts.requests.values())
    click.echo(f"{counts.sessions} sessions, {sent} response.create requests recorded in "
               f"{time.monotonic() - started:.1f} s")
    if url is not None:
        uploaded = _upload_all(Uploader(logs, url))
        click.echo(f"{len(uploaded)} sessions uploaded to {display(url)}")
        logs = url  # type: ignore[assignment]  (every reader takes the URL)

    _step(f"rtreplay analyze {logs}")
    ctx.invoke(analyze, archive=logs)

    _step(f"rtreplay replay {logs} --target sim --sim-faults {PROFILE} --failed "
          f"--vary tool_choice=recorded,required --repeat {repeat} --record {replays}")
    ctx.invoke(replay, archive=logs, target="sim", sim_faults=PROFILE, failed=True,
               vary=("tool_choice=recorded,required",), repeat=repeat, record=replays, yes=True)

    _step("Next")
    session, response_id = _a_failed_request(logs)
    for line in (
        f"rtreplay sessions {logs}",
        f"rtreplay show {logs} {session}     # a session's timeline",
        f"rtreplay state {logs} {session} --before {response_id}   # the conversation a failed request saw",
        f"rtreplay sql {logs} \"SELECT form_sent, count(*) FROM requests GROUP BY ALL\"",
        f"rtreplay query {logs} failure_rate",
        f"rtreplay analyze {logs} --html report.html",
        f"rtreplay replay {logs} --target sim --dry-run --failed",
        f"rtreplay analyze {replays}                    # the replays are an archive too",
    ):
        click.echo(f"  {line}")
