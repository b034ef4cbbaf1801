"""Proxies recording into object storage: a real S3-compatible server (moto, on 127.0.0.1), real proxies.

Several proxies write into one bucket prefix at once, one of them is killed with `kill -9` mid-session and
recovered: every session arrives, no file is overwritten, nothing forwarded more than one flush interval
before the kill is lost. A failed upload is retried, survives the proxy, and is recorded as a `proxy.error`.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from reliability_support import RTREPLAY, echo_back, start_proxy, stop_proxy
from s3_support import FAKE_SECRET, filesystem, make_bucket, s3_server
from test_proxy_durability import frame, stream_until_stopped
from test_proxy_relay import in_loop

from rtreplay.recorder import archive, schema
from rtreplay.recorder.store import Archive
from rtreplay.recorder.upload import Uploader, UploadError


@pytest.fixture(scope="module")
def s3():
    with s3_server() as endpoint:
        yield endpoint


def bucket_files(url: str) -> list[str]:
    root = url.removeprefix("s3://")
    infos = filesystem().get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


async def short_session(port: int, tag: str, n: int = 5) -> set[str]:
    async with connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
        for i in range(n):
            await ws.send(frame(i).replace('"e%d"' % i, f'"{tag}-{i}"'))
            await ws.recv()
    return {f"{tag}-{i}" for i in range(n)}


async def wait_for_no_journals(spool: Path) -> None:
    for _ in range(200):  # the recorder process outlives a killed proxy and finalizes what it was handed
        if not list((spool / "journal").glob("*.arrows")):
            return
        await asyncio.sleep(0.05)


@in_loop
async def test_many_proxies_one_bucket_one_killed_and_recovered(s3, tmp_path) -> None:
    url = make_bucket("fleet") + "/logs"
    spools = [tmp_path / f"spool{k}" for k in range(3)]
    sent: set[str] = set()
    async with serve(echo_back, "127.0.0.1", 0, max_size=None) as server:
        upstream = server.sockets[0].getsockname()[1]
        proxies = [await start_proxy(upstream, url, "--spool", str(s)) for s in spools]  # type: ignore[arg-type]
        # Sessions on all three at once (the same microsecond start is possible: names must still differ).
        tags = [f"p{k}s{j}" for k in range(3) for j in range(3)]
        for got in await asyncio.gather(*(short_session(proxies[int(t[1])][1], t) for t in tags)):
            sent |= got
        killed, port = proxies[2]
        acked, killed_at = await stream_until_stopped(f"ws://127.0.0.1:{port}/v1/realtime", 1.5,
                                                     lambda: os.kill(killed.pid, signal.SIGKILL))
        killed.wait(10)
        for proc, _ in proxies[:2]:
            code, log = stop_proxy(proc)
            assert code == 0, log
            assert FAKE_SECRET not in log
    await wait_for_no_journals(spools[2])
    recovered = subprocess.run(RTREPLAY + ["recover", url, "--spool", str(spools[2])],
                               capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0 or "cut short" in recovered.stderr, recovered.stderr
    assert "uploaded" in recovered.stdout
    for spool in spools:  # everything left the spools
        assert not list(spool.rglob("*.parquet")) and not list(spool.rglob("*.arrows"))

    files = bucket_files(url)
    arc = Archive.open(url)
    assert len(files) == len(arc.files) == len(arc.sessions) == 3 * 3 + 1  # one file per session: none overwritten
    table = archive.read_archive(arc).table.to_pylist()
    client = {r["event_id"] for r in table if r["direction"] == schema.CLIENT}
    server_ = {r["event_id"] for r in table if r["direction"] == schema.SERVER}
    assert sent <= client and sent <= server_
    old_enough = {eid for eid, at in acked.items() if at < killed_at - 0.5}
    assert len(old_enough) > 50
    assert old_enough <= client and old_enough <= server_
    for sid, rows in _by_session(table).items():
        assert [r["seq"] for r in rows] == list(range(len(rows))), sid
    assert all(FAKE_SECRET not in r["payload"] for r in table)


def _by_session(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["session_id"], []).append(r)
    return {k: sorted(v, key=lambda r: r["seq"]) for k, v in out.items()}


@in_loop
async def test_failed_upload_is_kept_recorded_and_recovered(s3, tmp_path, monkeypatch) -> None:
    url = make_bucket("flaky") + "/logs"
    spool = tmp_path / "spool"
    real_endpoint = os.environ["AWS_ENDPOINT_URL"]
    dead = f"http://127.0.0.1:{_closed_port()}"
    async with serve(echo_back, "127.0.0.1", 0, max_size=None) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", dead)  # the proxy's process sees an unreachable store
        proc, port = await start_proxy(server.sockets[0].getsockname()[1], url, "--spool", str(spool))  # type: ignore[arg-type]
        monkeypatch.setenv("AWS_ENDPOINT_URL", real_endpoint)
        sent = await short_session(port, "f")
        time.sleep(2.5)  # the uploader's first attempts fail meanwhile
        code, log = stop_proxy(proc)
    assert code == 1 and "not uploaded" in log and "kept in" in log, log
    assert "will retry" in log and FAKE_SECRET not in log
    (local,) = spool.rglob("*.parquet")
    assert bucket_files(url) == []
    recovered = subprocess.run(RTREPLAY + ["recover", url, "--spool", str(spool)],
                               capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0, recovered.stderr
    assert not local.exists()
    rows = archive.read_archive(Archive.open(url)).table.to_pylist()
    assert sent <= {r["event_id"] for r in rows if r["direction"] == schema.SERVER}
    errors = [r for r in rows if r["type"] == schema.PROXY_ERROR]
    assert len(errors) == 1 and "upload of" in errors[0]["payload"] and "failed" in errors[0]["payload"]
    assert errors[0]["seq"] == max(r["seq"] for r in rows)  # appended after the session's own records


def test_an_existing_file_is_never_overwritten(s3, tmp_path) -> None:
    url = make_bucket("nooverwrite") + "/logs"
    spool = tmp_path / "spool"
    local = archive.parquet_path(spool, "20260901T100000000000-aaaaaa")
    table = archive.read_archive(Path(__file__).parents[1] / "data" / "golden" / "text").table
    archive.write_parquet(table.slice(0, 10), local)
    up = Uploader(spool, url)
    first = up.upload(local)
    assert first.events == 10 and not local.exists()
    archive.write_parquet(table.slice(0, 10), local)  # the same bytes again: accepted, nothing rewritten
    assert up.upload(local).events == 10 and not local.exists()
    archive.write_parquet(table.slice(0, 11), local)  # other bytes under the same name: refused, kept
    with pytest.raises(UploadError, match="not overwritten"):
        up.upload(local)
    assert local.exists()
    assert archive.read_archive(Archive.open(url)).table.num_rows == 10


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
