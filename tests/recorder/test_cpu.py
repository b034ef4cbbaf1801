"""The recorder's threads offer the CPU back during long bursts (`rtreplay.recorder.cpu`), and nothing is lost."""
from __future__ import annotations

import base64
import threading
import types

import pytest

from rtreplay.recorder import archive, cpu
from rtreplay.recorder.writer import ArchiveWriter
from test_proxy_relay import in_loop


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves by hand, and a log of which thread offered the CPU at which time."""
    state = types.SimpleNamespace(now=10**12, step=0, yields=[])

    def monotonic_ns() -> int:
        state.now += state.step
        return state.now

    monkeypatch.setattr(cpu, "time", types.SimpleNamespace(monotonic_ns=monotonic_ns))
    monkeypatch.setattr(cpu, "os", types.SimpleNamespace(
        sched_yield=lambda: state.yields.append((threading.current_thread().name, state.now))))
    return state


def in_thread(fn) -> None:  # a fresh thread: its burst state starts empty, like a new recorder thread's
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def test_a_thread_offers_the_cpu_once_per_slice_of_work_and_not_before(clock) -> None:
    def burst() -> None:
        cpu.woke()
        for _ in range(3):
            clock.now += cpu.SLICE_NS // 4
            cpu.checkpoint()  # within the slice: go on
        assert clock.yields == []
        clock.now += cpu.SLICE_NS
        cpu.checkpoint()  # past it: offer the CPU, and a new slice starts
        cpu.checkpoint()
        assert len(clock.yields) == 1
        cpu.woke()  # after a sleep the thread owes nothing
        cpu.checkpoint()
        assert len(clock.yields) == 1

    in_thread(burst)


def test_slices_are_per_thread_and_a_first_checkpoint_starts_one(clock) -> None:
    def spent() -> None:
        cpu.woke()
        clock.now += 2 * cpu.SLICE_NS
        cpu.checkpoint()

    def fresh() -> None:
        cpu.checkpoint()  # never woke: the slice starts here
        clock.now += cpu.SLICE_NS // 2
        cpu.checkpoint()

    in_thread(spent)
    in_thread(fresh)
    assert len(clock.yields) == 1


@in_loop
async def test_the_writer_thread_offers_the_cpu_while_journaling_a_large_backlog_and_records_all_of_it(
        tmp_path, clock) -> None:
    clock.step = cpu.SLICE_NS // 3  # every look at the clock: a third of a slice of work
    audio = bytes(range(256)) * 96  # 24 KiB of audio per event
    text = '{"type":"input_audio_buffer.append","audio":"%s"}' % base64.b64encode(audio).decode()
    async with ArchiveWriter(tmp_path, flush_interval=0.05) as writer:
        handle = writer.open_session({"path": "/v1/realtime"})
        for _ in range(100):  # 2.4 MiB: one batch, journaled in several pieces
            handle.client(text)
        handle.close()
    assert any(name == "rtreplay-writer" for name, _ in clock.yields)
    table = archive.read_file(archive.parquet_path(tmp_path, handle.session_id))[0]
    assert table.num_rows == 102  # proxy.open, 100 appends, proxy.close
    assert table.column("audio").to_pylist()[1:101] == [audio] * 100
