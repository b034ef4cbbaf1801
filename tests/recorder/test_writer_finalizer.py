"""The archive writer's finalizer thread: turning an ended session into Parquet holds up no open session."""
from __future__ import annotations

import asyncio
import threading

from rtreplay.recorder import archive
from rtreplay.recorder import writer as writer_module
from rtreplay.recorder.writer import ArchiveWriter
from test_proxy_relay import in_loop


@in_loop
async def test_an_open_session_is_journaled_while_an_ended_one_is_still_being_turned_into_parquet(
        tmp_path, monkeypatch) -> None:
    release, started = threading.Event(), threading.Event()
    original = archive.finalize_journal

    def slow_finalize(journal, out):  # a conversion that takes as long as the test wants
        started.set()
        release.wait(30)
        return original(journal, out)

    monkeypatch.setattr(archive, "finalize_journal", slow_finalize)
    async with ArchiveWriter(tmp_path, flush_interval=0.05) as writer:
        ended = writer.open_session({"path": "/v1/realtime"})
        ended.client('{"type":"session.update"}')
        ended.close()
        open_ = writer.open_session({"path": "/v1/realtime"})
        for i in range(50):
            open_.client('{"type":"conversation.item.create","event_id":"e%d"}' % i)
        journal = archive.journal_path(tmp_path, open_.session_id)
        for _ in range(400):  # 20 s at most on a loaded machine
            if started.is_set() and journal.exists() and archive.read_journal(journal)[0].num_rows == 51:
                break
            await asyncio.sleep(0.05)
        assert started.is_set() and not release.is_set()
        assert archive.read_journal(journal)[0].num_rows == 51  # proxy.open + 50, while the other converts
        assert not archive.parquet_path(tmp_path, ended.session_id).exists()
        release.set()
        open_.close()
    # Closing the writer waits for every conversion: both sessions are Parquet, whole, and no journal is left.
    for handle, rows in ((ended, 3), (open_, 52)):
        assert archive.read_file(archive.parquet_path(tmp_path, handle.session_id))[0].num_rows == rows
    assert not list((tmp_path / "journal").glob("*" + archive.JOURNAL_SUFFIX))


@in_loop
async def test_ended_sessions_waiting_for_conversion_are_bounded_then_the_writer_waits(tmp_path, monkeypatch) -> None:
    """Each ended session waiting for the finalizer holds its journal open: past `_MAX_FINISHING` of them the
    writer thread waits (backpressure, as when it converted them itself) instead of piling up open files."""
    monkeypatch.setattr(writer_module, "_MAX_FINISHING", 2)
    release = threading.Event()
    original = archive.finalize_journal
    monkeypatch.setattr(archive, "finalize_journal", lambda journal, out: release.wait(30) and original(journal, out))
    async with ArchiveWriter(tmp_path, flush_interval=0.05) as writer:
        ended = []
        for _ in range(3):  # one being converted, one waiting, and the third finds no room
            ended.append(writer.open_session({"path": "/v1/realtime"}))
            ended[-1].close()
        later = writer.open_session({"path": "/v1/realtime"})
        later.client('{"type":"session.update"}')
        await asyncio.sleep(1.0)  # time enough to journal it, were the writer thread not waiting
        assert not archive.journal_path(tmp_path, later.session_id).exists()
        release.set()
        later.close()
    for handle, rows in [(h, 2) for h in ended] + [(later, 3)]:
        assert archive.read_file(archive.parquet_path(tmp_path, handle.session_id))[0].num_rows == rows
