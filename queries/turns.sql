-- turns: one row per user turn detected by the server (input_audio_buffer.speech_stopped).
-- Answers: "how long did the user wait for an answer?" The turn's response is the first response created
-- after speech stopped and before the next speech_stopped of the session (NULL if none).
-- `stop_to_first_delta_ms` runs from speech_stopped to that response's first audio/text delta,
-- `stop_to_created_ms` to its response.created, `response_duration_ms` from response.created to
-- response.done; all on the proxy's monotonic clock (mono_ns). `speech_ms` is audio_end_ms - audio_start_ms
-- as reported by the server.
-- Relies on: control_events.direction, type, seq, ts, mono_ns, item_id, payload ($.audio_start_ms,
-- $.audio_end_ms); responses (created_seq, created_mono_ns, time_to_first_delta_ms, duration_ms, status,
-- first_delta_type).
WITH stops AS (
    SELECT session_id, seq, ts, mono_ns, item_id,
           TRY_CAST(payload ->> 'audio_end_ms' AS BIGINT) AS audio_end_ms,
           lead(seq) OVER (PARTITION BY session_id ORDER BY seq) AS next_stop_seq
    FROM control_events
    WHERE direction = 'server' AND type = 'input_audio_buffer.speech_stopped' AND json_valid(payload)
),
starts AS (
    SELECT session_id, item_id, max(seq) AS seq,
           arg_max(TRY_CAST(payload ->> 'audio_start_ms' AS BIGINT), seq) AS audio_start_ms
    FROM control_events
    WHERE direction = 'server' AND type = 'input_audio_buffer.speech_started' AND json_valid(payload)
    GROUP BY ALL
),
created AS (SELECT * FROM responses WHERE created_seq IS NOT NULL),
paired AS (  -- the first response created after the stop, kept only if it came before the next stop
    SELECT s.*, r.created_seq AS candidate_seq
    FROM stops s
    ASOF LEFT JOIN (SELECT session_id, created_seq FROM created) r
        ON r.session_id = s.session_id AND s.seq < r.created_seq
)
SELECT
    p.session_id,
    row_number() OVER (PARTITION BY p.session_id ORDER BY p.seq) AS turn,
    p.item_id,
    st.seq AS speech_started_seq,
    p.seq AS speech_stopped_seq,
    p.ts AS speech_stopped_at,
    st.audio_start_ms,
    p.audio_end_ms,
    p.audio_end_ms - st.audio_start_ms AS speech_ms,
    r.response_id,
    r.status AS response_status,
    r.first_delta_type,
    ms_between(p.mono_ns, r.created_mono_ns) AS stop_to_created_ms,
    ms_between(p.mono_ns, r.created_mono_ns) + r.time_to_first_delta_ms AS stop_to_first_delta_ms,
    r.duration_ms AS response_duration_ms
FROM paired p
LEFT JOIN starts st ON st.session_id = p.session_id AND st.item_id = p.item_id AND st.seq < p.seq
LEFT JOIN created r ON r.session_id = p.session_id AND r.created_seq = p.candidate_seq
    AND p.candidate_seq < coalesce(p.next_stop_seq, 9223372036854775807)
