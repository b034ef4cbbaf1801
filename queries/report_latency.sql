-- report latency: latency percentiles (ms, monotonic clock) of the measures the views define.
-- Answers: "how fast is it, typically and at the tail?" One row per measure:
--   request_to_done            outcomes.latency_ms of requests that reached response.done
--   request_to_created         request -> its response.created
--   response_time_to_first_delta  responses: response.created -> first audio/text delta
--   response_duration          responses: response.created -> response.done
--   turn_stop_to_first_delta   turns: speech_stopped -> first delta of the turn's response
--   tool_output                tool_calls: call -> the app's function_call_output
-- Relies on: outcomes (latency_ms, outcome, answer_type, mono_ns), answers, responses, turns, tool_calls.
WITH timed AS MATERIALIZED (  -- read responses once for its two measures
    SELECT time_to_first_delta_ms, duration_ms FROM responses
),
samples AS (
    SELECT 'request_to_done' AS measure, latency_ms AS ms FROM outcomes
    WHERE outcome NOT IN ('rejected', 'unfinished')
    UNION ALL
    SELECT 'request_to_created', ms_between(q.mono_ns, a.mono_ns)
    FROM requests q JOIN answers a ON a.session_id = q.session_id AND a.request_seq = q.seq
    WHERE a.answer_type = 'response.created'
    UNION ALL
    SELECT 'response_time_to_first_delta', time_to_first_delta_ms FROM timed
    UNION ALL
    SELECT 'response_duration', duration_ms FROM timed
    UNION ALL
    SELECT 'turn_stop_to_first_delta', stop_to_first_delta_ms FROM turns
    UNION ALL
    SELECT 'tool_output', latency_to_output_ms FROM tool_calls
)
SELECT
    measure,
    count(ms) AS n,
    quantile_cont(ms, 0.5) AS p50,
    quantile_cont(ms, 0.9) AS p90,
    quantile_cont(ms, 0.95) AS p95,
    quantile_cont(ms, 0.99) AS p99,
    max(ms) AS max
FROM samples
GROUP BY measure
ORDER BY list_position(['request_to_done', 'request_to_created', 'response_time_to_first_delta',
                        'response_duration', 'turn_stop_to_first_delta', 'tool_output'], measure)
