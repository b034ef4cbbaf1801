"""A recorded archive for replay tests: demo conversations recorded through the proxy from a seeded simulator."""
from __future__ import annotations

from pathlib import Path

from rtreplay.recorder.proxy import running
from rtreplay.simulator.demo_app import run_demo_app
from rtreplay.simulator.server import serve

PROFILE = "seed-oob-forced-function"


async def record_demo_archive(out: Path, conversations: int = 2) -> None:
    """Record `conversations` demo sessions through the proxy from a seeded simulator (deterministic ids).

    Per conversation: a text turn, a function call and its output, a spoken turn (audio kept), then one
    out-of-band request per tool_choice form; under PROFILE the object form fails."""
    async with serve(seed=0, faults=PROFILE, epoch=1_700_000_000) as sim:
        async with running(sim.url, out, flush_interval=0.1) as proxy:
            await run_demo_app(proxy.url, conversations=conversations, concurrency=1)
