-- response_done: one row per response that reached response.done (its first, per response_id and session).
-- Answers: "how did each finished response end: status, error, reason, output calls, token usage?" The
-- columns `responses` and `outcomes` share; `responses` adds what needs its response.created (initiated_by,
-- timings, model). `has_response` is false when the event carries no `response` (or is not JSON): then
-- `responses` takes conversation_id, metadata and modalities from the response.created instead.
-- Relies on: control_events.direction, type, seq, ts, mono_ns, response_id, payload ($.response.status,
-- status_details, conversation_id, metadata, output_modalities, output, usage).
-- Each payload is parsed once: one json_extract over a list of paths, whose elements are named in `parsed`.
WITH parsed AS (
    SELECT session_id, response_id, seq, ts, mono_ns, f[1] IS NOT NULL AS has_response, f[2] AS conversation_id,
           f[3] AS metadata, f[4] AS output_modalities, f[5] AS status_details, f[6] AS output, f[7] AS status,
           f[8] AS error_type, f[9] AS error_code, f[10] AS error_message, f[11] AS reason, f[12] AS input_tokens,
           f[13] AS output_tokens, f[14] AS total_tokens, f[15] AS cached_tokens, f[16] AS input_text_tokens,
           f[17] AS input_audio_tokens, f[18] AS output_text_tokens, f[19] AS output_audio_tokens
    FROM (
        SELECT *, CASE WHEN json_valid(payload) THEN json_extract(payload, [
                   '$.response', '$.response.conversation_id', '$.response.metadata',
                   '$.response.output_modalities',
                   '$.response.status_details', '$.response.output', '$.response.status',
                   '$.response.status_details.error.type', '$.response.status_details.error.code',
                   '$.response.status_details.error.message', '$.response.status_details.reason',
                   '$.response.usage.input_tokens', '$.response.usage.output_tokens',
                   '$.response.usage.total_tokens',
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
    SELECT session_id, response_id, unnest(json_extract(output, '$[*]')) AS item FROM parsed
),
calls AS (
    SELECT
        session_id, response_id,
        list(item ->> 'name') FILTER (WHERE item ->> 'type' = 'function_call') AS function_calls,
        list({'server_label': item ->> 'server_label', 'name': item ->> 'name'})
            FILTER (WHERE item ->> 'type' = 'mcp_call') AS mcp_calls
    FROM output_items
    GROUP BY session_id, response_id
)
SELECT
    d.session_id,
    d.response_id,
    d.seq AS done_seq,
    d.ts AS done_at,
    d.mono_ns AS done_mono_ns,
    d.has_response,
    d.status ->> '$' AS status,
    d.status_details,
    d.error_type ->> '$' AS error_type,
    d.error_code ->> '$' AS error_code,
    d.error_message ->> '$' AS error_message,
    d.reason ->> '$' AS reason,
    d.conversation_id ->> '$' AS conversation_id,
    d.metadata,
    modalities_text(d.output_modalities) AS output_modalities,
    CASE WHEN json_type(d.output) = 'ARRAY' THEN json_array_length(d.output) END AS output_items,
    coalesce(c.function_calls, []) AS function_calls,
    coalesce(c.mcp_calls, []) AS mcp_calls,
    TRY_CAST(d.input_tokens ->> '$' AS BIGINT) AS input_tokens,
    TRY_CAST(d.output_tokens ->> '$' AS BIGINT) AS output_tokens,
    TRY_CAST(d.total_tokens ->> '$' AS BIGINT) AS total_tokens,
    TRY_CAST(d.cached_tokens ->> '$' AS BIGINT) AS cached_tokens,
    TRY_CAST(d.input_text_tokens ->> '$' AS BIGINT) AS input_text_tokens,
    TRY_CAST(d.input_audio_tokens ->> '$' AS BIGINT) AS input_audio_tokens,
    TRY_CAST(d.output_text_tokens ->> '$' AS BIGINT) AS output_text_tokens,
    TRY_CAST(d.output_audio_tokens ->> '$' AS BIGINT) AS output_audio_tokens
FROM parsed d
LEFT JOIN calls c ON c.session_id = d.session_id AND c.response_id = d.response_id
