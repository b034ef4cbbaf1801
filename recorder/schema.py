"""The archive's one table, defined once.

Every file of an archive (Parquet part or open journal) carries `SCHEMA_VERSION` in its schema metadata
under `VERSION_KEY`. Readers bring older files up to date through `UPGRADES`, a chain of small functions
each taking a table of version N to version N+1, and refuse files from a newer rtreplay.

Version history:
  1  pre-release layout: audio base64 stayed inline in `payload`; no `audio`/`audio_at` columns.
  2  audio cut out of the payload into `audio` with its place in `audio_at` (DESIGN.md, "The archive").
"""
from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable

import pyarrow as pa

SCHEMA_VERSION = 2
VERSION_KEY = b"rtreplay.schema_version"

# Values of the `direction` column.
CLIENT = "client"  # app -> API
SERVER = "server"  # API -> app
PROXY = "proxy"  # the proxy's own lifecycle records

# Lifecycle record types (direction = proxy); their payload is JSON.
PROXY_OPEN = "proxy.open"
PROXY_UPSTREAM_REJECTED = "proxy.upstream_rejected"
PROXY_CLOSE = "proxy.close"
PROXY_ERROR = "proxy.error"
# A connection refused before it became a session, in its proxy run's own session (rtreplay.recorder.refusals).
PROXY_REFUSED = "proxy.refused"
# Types given to frames that are not a JSON object with a string `type`.
INVALID_JSON = "invalid.json"
BINARY = "binary"
# A frame that breaks the WebSocket protocol yet passed: payload JSON {error, opcode, size}, the frame's raw
# payload (unmasked, not inflated, cut to `rtreplay.recorder.tap.KEEP_UNPARSED` bytes) in `audio`.
INVALID_FRAME = "invalid.frame"

EVENT_SCHEMA = pa.schema(
    [
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("mono_ns", pa.int64(), nullable=False),
        pa.field("direction", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("event_id", pa.string()),
        pa.field("response_id", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("audio", pa.binary()),
        pa.field("audio_at", pa.int32()),
        pa.field("size", pa.int32(), nullable=False),
    ],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)


class SchemaVersionError(Exception):
    """A file was written by a newer rtreplay (or carries no readable version)."""


def version_of(schema: pa.Schema) -> int:
    """The schema version a file's Arrow schema declares; files without the key are version 1."""
    raw = (schema.metadata or {}).get(VERSION_KEY)
    if raw is None:
        return 1
    try:
        return int(raw)
    except ValueError as exc:
        raise SchemaVersionError(f"unreadable schema version {raw!r}") from exc


def _v1_to_v2(table: pa.Table) -> pa.Table:
    # v1 kept audio inline in the payload, which is still lossless: the new columns are simply empty.
    n = table.num_rows
    table = table.append_column("audio", pa.nulls(n, pa.binary()))
    return table.append_column("audio_at", pa.nulls(n, pa.int32()))


UPGRADES: dict[int, Callable[[pa.Table], pa.Table]] = {1: _v1_to_v2}


def upgrade(table: pa.Table, version: int) -> pa.Table:
    """Bring a table of schema `version` to the current one, column order and types included."""
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"schema version {version} is newer than this rtreplay understands ({SCHEMA_VERSION}); "
            "upgrade rtreplay to read it"
        )
    while version < SCHEMA_VERSION:
        table = UPGRADES[version](table)
        version += 1
    return table.select(list(COLUMNS)).cast(EVENT_SCHEMA)


def rebuild_frame(payload: str, audio: bytes | None, audio_at: int | None) -> str:
    """The frame text as received (redaction aside): the audio base64 put back where it was cut out."""
    if audio_at is None or audio is None:
        return payload
    return payload[:audio_at] + base64.b64encode(audio).decode("ascii") + payload[audio_at:]


_B32 = "0123456789abcdefghjkmnpqrstvwxyz"


def new_session_id(now_ns: int | None = None) -> str:
    """A session id that sorts by start time: `YYYYMMDDTHHMMSSffffff-xxxxxx` (UTC, random suffix)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    secs, micros = divmod(now_ns // 1000, 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(secs)) + f"{micros:06d}"
    suffix = "".join(_B32[b % 32] for b in os.urandom(6))
    return f"{stamp}-{suffix}"
