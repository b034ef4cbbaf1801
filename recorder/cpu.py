"""Keeping the recorder's bursts of CPU short, so that the relay never queues behind them.

The recorder works in bursts: a socket read of copies, a batch of records to journal. A relay process woken
on the CPU where such a burst runs waits until it ends, whatever the recorder's priority: measured with
`perf sched timehist` on a 2-core VM (Linux 6.18, EEVDF, `PREEMPT_NONE`), the wakeups of the app's path
delayed by more than 0.2 ms had waited behind the recorder's event-loop thread running a burst to its end
(≈ 0.4 ms on average), at nice 19 and at SCHED_IDLE alike, often while the other CPU was idle. A thread
that offers the CPU back every `SLICE_NS` of work bounds that wait: `os.sched_yield` runs whatever waits on
this CPU first, and costs one system call when nothing does (benchmarks/RESULTS.md has the figures).

Each recorder thread calls `woke()` when it starts on new work and `checkpoint()` between pieces of it.
"""
from __future__ import annotations

import os
import threading
import time

SLICE_NS = 100_000  # the longest a recorder thread runs before it offers the CPU back

_burst = threading.local()


def woke() -> None:
    """A burst begins: the thread has just slept, so it owes the CPU nothing yet."""
    _burst.until = time.monotonic_ns() + SLICE_NS


def checkpoint() -> None:
    """Between two pieces of work: past the slice, offer the CPU to whatever waits for it, then go on."""
    now = time.monotonic_ns()
    until = getattr(_burst, "until", None)
    if until is None or now < until:
        if until is None:
            _burst.until = now + SLICE_NS
        return
    os.sched_yield()
    _burst.until = time.monotonic_ns() + SLICE_NS
