"""Shared test set-up.

For the whole test session every Realtime simulator (in this process or a subprocess started by a test)
checks each event it sends, and each client event it accepts, against the official `openai` SDK's GA
event types (`rtreplay.simulator.validate`). A test during which a violation happened fails at teardown, naming
the event.
"""
from __future__ import annotations

import json
import os
import tempfile

import pytest

os.environ["RTREPLAY_SIM_VALIDATE"] = "1"
os.environ.setdefault("RTREPLAY_SIM_VIOLATIONS", tempfile.mkstemp(prefix="rtreplay-sim-violations-")[1])


@pytest.fixture(autouse=True)
def simulator_speaks_ga() -> object:
    path = os.environ["RTREPLAY_SIM_VIOLATIONS"]
    start = os.path.getsize(path)
    yield
    with open(path, encoding="utf-8") as log:
        log.seek(start)
        found = [json.loads(line) for line in log.read().splitlines()]
    if found:
        pytest.fail("simulator traffic does not match the openai SDK's GA event types:\n" + "\n".join(found[:5]),
                    pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests on a fresh event loop (no plugin needed); pytest-timeout still bounds them."""
    import asyncio
    import inspect

    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True
