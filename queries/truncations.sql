-- truncations: one row per client conversation.item.truncate, judged against the audio generated for the item
-- (docs/definitions.md, "Interruptions").
-- Answers: "was each truncate valid, what did the server answer, and how much generated audio went unheard?"
-- `generated_ms` = the item's audio bytes / bytes per ms of the output format in force (NULL when the item
-- streamed no audio); `valid` = audio_end_ms is an integer in [0, generated_ms]; `answer` = `error` when an
-- error names the truncate's event_id, else `truncated` when a conversation.item.truncated of the item follows
-- before the next truncate of the same item, else `none`; `unheard_ms` = generated_ms - audio_end_ms when valid.
-- Relies on: control_events (truncate, truncated, error), voice_items, voice_settings.
WITH t AS (
    SELECT session_id, seq, ts, event_id,
           CASE WHEN json_type(payload, '$.item_id') = 'VARCHAR' THEN payload ->> '$.item_id' END AS item_id,
           CASE WHEN json_type(payload, '$.audio_end_ms') IN ('BIGINT', 'UBIGINT')
                THEN CAST(payload ->> '$.audio_end_ms' AS BIGINT) END AS audio_end_ms
    FROM control_events
    WHERE direction = 'client' AND type = 'conversation.item.truncate' AND json_valid(payload)
),
t2 AS (
    SELECT t.*, lead(seq) OVER (PARTITION BY session_id, item_id ORDER BY seq) AS next_same FROM t
),
errs AS (
    SELECT session_id, seq, payload ->> '$.error.event_id' AS for_id,
           coalesce(payload ->> '$.error.code', payload ->> '$.error.type') AS code
    FROM control_events WHERE direction = 'server' AND type = 'error' AND json_valid(payload)
),
done AS (
    SELECT session_id, seq, item_id FROM control_events
    WHERE direction = 'server' AND type = 'conversation.item.truncated'
),
judged AS (
    SELECT t2.*, i.response_id,
           CASE WHEN i.audio_seq IS NOT NULL THEN i.audio_bytes / coalesce(st.bytes_per_ms, 48) END AS generated_ms,
           (SELECT arg_min(e.code, e.seq) FROM errs e WHERE e.session_id = t2.session_id AND e.for_id = t2.event_id
                AND e.seq > t2.seq) AS error_code,
           EXISTS (SELECT 1 FROM errs e WHERE e.session_id = t2.session_id AND e.for_id = t2.event_id
                AND e.seq > t2.seq) AS errored,
           EXISTS (SELECT 1 FROM done d WHERE d.session_id = t2.session_id AND d.item_id = t2.item_id
                AND d.seq > t2.seq AND d.seq < coalesce(t2.next_same, 9223372036854775807)) AS truncated
    FROM t2
    LEFT JOIN voice_items i ON i.session_id = t2.session_id AND i.item_id = t2.item_id
    ASOF LEFT JOIN (SELECT * FROM voice_settings WHERE source = 'session') st
        ON st.session_id = t2.session_id AND t2.seq > st.seq
)
SELECT session_id, seq, ts, item_id, response_id, audio_end_ms, generated_ms,
       coalesce(audio_end_ms >= 0 AND audio_end_ms <= generated_ms, false) AS valid,
       CASE WHEN errored THEN 'error' WHEN truncated THEN 'truncated' ELSE 'none' END AS answer,
       CASE WHEN errored THEN error_code END AS error_code,
       CASE WHEN coalesce(audio_end_ms >= 0 AND audio_end_ms <= generated_ms, false)
            THEN generated_ms - audio_end_ms ELSE 0.0 END AS unheard_ms
FROM judged
