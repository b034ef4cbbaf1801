-- tool_rounds: one row per function call the server streamed (first response.function_call_arguments.done per
-- call_id), with the app's function_call_output and the response that followed it.
-- Answers: "how long did the app take to answer each tool call, and the model to speak after it; which calls
-- were never answered?" (docs/definitions.md, "Latency" and "Failures"). The output is the first client
-- conversation.item.create of a function_call_output item with that call_id; the next response is the first
-- response.created after the output (any response). `out_of_band` calls (their response has
-- conversation_id null) are the app's structured output and are never "hung".
-- Relies on: control_events (function_call_arguments.done, conversation.item.create, response.created),
-- voice_responses (first_mono, out_of_band).
WITH calls AS (
    SELECT session_id, f[1] AS call_id, min(seq) AS seq, arg_min(mono_ns, seq) AS mono_ns, arg_min(ts, seq) AS ts,
           arg_min(f[2], seq) AS name, arg_min(response_id, seq) AS response_id
    FROM (SELECT *, json_extract_string(payload, ['$.call_id', '$.name']) AS f FROM control_events
          WHERE direction = 'server' AND type = 'response.function_call_arguments.done' AND json_valid(payload)
            AND json_type(payload, '$.call_id') = 'VARCHAR')
    GROUP BY ALL
),
outputs AS (
    SELECT session_id, f[2] AS call_id, min(seq) AS seq, arg_min(mono_ns, seq) AS mono_ns, arg_min(ts, seq) AS ts
    FROM (SELECT *, json_extract_string(payload, ['$.item.type', '$.item.call_id']) AS f FROM control_events
          WHERE direction = 'client' AND type = 'conversation.item.create' AND json_valid(payload)
            AND json_type(payload, '$.item.call_id') = 'VARCHAR')
    WHERE f[1] = 'function_call_output'
    GROUP BY ALL
),
created AS (
    SELECT session_id, response_id, created_seq FROM voice_responses WHERE created_seq IS NOT NULL
),
answered AS (
    SELECT o.*, r.response_id AS next_response_id
    FROM outputs o ASOF LEFT JOIN created r ON r.session_id = o.session_id AND r.created_seq > o.seq
)
SELECT
    coalesce(c.session_id, a.session_id) AS session_id,
    coalesce(c.call_id, a.call_id) AS call_id,
    c.seq AS call_seq, c.ts AS call_ts, c.mono_ns AS call_mono, c.name, c.response_id,
    coalesce(vr.out_of_band, false) AS out_of_band,
    a.seq AS output_seq, a.ts AS output_ts, a.mono_ns AS output_mono,
    a.next_response_id,
    n.first_mono AS next_first_mono
FROM calls c
FULL OUTER JOIN answered a ON a.session_id = c.session_id AND a.call_id = c.call_id
LEFT JOIN voice_responses vr ON vr.session_id = c.session_id AND vr.response_id = c.response_id
LEFT JOIN voice_responses n ON n.session_id = a.session_id AND n.response_id = a.next_response_id
