"""Replays are planned as they are sent: the job stream is consumed by the workers, not materialised first,
and results keep no conversation items (a context's audio lives only while its replays are being sent)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from rtreplay.analyzer.replay.plan import variants
from rtreplay.analyzer.replay.run import Selection, iter_jobs, run_jobs, select
from rtreplay.simulator.server import serve

# The golden replay archive of tests/analyzer/test_replay_golden.py: two demo conversations.
ARCHIVE = Path(__file__).resolve().parents[1] / "data" / "replay_plans" / "archive"
CONCURRENCY = 2


def test_jobs_are_taken_as_workers_free_up_and_results_are_slim() -> None:
    requests = select(ARCHIVE, Selection())  # 14 out-of-band requests
    taken = 0
    ahead: list[int] = []  # jobs taken but not finished, seen at each finish

    def counted():
        nonlocal taken
        for job in iter_jobs(ARCHIVE, requests, variants(["tool_choice=required"]), repeat=2):
            taken += 1
            yield job

    finished = 0

    def on_done(_result: object) -> None:
        nonlocal finished
        finished += 1
        ahead.append(taken - finished)

    async def go():
        async with serve() as sim:
            return await run_jobs(counted(), sim.url, concurrency=CONCURRENCY, on_done=on_done)

    results = asyncio.run(go())
    assert len(results) == taken == len(requests) * 2 * 2
    # Never more plans taken than workers (the one finishing included): nothing was planned ahead.
    assert max(ahead) <= CONCURRENCY - 1
    assert [r.job.tag() for r in results] == [j.tag() for j in iter_jobs(ARCHIVE, requests, variants(
        ["tool_choice=required"]), repeat=2)]  # results come back in job order
    for res in results:
        kinds = [e["type"] for e in res.job.plan.events]
        assert "conversation.item.create" not in kinds and kinds[-1] == "response.create"
        assert res.answer.outcome in ("completed", "rejected")  # the recorded invalid tool_choice is refused
