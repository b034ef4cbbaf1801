"""Shared by tests/test_reliability_*.py: the one fake key, the proxy as a process, and memory probes.

The fake key is configured in every reliability test three ways — an Authorization header, an
`openai-insecure-api-key.` subprotocol, and an `ek_` client secret in a server payload — and
`assert_no_secret` checks that it reached no archive file and no captured log or output.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson
from websockets.exceptions import ConnectionClosed
import pytest

FAKE_KEY = "ek_fake_reliability_7f3a9c2e5b1d04"
RTREPLAY = [sys.executable, "-c", "from rtreplay.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def credentials() -> dict:
    """websockets `connect` options carrying the fake key as a header and as a subprotocol."""
    return {"additional_headers": {"Authorization": f"Bearer {FAKE_KEY}"},
            "subprotocols": ["realtime", f"openai-insecure-api-key.{FAKE_KEY}"]}


def select_realtime(connection, offered):  # websockets `select_subprotocol` for test upstreams
    return "realtime" if "realtime" in offered else None


SECRET_EVENT = orjson.dumps({"type": "session.created", "event_id": "event_secret",
                             "client_secret": {"value": FAKE_KEY, "expires_at": 0}}).decode()


async def echo(ws) -> None:
    """A test upstream: sends the event holding the fake secret, then echoes every message."""
    await ws.send(SECRET_EVENT)
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def echo_back(ws) -> None:
    """A test upstream that answers each message with itself and nothing else (the n-th answer is the n-th
    message's echo)."""
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


def assert_no_secret(*places: Path | str) -> None:
    """No file under the given directories, and no given text (logs, output), contains the fake key."""
    for place in places:
        if isinstance(place, Path):
            for p in place.rglob("*"):
                assert not p.is_file() or FAKE_KEY.encode() not in p.read_bytes(), f"fake key written to {p}"
        else:
            assert FAKE_KEY not in place, "fake key in a log line or output"


@pytest.fixture
def no_secret_in_logs(caplog, capfd):
    """Every log record of the recorder (this process) and everything written to stdout/stderr (the
    recorder process inherits them) is free of the fake key. Use with `pytestmark`."""
    caplog.set_level(logging.DEBUG, logger="recorder")
    yield
    out, err = capfd.readouterr()
    assert_no_secret(caplog.text, out, err)


async def start_proxy(upstream: int | str, out: Path, *options: str) -> tuple[subprocess.Popen, int]:
    """`rtreplay proxy` in its own process, listening; stderr is kept for `stop_proxy`.

    `upstream`: a port on 127.0.0.1, or a URL."""
    port = free_port()
    url = upstream if isinstance(upstream, str) else f"ws://127.0.0.1:{upstream}"
    proc = subprocess.Popen(RTREPLAY + ["proxy", "--listen", f"127.0.0.1:{port}", "--upstream", url,
                                        "--out", str(out), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(400):
        if proc.poll() is not None:
            raise AssertionError(f"proxy exited: {proc.communicate()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc, port
        except OSError:
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError(f"proxy did not start: {proc.communicate()}")


def stop_proxy(proc: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM, then (exit code, stdout + stderr)."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, (out + err).decode("utf-8", "replace")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(RTREPLAY + list(args), capture_output=True, text=True, timeout=120)


def descendants(pid: int) -> list[int]:
    """Every process started (transitively) by `pid`, from /proc."""
    found, i = [pid], 0
    while i < len(found):
        for task in Path(f"/proc/{found[i]}/task").glob("*"):
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        i += 1
    return found[1:]


def recorder_processes(pid: int | None = None) -> list[int]:
    """The recording processes under `pid` (default: this one): those running `rtreplay.recorder.child`."""
    found = []
    for child in descendants(os.getpid() if pid is None else pid):
        try:
            if b"rtreplay.recorder.child" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            pass
    return found


def rss() -> int:
    """This process's resident memory in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def until_stable(value, settle: float = 0.5, limit: float = 15.0):
    """Wait until `value()` has not changed for `settle` seconds (or `limit`); its last value."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    last, since = value(), loop.time()
    while loop.time() < end:
        await asyncio.sleep(0.05)
        now = value()
        if now != last:
            last, since = now, loop.time()
        elif loop.time() - since >= settle:
            break
    return last


async def until(condition, limit: float = 10.0) -> None:
    """Wait until `condition()` is true, at most `limit` seconds (the caller's asserts say what failed)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not condition() and loop.time() < end:
        await asyncio.sleep(0.02)
