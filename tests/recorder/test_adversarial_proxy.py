"""The proxy's shell against hostile or broken peers: bad heads, half-open handshakes, lent keys, a dead recorder.

Loopback only; every wait is bounded.
"""
from __future__ import annotations

import asyncio
import os
import signal
import ssl
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from rtreplay.cli.record import upstream_context
from rtreplay.recorder import archive
from rtreplay.recorder.proxy import running
from reliability_support import RTREPLAY, recorder_processes, start_proxy

TLS = Path(__file__).resolve().parents[1] / "data" / "tls"
UPGRADE = ("GET /v1/realtime?model=m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


async def _quiet(ws) -> None:
    await ws.send('{"type":"session.created"}')
    await ws.wait_closed()


async def _answer(port: int, data: bytes, limit: float = 20.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(4096), limit)
    finally:
        writer.close()


async def test_lf_only_head_gets_400(tmp_path: Path) -> None:
    async with serve(_quiet, "127.0.0.1", 0) as up:
        async with running(f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}", tmp_path) as proxy:
            answer = await _answer(proxy.port, UPGRADE.replace("\r\n", "\n").encode() + b"\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_half_open_handshakes_time_out_and_are_capped(tmp_path: Path) -> None:
    async with serve(_quiet, "127.0.0.1", 0) as up:
        async with running(f"ws://127.0.0.1:{up.sockets[0].getsockname()[1]}", tmp_path, head_timeout=1.0,
                           max_handshakes=5) as proxy:
            held = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(5)]
            for _, w in held:
                w.write(b"GET /v1/realtime HTTP/1.1\r\n")  # never finished
            await asyncio.sleep(0.2)
            over = await _answer(proxy.port, b"")  # the sixth: refused at once
            assert over.startswith(b"HTTP/1.1 503 ")
            # The held ones are answered 408 and closed by the head timeout.
            answers = [await asyncio.wait_for(r.read(4096), 20) for r, _ in held]
            assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
            for _, w in held:
                w.close()
            async with connect(proxy.url + "/v1/realtime") as ws:  # a normal client gets through again
                assert await ws.recv() == '{"type":"session.created"}'
            refused = dict(proxy.proxy.refused)
    assert sum(n for why, n in refused.items() if "(503)" in why) == 1
    assert sum(n for why, n in refused.items() if "(408)" in why) == 5


async def test_auth_env_key_only_on_realtime_upgrades_from_allowed_origins(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RTREPLAY_TEST_LENT_KEY", "fake-operator-key-0123456789")
    heads: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    requests = {
        "plain POST": "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "plain DELETE": "DELETE /v1/files/file_1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "upgrade elsewhere": UPGRADE.replace("/v1/realtime?model=m", "/v1/responses") + "\r\n",
        "evil origin": UPGRADE + "Origin: https://evil.example\r\n\r\n",
        "allowed origin": UPGRADE + "Origin: https://app.example\r\n\r\n",
        "no origin": UPGRADE + "\r\n",
    }
    async with server:
        async with running(f"ws://127.0.0.1:{port}", tmp_path, auth_env="RTREPLAY_TEST_LENT_KEY",
                           allow_origins=["https://app.example"]) as proxy:
            for request in requests.values():
                await _answer(proxy.port, request.encode())
    lent = {name: b"fake-operator-key" in head for name, head in zip(requests, heads)}
    assert lent == {"plain POST": False, "plain DELETE": False, "upgrade elsewhere": False, "evil origin": False,
                    "allowed origin": True, "no origin": True}


def test_upstream_ca_adds_to_the_system_trust_store(monkeypatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "ca_system.pem"))  # stands for the system's store
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    subjects = {dict(x[0] for x in c["subject"])["commonName"] for c in upstream_context(TLS / "ca_extra.pem").get_ca_certs()}
    assert {"rtreplay test CA system", "rtreplay test CA extra"} <= subjects
    assert isinstance(upstream_context(None), ssl.SSLContext)


async def test_a_dead_recorder_makes_the_proxy_exit_non_zero(tmp_path: Path) -> None:
    async with serve(_quiet, "127.0.0.1", 0) as up:
        proc, port = await start_proxy(up.sockets[0].getsockname()[1], tmp_path / "a")
        try:
            children = recorder_processes(proc.pid)
            assert len(children) == 1
            os.kill(children[0], signal.SIGKILL)
            code = await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
        _, err = proc.communicate(timeout=10)
    assert code != 0
    assert b"recorder process ended unexpectedly" in err and b"Traceback" not in err


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only: RLIMIT_NOFILE and /proc")
async def test_descriptor_exhaustion_is_one_line_and_counted(tmp_path: Path) -> None:
    """At a 64-descriptor limit, 100 half-open connections: a few log lines, not a flood; then service resumes."""
    import resource

    async with serve(_quiet, "127.0.0.1", 0) as up:
        old = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, old[1]))  # inherited by the proxy it starts
        try:
            proc, port = await start_proxy(up.sockets[0].getsockname()[1], tmp_path / "a", "--head-timeout", "2")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        try:
            held = []
            for _ in range(100):
                try:
                    held.append(await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5))
                except (OSError, asyncio.TimeoutError):
                    break
            await asyncio.sleep(3)  # the head timeout frees them
            for _, w in held:
                w.close()
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime", open_timeout=20) as ws:
                assert await ws.recv() == '{"type":"session.created"}'
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(proc.communicate, None, 60)
    lines = err.decode("utf-8", "replace").splitlines()
    assert len(lines) < 20, lines[:30]
    assert not any("Traceback" in line for line in lines)
    # ... and in the archive: the accepts that failed and the heads that timed out (recorder/refusals.py)
    refused = [orjson.loads(r["payload"]) for r in archive.read_archive(tmp_path / "a").table.to_pylist()
               if r["type"] == "proxy.refused"]
    reasons = {r["reason"].split(":")[0]: 0 for r in refused}
    for r in refused:
        reasons[r["reason"].split(":")[0]] += r["count"]
    assert reasons.get("accept failed", 0) >= 1 and reasons.get("upgrade request not complete in time (408)", 0) >= 1, \
        reasons


assert RTREPLAY  # the proxy runs as `rtreplay proxy` in its own process for the exit-code and rlimit tests
