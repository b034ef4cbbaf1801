-- report voice_latency_by_minute: time to first audio by session minute (n, p50, p90, p99, max in ms).
-- turn_to_first_audio (= `rtreplay analyze --report latency`, `by_minute`).
-- Answers: "does the caller wait longer as the session gets older?"
-- Relies on: latency_samples.
SELECT minute, count(*) AS n, quantile_cont(ms, 0.5) AS p50, quantile_cont(ms, 0.9) AS p90,
       quantile_cont(ms, 0.99) AS p99, max(ms) AS max
FROM latency_samples WHERE measure = 'turn_to_first_audio'
GROUP BY minute ORDER BY minute
