-- report out_of_band: out-of-band requests (conversation "none") by tool_choice form and input kind.
-- Answers: "how do out-of-band responses fare, with which context, and can we tell them apart?" Counts and
-- failure rate as in failure_rate; `with_metadata` requests that sent metadata; `matched_by_metadata` those
-- whose response.created echoed it (pairing `metadata`); forced calls made/missing.
-- Relies on: outcomes (scope, form_sent, input_kind, outcome, metadata, pairing, forced_call).
SELECT
    form_sent,
    input_kind,
    count(*) AS requests,
    count(*) FILTER (WHERE outcome = 'completed') AS completed,
    count(*) FILTER (WHERE outcome = 'failed') AS failed,
    count(*) FILTER (WHERE outcome = 'rejected') AS rejected,
    count(*) FILTER (WHERE outcome = 'unfinished') AS unfinished,
    count(*) FILTER (WHERE outcome IN ('cancelled', 'incomplete')) AS cancelled_or_incomplete,
    count(*) FILTER (WHERE outcome = 'failed')
        / nullif(count(*) FILTER (WHERE outcome <> 'unfinished'), 0) AS failure_rate,
    count(metadata) AS with_metadata,
    count(*) FILTER (WHERE pairing = 'metadata') AS matched_by_metadata,
    count(*) FILTER (WHERE forced_call) AS forced_call_made,
    count(*) FILTER (WHERE NOT forced_call) AS forced_call_missing
FROM outcomes
WHERE scope = 'out-of-band'
GROUP BY form_sent, input_kind
ORDER BY list_position(['absent', 'auto', 'none', 'required', 'function', 'mcp', 'invalid'], form_sent),
         list_position(['absent', 'empty', 'items'], input_kind)
