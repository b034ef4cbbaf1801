-- refused: connections the proxy refused before they became sessions (head timeout 408, bad upgrade request
-- 400, too many upgrade requests in progress 503, no descriptor left to accept), from the `proxy.refused`
-- records of each proxy run's own session (recorder/refusals.py). A row is one refusal, or (`count` > 1) a
-- summary of a flood's refusals of one reason between `first` and `last`. The session holding them is not an
-- app session: `sessions` and `voice_sessions` leave it out (docs/definitions.md, "Sessions").
-- Answers: "which connections never became sessions, why, from where, how many?"
-- Relies on: control_events (proxy.refused).
SELECT session_id, seq, ts,
       payload ->> '$.reason' AS reason,
       TRY_CAST(payload ->> '$.status' AS INTEGER) AS status,
       payload ->> '$.peer' AS peer,
       payload ->> '$.path' AS path,
       coalesce(TRY_CAST(payload ->> '$.count' AS BIGINT), 1) AS count,
       payload ->> '$.first' AS first,
       payload ->> '$.last' AS last
FROM control_events
WHERE direction = 'proxy' AND type = 'proxy.refused' AND json_valid(payload)
