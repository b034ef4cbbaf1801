-- errors: every error the archive holds, one row each, whatever carried it.
-- Answers: "what went wrong, where, and which request caused it?" `source` is `error` (a server error
-- event), `response.done` (a response that ended `failed`), `transcription` (input audio transcription
-- failed) or `proxy` (the proxy's own proxy.error / proxy.upstream_rejected records; `message` is their
-- payload). `caused_by` is the type of the latest client event before the error with the event_id it names
-- (docs/definitions.md, "Matching" 1); `request_id` is
-- set when the error answered (rejected) a request, see answers.sql.
-- Relies on: control_events.direction, type, seq, ts, event_id, response_id, item_id, payload ($.error.* ;
-- $.response.status_details.error.*); events.direction, event_id, type (client events); answers.
WITH client_ids AS (
    SELECT session_id, seq, event_id, type FROM events WHERE direction = 'client' AND event_id IS NOT NULL
),
error_events AS (  -- `error` events and failed transcriptions: the `error` object, parsed once per event
    SELECT session_id, seq, ts, CASE WHEN type = 'error' THEN 'error' ELSE 'transcription' END AS source,
           f[1] AS error_type, f[2] AS error_code, f[3] AS message, f[4] AS param,
           CASE WHEN type = 'error' THEN f[5] END AS client_event_id, response_id, item_id
    FROM (
        SELECT *, json_extract_string(payload, [
                   '$.error.type', '$.error.code', '$.error.message', '$.error.param', '$.error.event_id']) AS f
        FROM control_events
        WHERE direction = 'server' AND type IN ('error', 'conversation.item.input_audio_transcription.failed')
          AND json_valid(payload)
    )
),
failed_responses AS (
    SELECT session_id, seq, ts, 'response.done' AS source, f[2] AS error_type, f[3] AS error_code,
           f[4] AS message, NULL AS param, NULL AS client_event_id, response_id, item_id
    FROM (
        SELECT *, json_extract_string(payload, [
                   '$.response.status', '$.response.status_details.error.type',
                   '$.response.status_details.error.code', '$.response.status_details.error.message']) AS f
        FROM control_events
        WHERE direction = 'server' AND type = 'response.done' AND json_valid(payload)
    )
    WHERE f[1] = 'failed'
),
proxy AS (
    SELECT session_id, seq, ts, 'proxy' AS source, type, NULL, payload, NULL, NULL, response_id, item_id
    FROM control_events WHERE direction = 'proxy' AND type IN ('proxy.error', 'proxy.upstream_rejected')
),
all_errors AS (
    SELECT * FROM error_events
    UNION ALL SELECT * FROM failed_responses
    UNION ALL SELECT * FROM proxy
)
SELECT
    e.session_id, e.seq, e.ts, e.source, e.error_type, e.error_code, e.message, e.param,
    e.client_event_id, c.type AS caused_by, a.request_id, e.response_id, e.item_id
FROM all_errors e
ASOF LEFT JOIN client_ids c  -- the latest client event before the error with the id it names (only errors name one)
    ON c.session_id = e.session_id AND c.event_id = e.client_event_id AND c.seq < e.seq
LEFT JOIN answers a
    ON e.source = 'error' AND a.answer_type = 'error' AND a.session_id = e.session_id AND a.answer_seq = e.seq
