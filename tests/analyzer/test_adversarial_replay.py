"""Replay against a hostile target, and replay plans from hostile recordings (loopback only, bounded)."""
from __future__ import annotations

import resource
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from rtreplay.analyzer.replay.plan import _check_references
from rtreplay.analyzer.state.session import SessionState
from rtreplay.cli.replay import replay as replay_command
from rtreplay.recorder import archive

ARCHIVE = Path(__file__).resolve().parents[1] / "data" / "replay_plans" / "archive"
FAKE_KEY = "fake-replay-echoed-key-0123456789"  # no sk- prefix: the literal key must be scrubbed


@contextmanager
def target(answer: Callable[[object, dict], None]) -> Iterator[str]:
    """A loopback Realtime "target" in a thread: `session.created`, then `answer(ws, event)` per client event."""
    def handler(ws) -> None:
        ws.send(orjson.dumps({"type": "session.created", "session": {"id": "sess_1"}}).decode())
        try:
            for message in ws:
                answer(ws, orjson.loads(message))
        except ConnectionClosed:
            pass
    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        finally:
            server.shutdown()
            thread.join(10)


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(replay_command, [str(ARCHIVE), *args], env=env)


def test_replay_record_never_records_the_key_a_target_echoes(tmp_path: Path) -> None:
    def echo_key(ws, event: dict) -> None:
        if event.get("type") == "response.create":
            key = ws.request.headers.get("Authorization", "")
            ws.send(orjson.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                             "message": f"bad key {key}",
                                                             "event_id": event.get("event_id")}}).decode())
    record = tmp_path / "replays"
    with target(echo_key) as url:
        result = run("--target", url, "--failed", "--timeout", "10", "--record", str(record),
                     env={"OPENAI_API_KEY": FAKE_KEY})
    assert "Traceback" not in result.output
    files = [f for f in record.rglob("*") if f.is_file()]
    assert files
    assert not any(FAKE_KEY.encode() in f.read_bytes() for f in files)
    table = archive.read_archive(record).table
    assert not any(FAKE_KEY in str(v) for c in table.columns for v in c.to_pylist())
    assert any("bad key [redacted]" in (p or "") for p in table["payload"].to_pylist())


def test_a_target_sending_response_as_a_string_does_not_crash_replay(tmp_path: Path) -> None:
    def strings(ws, event: dict) -> None:
        if event.get("type") == "response.create":
            ws.send('{"type":"response.created","response":"gotcha"}')
            ws.send('{"type":"response.done","response":"gotcha"}')
            ws.send('{"type":"response.done","response":["x"]}')
            ws.close()
    with target(strings) as url:
        result = run("--target", url, "--failed", "--timeout", "10")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output


def test_an_item_reference_with_a_non_string_id_is_a_note() -> None:
    notes: list = []
    for bad in ([1, 2], {"a": 1}, None, 5):
        _check_references({"input": [{"type": "item_reference", "id": bad}]}, SessionState("s"), notes)
    assert len(notes) == 4


def test_dry_run_repeat_is_bounded() -> None:
    """`--repeat 1000000000` used to build a billion jobs (24 GB): run it in a child with 2 GB of address space."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    proc = subprocess.run([sys.executable, "-c", "from rtreplay.cli import main; main()", "replay", str(ARCHIVE),
                           "--dry-run", "--repeat", "1000000000"], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)
    assert proc.returncode == 2 and "--repeat" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-500:]
