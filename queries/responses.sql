-- responses: one row per response the server created or finished (by response_id, per session).
-- Answers: "how did each response end, how long did it take, what did it cost, and who asked for it?"
-- `initiated_by` is `client` when a request's answer (see answers.sql), `server` for turn detection.
-- `status` is NULL while no response.done was recorded. Latencies use the monotonic clock (mono_ns).
-- Relies on: control_events.direction, type, seq, ts, mono_ns, response_id, payload ($.response.status,
-- status_details, conversation_id, metadata, output, usage); events (delta events: type, seq, mono_ns,
-- response_id); answers; session_config.
-- Each response.created / response.done payload is parsed once: one json_extract over a list of paths, whose
-- elements are named below. A done event's `r` is its whole `response` (SQL NULL when absent or when the payload
-- is not JSON); when it has one, its fields win over those of the created event.
WITH created AS (
    SELECT session_id, response_id, seq, ts, mono_ns, f[1] AS conversation_id, f[2] AS metadata,
           f[3] AS output_modalities
    FROM (
        SELECT *, CASE WHEN json_valid(payload) THEN json_extract(payload, [
                   '$.response.conversation_id', '$.response.metadata', '$.response.output_modalities']) END AS f
        FROM control_events
        WHERE direction = 'server' AND type = 'response.created'
        QUALIFY row_number() OVER (PARTITION BY session_id, response_id ORDER BY seq) = 1
    )
),
done AS (
    SELECT session_id, response_id, seq, ts, mono_ns, f[1] AS r, f[2] AS conversation_id, f[3] AS metadata,
           f[4] AS output_modalities, f[5] AS status_details, f[6] AS output, f[7] AS status, f[8] AS error_type,
           f[9] AS error_code, f[10] AS error_message, f[11] AS reason, f[12] AS input_tokens,
           f[13] AS output_tokens, f[14] AS total_tokens, f[15] AS cached_tokens, f[16] AS input_text_tokens,
           f[17] AS input_audio_tokens, f[18] AS output_text_tokens, f[19] AS output_audio_tokens
    FROM (
        SELECT *, CASE WHEN json_valid(payload) THEN json_extract(payload, [
                   '$.response', '$.response.conversation_id', '$.response.metadata', '$.response.output_modalities',
                   '$.response.status_details', '$.response.output', '$.response.status',
                   '$.response.status_details.error.type', '$.response.status_details.error.code',
                   '$.response.status_details.error.message', '$.response.status_details.reason',
                   '$.response.usage.input_tokens', '$.response.usage.output_tokens', '$.response.usage.total_tokens',
                   '$.response.usage.input_token_details.cached_tokens',
                   '$.response.usage.input_token_details.text_tokens',
                   '$.response.usage.input_token_details.audio_tokens',
                   '$.response.usage.output_token_details.text_tokens',
                   '$.response.usage.output_token_details.audio_tokens']) END AS f
        FROM control_events
        WHERE direction = 'server' AND type = 'response.done'
        QUALIFY row_number() OVER (PARTITION BY session_id, response_id ORDER BY seq) = 1
    )
),
output_items AS (
    SELECT session_id, response_id, unnest(json_extract(output, '$[*]')) AS item FROM done
),
calls AS (
    SELECT
        session_id, response_id,
        list(item ->> 'name') FILTER (WHERE item ->> 'type' = 'function_call') AS function_calls,
        list({'server_label': item ->> 'server_label', 'name': item ->> 'name'})
            FILTER (WHERE item ->> 'type' = 'mcp_call') AS mcp_calls
    FROM output_items
    GROUP BY session_id, response_id
),
first_delta AS (
    SELECT session_id, response_id, min(seq) AS seq, arg_min(mono_ns, seq) AS mono_ns, arg_min(type, seq) AS type
    FROM events
    WHERE direction = 'server' AND type IN (
        'response.output_audio.delta', 'response.output_text.delta', 'response.output_audio_transcript.delta',
        'response.audio.delta', 'response.text.delta', 'response.audio_transcript.delta')  -- GA, then beta
    GROUP BY session_id, response_id
),
session_events AS (SELECT * FROM session_config WHERE source = 'session'),
joined AS (
    SELECT
        coalesce(c.session_id, d.session_id) AS session_id,
        coalesce(c.response_id, d.response_id) AS response_id,
        c.seq AS created_seq, d.seq AS done_seq, c.ts AS created_at, d.ts AS done_at,
        c.mono_ns AS created_mono_ns, d.mono_ns AS done_mono_ns,
        d.r, d.status_details, d.output, d.status, d.error_type, d.error_code, d.error_message, d.reason,
        d.input_tokens, d.output_tokens, d.total_tokens, d.cached_tokens, d.input_text_tokens, d.input_audio_tokens,
        d.output_text_tokens, d.output_audio_tokens,
        CASE WHEN d.r IS NOT NULL THEN d.conversation_id ELSE c.conversation_id END AS conversation_id,
        coalesce(d.metadata, c.metadata) AS metadata,
        CASE WHEN d.r IS NOT NULL THEN d.output_modalities ELSE c.output_modalities END AS output_modalities
    FROM created c FULL OUTER JOIN done d ON c.session_id = d.session_id AND c.response_id = d.response_id
)
SELECT
    j.session_id,
    j.response_id,
    CASE WHEN a.request_id IS NOT NULL THEN 'client' WHEN j.created_seq IS NOT NULL THEN 'server' END
        AS initiated_by,
    a.request_id,
    j.created_seq,
    j.done_seq,
    j.created_at,
    j.done_at,
    CAST(timezone('UTC', coalesce(j.done_at, j.created_at)) AS DATE) AS day,
    coalesce(s.model, o.model) AS model,
    j.status ->> '$' AS status,
    j.status_details,
    j.error_type ->> '$' AS error_type,
    j.error_code ->> '$' AS error_code,
    j.error_message ->> '$' AS error_message,
    j.reason ->> '$' AS reason,
    j.conversation_id ->> '$' AS conversation_id,
    j.metadata,
    CASE WHEN json_type(j.output_modalities) = 'ARRAY'
         THEN array_to_string(json_extract_string(j.output_modalities, '$[*]'), '+')
    END AS output_modalities,
    CASE WHEN json_type(j.output) = 'ARRAY' THEN json_array_length(j.output) END AS output_items,
    coalesce(calls.function_calls, []) AS function_calls,
    coalesce(calls.mcp_calls, []) AS mcp_calls,
    TRY_CAST(j.input_tokens ->> '$' AS BIGINT) AS input_tokens,
    TRY_CAST(j.output_tokens ->> '$' AS BIGINT) AS output_tokens,
    TRY_CAST(j.total_tokens ->> '$' AS BIGINT) AS total_tokens,
    TRY_CAST(j.cached_tokens ->> '$' AS BIGINT) AS cached_tokens,
    TRY_CAST(j.input_text_tokens ->> '$' AS BIGINT) AS input_text_tokens,
    TRY_CAST(j.input_audio_tokens ->> '$' AS BIGINT) AS input_audio_tokens,
    TRY_CAST(j.output_text_tokens ->> '$' AS BIGINT) AS output_text_tokens,
    TRY_CAST(j.output_audio_tokens ->> '$' AS BIGINT) AS output_audio_tokens,
    f.type AS first_delta_type,
    ms_between(j.created_mono_ns, f.mono_ns) AS time_to_first_delta_ms,
    ms_between(j.created_mono_ns, j.done_mono_ns) AS duration_ms,
    j.created_mono_ns,
    j.done_mono_ns
FROM joined j
LEFT JOIN answers a
    ON a.session_id = j.session_id AND a.answer_seq = j.created_seq AND a.answer_type = 'response.created'
LEFT JOIN calls ON calls.session_id = j.session_id AND calls.response_id = j.response_id
LEFT JOIN first_delta f ON f.session_id = j.session_id AND f.response_id = j.response_id
ASOF LEFT JOIN session_events s
    ON s.session_id = j.session_id AND coalesce(j.created_seq, j.done_seq) > s.seq
LEFT JOIN (SELECT session_id, arg_min(model, seq) AS model FROM session_config WHERE source = 'open'
           GROUP BY session_id) o ON o.session_id = j.session_id
