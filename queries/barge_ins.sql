-- barge_ins: one row per server input_audio_buffer.speech_started while assistant audio was going out
-- (docs/definitions.md, "Interruptions"): a response created before it that is producing audio (no response.done
-- before it, its first audio delta before it: `source` = audio_deltas) or, over WebRTC/SIP where no audio deltas
-- come, whose output audio buffer is playing (its first output_audio_buffer.started before it, no .stopped or
-- .cleared of it in between: `source` = output_audio_buffer). With several, the one created last.
-- Answers: "when did callers talk over the assistant, what was cut, and did the app (or the server) truncate it?"
-- The cut item is that response's item whose audio started last before the barge-in (no audio deltas: whose
-- first delta did); `generated_ms` its whole audio (NULL without audio deltas); `cleared_seq` the first
-- output_audio_buffer.cleared of the response after it (WebRTC/SIP). The truncate is the first client
-- conversation.item.truncate of the cut item after the barge-in (`truncated_by` = client); without one, for an
-- output_audio_buffer barge-in, the server's first conversation.item.truncated of the item after it (`server`);
-- NULL: never truncated — the model believes the caller heard everything.
-- Relies on: control_events (speech_started, output_audio_buffer.*, conversation.item.truncated),
-- voice_responses, voice_items, voice_settings, voice_sessions, truncations.
WITH starts AS (
    SELECT session_id, seq, ts, mono_ns FROM control_events
    WHERE direction = 'server' AND type = 'input_audio_buffer.speech_started'
),
buffer AS (
    SELECT session_id, seq, replace(type, 'output_audio_buffer.audio_', 'output_audio_buffer.') AS type,
           response_id  -- the beta names of January 2025 (.audio_started, …) are the same events
    FROM control_events
    WHERE direction = 'server' AND type LIKE 'output_audio_buffer.%' AND response_id IS NOT NULL
),
playback AS (  -- a response's first started, and the first stopped/cleared of it after that
    SELECT p.session_id, p.response_id, p.seq AS start_seq,
           (SELECT min(e.seq) FROM buffer e WHERE e.session_id = p.session_id AND e.response_id = p.response_id
                AND e.type IN ('output_audio_buffer.stopped', 'output_audio_buffer.cleared') AND e.seq > p.seq)
                AS end_seq
    FROM buffer p WHERE p.type = 'output_audio_buffer.started'
    QUALIFY row_number() OVER (PARTITION BY p.session_id, p.response_id ORDER BY p.seq) = 1
),
cut AS (
    SELECT s.*, r.response_id, r.audio_seq AS response_audio_seq,
           CASE WHEN (r.done_seq IS NULL OR r.done_seq > s.seq) AND r.audio_seq < s.seq THEN 'audio_deltas'
                ELSE 'output_audio_buffer' END AS source
    FROM starts s
    JOIN voice_responses r ON r.session_id = s.session_id AND r.created_seq < s.seq
    LEFT JOIN playback p ON p.session_id = r.session_id AND p.response_id = r.response_id
    WHERE ((r.done_seq IS NULL OR r.done_seq > s.seq) AND r.audio_seq < s.seq)
       OR (p.start_seq < s.seq AND (p.end_seq IS NULL OR p.end_seq > s.seq))
    QUALIFY row_number() OVER (PARTITION BY s.session_id, s.seq ORDER BY r.created_seq DESC) = 1
),
item AS (
    SELECT c.*, i.item_id, i.audio_seq AS item_audio_seq, i.audio_bytes
    FROM cut c LEFT JOIN voice_items i ON i.session_id = c.session_id AND i.response_id = c.response_id
        AND CASE WHEN c.response_audio_seq IS NOT NULL THEN i.audio_seq < c.seq ELSE i.first_seq < c.seq END
    QUALIFY row_number() OVER (PARTITION BY c.session_id, c.seq
                               ORDER BY CASE WHEN c.response_audio_seq IS NOT NULL THEN i.audio_seq
                                             ELSE i.first_seq END DESC NULLS LAST) = 1
),
server_truncated AS (
    SELECT session_id, seq, item_id,
           CASE WHEN json_valid(payload) AND json_type(payload, '$.audio_end_ms') IN ('BIGINT', 'UBIGINT')
                THEN CAST(payload ->> '$.audio_end_ms' AS BIGINT) END AS audio_end_ms
    FROM control_events
    WHERE direction = 'server' AND type = 'conversation.item.truncated' AND item_id IS NOT NULL
),
judged AS (
    SELECT b.*,
           (SELECT min(e.seq) FROM buffer e WHERE e.session_id = b.session_id AND e.response_id = b.response_id
                AND e.type = 'output_audio_buffer.cleared' AND e.seq > b.seq
                AND b.source = 'output_audio_buffer') AS cleared_seq,
           t.seq AS client_seq, t.audio_end_ms AS client_end, t.valid
    FROM item b
    LEFT JOIN truncations t ON t.session_id = b.session_id AND t.item_id = b.item_id AND t.seq > b.seq
    QUALIFY row_number() OVER (PARTITION BY b.session_id, b.seq ORDER BY t.seq NULLS LAST) = 1
),
served AS (
    SELECT j.*, st.seq AS server_seq, st.audio_end_ms AS server_end
    FROM judged j
    LEFT JOIN server_truncated st ON j.client_seq IS NULL AND j.source = 'output_audio_buffer'
        AND st.session_id = j.session_id AND st.item_id = j.item_id AND st.seq > j.seq
    QUALIFY row_number() OVER (PARTITION BY j.session_id, j.seq ORDER BY st.seq NULLS LAST) = 1
)
SELECT
    b.session_id, b.seq, b.ts,
    greatest(0, (b.mono_ns - v.start_mono) // 60000000000) AS minute,
    (b.mono_ns - v.start_mono) / 1e9 AS at_s,
    b.response_id, b.item_id,
    CASE WHEN b.item_audio_seq IS NOT NULL THEN b.audio_bytes / coalesce(st.bytes_per_ms, 48) END AS generated_ms,
    b.source, b.cleared_seq,
    coalesce(b.client_seq, b.server_seq) AS truncate_seq,
    CASE WHEN b.client_seq IS NOT NULL THEN 'client' WHEN b.server_seq IS NOT NULL THEN 'server' END AS truncated_by,
    CASE WHEN b.client_seq IS NOT NULL THEN b.client_end ELSE b.server_end END AS audio_end_ms,
    b.valid,
    coalesce(st.bytes_per_ms, 48) AS bytes_per_ms
FROM served b
JOIN voice_sessions v ON v.session_id = b.session_id
ASOF LEFT JOIN (SELECT * FROM voice_settings WHERE source = 'session') st
    ON st.session_id = b.session_id AND b.seq > st.seq
