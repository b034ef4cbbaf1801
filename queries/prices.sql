-- prices: the price table of the cost report, one row per model and token kind (USD per 1M tokens; kind
-- `per_minute`: USD per minute of duration-billed transcription). Substituted from queries/prices.json
-- (or the file given to `queries.connect(prices=...)`) when the views are made.
-- Answers: "what does a token of each kind cost, per model?"
-- Relies on: nothing (literal values).
SELECT * FROM (VALUES {prices_values}) AS t(model, kind, usd)
