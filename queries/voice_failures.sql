-- voice_failures: one row per failure of the one taxonomy of docs/definitions.md, "Failures", whether or not
-- the wire said "failed": kind, detail, cause (the client event type an error names by event_id; response.create
-- for an ordered rejection), at the seq and time of the event that shows it.
-- Answers: "what went wrong in each session, including what never said failed?"
-- Relies on: control_events, voice_responses, tool_rounds, truncations, barge_ins.
WITH errs AS (
    SELECT session_id, seq, ts, f[1] AS for_id, coalesce(f[2], f[3]) AS code, f[4] AS param,
           ordered_rejection(f[1], f[2], f[4], f[5]) AS ordered
    FROM (SELECT *, CASE WHEN json_valid(payload) AND json_type(payload, '$.error') = 'OBJECT'
                         THEN json_extract_string(payload, ['$.error.event_id', '$.error.code', '$.error.type',
                                                            '$.error.param', '$.error.message'])
                         ELSE [NULL, NULL, NULL, NULL, NULL] END AS f
          FROM control_events WHERE direction = 'server' AND type = 'error')
),
client_ids AS (  -- an error naming an event_id names the latest client event before it with that id
    SELECT session_id, seq, event_id, type FROM control_events WHERE direction = 'client' AND event_id IS NOT NULL
),
proxy AS (
    SELECT * FROM control_events WHERE direction = 'proxy' AND json_valid(payload)
),
all_failures AS (
    SELECT session_id, done_seq AS seq, ts, 'response_failed' AS kind, detail, NULL AS cause FROM voice_responses
    WHERE done_seq IS NOT NULL AND (status IS NULL OR status NOT IN ('completed', 'incomplete', 'cancelled'))
    UNION ALL
    SELECT session_id, done_seq, ts, 'response_incomplete', detail, NULL FROM voice_responses
    WHERE done_seq IS NOT NULL AND status = 'incomplete'
    UNION ALL
    SELECT session_id, created_seq, ts, 'response_without_done', NULL, NULL FROM voice_responses
    WHERE created_seq IS NOT NULL AND (done_seq IS NULL OR done_seq < created_seq)
    UNION ALL
    SELECT e.session_id, e.seq, e.ts, CASE WHEN e.code = 'session_expired' THEN 'session_expired' ELSE 'error' END,
           e.code,
           coalesce(c.type, CASE WHEN e.ordered THEN 'response.create' END)
    FROM errs e ASOF LEFT JOIN client_ids c ON c.session_id = e.session_id AND c.event_id = e.for_id AND e.seq > c.seq
    UNION ALL
    SELECT session_id, seq, ts, 'transcription_failed',
           CASE WHEN json_valid(payload) THEN coalesce(payload ->> '$.error.code', payload ->> '$.error.type') END, NULL
    FROM control_events WHERE direction = 'server' AND type = 'conversation.item.input_audio_transcription.failed'
    UNION ALL
    SELECT session_id, call_seq, call_ts, 'hung_tool_call', name, NULL FROM tool_rounds
    WHERE call_seq IS NOT NULL AND output_seq IS NULL AND NOT out_of_band
    UNION ALL
    SELECT session_id, output_seq, output_ts, 'output_without_response', call_id, NULL FROM tool_rounds
    WHERE output_seq IS NOT NULL AND next_response_id IS NULL
    UNION ALL
    SELECT session_id, seq, ts, 'barge_in_not_truncated', response_id, NULL FROM barge_ins WHERE truncate_seq IS NULL
    UNION ALL
    SELECT session_id, seq, ts, 'invalid_truncate', item_id, NULL FROM truncations WHERE NOT valid
    UNION ALL
    SELECT session_id, seq, ts, 'proxy_error', NULL, NULL FROM control_events
    WHERE direction = 'proxy' AND type = 'proxy.error'
    UNION ALL
    SELECT session_id, seq, ts, 'upstream_rejected', payload ->> '$.status', NULL FROM proxy
    WHERE type = 'proxy.upstream_rejected'
    UNION ALL
    SELECT session_id, seq, ts, 'proxy_stopped', NULL, NULL FROM proxy
    WHERE type = 'proxy.close' AND payload ->> '$.stopped' IS NOT NULL
    UNION ALL
    SELECT session_id, seq, ts, 'upstream_close', payload ->> '$.server.code', NULL FROM proxy
    WHERE type = 'proxy.close' AND payload ->> '$.stopped' IS NULL AND json_type(payload, '$.server') = 'OBJECT'
      AND json_type(payload, '$.server.code') IN ('BIGINT', 'UBIGINT')
      AND CAST(payload ->> '$.server.code' AS BIGINT) <> 1000
    UNION ALL
    SELECT session_id, seq, ts, 'upstream_drop', NULL, NULL FROM proxy
    WHERE type = 'proxy.close' AND payload ->> '$.stopped' IS NULL
      AND coalesce(json_type(payload, '$.server'), 'NULL') = 'NULL'
      AND payload ->> '$.first_disconnect' = 'server'
)
SELECT * FROM all_failures
