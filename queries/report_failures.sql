-- report failures: failures by kind, detail and cause (= `rtreplay analyze --report failures`).
-- The taxonomy of docs/definitions.md, "Failures": count and sessions per kind, detail and cause (`kinds`). Details that name one thing (an item, a call, a
-- response) are not grouped by for invalid_truncate, output_without_response and barge_in_not_truncated.
-- Answers: "what went wrong, including everything that never said failed?"
-- Relies on: voice_failures.
SELECT kind, detail, cause, count(*) AS count, count(DISTINCT session_id) AS sessions
FROM (SELECT kind, session_id, cause,
             CASE WHEN kind IN ('invalid_truncate', 'output_without_response', 'barge_in_not_truncated') THEN NULL
                  ELSE detail END AS detail
      FROM voice_failures)
GROUP BY kind, detail, cause
ORDER BY list_position(['response_failed', 'response_incomplete', 'response_without_done', 'error',
                        'session_expired', 'transcription_failed', 'hung_tool_call', 'output_without_response',
                        'barge_in_not_truncated', 'invalid_truncate', 'upstream_close', 'upstream_drop',
                        'upstream_rejected', 'proxy_stopped', 'proxy_error'], kind), count DESC, detail NULLS FIRST, cause NULLS FIRST
