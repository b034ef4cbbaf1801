-- report voice_latency_by_context: time to first audio by context size (bins of 1,000 input tokens).
-- The context is the response's usage.input_tokens in bins of 1,000 (`context_tokens` = the bin's start; NULL = no usage) (= `rtreplay analyze --report latency`,
-- `by_context`).
-- Answers: "does the caller wait longer as the context grows?"
-- Relies on: latency_samples.
SELECT context_tokens // 1000 * 1000 AS context_tokens, count(*) AS n, quantile_cont(ms, 0.5) AS p50,
       quantile_cont(ms, 0.9) AS p90, quantile_cont(ms, 0.99) AS p99, max(ms) AS max
FROM latency_samples WHERE measure = 'turn_to_first_audio'
GROUP BY ALL ORDER BY context_tokens NULLS LAST
