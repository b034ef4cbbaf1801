-- outcomes: one row per request (every column of `requests`) with what became of it.
-- Answers: "which requests completed, failed, were cancelled, cut short, rejected or never finished — and
-- was the forced tool call made?" Implements docs/definitions.md ("Matching", "Outcome", "forced call"):
-- `outcome` is completed | failed | cancelled | incomplete | rejected | unfinished; `pairing` is
-- error_event_id | error_order | metadata | done_metadata | conversation | order and `confidence` high | low
-- (NULL when unanswered); `latency_ms` is request -> response.done (or -> the
-- rejecting error) on the monotonic clock.
-- Relies on: requests; answers (answer_seq, answer_type, pairing, response_id, echoed_metadata, error_*);
-- response_done (done_seq, status, error_type, error_code, reason, function_calls, mcp_calls, done_mono_ns).
WITH joined AS (
    SELECT
        q.*,
        a.answer_seq,
        a.answer_type,
        a.pairing,
        CASE  -- how sure: `conversation` is sure only for an out-of-band request (never taken for VAD's)
            WHEN a.pairing IN ('error_event_id', 'metadata', 'done_metadata') THEN 'high'
            WHEN a.pairing = 'conversation' AND q.scope = 'out-of-band' THEN 'high'
            WHEN a.pairing IS NOT NULL THEN 'low'
        END AS confidence,
        a.response_id,
        r.done_seq,
        CASE
            WHEN a.answer_type = 'error' THEN 'rejected'
            WHEN a.answer_seq IS NULL OR r.done_seq IS NULL THEN 'unfinished'
            WHEN r.status IN ('completed', 'failed', 'cancelled', 'incomplete') THEN r.status
            ELSE 'failed'  -- any other status counts as failed, with error_type = the status
        END AS outcome,
        CASE
            WHEN outcome = 'rejected' THEN a.error_type
            WHEN outcome = 'failed' AND r.status = 'failed' THEN r.error_type
            WHEN outcome = 'failed' THEN r.status
        END AS error_type,
        CASE WHEN outcome IN ('rejected', 'failed') THEN coalesce(a.error_code, r.error_code) END AS error_code,
        CASE WHEN outcome IN ('cancelled', 'incomplete') THEN r.reason END AS reason,
        CASE
            WHEN q.form_effective NOT IN ('required', 'function', 'mcp') OR outcome IN ('rejected', 'unfinished')
                THEN NULL
            WHEN q.form_effective = 'required' THEN len(r.function_calls) + len(r.mcp_calls) > 0
            WHEN q.form_effective = 'function' THEN list_contains(r.function_calls, q.forced_name)
            ELSE len(list_filter(r.mcp_calls, lambda c: c.server_label = q.forced_name
                                 AND (q.forced_mcp_tool IS NULL OR c.name = q.forced_mcp_tool))) > 0
        END AS forced_call,
        CASE
            WHEN outcome = 'rejected' THEN ms_between(q.mono_ns, a.mono_ns)
            WHEN outcome <> 'unfinished' THEN ms_between(q.mono_ns, r.done_mono_ns)
        END AS latency_ms
    FROM requests q
    LEFT JOIN answers a ON a.session_id = q.session_id AND a.request_seq = q.seq
    LEFT JOIN response_done r
        ON a.answer_type IN ('response.created', 'response.done') AND r.session_id = a.session_id
       AND r.response_id = a.response_id
)
SELECT * EXCLUDE (payload), payload FROM joined
