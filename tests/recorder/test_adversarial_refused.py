"""Connections refused before they become sessions leave a record in the archive: a bounded `proxy run` session
of `proxy.refused` records (reason, status, peer, redacted path, count), which the readers find without taking it
for an app session. Attacked with half-open heads past the cap (503), heads that never finish (408) and a flood
of bad heads carrying a key in the query (400). Bounded; loopback only."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from rtreplay.recorder import archive, refusals, schema
from reliability_support import FAKE_KEY, RTREPLAY, assert_no_secret, echo, start_proxy

FLOOD = refusals.INDIVIDUAL + 15  # bad heads: the first INDIVIDUAL one by one, the rest in a summary


async def _answer(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if head:  # (none to a connection answered at once: writing after its close would reset it)
        writer.write(head)
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(RTREPLAY + list(args), capture_output=True, text=True, timeout=120)


async def test_refused_connections_are_recorded_bounded_and_not_taken_for_sessions(tmp_path: Path) -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        proc, port = await start_proxy(server.sockets[0].getsockname()[1], tmp_path,
                                       "--head-timeout", "1", "--max-handshakes", "2")
        async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=m") as ws:  # (start_proxy's probe is gone)
            await ws.recv()
        # Two heads that never finish hold the cap: a third connection is refused (503); the two get 408.
        half = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, writer in half:
            writer.write(b"GET /v1/realtime?model=m HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
        await asyncio.sleep(0.2)
        assert (await _answer(port, b"")).startswith(b"HTTP/1.1 503")
        for reader, writer in half:
            assert (await asyncio.wait_for(reader.read(), 30)).startswith(b"HTTP/1.1 408")
            writer.close()
        bad = f"GET /v1/realtime?model=m&api-key={FAKE_KEY} HTTP/1.1\nHost: x\n\n".encode()
        for _ in range(FLOOD):
            assert (await _answer(port, bad)).startswith(b"HTTP/1.1 400")
        async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=m") as ws:  # sessions still work
            await ws.recv()
            await ws.send('{"type":"response.create"}')
            await ws.recv()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err

    assert_no_secret(tmp_path, out.decode(), err.decode())
    rows = archive.read_archive(tmp_path).table.to_pylist()
    refused = [r for r in rows if r["type"] == schema.PROXY_REFUSED]
    [run_id] = {r["session_id"] for r in refused}
    app_ids = sorted({r["session_id"] for r in rows} - {run_id})
    assert len(app_ids) == 2
    records = [orjson.loads(r["payload"]) for r in refused]
    totals: dict[int, int] = {}
    for rec in records:
        totals[rec["status"]] = totals.get(rec["status"], 0) + rec["count"]
    assert totals == {503: 1, 408: 2, 400: FLOOD}
    assert len([r for r in records if r["status"] == 400]) == refusals.INDIVIDUAL + 1  # bounded: one summary
    one = next(r for r in records if r["status"] == 400 and r["count"] == 1)
    assert one["path"] == "/v1/realtime?model=m&api-key=[redacted]" and one["peer"].startswith("127.0.0.1:")
    assert next(r for r in records if r["status"] == 408)["path"] == "/v1/realtime?model=m"
    assert {r["type"] for r in rows if r["session_id"] == run_id} == {schema.PROXY_REFUSED}

    listed = run("sessions", str(tmp_path), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [s["session"] for s in json.loads(listed.stdout)] == app_ids
    assert f"{FLOOD + 3} connections refused" in listed.stderr and run_id in listed.stderr
    shown = run("show", str(tmp_path), run_id)
    assert shown.returncode == 0 and "proxy.refused" in shown.stdout, shown.stdout + shown.stderr
    failures = json.loads(run("analyze", str(tmp_path), "--report", "failures", "--format", "json").stdout)
    assert [s["session_id"] for s in failures["sessions"]] == app_ids
    sql = run("sql", str(tmp_path), "SELECT (SELECT count(*) FROM sessions) AS sessions, "
                                     "(SELECT sum(count) FROM refused) AS refused", "--format", "json")
    assert sql.returncode == 0, sql.stderr
    assert json.loads(sql.stdout) == [{"sessions": 2, "refused": FLOOD + 3}]
