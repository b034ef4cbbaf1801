-- voice_cost: one row per priced thing (docs/definitions.md, "Cost"): each response with usage (`what` =
-- 'response') and each completed input transcription (`what` = 'transcription'), with tokens by kind and USD.
-- Response tokens: uncached input = input of the modality - its cached part (cached_tokens_details; without
-- details all cached tokens are text); counts that are not positive integers count 0. `usd` is NULL when the
-- model has no price or a kind with tokens has none; the model's price is its own key, else the longest key it
-- extends with a dated snapshot suffix (-YYYY-MM-DD). `unheard_usd`: audio output cost x share of the response's
-- generated audio cut by valid truncates (unheard_ms / audio_ms, at most 1). Transcriptions: by duration
-- (seconds / 60 x per_minute; 0 seconds cost 0) or by tokens (audio, text input; text output).
-- Relies on: voice_responses, truncations, control_events (transcription completed), voice_settings, prices.
WITH resp AS (
    SELECT session_id, response_id, turn, model, audio_ms, usage,
           json_type(usage, '$.input_token_details.cached_tokens_details') = 'OBJECT' AS d
    FROM voice_responses WHERE usage IS NOT NULL
),
cached AS (
    SELECT *,
           CASE WHEN d THEN pos_int(usage, '$.input_token_details.cached_tokens_details.text_tokens')
                ELSE pos_int(usage, '$.input_token_details.cached_tokens') END AS c_text,
           CASE WHEN d THEN pos_int(usage, '$.input_token_details.cached_tokens_details.audio_tokens') ELSE 0 END AS c_audio,
           CASE WHEN d THEN pos_int(usage, '$.input_token_details.cached_tokens_details.image_tokens') ELSE 0 END AS c_image
    FROM resp
),
responses AS (
    SELECT 'response' AS what, session_id, response_id, NULL::BIGINT AS seq, turn, model, audio_ms,
           greatest(0, pos_int(usage, '$.input_token_details.text_tokens') - c_text) AS text_input,
           c_text AS text_cached_input,
           pos_int(usage, '$.output_token_details.text_tokens') AS text_output,
           greatest(0, pos_int(usage, '$.input_token_details.audio_tokens') - c_audio) AS audio_input,
           c_audio AS audio_cached_input,
           pos_int(usage, '$.output_token_details.audio_tokens') AS audio_output,
           greatest(0, pos_int(usage, '$.input_token_details.image_tokens') - c_image) AS image_input,
           c_image AS image_cached_input,
           NULL::BOOLEAN AS by_duration, 0.0 AS seconds
    FROM cached
),
trans AS (
    SELECT c.session_id, c.seq,
           (SELECT count(*) FROM control_events s WHERE s.session_id = c.session_id AND s.direction = 'server'
                AND s.type = 'input_audio_buffer.speech_stopped' AND s.seq < c.seq) AS turn,
           st.transcription_model AS model,
           CASE WHEN json_type(c.payload, '$.usage') = 'OBJECT' THEN json_extract(c.payload, '$.usage') END AS usage
    FROM control_events c
    ASOF LEFT JOIN (SELECT * FROM voice_settings WHERE source = 'session') st
        ON st.session_id = c.session_id AND c.seq > st.seq
    WHERE c.direction = 'server' AND c.type = 'conversation.item.input_audio_transcription.completed'
      AND json_valid(c.payload)
),
transcriptions AS (
    SELECT 'transcription', session_id, NULL, seq, turn, model, 0.0,
           pos_int(usage, '$.input_token_details.text_tokens'), 0, pos_int(usage, '$.output_tokens'),
           CASE WHEN json_type(usage, '$.input_token_details') = 'OBJECT'
                THEN pos_int(usage, '$.input_token_details.audio_tokens') ELSE pos_int(usage, '$.input_tokens') END,
           0, 0, 0, 0,
           coalesce(usage ->> '$.type' = 'duration', false),
           CASE WHEN json_type(usage, '$.seconds') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
                THEN CAST(usage ->> '$.seconds' AS DOUBLE) ELSE 0.0 END
    FROM trans
),
things AS (SELECT * FROM responses UNION ALL SELECT * FROM transcriptions),
price_wide AS (
    PIVOT prices ON kind IN ('text_input', 'text_cached_input', 'text_output', 'audio_input', 'audio_cached_input',
                             'audio_output', 'image_input', 'image_cached_input', 'per_minute')
    USING first(usd) GROUP BY model
),
keyed AS (  -- the price-table model each thing takes its prices from
    SELECT t.*, p.model AS price_key
    FROM things t LEFT JOIN (SELECT DISTINCT model FROM prices) p
        ON t.model = p.model OR (starts_with(t.model, p.model || '-')
            AND regexp_full_match(substr(t.model, length(p.model) + 2), '\d{4}-\d{2}-\d{2}'))
    QUALIFY row_number() OVER (PARTITION BY t.what, t.session_id, t.response_id, t.seq
                               ORDER BY (t.model = p.model) DESC NULLS LAST, length(p.model) DESC NULLS LAST) = 1
),
priced AS (
    SELECT k.*, p.audio_output AS audio_output_price,
        CASE
            WHEN k.by_duration THEN CASE WHEN k.seconds = 0 THEN 0.0
                                         WHEN p.per_minute IS NULL THEN NULL ELSE k.seconds / 60 * p.per_minute END
            WHEN k.price_key IS NULL THEN NULL
            WHEN (k.text_input > 0 AND p.text_input IS NULL) OR (k.text_cached_input > 0 AND p.text_cached_input IS NULL)
                 OR (k.text_output > 0 AND p.text_output IS NULL) OR (k.audio_input > 0 AND p.audio_input IS NULL)
                 OR (k.audio_cached_input > 0 AND p.audio_cached_input IS NULL)
                 OR (k.audio_output > 0 AND p.audio_output IS NULL) OR (k.image_input > 0 AND p.image_input IS NULL)
                 OR (k.image_cached_input > 0 AND p.image_cached_input IS NULL) THEN NULL
            ELSE (k.text_input * coalesce(p.text_input, 0) + k.text_cached_input * coalesce(p.text_cached_input, 0)
                  + k.text_output * coalesce(p.text_output, 0) + k.audio_input * coalesce(p.audio_input, 0)
                  + k.audio_cached_input * coalesce(p.audio_cached_input, 0)
                  + k.audio_output * coalesce(p.audio_output, 0) + k.image_input * coalesce(p.image_input, 0)
                  + k.image_cached_input * coalesce(p.image_cached_input, 0)) / 1e6
        END AS usd
    FROM keyed k LEFT JOIN price_wide p ON p.model = k.price_key
)
SELECT p.what, p.session_id, p.response_id, p.seq, p.turn, p.model,
       p.text_input, p.text_cached_input, p.text_output, p.audio_input, p.audio_cached_input, p.audio_output,
       p.image_input, p.image_cached_input, p.seconds, p.usd,
       CASE WHEN p.what = 'response' AND p.usd IS NOT NULL AND p.audio_ms > 0 AND coalesce(u.unheard_ms, 0) > 0
            THEN p.audio_output * coalesce(p.audio_output_price, 0) / 1e6 * least(1.0, u.unheard_ms / p.audio_ms)
            ELSE 0.0 END AS unheard_usd
FROM priced p
LEFT JOIN (SELECT session_id, response_id, sum(unheard_ms) AS unheard_ms FROM truncations
           WHERE valid AND response_id IS NOT NULL GROUP BY ALL) u
    ON u.session_id = p.session_id AND u.response_id = p.response_id
