"""A stalled recorder, then `kill -9` of the proxy: what the proxy held for the recorder dies with it. That loss
must be counted in the session (a `proxy.error` with `lost_wire_bytes`) and reported by `rtreplay recover`
(one line per session, exit 1) — and while the recorder is still catching up, `recover` must say so (exit 3)
rather than "no journals to recover". Bounded; loopback only.
"""
from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from rtreplay.recorder import archive, schema
from reliability_support import RTREPLAY, echo_back, recorder_processes, start_proxy

AUDIO = base64.b64encode(os.urandom(24 * 1024)).decode()


def frame(i: int) -> str:
    return '{"type":"input_audio_buffer.append","event_id":"e%d","audio":"%s"}' % (i, AUDIO)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def test_kill_9_while_the_recorder_is_stalled_counts_and_reports_what_was_lost(tmp_path: Path) -> None:
    acked: dict[str, int] = {}  # event_id -> bytes of the message, for every echo that came back
    async with serve(echo_back, "127.0.0.1", 0, max_size=None, compression=None) as server:
        proc, port = await start_proxy(server.sockets[0].getsockname()[1], tmp_path)
        [child] = recorder_processes(proc.pid)
        async with connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None, compression=None) as ws:
            start, stalled = time.monotonic(), False
            try:
                for i in range(100_000):
                    if not stalled and time.monotonic() - start > 1.0:
                        os.kill(child, signal.SIGSTOP)  # a disk that stops answering
                        stalled = True
                    await ws.send(frame(i))
                    try:
                        acked[f"e{i}"] = len(await asyncio.wait_for(ws.recv(), 2.0))
                    except asyncio.TimeoutError:  # the relay paused: the recorder is too far behind
                        break
            except ConnectionClosed:
                pass
            assert stalled
            await asyncio.sleep(1.0)  # the loss to count is old now: the 0.5 s bound must hold for it
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    try:
        during = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert during.returncode == 3, during.stdout + during.stderr
        assert "still" in during.stdout + during.stderr and "again" in during.stdout + during.stderr
    finally:
        os.kill(child, signal.SIGCONT)
    for _ in range(600):
        if not alive(child):
            break
        await asyncio.sleep(0.1)
    assert not alive(child), "the recorder did not finish after its proxy died"

    after = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    rows = archive.read_archive(tmp_path).table.to_pylist()
    [sid] = {r["session_id"] for r in rows}
    recorded = {(r["direction"], r["event_id"]) for r in rows}
    missing = sum(size for eid, size in acked.items() for d in (schema.CLIENT, schema.SERVER)
                  if (d, eid) not in recorded)
    assert missing > 0, "nothing was lost: the test did not stall the recorder in time"
    losses = [orjson.loads(r["payload"]) for r in rows if r["type"] == schema.PROXY_ERROR]
    # What never reached the recorder, plus the part it got of a message cut there (a counted loss of its own).
    counted = sum(e.get("lost_wire_bytes", 0) + e.get("wire_bytes", 0) for e in losses)
    assert any(e.get("lost_wire_bytes") for e in losses), losses
    # Wire bytes include frame headers: at least the messages' own bytes.
    assert counted >= missing, (counted, missing, losses)
    assert after.returncode == 1, after.stdout + after.stderr
    lines = [line for line in (after.stdout + after.stderr).splitlines() if sid in line]
    [lost] = [e["lost_wire_bytes"] for e in losses if e.get("lost_wire_bytes")]
    assert len(lines) == 1 and f"{lost:,}" in lines[0], after.stdout + after.stderr
    again = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr  # reported once; the record stays in the session
    assert not list((tmp_path / "journal").glob("*"))


async def test_a_live_proxy_and_a_clean_stop_leave_recover_nothing_to_report(tmp_path: Path) -> None:
    """Beside a live proxy, `recover` leaves its marks alone and exits 0; SIGTERM leaves no marks or reports."""
    async with serve(echo_back, "127.0.0.1", 0, compression=None) as server:
        proc, port = await start_proxy(server.sockets[0].getsockname()[1], tmp_path)
        async with connect(f"ws://127.0.0.1:{port}/v1/realtime", compression=None) as ws:
            for i in range(20):
                await ws.send(frame(i))
                await ws.recv()
            live = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
            assert live.returncode == 0 and "lost" not in live.stderr, live.stdout + live.stderr
            assert len(list((tmp_path / "journal").glob("*.marks"))) == 1
            sessions = subprocess.run(RTREPLAY + ["sessions", str(tmp_path)], capture_output=True, text=True,
                                      timeout=60)
            assert sessions.returncode == 0 and "warning" not in sessions.stderr, sessions.stderr  # not archive files
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not list((tmp_path / "journal").glob("*"))
    done = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "no journals to recover", done.stdout + done.stderr


def test_a_proxy_and_recorder_both_killed_is_reported_uncounted(tmp_path: Path) -> None:
    """Marks whose proxy and recorder are both gone (no lock held): their sessions may miss their last frames,
    and nothing is left to count them: `recover` says so once (exit 1), and names each session it finalizes
    that has no `proxy.close` (its recorder stopped while it was open)."""
    from rtreplay.recorder.core import SessionRecorder
    from rtreplay.recorder.journal import JournalFile, records_to_batch

    recorder = SessionRecorder("20260101T000000000000-open")
    journal = JournalFile(archive.journal_path(tmp_path, recorder.session_id))
    journal.append(records_to_batch([recorder.open({"headers": []}, 0, 0),
                                     recorder.message(schema.CLIENT, b'{"type":"response.create"}', True, 1, 1)])
                   .serialize())
    os.close(journal._fd)  # the recorder died: its lock is gone, the session never ended
    (tmp_path / "journal" / "proxy-1-2.marks").write_text('{"pid":1,"at":0,"forwarded":{"3":100}}\n')
    (tmp_path / "journal" / "proxy-1-1.lost").write_text('{"session_id":"s1","conn":1,"lost_wire_bytes":7}\n')
    first = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "session s1: at least 7 wire bytes" in first.stderr, first.stderr
    assert f"{recorder.session_id}.arrows: no proxy.close record" in first.stderr, first.stderr
    assert first.returncode == 1 and "both died" in first.stderr and "Traceback" not in first.stderr, first.stderr
    again = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr


_PROXY_SCRIPT = """
import asyncio, struct, sys, time
from pathlib import Path
from rtreplay.recorder import framing
from rtreplay.recorder.link import RecorderLink

OPEN = {"method": "GET", "path": "/v1/realtime", "query": "", "client": None, "upstream": "ws://127.0.0.1:1",
        "headers": [], "auth_added": False, "origin_refused": False}
BODY = b'{"type":"response.output_text.delta","delta":"' + b"x" * 65000 + b'"}'
FRAME = b"\\x81\\x7f" + struct.pack("!Q", len(BODY)) + BODY

async def main():
    link = await RecorderLink.start(Path(sys.argv[1]))
    print(link.process.pid, flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the recorder is stalled now
    for conn in (5, 7):  # 5 fills the socket, so 7's opening stays in this process
        link.send_json(conn, framing.OPEN, OPEN)
        link.data(conn, framing.SERVER, b"HTTP/1.1 101 Switching Protocols\\r\\n\\r\\n", time.monotonic_ns(), time.time_ns())
        for _ in range(300 if conn == 5 else 3):  # 19.5 MB: more than the socket takes (4 MB, doubled)
            link.data(conn, framing.SERVER, FRAME, time.monotonic_ns(), time.time_ns())
            await asyncio.sleep(0)
    await asyncio.sleep(1.0)  # a progress mark is written
    print("sent", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_connection_whose_opening_died_with_the_proxy_is_named(tmp_path: Path) -> None:
    """A connection opened while the recorder lagged: its OPEN frame dies with the proxy, so no session exists
    to count the loss in. `recover` still names it, with the bytes forwarded for it."""
    import sys

    proxy = subprocess.Popen([sys.executable, "-c", _PROXY_SCRIPT, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        child = int(proxy.stdout.readline())
        os.kill(child, signal.SIGSTOP)
        proxy.stdin.write("go\n")
        proxy.stdin.flush()
        assert proxy.stdout.readline().strip() == "sent"
        marks = orjson.loads(next((tmp_path / "journal").glob("*.marks")).read_bytes().splitlines()[0])
        assert 7 in marks["unopened"], marks
    finally:
        proxy.kill()
        proxy.wait(10)
        os.kill(child, signal.SIGCONT)
    for _ in range(600):
        if not alive(child):
            break
        await asyncio.sleep(0.1)
    after = subprocess.run(RTREPLAY + ["recover", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert after.returncode == 1, after.stdout + after.stderr
    [line] = [x for x in after.stderr.splitlines() if "(no session)" in x]
    assert line.startswith("lost: connection 7 (no session): at least ") and "wire bytes" in line, line
    assert int(line.split("at least ")[1].split()[0].replace(",", "")) >= 3 * 65000
