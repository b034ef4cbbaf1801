"""`rtreplay simulate`: run the local Realtime simulator until interrupted."""
from __future__ import annotations

import asyncio

import click

from rtreplay.simulator.faults import SHIPPED, ProfileError, load_profile
from rtreplay.simulator.server import serve


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"expected HOST:PORT, e.g. 127.0.0.1:9000, got {value!r}")
    return host, int(port)


@click.command()
@click.option("--listen", default="127.0.0.1:9000", show_default=True, help="HOST:PORT to listen on (port 0 = any free port).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for ids and fault decisions: same seed, same run.")
@click.option("--faults", default="none", show_default=True,
              help=f"Fault profile: one of {', '.join(SHIPPED)}, or a path to a .toml/.json profile.")
@click.option("--max-session-s", default=3600.0, show_default=True, type=float,
              help="Sessions end with session_expired after this many seconds.")
@click.option("--interval", default=0.02, show_default=True, type=float,
              help="Seconds between the streaming steps of a response (0 = as fast as the client reads).")
def simulate(listen: str, seed: int, faults: str, max_session_s: float, interval: float) -> None:
    """Serve the GA Realtime protocol locally, with deterministic answers and optional fault injection.

    Point an app (or `rtreplay proxy --upstream`) at ws://HOST:PORT; it connects to
    /v1/realtime?model=gpt-realtime as it would to wss://api.openai.com. Any API key is accepted.

    \b
    Example:
      rtreplay simulate --listen 127.0.0.1:9000 --seed 7 --faults seed-oob-forced-function
    """
    host, port = _listen(listen)
    try:
        load_profile(faults)
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        asyncio.run(_run(host, port, seed, faults, max_session_s, interval))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc.strerror or exc}") from None


async def _run(host: str, port: int, seed: int, faults: str, max_session_s: float, interval: float) -> None:
    async with serve(host=host, port=port, seed=seed, faults=faults, max_session_s=max_session_s,
                     interval=interval) as sim:
        click.echo(f"rtreplay simulator listening on {sim.url}/v1/realtime?model=gpt-realtime "
                   f"(seed {seed}, faults {faults}); Ctrl-C to stop", err=True)
        await asyncio.Event().wait()
