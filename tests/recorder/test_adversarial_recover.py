"""`recover` run in a loop beside a live recorder: it must finalize no live journal, lose nothing, report nothing
false. Bounded: a fixed number of sessions; loopback only."""
from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path

import pyarrow as pa

from rtreplay.recorder import archive
from rtreplay.recorder.writer import ArchiveWriter

SESSIONS = 150
MESSAGES = 6


async def _record(out: Path) -> list[str]:
    ids = []
    async with ArchiveWriter(out, flush_interval=0.02) as writer:
        live = []
        for i in range(SESSIONS):
            handle = writer.open_session({"headers": []})
            ids.append(handle.session_id)
            live.append(handle)
            for k in range(MESSAGES):
                handle.client('{"type":"conversation.item.create","event_id":"e%d_%d"}' % (i, k))
                if k % 2:
                    await asyncio.sleep(0.002)
            if len(live) > 4:  # a few sessions open at any time, the oldest ends
                live.pop(0).close()
        for handle in live:
            handle.close()
    return ids


def test_recover_in_a_loop_beside_a_live_writer_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "archive"
    out.mkdir()
    stop = threading.Event()
    results: list[archive.Recovered] = []
    crashes: list[BaseException] = []

    def recover_loop() -> None:
        while not stop.is_set():
            try:
                results.extend(archive.recover(out))
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                crashes.append(exc)

    thread = threading.Thread(target=recover_loop)
    thread.start()
    try:
        ids = asyncio.run(_record(out))
    finally:
        stop.set()
        thread.join(30)
    assert not crashes, crashes[:3]
    assert [r for r in results if r.problem] == [], "recover reported a live journal as damaged"
    assert results == [], f"recover finalized {len(results)} live journals"
    got = archive.read_archive(out)
    assert got.problems == []
    per_session = {sid: 0 for sid in ids}
    for sid in got.table["session_id"].to_pylist():
        per_session[sid] += 1
    assert per_session == {sid: MESSAGES + 2 for sid in ids}  # proxy.open, the messages, proxy.close
    assert not list((out / "journal").glob("*"))


def test_finalized_parquet_files_are_private_like_journals(tmp_path: Path) -> None:
    async def one() -> None:
        async with ArchiveWriter(tmp_path) as writer:
            writer.open_session({"headers": []}).close()
    old = os.umask(0o022)
    try:
        asyncio.run(one())
    finally:
        os.umask(old)
    files = list((tmp_path / "events").rglob("*.parquet"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_a_batch_arrow_cannot_build_is_a_counted_named_loss_not_a_dead_writer(tmp_path: Path, monkeypatch) -> None:
    """The writer thread died on ArrowCapacityError (only OSError was caught): later sessions had no record."""
    from rtreplay.recorder import writer as writer_module

    real = writer_module.records_to_batch
    failed = []

    def once(rows):
        if not failed and any("huge" in (r[9] or "") for r in rows):
            failed.append(len(rows))
            raise pa.ArrowCapacityError("array cannot contain more than 2147483646 bytes")
        return real(rows)

    monkeypatch.setattr(writer_module, "records_to_batch", once)

    async def run() -> list[str]:
        async with ArchiveWriter(tmp_path, flush_interval=0.05) as writer:
            first = writer.open_session({"headers": []})
            first.client('{"type":"huge"}')
            await asyncio.sleep(0.2)
            first.client('{"type":"after"}')
            first.close()
            second = writer.open_session({"headers": []})
            second.client('{"type":"ok"}')
            second.close()
        return [first.session_id, second.session_id]

    first, second = asyncio.run(run())
    rows = archive.read_archive(tmp_path).table.to_pylist()
    mine = [r for r in rows if r["session_id"] == first]
    assert failed and [r["type"] for r in mine if r["type"] == "proxy.error"] == ["proxy.error"]
    error = [r for r in mine if r["type"] == "proxy.error"][0]["payload"]
    assert "ArrowCapacityError" in error or "2147483646" in error
    assert "after" in [r["type"] for r in mine]
    assert [r["type"] for r in rows if r["session_id"] == second] == ["proxy.open", "ok", "proxy.close"]
