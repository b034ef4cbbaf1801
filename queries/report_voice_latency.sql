-- report voice_latency: time to first audio, request and tool latencies (= `analyze --report latency`).
-- The measures of docs/definitions.md, "Latency": n, p50, p90, p99 and max in ms, one row each (`measures`).
-- Answers: "how long do callers wait for the first audio, requests for their response, tools for their round trip?"
-- Relies on: latency_samples.
SELECT m.measure, count(s.ms) AS n, quantile_cont(s.ms, 0.5) AS p50, quantile_cont(s.ms, 0.9) AS p90,
       quantile_cont(s.ms, 0.99) AS p99, max(s.ms) AS max
FROM (SELECT unnest(['turn_to_first_audio', 'request_to_created', 'request_to_first_delta', 'tool_call_to_output',
                     'tool_output_to_first_delta', 'tool_round_trip']) AS measure,
             generate_subscripts(['turn_to_first_audio', 'request_to_created', 'request_to_first_delta',
                                  'tool_call_to_output', 'tool_output_to_first_delta', 'tool_round_trip'], 1) AS i) m
LEFT JOIN latency_samples s ON s.measure = m.measure
GROUP BY m.measure, m.i
ORDER BY m.i
