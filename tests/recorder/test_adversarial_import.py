"""`rtreplay import` on plausible but hostile logs: line separators inside JSON, odd epochs, path-like ids."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from rtreplay.recorder import archive
from rtreplay.recorder.importer import ImportFailed, import_jsonl

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def write(tmp: Path, lines: list[str]) -> Path:
    src = tmp / "log.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src


def test_unicode_line_separators_inside_json_do_not_split_events(tmp_path: Path) -> None:
    text = "one\u2028two\u2029three\u0085four"
    line = orjson.dumps({"type": "conversation.item.create", "item": {"content": [{"text": text}]}},
                        option=orjson.OPT_APPEND_NEWLINE).decode().strip()
    done = import_jsonl(write(tmp_path, [line, line]), tmp_path / "out")
    assert done.invalid_lines == 0 and done.events == 2  # two lines, two events (not split)
    payloads = archive.read_archive(tmp_path / "out").table["payload"].to_pylist()
    assert sum(text in p for p in payloads) == 2


@pytest.mark.parametrize("scale", [1, 10**3, 10**6, 10**9])
def test_epoch_seconds_ms_us_ns_all_date_the_same_moment(tmp_path: Path, scale: int) -> None:
    stamp = int(T.timestamp()) * scale
    done = import_jsonl(write(tmp_path, ['{"type":"x","timestamp":%d}' % stamp]), tmp_path / "out")
    ts = archive.read_archive(tmp_path / "out").table["ts"].to_pylist()
    assert ts[-1] == T and done.session_id.startswith("20260301T12")


@pytest.mark.parametrize("stamp", ["1e300", "-1e15", "1e21", "-5"])
def test_out_of_range_epochs_are_a_one_line_error(tmp_path: Path, stamp: str) -> None:
    with pytest.raises(ImportFailed, match="event 1: timestamp"):
        import_jsonl(write(tmp_path, ['{"type":"x","timestamp":%s}' % stamp]), tmp_path / "out")


@pytest.mark.parametrize("sid", ["../../x", "a/b", "x" * 300, ".hidden", ""])
def test_session_ids_that_are_not_plain_names_are_refused(tmp_path: Path, sid: str) -> None:
    with pytest.raises(ImportFailed, match="--session-id"):
        import_jsonl(write(tmp_path, ['{"type":"x"}']), tmp_path / "out", session_id=sid)
    assert not (tmp_path.parent / "x").exists() and not list(tmp_path.rglob("*.parquet"))
