-- events: every archived event, one row each — the table every other view is derived from.
-- Answers: "what exactly went over the wire?" Columns: those of recorder/schema.py (session_id, seq, ts,
-- mono_ns, direction, type, event_id, response_id, item_id, payload, audio, audio_at, size) plus `date`,
-- the hive partition (the session's start day, UTC).
-- Relies on: the archive files only. The events_source placeholder below is the one place the archive
-- root is substituted (queries/loader.py): read_parquet('<root>/**/*.parquet') with hive_partitioning and
-- union_by_name (older schema versions get NULL in the columns they lack, as the v1 -> v2 upgrade does),
-- plus open journals, registered from the Python API.
SELECT * FROM {events_source}
