-- tool_calls: one row per function or MCP call in a response's final output (response.done -> output).
-- Answers: "which tools did the model call, with what arguments, and how long did the app take to answer?"
-- `output` is the function_call_output the client sent back (conversation.item.create with the same call_id;
-- for MCP calls, the item's own output); `latency_to_output_ms` runs from the call's
-- response.function_call_arguments.done (else its response.done) to that client event, monotonic clock.
-- Calls of responses that never reached response.done are not listed.
-- Relies on: control_events.direction, type, seq, mono_ns, response_id, payload ($.response.output[*] of
-- response.done; $.call_id of response.function_call_arguments.done; $.item of conversation.item.create).
WITH done AS (
    SELECT session_id, response_id, seq, mono_ns,
           json_extract(payload, '$.response.output[*]') AS items
    FROM control_events
    WHERE direction = 'server' AND type = 'response.done' AND json_valid(payload)
),
items AS (
    SELECT session_id, response_id, seq AS done_seq, mono_ns AS done_mono_ns,
           unnest(items) AS item, unnest(range(len(items))) AS output_index
    FROM done
),
calls AS (
    SELECT * FROM items WHERE item ->> 'type' IN ('function_call', 'mcp_call')
),
arguments_done AS (
    SELECT session_id, payload ->> 'call_id' AS call_id, min(seq) AS seq, arg_min(mono_ns, seq) AS mono_ns
    FROM control_events
    WHERE direction = 'server' AND type = 'response.function_call_arguments.done' AND json_valid(payload)
    GROUP BY ALL
),
outputs AS (  -- the app's function_call_output items, each payload parsed once
    SELECT session_id, f[2] AS call_id,
           min(seq) AS seq, arg_min(mono_ns, seq) AS mono_ns, arg_min(f[3], seq) AS output
    FROM (
        SELECT *, json_extract_string(payload, ['$.item.type', '$.item.call_id', '$.item.output']) AS f
        FROM control_events
        WHERE direction = 'client' AND type = 'conversation.item.create' AND json_valid(payload)
    )
    WHERE f[1] = 'function_call_output'
    GROUP BY ALL
)
SELECT
    c.session_id,
    c.response_id,
    c.done_seq,
    c.output_index,
    c.item ->> 'type' AS kind,
    c.item ->> 'id' AS item_id,
    c.item ->> 'call_id' AS call_id,
    c.item ->> 'name' AS name,
    c.item ->> 'server_label' AS server_label,
    c.item ->> 'arguments' AS arguments,
    c.item ->> 'status' AS status,
    a.seq AS arguments_done_seq,
    o.seq AS output_seq,
    CASE WHEN c.item ->> 'type' = 'mcp_call' THEN c.item ->> 'output' ELSE o.output END AS output,
    CASE WHEN c.item ->> 'type' = 'mcp_call' THEN c.item -> 'error' END AS mcp_error,
    ms_between(coalesce(a.mono_ns, c.done_mono_ns), o.mono_ns) AS latency_to_output_ms
FROM calls c
LEFT JOIN arguments_done a ON a.session_id = c.session_id AND a.call_id = c.item ->> 'call_id'
LEFT JOIN outputs o
    ON c.item ->> 'type' = 'function_call' AND o.session_id = c.session_id AND o.call_id = c.item ->> 'call_id'
