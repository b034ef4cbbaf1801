-- answers: every server event that can answer a request, and the request it answers (NULL: none).
-- Answers: "what did the server do with request X, and which responses did nobody ask for?"
-- Implements docs/definitions.md, "Matching": (1) an `error` whose error.event_id equals a request's
-- non-null event_id rejects that request (first such error after it; rule `event_id`); (2) the other
-- requests are matched first-in-first-out, per session, with the ordered answers (`response.created`, and
-- `error`s with null error.event_id whose code is conversation_already_has_active_response or whose param
-- starts with "response."). The queue counter of the definition is computed with window functions: give
-- waiting requests +1 and ordered answers -1, and let x be the running sum in seq order. An answer finds
-- the queue empty exactly when x falls to a new minimum below 0 (waiting = x - min(0, min x so far)); the
-- other answers, in order, answer the waiting requests in order: as -min(0, min x so far) answers so far
-- found it empty, an answer that did not is matched answer number (answers so far + min(0, min x so far)).
-- Relies on: control_events.direction, type, seq, mono_ns, event_id (the rows of `requests`), response_id,
-- payload ($.error.event_id, type, code, param; $.response.metadata of response.created).
WITH errors_seen AS (
    SELECT session_id, seq, mono_ns,
           f[1] AS for_event_id, f[2] AS error_type, f[3] AS error_code, f[4] AS error_param
    FROM (
        SELECT session_id, seq, mono_ns,  -- one parse per error
               json_extract_string(payload, [
                   '$.error.event_id', '$.error.type', '$.error.code', '$.error.param']) AS f
        FROM control_events
        WHERE direction = 'server' AND type = 'error' AND json_valid(payload)
    )
),
created AS (
    SELECT session_id, seq, mono_ns, response_id,
           CASE WHEN json_valid(payload) THEN json_extract(payload, '$.response.metadata') END AS echoed_metadata
    FROM control_events
    WHERE direction = 'server' AND type = 'response.created'
),
answer_events AS (
    SELECT session_id, seq, mono_ns, 'response.created' AS answer_type, response_id, echoed_metadata,
           NULL AS error_type, NULL AS error_code
    FROM created
    UNION ALL
    SELECT session_id, seq, mono_ns, 'error', NULL, NULL, error_type, error_code FROM errors_seen
),
request_events AS (  -- the rows of `requests`, without the parameters that view works out
    SELECT session_id, seq, event_id FROM control_events WHERE direction = 'client' AND type = 'response.create'
),
rejected_by_id AS (
    SELECT r.session_id, r.seq AS request_seq, min(e.seq) AS answer_seq
    FROM request_events r
    JOIN errors_seen e ON e.session_id = r.session_id AND e.for_event_id = r.event_id AND e.seq > r.seq
    GROUP BY r.session_id, r.seq
),
stream AS (
    SELECT r.session_id, r.seq, 1 AS step
    FROM request_events r ANTI JOIN rejected_by_id x ON x.session_id = r.session_id AND x.request_seq = r.seq
    UNION ALL
    SELECT session_id, seq, -1 FROM created
    UNION ALL
    SELECT session_id, seq, -1 FROM errors_seen
    WHERE for_event_id IS NULL
      AND (error_code = 'conversation_already_has_active_response' OR starts_with(error_param, 'response.'))
),
counted AS (  -- in seq order: rows so far, and rows of the same kind (request or answer) so far
    SELECT *,
           row_number() OVER (PARTITION BY session_id ORDER BY seq) AS rows_so_far,
           row_number() OVER (PARTITION BY session_id, step ORDER BY seq) AS kind_so_far
    FROM stream
),
totals AS (  -- the requests and answers so far, and x (row_number is cheaper than a running sum)
    SELECT session_id, seq, step,
           CASE WHEN step = 1 THEN kind_so_far ELSE rows_so_far - kind_so_far END AS requests_so_far,
           CASE WHEN step = -1 THEN kind_so_far ELSE rows_so_far - kind_so_far END AS answers_so_far,
           requests_so_far - answers_so_far AS x
    FROM counted
),
floored AS (  -- floor: min(0, lowest x before this row)
    SELECT *, least(0, coalesce(min(x) OVER (PARTITION BY session_id ORDER BY seq
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS floor
    FROM totals
),
queued AS (  -- waiting requests, numbered in order
    SELECT session_id, seq, requests_so_far AS n FROM floored WHERE step = 1
),
ordered AS (  -- ordered answers; those that found a request waiting are numbered in order
    SELECT session_id, seq, x >= floor AS matched,
           -- the unmatched answers so far number -least(floor, x), the new low of x
           answers_so_far + least(floor, x) AS n
    FROM floored WHERE step = -1
),
answered AS (
    SELECT o.session_id, o.seq AS answer_seq, q.seq AS request_seq, 'order' AS rule
    FROM ordered o LEFT JOIN queued q ON o.matched AND q.session_id = o.session_id AND q.n = o.n
    UNION ALL
    SELECT session_id, answer_seq, request_seq, 'event_id' FROM rejected_by_id
)
SELECT
    a.session_id,
    a.answer_seq,
    e.answer_type,
    a.request_seq,
    CASE WHEN a.request_seq IS NOT NULL THEN a.session_id || ':' || a.request_seq END AS request_id,
    a.rule,
    e.mono_ns,
    e.response_id,
    e.echoed_metadata,
    e.error_type,
    e.error_code
FROM answered a
JOIN answer_events e ON e.session_id = a.session_id AND e.seq = a.answer_seq
