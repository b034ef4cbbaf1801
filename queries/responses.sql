-- responses: one row per response the server created or finished (by response_id, per session).
-- Answers: "how did each response end, how long did it take, what did it cost, and who asked for it?"
-- `initiated_by` is `client` when a request's answer (see answers.sql), `server` for turn detection;
-- `pairing` says how it was paired with its request.
-- `status` is NULL while no response.done was recorded. Latencies use the monotonic clock (mono_ns).
-- Relies on: control_events.direction, type, seq, ts, mono_ns, response_id, payload ($.response.conversation_id,
-- metadata, output_modalities of response.created); response_done; events (delta events: type, seq, mono_ns,
-- response_id); answers; session_config.
WITH created AS (  -- the first response.created per response_id, its payload parsed once
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
first_delta AS (
    SELECT session_id, response_id, min(seq) AS seq, arg_min(mono_ns, seq) AS mono_ns, arg_min(type, seq) AS type
    FROM events
    WHERE direction = 'server' AND type IN (
        'response.output_audio.delta', 'response.output_text.delta', 'response.output_audio_transcript.delta',
        'response.audio.delta', 'response.text.delta', 'response.audio_transcript.delta')  -- GA, then beta
    GROUP BY session_id, response_id
),
session_events AS (SELECT * FROM session_config WHERE source = 'session'),
joined AS (  -- the done event's fields win over the created event's when it carries a `response`
    SELECT
        coalesce(c.session_id, d.session_id) AS session_id,
        coalesce(c.response_id, d.response_id) AS response_id,
        c.seq AS created_seq, c.ts AS created_at, c.mono_ns AS created_mono_ns,
        d.* EXCLUDE (session_id, response_id, has_response, conversation_id, metadata, output_modalities),
        CASE WHEN d.has_response THEN d.conversation_id ELSE c.conversation_id ->> '$' END AS conversation_id,
        coalesce(d.metadata, c.metadata) AS metadata,
        CASE WHEN d.has_response THEN d.output_modalities ELSE modalities_text(c.output_modalities) END
            AS output_modalities
    FROM created c FULL OUTER JOIN response_done d ON c.session_id = d.session_id AND c.response_id = d.response_id
)
SELECT
    j.session_id,
    j.response_id,
    CASE WHEN a.request_id IS NOT NULL THEN 'client' WHEN j.created_seq IS NOT NULL THEN 'server' END
        AS initiated_by,
    a.request_id,
    a.pairing,
    j.created_seq,
    j.done_seq,
    j.created_at,
    j.done_at,
    CAST(timezone('UTC', coalesce(j.done_at, j.created_at)) AS DATE) AS day,
    coalesce(s.model, o.model) AS model,
    j.status,
    j.status_details,
    j.error_type,
    j.error_code,
    j.error_message,
    j.reason,
    j.conversation_id,
    j.metadata,
    j.output_modalities,
    j.output_items,
    coalesce(j.function_calls, []) AS function_calls,
    coalesce(j.mcp_calls, []) AS mcp_calls,
    j.input_tokens,
    j.output_tokens,
    j.total_tokens,
    j.cached_tokens,
    j.input_text_tokens,
    j.input_audio_tokens,
    j.output_text_tokens,
    j.output_audio_tokens,
    f.type AS first_delta_type,
    ms_between(j.created_mono_ns, f.mono_ns) AS time_to_first_delta_ms,
    ms_between(j.created_mono_ns, j.done_mono_ns) AS duration_ms,
    j.created_mono_ns,
    j.done_mono_ns
FROM joined j
LEFT JOIN answers a
    ON a.session_id = j.session_id AND a.request_seq IS NOT NULL AND (
        (a.answer_type = 'response.created' AND a.answer_seq = j.created_seq)
        OR (a.answer_type = 'response.done' AND a.answer_seq = j.done_seq))
LEFT JOIN first_delta f ON f.session_id = j.session_id AND f.response_id = j.response_id
ASOF LEFT JOIN session_events s
    ON s.session_id = j.session_id AND coalesce(j.created_seq, j.done_seq) > s.seq
LEFT JOIN (SELECT session_id, arg_min(model, seq) AS model FROM session_config WHERE source = 'open'
           GROUP BY session_id) o ON o.session_id = j.session_id
