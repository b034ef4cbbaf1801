"""`rtreplay import`: a JSONL event log (one event per line) into an archive session.

For apps that cannot sit behind the proxy (e.g. WebRTC, where events travel on a data channel). Each line is
either an event object (`{"type": …}`), optionally with extra top-level `direction` ("client"|"server")
and `timestamp` (ISO 8601, or epoch seconds/milliseconds) fields, or a wrapper
`{"direction": …, "timestamp": …, "event": {…}}`. The extra fields are removed from the recorded payload.
Without `direction`, the type decides (client event types are known); without `timestamp`, events are
spaced 1 ms apart after the previous one. Lines go through the recorder's core, so imported events get
the same field extraction, redaction and audio split as proxied ones; a line that is not JSON is kept as
an `invalid.json` record, like the proxy does.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from rtreplay.recorder import archive
from rtreplay.recorder.core import SessionRecorder
from rtreplay.recorder.schema import CLIENT, INVALID_JSON, SERVER, new_session_id
from rtreplay.recorder.journal import records_to_batch

CLIENT_TYPES = frozenset({
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "conversation.item.create", "conversation.item.retrieve", "conversation.item.truncate",
    "conversation.item.delete", "response.create", "response.cancel", "output_audio_buffer.clear",
    "transcription_session.update",
})


class ImportFailed(Exception):
    """The input file cannot be imported at all (missing, empty)."""


@dataclass
class Imported:
    session_id: str
    path: Path
    events: int  # one per line of the file (lines that are not JSON become invalid.json records)
    invalid_lines: int


SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # a file name under --out, nothing more
_MAX_NS = archive.TS_MAX_US * 1000


def _timestamp_ns(value: Any) -> int | None:
    """Epoch nanoseconds of an ISO 8601 string or a number of epoch seconds, ms, µs or ns (told apart by
    magnitude: a 2020s date is ~1.7e9 s, 1.7e12 ms, 1.7e15 µs, 1.7e18 ns). ValueError when out of range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"timestamp {value!r} is not a time after 1970")
        magnitude = abs(value)
        scale = 10**9 if magnitude < 1e11 else 10**6 if magnitude < 1e14 else 10**3 if magnitude < 1e17 else 1
        ns = int(value) * scale if isinstance(value, int) else int(value * scale)
        if ns > _MAX_NS:
            raise ValueError(f"timestamp {value!r} is beyond the year 9999")
        return ns
    if isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        return (t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1) * 1000
    return None


def _split(line: str) -> tuple[str, str | None, int | None]:
    """(event text to record, direction, timestamp ns) of one line."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line, None, None
    if not isinstance(obj, dict):
        return line, None, None
    direction = obj.get("direction") if obj.get("direction") in (CLIENT, SERVER) else None
    ts = _timestamp_ns(obj.get("timestamp"))
    if isinstance(obj.get("event"), dict) and "type" not in obj:
        return orjson.dumps(obj["event"]).decode(), direction, ts
    if "direction" in obj or "timestamp" in obj:
        obj = {k: v for k, v in obj.items() if k not in ("direction", "timestamp")}
        return orjson.dumps(obj).decode(), direction, ts
    return line, direction, ts


def import_jsonl(src: Path, out: Path, session_id: str | None = None) -> Imported:
    """Write the events of `src` as one new session of the archive at `out`, under the day its id starts with
    (else that of its first event; the file's modification time if no line has a timestamp), after a
    `proxy.open` record saying where it came from. An existing session is never overwritten."""
    src = Path(src)
    if session_id is not None and (not SESSION_ID.fullmatch(session_id) or ".." in session_id):
        raise ImportFailed(f"--session-id {session_id[:40]!r}: use 1-128 letters, digits, '_', '-' or '.'")
    try:
        # Split on \n only: U+2028, U+2029 and U+0085 are valid unescaped inside JSON strings.
        lines = [ln.removesuffix("\r") for ln in src.read_text(encoding="utf-8").split("\n") if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"{src}: cannot read ({exc})") from exc
    if not lines:
        raise ImportFailed(f"{src}: no events (expected one JSON event per line)")
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(_split(line))
        except ValueError as exc:
            raise ImportFailed(f"{src}: event {number}: {exc}") from None
    first_ts = next((ts for _, _, ts in parsed if ts is not None), int(src.stat().st_mtime * 1e9))
    sid = session_id or new_session_id(first_ts)
    if archive.session_exists(out, sid):
        raise ImportFailed(f"session {sid} is already in {out}: leave out --session-id, or choose another one")
    # The partition is the day the id starts with (ids are named by start time); an id of the user's own
    # naming (`--session-id mine`) takes the day of the first event instead of `date=unknown`.
    day = archive.session_day(sid)
    if day == "unknown":
        day = dt.datetime.fromtimestamp(first_ts / 1e9, dt.timezone.utc).strftime("%Y-%m-%d")
    rec = SessionRecorder(sid)
    rows = [rec.open({"source": "import", "file": src.name, "headers": []}, 0, first_ts)]
    wall = first_ts
    invalid = 0
    for text, direction, ts in parsed:
        wall = ts if ts is not None else wall + 1_000_000
        if direction is None:
            try:
                kind = orjson.loads(text).get("type")
            except (orjson.JSONDecodeError, AttributeError):
                kind = None
            direction = CLIENT if kind in CLIENT_TYPES else SERVER
        record = rec.message(direction, text.encode("utf-8"), True, wall - first_ts, wall)
        invalid += record[5] == INVALID_JSON
        rows.append(record)
    table = pa.Table.from_batches([records_to_batch(rows)])
    path = archive.write_parquet(table, archive.parquet_path(Path(out), sid, day=day))
    return Imported(sid, path, len(parsed), invalid)
