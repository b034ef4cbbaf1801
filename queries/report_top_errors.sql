-- report top_errors: the most frequent errors, by where they came from, type and code.
-- Answers: "what goes wrong most often?" `sessions` counts distinct sessions; `rejected_requests` how many
-- of them answered a request (see answers.sql); `example` is the first message seen.
-- Relies on: errors (source, error_type, error_code, message, session_id, ts, request_id).
SELECT
    source,
    error_type,
    error_code,
    count(*) AS errors,
    count(DISTINCT session_id) AS sessions,
    count(request_id) AS rejected_requests,
    min(ts) AS first_seen,
    max(ts) AS last_seen,
    arg_min(message, ts) AS example
FROM errors
GROUP BY source, error_type, error_code
ORDER BY errors DESC, source, error_type NULLS LAST, error_code NULLS LAST
