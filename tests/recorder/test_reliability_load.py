"""Load, CI size: 20 concurrent voice sessions for 5 s through one `rtreplay proxy` process (real-time
audio both ways in 20 ms chunks, a function-call turn every second; benchmarks/load_proxy.py). Every frame
arrives unaltered and in order (hash-checked at both ends), every frame is in the archive.

The full run — 200 sessions for 60 s — is `python benchmarks/load_proxy.py --sessions 200 --seconds 60`
(figures in benchmarks/RESULTS.md, "Reliability")."""
from __future__ import annotations

import pytest

import importlib.util
import sys
from pathlib import Path

from reliability_support import FAKE_KEY, assert_no_secret, no_secret_in_logs  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_secret_in_logs")

_spec = importlib.util.spec_from_file_location("load_proxy", Path(__file__).parents[2] / "benchmarks" / "load_proxy.py")
load_proxy = sys.modules["load_proxy"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(load_proxy)  # type: ignore[union-attr]

SESSIONS, SECONDS = 20, 5.0


def test_concurrent_voice_sessions_arrive_unaltered_and_are_all_archived(tmp_path) -> None:
    result = load_proxy.run_load(SESSIONS, SECONDS, tmp_path, control=2, key=FAKE_KEY)

    assert result.mismatches == []
    assert result.events_lost == 0
    assert result.proxy_exit_code == 0, result.proxy_stderr
    chunks = int(SECONDS / load_proxy.TICK)
    assert result.frames_to_server >= (SESSIONS + 2) * chunks  # audio, plus the turns and their answers
    assert result.frames_to_client >= (SESSIONS + 2) * chunks * 0.9  # the upstream's clock started a bit later
    assert_no_secret(tmp_path, result.proxy_stderr)
