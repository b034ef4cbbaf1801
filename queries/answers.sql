-- answers: every server event that can answer a request, and the request it answers (NULL: none).
-- Answers: "what did the server do with request X, which responses did nobody ask for, and how sure is each
-- pairing?" Implements docs/definitions.md, "Matching": (1) an `error` naming an event_id answers the latest
-- client event before it with that id, and rejects it when it is a response.create (pairing
-- `error_event_id`); (2) the other requests wait with a key (metadata, out-of-band or not); walking the
-- session in seq order, a `response.created` (or a `response.done` with no response.created before it,
-- echoing metadata) answers the oldest waiting request with its key, and an `error` with null event_id
-- about a response.create answers the oldest waiting request. Taking "the oldest waiting request with a
-- key" out of the middle of a queue is not a running sum, so the walk is a recursive CTE: one step per
-- stream row (requests and possible answers only), all sessions advancing together, the queue as two lists.
-- Relies on: control_events.direction, type, seq, mono_ns, event_id, response_id, payload ($.error.event_id,
-- type, code, param; $.response.metadata, conversation_id, conversation of requests and responses).
WITH RECURSIVE errors_seen AS (
    SELECT session_id, seq, mono_ns,
           f[1] AS for_event_id, f[2] AS error_type, f[3] AS error_code, f[4] AS error_param, f[5] AS error_message
    FROM (
        SELECT session_id, seq, mono_ns,  -- one parse per error
               json_extract_string(payload, [
                   '$.error.event_id', '$.error.type', '$.error.code', '$.error.param', '$.error.message']) AS f
        FROM control_events
        WHERE direction = 'server' AND type = 'error' AND json_valid(payload)
    )
),
client_ids AS (SELECT session_id, seq, type, event_id FROM control_events WHERE direction = 'client'),
named AS (  -- rule 1: each error naming an event_id answers the latest client event before it with that id
    SELECT e.session_id, e.seq AS answer_seq, c.seq AS client_seq, c.type AS client_type
    FROM errors_seen e
    ASOF JOIN client_ids c ON c.session_id = e.session_id AND c.event_id = e.for_event_id AND c.seq < e.seq
),
rejected_by_id AS (  -- the first error naming a response.create rejects it
    SELECT session_id, client_seq AS request_seq, min(answer_seq) AS answer_seq
    FROM named WHERE client_type = 'response.create'
    GROUP BY session_id, client_seq
),
-- Keys as text: the metadata (a non-empty object, sorted entries) or '' ; out-of-band as a boolean, NULL
-- on an answer whose response has no conversation_id key (then only the metadata is compared).
responses_seen AS (
    SELECT *, row_number() OVER (PARTITION BY session_id, response_id, type ORDER BY seq) AS nth,
           min(seq) FILTER (WHERE type = 'response.created') OVER (PARTITION BY session_id, response_id)
               AS first_created_seq
    FROM (
        SELECT session_id, seq, mono_ns, type, response_id, f[1] AS metadata, json_type(f[2]) AS conversation_type
        FROM (
            SELECT *, CASE WHEN json_valid(payload) THEN json_extract(payload, [
                       '$.response.metadata', '$.response.conversation_id']) END AS f
            FROM control_events
            WHERE direction = 'server' AND type IN ('response.created', 'response.done')
        )
    )
),
created AS (  -- every response.created, and the first response.done of a response not created before it
    SELECT session_id, seq, mono_ns, type, response_id, metadata AS echoed_metadata,
           coalesce(conversation_type = 'NULL', true) AS oob, conversation_type IS NULL AS oob_unknown
    FROM responses_seen
    WHERE type = 'response.created'
       OR (nth = 1 AND response_id IS NOT NULL AND metadata_key(metadata) <> ''
           AND coalesce(first_created_seq > seq, true))
),
waiting_requests AS (
    SELECT session_id, seq,
           f[1] AS metadata, coalesce(f[2] ->> '$' = 'none' AND json_type(f[2]) = 'VARCHAR', false) AS oob
    FROM (
        SELECT session_id, seq, CASE WHEN json_valid(payload) THEN json_extract(payload, [
                   '$.response.metadata', '$.response.conversation']) END AS f
        FROM control_events c
        WHERE direction = 'client' AND type = 'response.create'
          AND NOT EXISTS (SELECT 1 FROM rejected_by_id x WHERE x.session_id = c.session_id AND x.request_seq = c.seq)
    )
),
stream AS (  -- kind: q request, a response answer, e ordered error
    SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY seq) AS rn
    FROM (
        SELECT session_id, seq, 'q' AS kind, metadata_key(metadata) AS meta, oob, false AS oob_unknown
        FROM waiting_requests
        UNION ALL
        SELECT session_id, seq, 'a', metadata_key(echoed_metadata), oob, oob_unknown FROM created
        UNION ALL
        SELECT session_id, seq, 'e', NULL, NULL, NULL FROM errors_seen
        WHERE ordered_rejection(for_event_id, error_code, error_param, error_message)
    )
),
walk AS (  -- the queue after each stream row, and what that row answered
    SELECT session_id, 0::BIGINT AS rn, []::BIGINT[] AS queue, []::VARCHAR[] AS metas, []::BOOLEAN[] AS oobs,
           NULL::BIGINT AS answer_seq, NULL::BIGINT AS request_seq, NULL::BIGINT AS candidates
    FROM stream GROUP BY session_id
    UNION ALL
    SELECT session_id, rn,
           CASE WHEN kind = 'q' THEN list_append(queue, seq) WHEN p = 0 THEN queue
                ELSE list_concat(list_slice(queue, 1, p - 1), list_slice(queue, p + 1, len(queue))) END,
           CASE WHEN kind = 'q' THEN list_append(metas, meta) WHEN p = 0 THEN metas
                ELSE list_concat(list_slice(metas, 1, p - 1), list_slice(metas, p + 1, len(metas))) END,
           CASE WHEN kind = 'q' THEN list_append(oobs, oob) WHEN p = 0 THEN oobs
                ELSE list_concat(list_slice(oobs, 1, p - 1), list_slice(oobs, p + 1, len(oobs))) END,
           CASE WHEN kind <> 'q' THEN seq END,
           CASE WHEN p > 0 THEN queue[p] END,
           n
    FROM (
        SELECT *,
               CASE kind WHEN 'e' THEN least(len(queue), 1)
                         WHEN 'a' THEN coalesce(list_position(fits, true), 0) ELSE 0 END AS p,
               CASE kind WHEN 'a' THEN len(list_filter(fits, lambda f: f)) END AS n
        FROM (
            SELECT w.session_id, s.rn, s.kind, s.seq, w.queue, w.metas, w.oobs, s.meta, s.oob,
                   -- which waiting requests have this answer's key
                   list_transform(range(1, len(w.queue) + 1), lambda i: w.metas[i] = s.meta
                                  AND (s.oob_unknown OR w.oobs[i] = s.oob)) AS fits
            FROM walk w JOIN stream s ON s.session_id = w.session_id AND s.rn = w.rn + 1
        )
    )
),
answered AS (
    SELECT w.session_id, w.answer_seq, CASE WHEN w.request_seq IS NOT NULL THEN w.candidates END AS candidates,
           w.request_seq
    FROM walk w WHERE w.answer_seq IS NOT NULL
),
answer_events AS (
    SELECT session_id, seq, mono_ns, type AS answer_type, response_id, echoed_metadata,
           NULL::VARCHAR AS error_type, NULL::VARCHAR AS error_code
    FROM created
    UNION ALL
    SELECT session_id, seq, mono_ns, 'error', NULL, NULL::JSON, error_type, error_code FROM errors_seen
),
paired AS (
    SELECT a.session_id, a.answer_seq, a.request_seq,
           CASE WHEN e.answer_type = 'error' THEN 'error_order'
                WHEN a.candidates > 1 THEN 'order'
                WHEN e.answer_type = 'response.done' THEN 'done_metadata'
                WHEN metadata_key(e.echoed_metadata) <> '' THEN 'metadata'
                ELSE 'conversation' END AS pairing
    FROM answered a JOIN answer_events e ON e.session_id = a.session_id AND e.seq = a.answer_seq
    WHERE a.request_seq IS NOT NULL OR e.answer_type <> 'response.done'
    UNION ALL
    SELECT session_id, answer_seq, request_seq, 'error_event_id' FROM rejected_by_id
)
SELECT
    a.session_id,
    a.answer_seq,
    e.answer_type,
    a.request_seq,
    CASE WHEN a.request_seq IS NOT NULL THEN a.session_id || ':' || a.request_seq END AS request_id,
    CASE WHEN a.request_seq IS NOT NULL THEN a.pairing END AS pairing,
    e.mono_ns,
    e.response_id,
    e.echoed_metadata,
    e.error_type,
    e.error_code
FROM paired a
JOIN answer_events e ON e.session_id = a.session_id AND e.seq = a.answer_seq
