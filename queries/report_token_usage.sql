-- report token_usage: tokens by model and day (UTC day of response.done), from response.done usage.
-- Answers: "what did it cost, per model, per day?" Rows are responses that reached response.done; `model`
-- is the session's model when the response started (NULL when unknown).
-- Relies on: responses (day, model, done_seq, *_tokens).
SELECT
    day,
    model,
    count(*) AS responses,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    sum(cached_tokens) AS cached_tokens,
    sum(input_text_tokens) AS input_text_tokens,
    sum(input_audio_tokens) AS input_audio_tokens,
    sum(output_text_tokens) AS output_text_tokens,
    sum(output_audio_tokens) AS output_audio_tokens
FROM responses
WHERE done_seq IS NOT NULL
GROUP BY day, model
ORDER BY day, model NULLS LAST
