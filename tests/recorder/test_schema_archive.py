"""The archive schema, its upgrade chain and the Parquet/journal round trip."""
from __future__ import annotations

import base64
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtreplay.recorder import archive, schema


def _rows(session_id: str, payloads: list[str], audio: list[bytes | None] | None = None) -> pa.Table:
    n = len(payloads)
    audio = audio or [None] * n
    now = dt.datetime.now(dt.timezone.utc)
    return pa.table(
        {
            "session_id": [session_id] * n,
            "seq": list(range(n)),
            "ts": [now] * n,
            "mono_ns": list(range(n)),
            "direction": [schema.CLIENT] * n,
            "type": ["x"] * n,
            "event_id": [None] * n,
            "response_id": [None] * n,
            "item_id": [None] * n,
            "payload": payloads,
            "audio": audio,
            "audio_at": [None if a is None else 0 for a in audio],
            "size": [len(p) for p in payloads],
        },
        schema=schema.EVENT_SCHEMA,
    )


def test_session_ids_sort_by_start_time() -> None:
    ids = [schema.new_session_id(t) for t in (1_700_000_000_000_000_000, 1_700_000_000_000_001_000, 1_800_000_000_000_000_000)]
    assert ids == sorted(ids)
    assert archive.session_day(ids[0]) == "2023-11-14"


@settings(max_examples=50, deadline=None)
@given(
    payloads=st.lists(st.text(), min_size=1, max_size=20),
    blobs=st.lists(st.one_of(st.none(), st.binary(max_size=512)), min_size=20, max_size=20),
)
def test_parquet_round_trip_keeps_text_and_bytes(tmp_path_factory, payloads, blobs) -> None:
    out = tmp_path_factory.mktemp("arch")
    sid = schema.new_session_id()
    table = _rows(sid, payloads, blobs[: len(payloads)])
    archive.write_parquet(table, archive.parquet_path(out, sid))
    got = archive.read_archive(out)
    assert got.problems == []
    assert got.table.to_pylist() == table.to_pylist()


def test_rebuild_frame_puts_audio_back() -> None:
    raw = b"\x00\x01\xff" * 100
    b64 = base64.b64encode(raw).decode()
    frame = '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'
    at = frame.index(b64)
    payload = frame[:at] + frame[at + len(b64):]
    assert schema.rebuild_frame(payload, raw, at) == frame


def test_v1_files_are_upgraded(tmp_path) -> None:
    sid = schema.new_session_id()
    current = _rows(sid, ['{"type":"a"}', '{"type":"b"}'])
    v1 = current.drop_columns(["audio", "audio_at"]).replace_schema_metadata({schema.VERSION_KEY: b"1"})
    pq.write_table(v1, tmp_path / f"{sid}.parquet")
    got = archive.read_archive(tmp_path)
    assert got.problems == []
    assert got.table.schema.names == list(schema.COLUMNS)
    assert got.table.column("payload").to_pylist() == ['{"type":"a"}', '{"type":"b"}']
    assert got.table.column("audio").null_count == 2


def test_newer_version_and_garbage_are_reported_by_name(tmp_path) -> None:
    sid = schema.new_session_id()
    good = _rows(sid, ['{"type":"a"}'])
    archive.write_parquet(good, archive.parquet_path(tmp_path, sid))
    future = good.replace_schema_metadata({schema.VERSION_KEY: b"99"})
    pq.write_table(future, tmp_path / "future.parquet")
    (tmp_path / "events" / "notes.txt").write_text("hello")  # a stray file inside the archive's tree
    (tmp_path / "README.txt").write_text("a note beside the archive: no problem")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    got = archive.read_archive(tmp_path)
    assert got.table.num_rows == 1
    messages = {p.path.rsplit("/", 1)[-1]: p.message for p in got.problems}
    assert "newer than this rtreplay" in messages["future.parquet"]
    assert "not a readable" in messages["broken.parquet"]
    assert "not a Parquet file or journal" in messages["notes.txt"]
    assert "README.txt" not in messages


def test_journal_cut_mid_batch_keeps_complete_batches(tmp_path) -> None:
    sid = schema.new_session_id()
    jpath = archive.journal_path(tmp_path, sid)
    jpath.parent.mkdir(parents=True)
    with pa.OSFile(str(jpath), "wb") as f:
        with pa.ipc.new_stream(f, schema.EVENT_SCHEMA) as w:
            for i in range(3):
                row = _rows(sid, [f'{{"type":"e{i}"}}']).to_pylist()[0] | {"seq": i}
                w.write_table(pa.Table.from_pylist([row], schema=schema.EVENT_SCHEMA))
    data = jpath.read_bytes()
    jpath.write_bytes(data[:-30])  # cut into the last batch (and the end-of-stream marker)
    table, note = archive.read_journal(jpath)
    assert table.num_rows == 2 and note and "cut short" in note
    target, rows, note = archive.finalize_journal(jpath, tmp_path)
    assert rows == 2 and not jpath.exists() and target.exists()
    assert archive.read_archive(tmp_path).table.column("seq").to_pylist() == [0, 1]


def test_missing_root_is_an_error(tmp_path) -> None:
    with pytest.raises(archive.ArchiveError, match="no such file"):
        archive.read_archive(tmp_path / "nope")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=200)), min_size=1, max_size=40))
def test_the_writers_batches_hold_the_audio_column_exactly_as_arrows_own_builder_would(audio) -> None:
    """The writer builds the audio column from one join (no builder regrowing it); the batch must equal the
    one Arrow's builder makes from the same records, nulls and empty values included."""
    from rtreplay.recorder.journal import records_to_batch

    rows = [("s", i, 0, 0, "client", "t", None, None, None, "{}", a, None if a is None else 1, 2)
            for i, a in enumerate(audio)]
    batch = records_to_batch(rows)
    columns = [pa.array(col, type=f.type) for col, f in zip(zip(*rows), schema.EVENT_SCHEMA)]
    expected = pa.RecordBatch.from_arrays(columns, schema=schema.EVENT_SCHEMA)
    batch.validate(full=True)
    assert batch.equals(expected) and batch.column("audio").to_pylist() == audio
    assert batch.column("audio").null_count == audio.count(None)
