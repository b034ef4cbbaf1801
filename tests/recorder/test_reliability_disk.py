"""Slow or failing disk: a stalled writer means backpressure with bounded memory; a full disk (a real,
tiny tmpfs under `rtreplay proxy` in its own process) keeps traffic flowing, counts what it could not
write, records that count once writing works again, and `recover` says when the archive is incomplete.

Beyond tests/test_proxy_durability.py (a slow writer; a monkeypatched ENOSPC in one process): here the
writer stops completely while 100 MB are pushed, and the disk that fills is a real file system.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from rtreplay.recorder import archive, schema
from rtreplay.recorder.proxy import running
from reliability_support import (SECRET_EVENT, assert_no_secret, credentials, echo, no_secret_in_logs,  # noqa: F401
                                 recorder_processes, rss, run_cli, select_realtime, start_proxy, stop_proxy, until_stable)
from test_proxy_relay import session_rows

pytestmark = pytest.mark.usefixtures("no_secret_in_logs")

MB = 1 << 20
BIG = 512 * 1024  # bytes of base64 per pushed frame


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def delta(i: int) -> str:
    body = (f"{i:08d}" * (BIG // 8))[:BIG]  # valid base64 (digits), distinct per frame
    return '{"type":"response.output_audio.delta","event_id":"s%d","response_id":"r","delta":"%s"}' % (i, body)


async def test_stalled_writer_holds_the_upstream_back_with_memory_bounded(tmp_path) -> None:
    """The recording side stops dead (its process is SIGSTOPped: a disk that does not answer) while the
    upstream tries to push 100 MB. The proxy must stop reading (the upstream gets stuck), memory stays
    bounded, and once recording resumes every frame arrives and is recorded."""
    n = 200
    pushed = 0

    async def push(ws) -> None:
        nonlocal pushed
        await ws.send(SECRET_EVENT)
        try:
            for i in range(n):
                await ws.send(delta(i))
                pushed += 1
        except ConnectionClosed:
            pass
        await ws.wait_closed()

    got: list[str] = []
    async with serve(push, "127.0.0.1", 0, max_size=None, compression=None, select_subprotocol=select_realtime) as up:
        async with running(f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}", tmp_path,
                           flush_interval=0.05, high_water=2 * MB) as proxy:
            stalled = recorder_processes()
            assert stalled, "no recorder process to stall (the proxy records in-process?)"
            for pid in stalled:
                os.kill(pid, signal.SIGSTOP)
            async with connect(proxy.url + "/v1/realtime?model=m", max_size=None, compression=None,
                               **credentials()) as ws:
                base = peak = rss()
                stalling = True

                async def read() -> None:
                    while len(got) < n + 1:
                        got.append(digest(await ws.recv()))

                async def sample() -> None:
                    nonlocal peak
                    while stalling:
                        peak = max(peak, rss())
                        await asyncio.sleep(0.01)

                reader, sampler = asyncio.create_task(read()), asyncio.create_task(sample())
                try:
                    stuck_at = await until_stable(lambda: pushed)
                finally:
                    stalling = False
                    for pid in stalled:
                        os.kill(pid, signal.SIGCONT)
                await sampler
                await asyncio.wait_for(reader, 60)

    assert stuck_at < n / 2, f"the upstream pushed {stuck_at} of {n} frames while the writer was stalled: " \
                             "no backpressure"
    assert peak - base < 40 * MB, f"memory grew by {(peak - base) // MB} MB while the writer was stalled"
    assert got[1:] == [digest(delta(i)) for i in range(n)]
    [rows] = session_rows(tmp_path).values()
    server = [r for r in rows if r["direction"] == schema.SERVER]
    assert [digest(schema.rebuild_frame(r["payload"], r["audio"], r["audio_at"])) for r in server[1:]] == got[1:]
    assert not [r for r in rows if r["type"] == schema.PROXY_ERROR]
    assert_no_secret(tmp_path)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 MiB tmpfs: a file system that really fills up (needs root, like CI here)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the file system completely; the filler file, to delete when the disk should work again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


async def exchange(ws, ids: range, pause: float = 0.0) -> None:
    for i in ids:
        sent = orjson.dumps({"type": "conversation.item.create", "event_id": f"e{i}", "pad": "x" * 2000}).decode()
        await ws.send(sent)
        assert await ws.recv() == sent  # traffic flows, unaltered, whatever the disk does
        await asyncio.sleep(pause)


async def test_full_disk_keeps_traffic_flowing_and_records_the_count_when_it_recovers(tiny_disk) -> None:
    out = tiny_disk / "archive"
    async with serve(echo, "127.0.0.1", 0, select_subprotocol=select_realtime) as up:
        proc, port = await start_proxy(up.sockets[0].getsockname()[1], out, "--flush-interval", "0.05")
        try:
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=m", **credentials()) as ws:
                await ws.recv()
                await exchange(ws, range(0, 30))
                await asyncio.sleep(0.5)  # written
                filler = fill(tiny_disk)
                await exchange(ws, range(30, 60))
                await asyncio.sleep(0.5)  # the writer tried, and failed
                filler.unlink()
                await exchange(ws, range(60, 90), pause=0.02)
        finally:
            code, logs = stop_proxy(proc)

    assert code == 0, logs
    [rows] = session_rows(out).values()
    errors = [(r["seq"], orjson.loads(r["payload"])) for r in rows if r["type"] == schema.PROXY_ERROR]
    lost = sum(e.get("lost_records", 0) for _, e in errors)
    assert lost > 0, "a full disk lost nothing? the filler did not fill it"
    assert len(rows) + lost == 2 + 1 + 180 + len(errors)  # open, close, the secret event, 90 frames each way
    seq_of = {r["event_id"]: r["seq"] for r in rows if r["direction"] == schema.CLIENT}
    assert errors[0][0] < seq_of["e89"], "the loss was recorded only at the end, not once writing worked again"
    assert {f"e{i}" for i in range(60, 90)} <= set(seq_of)
    assert "No space left" in errors[0][1]["error"]
    assert_no_secret(out, logs)


async def test_session_ending_on_a_full_disk_is_not_passed_off_as_complete(tiny_disk) -> None:
    """The session closes while the disk is full: its end and its last frames cannot be written.
    `recover` must fail while the disk is full, naming the journal; once it has room, the archive must
    still say that records were lost — a `proxy.error` with the count, or `recover` exiting non-zero."""
    out = tiny_disk / "archive"
    async with serve(echo, "127.0.0.1", 0, select_subprotocol=select_realtime) as up:
        proc, port = await start_proxy(up.sockets[0].getsockname()[1], out, "--flush-interval", "0.05")
        try:
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=m", **credentials()) as ws:
                await ws.recv()
                await exchange(ws, range(0, 20))
                await asyncio.sleep(0.5)
                filler = fill(tiny_disk)
                await exchange(ws, range(20, 40))
            await asyncio.sleep(1.0)  # the session ended; its journal could not become Parquet
        finally:
            code, logs = stop_proxy(proc)

    [journal] = (out / "journal").glob("*.arrows")
    on_full = run_cli("recover", str(out))
    assert on_full.returncode != 0 and journal.name in on_full.stderr, on_full.stderr
    assert "Traceback" not in on_full.stderr

    filler.unlink()
    again = run_cli("recover", str(out))
    assert "Traceback" not in again.stderr
    rows = archive.read_archive(out).table.to_pylist()
    frames = sum(r["direction"] != schema.PROXY for r in rows)
    recorded_loss = sum(orjson.loads(r["payload"]).get("lost_records", 0) for r in rows if r["type"] == schema.PROXY_ERROR)
    assert frames < 1 + 80, "the full disk lost nothing? the filler did not fill it"
    assert recorded_loss >= 1 + 80 - frames or (again.returncode != 0 and journal.name in again.stderr), (
        f"{1 + 80 - frames} frames were forwarded but not archived, yet the archive records no loss and "
        f"`recover` exited {again.returncode}: {again.stdout} {again.stderr}")
    assert_no_secret(out, logs, on_full.stdout + on_full.stderr, again.stdout + again.stderr)
