-- report cost: cost per session in USD, unheard audio apart (= `rtreplay analyze --report cost`).
-- Columns: responses with usage, tokens by kind, USD (priced parts only), transcription USD, unheard audio USD,
-- and how many things had no price (the JSON's `sessions`).
-- Answers: "what did each session cost, and how much of it paid for audio nobody heard?"
-- Relies on: voice_cost.
SELECT session_id,
       count(*) FILTER (WHERE what = 'response') AS responses,
       sum(text_input) FILTER (WHERE what = 'response') AS text_input,
       sum(text_cached_input) FILTER (WHERE what = 'response') AS text_cached_input,
       sum(text_output) FILTER (WHERE what = 'response') AS text_output,
       sum(audio_input) FILTER (WHERE what = 'response') AS audio_input,
       sum(audio_cached_input) FILTER (WHERE what = 'response') AS audio_cached_input,
       sum(audio_output) FILTER (WHERE what = 'response') AS audio_output,
       sum(image_input) FILTER (WHERE what = 'response') AS image_input,
       sum(image_cached_input) FILTER (WHERE what = 'response') AS image_cached_input,
       coalesce(sum(usd), 0) AS usd,
       coalesce(sum(usd) FILTER (WHERE what = 'transcription'), 0) AS transcription_usd,
       sum(unheard_usd) AS unheard_audio_usd,
       count(*) FILTER (WHERE usd IS NULL) AS unpriced
FROM voice_cost
GROUP BY session_id ORDER BY session_id
